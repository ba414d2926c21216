"""Sweeps in this process: cells from a grid or a list of a base probe's settings, each a run
directory; one model load per checkpoint; failures recorded, not fatal; resumed, never mixed."""

import json
import re
import sys
from pathlib import Path

import pandas as pd
import pytest

from workbench.probes import RunDirectoryError
from workbench.analyses.summaries import localisation_summary
from workbench.sweeps import SweepError, parse_sweep, run_sweep
from workbench.sweeps.report import sweep_sections

from .conftest import PROMPTS


def sweep_text(root: Path, axes: str, extra: str = "") -> str:
    return f'name = "s"\nprobe = "base.toml"\n{extra}[axes]\n{axes}'


def test_a_grid_crosses_the_axes_and_each_cell_is_a_checked_probe(checkpoints):
    text = sweep_text(checkpoints, f'"model.pipeline" = ["{checkpoints / "step-0"}", "{checkpoints / "step-1"}"]\nseed = [0, 1, 2]\n')
    sweep = parse_sweep(text, str(checkpoints / "s.toml"))
    assert len(sweep.cells) == 6 and sweep.axes == ("model.pipeline", "seed")
    assert [c.values["seed"] for c in sweep.cells[:3]] == [0, 1, 2] and sweep.cells[4].probe.model["pipeline"].endswith("step-1")
    assert sweep.cells[0].probe.inputs["prompts"] == PROMPTS and sweep.cells[1].probe.seed == 1
    chunked = parse_sweep(sweep_text(checkpoints, "seed = [0]\n", "prompt_chunks = 2\n"), str(checkpoints / "s.toml"))
    assert [c.probe.inputs["prompts"] for c in chunked.cells] == [PROMPTS[:2], PROMPTS[2:]]
    listed = parse_sweep('name = "s"\nprobe = "base.toml"\ncombine = "list"\n[[cells]]\nseed = 4\n"model.steps" = 3\n'
                         '[[cells]]\nseed = 5\n"model.steps" = 1\n', str(checkpoints / "s.toml"))
    assert [(c.probe.seed, c.probe.model["steps"]) for c in listed.cells] == [(4, 3), (5, 1)]


@pytest.mark.parametrize("text, message", [
    ('name = "s"\nprobe = "base.toml"\ncolour = 1\n', r"line 3: unknown key 'colour'; accepted: name, description"),
    ('name = "s"\nprobe = "missing.toml"\n', r"line 2: the base probe: probe file .*missing.toml does not exist"),
    ('name = "s"\nprobe = "base.toml"\n[axes]\n"model.colour" = [1]\n', r"line 4: axis 'model.colour': \[model\] has no key 'colour'"),
    ('name = "s"\nprobe = "base.toml"\n[axes]\n"tcav.layers" = [["unet.mid_block"]]\n', r"varies \[tcav\], which the base probe .* does not run"),
    ('name = "s"\nprobe = "base.toml"\n[axes]\nseed = 3\n', r"line 4: axis 'seed' must be a non-empty list of values"),
    ('name = "s"\nprobe = "base.toml"\n[axes]\n"model.steps" = [2, "many"]\n', r"cell-001 \{\"model.steps\": \"many\"\}: .*\[model\] steps must be an integer"),
    ('name = "s"\nprobe = "base.toml"\nprompt_chunks = 9\n[axes]\nseed = [0]\n', r"prompt_chunks = 9, but the base probe has 3 prompt\(s\)"),
])
def test_bad_sweeps_are_refused_naming_the_line_and_the_cell(checkpoints, text, message):
    with pytest.raises(SweepError, match=message):
        parse_sweep(text, str(checkpoints / "s.toml"))


