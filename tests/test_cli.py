import subprocess
import sys

from PIL import Image

from workbench.cli import main


def test_demo_writes_a_grid_and_the_factor_table(tmp_path, capsys):
    assert main(["demo", "--out", str(tmp_path), "--count", "3", "--steps", "3"]) == 0
    printed = capsys.readouterr().out
    assert str((tmp_path / "grid.png").resolve()) in printed
    grid = Image.open(tmp_path / "grid.png")
    assert grid.height > 3 * 128
    table = (tmp_path / "scenes.csv").read_text().splitlines()
    assert table[0].startswith("scene,object,shape,color,size")
    assert len(table) >= 4


def test_bad_arguments_give_one_clear_line(tmp_path, capsys):
    assert main(["demo", "--out", str(tmp_path), "--count", "0"]) == 2
    assert capsys.readouterr().err.strip() == "workbench: error: count must be at least 1, got 0"


def test_console_script_help_runs():
    out = subprocess.run([sys.executable, "-m", "workbench.cli", "world", "train", "--help"], capture_output=True, text=True)
    assert out.returncode == 0 and "--out" in out.stdout
