import subprocess
import sys

import pytest
from PIL import Image

from workbench.cli import main


TINY_PROBE = """
name = "tiny-demo"
[model]
steps = 2
[inputs]
prompts = ["a large red circle on a gray background"]
[attention]
"""


def test_demo_runs_probes_into_one_dashboard(tmp_path, capsys):
    probes = tmp_path / "probes"
    probes.mkdir()
    (probes / "tiny.toml").write_text(TINY_PROBE)
    out = tmp_path / "demo"
    assert main(["demo", "--out", str(out), "--count", "3", "--steps", "3", "--probes", str(probes)]) == 0
    printed = capsys.readouterr().out
    assert str((out / "dashboard.html").resolve()) in printed
    assert Image.open(out / "grid.png").height > 3 * 128
    table = (out / "scenes.csv").read_text().splitlines()
    assert table[0].startswith("scene,object,shape,color,size") and len(table) >= 4
    assert (out / "runs" / "tiny" / "run.json").is_file()
    page = (out / "dashboard.html").read_text()
    assert "<h2>tiny-demo | Heat maps</h2>" in page and "a large red circle on a gray background" in page


def test_demo_without_probes_says_where_it_looked(tmp_path, capsys):
    assert main(["demo", "--out", str(tmp_path / "demo"), "--count", "1", "--steps", "1", "--probes", str(tmp_path)]) == 2
    assert f"no probe files (*.toml) in {tmp_path}" in capsys.readouterr().err


def test_bad_arguments_give_one_clear_line(tmp_path, capsys):
    assert main(["demo", "--out", str(tmp_path), "--count", "0"]) == 2
    assert capsys.readouterr().err.strip() == "workbench: error: count must be at least 1, got 0"


def test_console_script_help_runs():
    out = subprocess.run([sys.executable, "-m", "workbench.cli", "world", "train", "--help"], capture_output=True, text=True)
    assert out.returncode == 0 and "--out" in out.stdout


def test_train_widths_must_be_three_multiples_of_eight(tmp_path, capsys):
    with pytest.raises(SystemExit) as exit_:
        main(["world", "train", "--out", str(tmp_path / "run"), "--widths", "32,64"])
    assert exit_.value.code == 2
    assert "--widths: expected three positive multiples of 8 separated by commas (e.g. 32,64,128), got '32,64'" in capsys.readouterr().err
    assert not (tmp_path / "run").exists()


def test_trainer_flags_left_out_take_the_configs_own_defaults():
    from workbench.cli import _given, build_parser
    from workbench.shapesworld.training.classifier import ClassifierTrainingConfig
    from workbench.shapesworld.training.diffusion import DiffusionTrainingConfig
    from workbench.shapesworld.training.word_encoder import EncoderTrainingConfig

    parse = build_parser().parse_args
    for command, config in [("train", DiffusionTrainingConfig), ("train-classifier", ClassifierTrainingConfig),
                            ("train-encoder", EncoderTrainingConfig)]:
        assert _given(config, parse(["world", command, "--out", "x"])) == config(), command
    given = _given(DiffusionTrainingConfig, parse(["world", "train", "--out", "x", "--steps", "7", "--two-object-fraction", "0.2"]))
    assert given == DiffusionTrainingConfig(steps=7, two_object_fraction=0.2)


@pytest.mark.parametrize("arguments, expected", [
    (lambda p: ["demo", "--out", str(p / "file.txt"), "--count", "1", "--steps", "1", "--probes", str(p / "probes")], "file.txt is a file, not a folder"),
    (lambda p: ["run", str(p / "probes" / "cuda.toml"), "--out", str(p / "run")], "device 'cuda' asked, but this torch"),
    (lambda p: ["run", str(p / "binary.toml"), "--out", str(p / "run")], "binary.toml: not a text file"),
    (lambda p: ["dashboard", str(p / "damaged")], "run.json is damaged"),
])
def test_project_and_path_errors_end_in_one_line(tmp_path, capsys, arguments, expected):
    (tmp_path / "file.txt").write_text("not a folder")
    (tmp_path / "probes").mkdir()
    (tmp_path / "probes" / "cuda.toml").write_text(TINY_PROBE.replace("[model]", '[model]\ndevice = "cuda"'))
    (tmp_path / "binary.toml").write_bytes(b"\x80\x81\xfe\xff" * 8)
    (tmp_path / "damaged").mkdir()
    (tmp_path / "damaged" / "run.json").write_text('{"format": 1, "vers')
    if expected.startswith("device") and __import__("torch").cuda.is_available():
        pytest.skip("this machine has CUDA")
    assert main(arguments(tmp_path)) == 2
    err = capsys.readouterr().err
    assert err.count("workbench: error:") == 1 and expected in err.splitlines()[-1]  # (progress bars may come before)
    assert not (tmp_path / "run").exists()
