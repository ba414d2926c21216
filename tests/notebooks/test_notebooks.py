"""The tutorial notebooks run top to bottom in a fresh kernel, call only the public API, and are
stored without outputs.

Each notebook is executed with nbclient in the `python3` kernel (ipykernel of the interpreter
running the tests), with notebooks/ as its working directory. The kernel inherits this process's
environment, so the hub stays switched off (tests/conftest.py).
"""

from __future__ import annotations

import ast
import importlib
import time
from pathlib import Path

import nbformat
import pytest
from nbclient import NotebookClient

from workbench.shapesworld.data import data_dir

NOTEBOOKS = Path(__file__).resolve().parents[2] / "notebooks"
NAMES = [
    "00-quickstart.ipynb",
    "01-diagnosing-concept-leakage.ipynb",
    "02-primary-vs-auxiliary-words.ipynb",
    "03-tcav.ipynb",
    "04-transformers-and-concept-maps.ipynb",
]
CELL_TIMEOUT_S = 600
# The packages a notebook may import from; names used from them must be in their __all__.
PUBLIC_PACKAGES = ("metrics", "concepts", "viz", "pipelines", "analyses", "projection", "shapesworld", "capture")


def read(name: str) -> nbformat.NotebookNode:
    return nbformat.read(NOTEBOOKS / name, as_version=4)


def missing_requirement(name: str) -> str | None:
    """Why a notebook cannot run on this checkout, or None."""
    if name.startswith("02-") and not (data_dir() / "shapes-encoder").exists():
        return (
            f"notebook {name} needs the trained word encoder, and {data_dir() / 'shapes-encoder'} is missing "
            "(train it with `workbench world train-encoder --out DIR --export-to data/shapes-encoder`)"
        )
    if name.startswith("04-") and not (data_dir() / "shapes-transformer").exists():
        return (
            f"notebook {name} needs the ShapesWorld transformer, and {data_dir() / 'shapes-transformer'} is missing "
            "(train it with `workbench world train --denoiser transformer --out DIR --export-to data/shapes-transformer`)"
        )
    return None


def test_every_notebook_is_tested():
    assert sorted(p.name for p in NOTEBOOKS.glob("*.ipynb")) == sorted(NAMES)


@pytest.mark.notebooks
@pytest.mark.parametrize("name", NAMES)
def test_notebook_runs_top_to_bottom(name):
    reason = missing_requirement(name)
    if reason:
        pytest.skip(reason)
    notebook = read(name)
    client = NotebookClient(
        notebook, timeout=CELL_TIMEOUT_S, kernel_name="python3", resources={"metadata": {"path": str(NOTEBOOKS)}}
    )
    tic = time.perf_counter()
    client.execute()  # raises CellExecutionError naming the failing cell and its traceback
    print(f"{name}: {time.perf_counter() - tic:.0f} s")
    outputs = [o for cell in notebook.cells if cell.cell_type == "code" for o in cell.outputs]
    assert not [o for o in outputs if o.output_type == "error"]
    # progress bars render as widgets (ipywidgets is a dependency), never as a warning
    assert not [o for o in outputs if o.output_type == "stream" and "TqdmWarning" in o.text]
    # every figure also renders in a static HTML export (the docs site), not only in JupyterLab
    figures = [o for o in outputs if "application/vnd.plotly.v1+json" in o.get("data", {})]
    assert all("text/html" in o.data for o in figures)


@pytest.mark.parametrize("name", NAMES)
def test_notebook_is_stored_without_outputs(name):
    for cell in read(name).cells:
        if cell.cell_type == "code":
            assert cell.outputs == [] and cell.execution_count is None, f"{name}: clear the outputs before committing"


def public_names(module: str) -> set[str]:
    return set(importlib.import_module(module).__all__)


def private_uses(source: str) -> list[str]:
    """Names a code cell takes from workbench that are not public (not in the __all__ of
    workbench or of one of its public packages)."""
    tree = ast.parse(source)
    aliases: dict[str, str] = {}  # local name -> workbench module
    bad = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name == "workbench" or alias.name.startswith("workbench."):
                    package = alias.name.split(".")[1] if "." in alias.name else None
                    if package is not None and (package not in PUBLIC_PACKAGES or alias.name.count(".") > 1):
                        bad.append(alias.name)
                    aliases[alias.asname or alias.name.split(".")[0]] = "workbench" if alias.asname is None else alias.name
        elif isinstance(node, ast.ImportFrom) and node.module and node.module.split(".")[0] == "workbench":
            parts = node.module.split(".")
            if len(parts) > 2 or (len(parts) == 2 and parts[1] not in PUBLIC_PACKAGES):
                bad.append(node.module)
                continue
            for alias in node.names:
                if node.module == "workbench" and alias.name in PUBLIC_PACKAGES:
                    aliases[alias.asname or alias.name] = f"workbench.{alias.name}"
                elif alias.name not in public_names(node.module):
                    bad.append(f"{node.module}.{alias.name}")
    for node in ast.walk(tree):
        if isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name) and node.value.id in aliases:
            module = aliases[node.value.id]
            if module == "workbench" and node.attr in PUBLIC_PACKAGES:
                continue
            if node.attr not in public_names(module):
                bad.append(f"{module}.{node.attr}")
        elif (
            isinstance(node, ast.Attribute) and isinstance(node.value, ast.Attribute)
            and isinstance(node.value.value, ast.Name) and aliases.get(node.value.value.id) == "workbench"
            and node.value.attr in PUBLIC_PACKAGES and node.attr not in public_names(f"workbench.{node.value.attr}")
        ):
            bad.append(f"workbench.{node.value.attr}.{node.attr}")
    return bad


@pytest.mark.parametrize("name", NAMES)
def test_notebook_calls_only_the_public_api(name):
    sources = [cell.source for cell in read(name).cells if cell.cell_type == "code"]
    bad = sorted({use for source in sources for use in private_uses(source)})
    assert not bad, f"{name} uses names outside the public API: {bad}"


def test_the_public_api_check_catches_private_names():
    assert private_uses("from workbench.shapesworld.segmentation import segment_by_palette") == ["workbench.shapesworld.segmentation"]
    assert private_uses("from workbench import shapesworld\nshapesworld.segmentation") == ["workbench.shapesworld.segmentation"]
    assert private_uses("import workbench\nworkbench.pipelines.loading") == ["workbench.pipelines.loading"]
    assert private_uses("import workbench\nfrom workbench import metrics, viz\nworkbench.trace\nmetrics.soft_iou\nviz.tcav_figure") == []
