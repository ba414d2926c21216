"""Run directories: what a run writes, resuming, refusing to mix, and the dashboard."""

import json

import pandas as pd
import pytest

from workbench.cli import main
from workbench.probes import RunDirectoryError, run_probe

pytestmark = pytest.mark.slow  # whole probes run into run directories

PROBE = """
name = "tiny"
description = "a <b>probe</b> & its run"
seed = 1
[model]
steps = 2
[inputs]
prompts = ["a large red circle and a small blue square on a striped background", "a <script>x</script> prompt"]
[attention]
layers = "all"
[projection]
bank = "vocabulary"
neighbors = 5
"""


@pytest.fixture(scope="module")
def finished_run(tmp_path_factory):
    folder = tmp_path_factory.mktemp("probe")
    (folder / "tiny.toml").write_text(PROBE)
    return folder / "tiny.toml", run_probe(folder / "tiny.toml", folder / "run")


def test_run_writes_tables_tensors_record_and_dashboard(finished_run):
    _, run = finished_run
    record = json.loads((run / "run.json").read_text())
    assert record["settings"]["seed"] == 1 and record["versions"]["workbench"]
    assert set(record["parts"]) == {"attention", "projection"}
    assert all(part["seconds"] > 0 for part in record["parts"].values())
    leakage = pd.read_parquet(run / "attention" / "leakage.parquet")
    assert set(leakage.prompt) == {0}  # only the ShapesWorld caption has known regions
    assert {"object 1 (red circle)", "object 2 (blue square)", "background"} >= set(leakage.region)
    assert (run / "attention" / "maps.safetensors").is_file()
    assert len(pd.read_parquet(run / "projection" / "points.parquet")) > 10
    assert list((run / "figures").glob("*.json"))
    page = (run / "dashboard.html").read_text()
    assert "a &lt;b&gt;probe&lt;/b&gt; &amp; its run" in page and "<b>probe</b>" not in page
    assert "<script>x</script>" not in page


def test_rerun_resumes_only_missing_parts(finished_run):
    probe, run = finished_run
    kept = (run / "attention" / "part.json").stat().st_mtime_ns
    for path in (run / "projection").iterdir():
        path.unlink()
    (run / "projection").rmdir()
    run_probe(probe, run, dashboard=False)
    assert (run / "attention" / "part.json").stat().st_mtime_ns == kept
    assert (run / "projection" / "part.json").is_file()


def test_refuses_other_settings_and_other_versions(finished_run, tmp_path):
    probe, run = finished_run
    changed = tmp_path / "changed.toml"
    changed.write_text(PROBE.replace("seed = 1", "seed = 2"))
    with pytest.raises(RunDirectoryError, match="other settings"):
        run_probe(changed, run)
    copy = tmp_path / "copy"
    copy.mkdir()
    record = json.loads((run / "run.json").read_text())
    record["versions"]["workbench"] = "0.0.1"
    (copy / "run.json").write_text(json.dumps(record))
    with pytest.raises(RunDirectoryError, match="written by workbench 0.0.1"):
        run_probe(probe, copy)
    (tmp_path / "busy").mkdir()
    (tmp_path / "busy" / "notes.txt").write_text("mine")
    with pytest.raises(RunDirectoryError, match="not empty and has no run.json"):
        run_probe(probe, tmp_path / "busy")


def test_cli_run_and_dashboard(finished_run, tmp_path, capsys):
    probe, run = finished_run
    (run / "dashboard.html").unlink()
    assert main(["dashboard", str(run)]) == 0
    assert (run / "dashboard.html").is_file() and "dashboard written to" in capsys.readouterr().out
    assert main(["dashboard", str(tmp_path)]) == 2
    assert "run.json does not exist" in capsys.readouterr().err
    bad = tmp_path / "bad.toml"
    bad.write_text(PROBE.replace("neighbors", "neighbours"))
    assert main(["run", str(bad), "--out", str(tmp_path / "r")]) == 2
    err = capsys.readouterr().err
    assert "bad.toml, line 13: unknown key 'neighbours' in [projection]" in err and err.count("\n") == 1


@pytest.mark.parametrize("damage, message", [
    (lambda run: (run / "run.json").write_text('{"format": 1, "settings": {'), "run.json is damaged"),
    (lambda run: (run / "run.json").write_text('[1, 2]'), "has run format 'list'"),
    (lambda run: (run / "run.json").write_text('{"format": 1}'), "lacks versions, fingerprint, settings, parts"),
    (lambda run: (run / "attention" / "overlap.parquet").unlink(), "attention is damaged"),
    (lambda run: (run / "attention" / "maps.safetensors").write_bytes(b"\0" * 16), "attention is damaged"),
])
def test_damaged_run_folders_are_named_with_the_way_out(finished_run, tmp_path, damage, message):
    import shutil

    from workbench.probes import write_run_dashboard

    probe, run = finished_run
    copy = tmp_path / "copy"
    shutil.copytree(run, copy)
    damage(copy)
    with pytest.raises(RunDirectoryError, match=message):
        write_run_dashboard(copy)
    with pytest.raises(RunDirectoryError, match=message):
        run_probe(probe, copy)


def test_a_part_left_half_written_by_a_killed_process_is_cleared_on_rerun(tmp_path):
    from workbench.files import atomic_path, remove_leftovers

    (tmp_path / ".attention.k1ll3d").mkdir()
    (tmp_path / ".attention.k1ll3d" / "attention").mkdir()
    (tmp_path / ".overlap.x").mkdir()
    remove_leftovers(tmp_path / "attention")
    assert [p.name for p in tmp_path.iterdir()] == [".overlap.x"]  # only the target's own leftovers
    with atomic_path(tmp_path / "attention") as tmp:
        tmp.mkdir()
    assert sorted(p.name for p in tmp_path.iterdir()) == [".overlap.x", "attention"]