def test_a_sweep_runs_every_cell_loads_each_model_once_and_resumes(checkpoints, tmp_path):
    grid = f'"model.pipeline" = ["{checkpoints / "step-0"}", "{checkpoints / "step-1"}", "{checkpoints / "nowhere"}"]\nseed = [0, 1]\n'
    sweep = parse_sweep(sweep_text(checkpoints, grid), str(checkpoints / "s.toml"))
    index = run_sweep(sweep, tmp_path / "out")
    assert list(index.columns) == ["cell", "model.pipeline", "seed", "status", "seconds", "error"]
    assert list(index.status) == ["done"] * 4 + ["failed"] * 2  # the missing checkpoint fails its cells, the rest go on
    assert index.error[5].startswith("ProbeError") and "nowhere" in index.error[5]
    assert json.loads((tmp_path / "out" / "sweep.json").read_text())["model_loads"] == 2  # one per checkpoint, not per cell
    assert not (tmp_path / "out" / "cells" / "cell-004").exists()  # refused before anything was written
    leakage = pd.read_parquet(tmp_path / "out" / "tables" / "attention" / "leakage.parquet")
    assert list(leakage.columns[:3]) == ["cell", "model.pipeline", "seed"] and sorted(set(leakage.cell)) == [f"cell-00{i}" for i in range(4)]
    cells = [pd.read_parquet(tmp_path / "out" / "cells" / f"cell-00{i}" / "attention" / "leakage.parquet") for i in range(4)]
    assert len(leakage) == sum(map(len, cells)) and leakage[leakage.cell == "cell-001"].drop(columns=["cell", "model.pipeline", "seed"]).reset_index(drop=True).equals(cells[1])
    assert re.search(r"cell-004 .* failed in .*\nTraceback", (tmp_path / "out" / "sweep.log").read_text())
    page = (tmp_path / "out" / "dashboard.html").read_text()
    for heading in ("Cells: 4 of 6 done", "localisation IoU (DAAM, threshold 0.4) against seed", "above chance against model.pipeline"):
        assert heading in page
    _, sections = sweep_sections(tmp_path / "out")
    by_seed = next(s.figure for s in sections if s.heading == "localisation IoU (DAAM, threshold 0.4) against seed")
    local = pd.read_parquet(tmp_path / "out" / "tables" / "attention" / "localisation.parquet")
    expected = localisation_summary(local[local.seed == 1]).set_index("role").iou
    for trace in by_seed.data:  # a line per role, a point per seed
        assert trace.y[list(trace.x).index(1)] == pytest.approx(expected[trace.name])
    # the same seed on another checkpoint gives other maps; the same cell rerun is skipped, not recomputed
    maps = [(tmp_path / "out" / "cells" / c / "attention" / "maps.safetensors").read_bytes() for c in ("cell-000", "cell-002")]
    assert maps[0] != maps[1]
    stamp = (tmp_path / "out" / "cells" / "cell-000" / "run.json").stat().st_mtime_ns
    again = run_sweep(sweep, tmp_path / "out")
    assert list(again.status) == list(index.status) and (tmp_path / "out" / "cells" / "cell-000" / "run.json").stat().st_mtime_ns == stamp
    assert json.loads((tmp_path / "out" / "sweep.json").read_text())["model_loads"] == 0  # only the failed cells were retried
    other = parse_sweep(sweep_text(checkpoints, "seed = [7]\n"), str(checkpoints / "s.toml"))
    with pytest.raises(RunDirectoryError, match="holds sweep 's' with other settings"):
        run_sweep(other, tmp_path / "out")


def test_the_sweep_command_reports_cells_and_errors_in_one_line(checkpoints, tmp_path, capsys):
    from workbench.cli import main

    (checkpoints / "s.toml").write_text(sweep_text(checkpoints, f'"model.pipeline" = ["{checkpoints / "step-0"}", "{checkpoints / "gone"}"]\n'))
    assert main(["sweep", str(checkpoints / "s.toml"), "--out", str(tmp_path / "out")]) == 0
    printed = capsys.readouterr().out
    assert "1 of 2 cells done; failed: cell-001 (errors in index.parquet and sweep.log; rerun to retry them)" in printed
    (checkpoints / "bad.toml").write_text('name = "s"\nprobe = "base.toml"\n[axes]\n"model.colour" = [1]\n')
    assert main(["sweep", str(checkpoints / "bad.toml"), "--out", str(tmp_path / "bad")]) == 2
    error = capsys.readouterr().err
    assert error.startswith("workbench: error: ") and "has no key 'colour'" in error and len(error.strip().splitlines()) == 1


def test_without_ray_the_engine_names_the_extra(checkpoints, tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "ray", None)
    sweep = parse_sweep(sweep_text(checkpoints, "seed = [0]\n"), str(checkpoints / "s.toml"))
    with pytest.raises(SweepError, match=r'the Ray engine needs Ray: pip install "concept-workbench\[ray\]"'):
        run_sweep(sweep, tmp_path / "out", engine="ray")
    assert not (tmp_path / "out").exists()


def test_a_checkpoint_curve_of_a_diff_probe(checkpoints, tmp_path):
    """[diff] against the last checkpoint, swept over the checkpoints: the curve reaches an
    overlap of 1 where the cell's model is the compared one."""
    (checkpoints / "diff.toml").write_text(
        f'name = "curve"\n[model]\npipeline = "{checkpoints / "step-0"}"\nsteps = 2\n'
        f'[inputs]\nprompts = {json.dumps(PROMPTS[:2])}\n[diff]\nagainst = ["{checkpoints / "step-1"}"]\n')
    text = f'name = "c"\nprobe = "diff.toml"\n[axes]\n"model.pipeline" = ["{checkpoints / "step-0"}", "{checkpoints / "step-1"}"]\n'
    run_sweep(parse_sweep(text, str(checkpoints / "c.toml")), tmp_path / "out")
    _, sections = sweep_sections(tmp_path / "out")
    curve = next(s.figure for s in sections if s.heading.startswith("heat-map overlap with the compared model"))
    for trace in curve.data:  # a line per word: below 1 at step-0, 1 at step-1 (the same model)
        assert trace.y[1] == pytest.approx(1.0) and trace.y[0] < 1.0
