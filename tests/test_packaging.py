"""The package as a user installs it: a wheel that carries ShapesWorld's models and probes and
runs from a folder that is not the checkout; and the documentation site, built in strict mode."""

from __future__ import annotations

import os
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def wheel(tmp_path_factory) -> Path:
    from hatchling.builders.wheel import WheelBuilder

    folder = tmp_path_factory.mktemp("wheel")
    (built,) = WheelBuilder(str(ROOT)).build(directory=str(folder), versions=["standard"])
    return Path(built)


def test_the_wheel_carries_the_embedded_world_and_its_entry_point(wheel):
    with zipfile.ZipFile(wheel) as archive:
        names = set(archive.namelist())
        entry_points = next(archive.read(n).decode() for n in names if n.endswith(".dist-info/entry_points.txt"))
    assert "workbench/shapesworld/trained/shapes/model_index.json" in names
    assert "workbench/shapesworld/trained/shapes-transformer/model_index.json" in names
    assert "workbench/shapesworld/trained/shapes-classifier/model.safetensors" in names
    assert {"workbench/shapesworld/shipped_probes/concept-leakage.toml", "workbench/shapesworld/shipped_probes/tcav.toml"} <= names
    assert "[workbench.worlds]" in entry_points and "workbench.shapesworld.embedded:WORLD" in entry_points
    assert {"workbench/viz/plotly/plotly-cartesian.min.js", "workbench/viz/plotly/LICENSE"} <= names  # dashboards work offline
    assert not [n for n in names if n.startswith(("tests/", "benchmarks/", "checkpoints/"))]
    assert wheel.stat().st_size < 40 * 2**20
    assert sum(f.stat().st_size for f in (ROOT / "data").rglob("*") if f.is_file()) < 40 * 2**20  # all embedded models


def test_an_unpacked_wheel_loads_its_model_and_probes_from_any_folder(wheel, tmp_path):
    site = tmp_path / "site"
    with zipfile.ZipFile(wheel) as archive:
        archive.extractall(site)
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    code = (
        "import workbench, workbench.shapesworld.data as data, workbench.shapesworld.demo as demo\n"
        "print(workbench.__file__); print(data.data_dir()); print(demo.probes_dir())\n"
        "print(type(workbench.load_pipeline('shapes')).__name__)\n"
    )
    env = {k: v for k, v in os.environ.items() if k not in ("WORKBENCH_DATA", "WORKBENCH_PROBES")}
    env["PYTHONPATH"] = str(site)
    out = subprocess.run([sys.executable, "-c", code], cwd=elsewhere, env=env, capture_output=True, text=True, check=True).stdout.split("\n")
    package, data_dir, probes_dir, pipeline = out[:4]
    assert package.startswith(str(site)) and data_dir.startswith(str(site)) and probes_dir.startswith(str(site))
    assert pipeline == "ShapesPipeline"


@pytest.mark.notebooks
def test_the_documentation_site_builds_in_strict_mode(tmp_path):
    """Broken links, missing references, unknown API names and failing tutorials fail the build;
    the tutorials run with their figures and the probe keys come from the probe schema."""
    env = {**os.environ, "NO_MKDOCS_2_WARNING": "1", "WORKBENCH_DOCS_EXECUTE": "true"}
    done = subprocess.run([sys.executable, "-m", "mkdocs", "build", "--strict", "-q", "-d", str(tmp_path / "site")],
                          cwd=ROOT, env=env, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr[-3000:]
    site = tmp_path / "site"
    assert "Plotly.newPlot" in (site / "tutorials" / "03-tcav" / "index.html").read_text()
    probe_page = (site / "how-to" / "write-a-probe" / "index.html").read_text()
    assert "unsupervised_regions" in probe_page and "random_pool" in probe_page
    assert "run_tcav" in (site / "reference" / "concepts" / "index.html").read_text()
