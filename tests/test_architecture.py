"""The one-way rule, read from the source: the product never imports ShapesWorld, lower layers
never import higher ones, no two modules import each other (directly or round a circle), and
the light packages stay light."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "workbench"

# part -> the parts it may import. The product's parts first, lowest layer first; ShapesWorld
# and the command line may use the whole product. `worlds` is how the product reaches an
# embedded world without importing it (entry points).
ALLOWED: dict[str, set[str]] = {
    "version": set(),
    "files": set(),
    "worlds": set(),
    "metrics": set(),
    "projection": set(),
    "capture": {"files"},
    "viz": {"capture", "files"},
    "pipelines": {"capture", "files", "worlds"},
    "concepts": {"capture", "pipelines", "files"},
    "analyses": {"capture", "concepts", "metrics", "pipelines", "files"},
    "probes": {"analyses", "capture", "concepts", "metrics", "pipelines", "projection", "viz", "files", "version", "worlds"},
    "sweeps": {"analyses", "metrics", "probes", "viz", "files"},
    "__init__": {"capture", "pipelines", "version"},
}
PRODUCT = set(ALLOWED)
ALLOWED["shapesworld"] = PRODUCT - {"__init__"}
ALLOWED["cli"] = PRODUCT | {"shapesworld"}


def module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def part_of(module: str) -> str:
    parts = module.split(".")
    return "__init__" if len(parts) == 1 else parts[1]


def _type_checking_only(node: ast.AST, parents: dict[ast.AST, ast.AST]) -> bool:
    while node in parents:
        node = parents[node]
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            return True
    return False


def imports_of(path: Path, own: str | None = None) -> set[str]:
    """The workbench modules a file (module `own`) imports at run time, at any depth: lazy
    imports inside functions count, imports only for type checkers do not."""
    tree = ast.parse(path.read_text())
    parents = {child: node for node in ast.walk(tree) for child in ast.iter_child_nodes(node)}
    own = own or module_name(path)
    package = own if path.name == "__init__.py" else own.rpartition(".")[0]
    found = set()
    for node in ast.walk(tree):
        if _type_checking_only(node, parents):
            continue
        if isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[: len(package.split(".")) - node.level + 1]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module or ""
            names = [f"{target}.{alias.name}" for alias in node.names]
            found |= {name if (PACKAGE.parent / (name.replace(".", "/") + ".py")).exists()
                      or (PACKAGE.parent / name.replace(".", "/")).is_dir() else target for name in names}
        elif isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names}
    return {m for m in found if m == "workbench" or m.startswith("workbench.")}


def module_graph() -> dict[str, set[str]]:
    return {module_name(path): imports_of(path) for path in PACKAGE.rglob("*.py")}


def test_every_part_imports_only_what_its_layer_allows():
    wrong = []
    for module, imported in module_graph().items():
        part = part_of(module)
        assert part in ALLOWED, f"{module}: a new part of the package; give it a place in ALLOWED"
        wrong += [f"{module} -> {target}" for target in imported
                  if part_of(target) != part and part_of(target) not in ALLOWED[part]]
    assert not wrong, "imports against the one-way rule:\n" + "\n".join(sorted(wrong))


def test_the_product_never_imports_shapesworld():
    graph = module_graph()
    product = [m for m in graph if part_of(m) in PRODUCT]
    assert len(product) > 40
    assert not [(m, t) for m in product for t in graph[m] if part_of(t) == "shapesworld"]


def test_no_modules_import_each_other_round_a_circle():
    graph = module_graph()
    # a package's __init__ re-exporting its own modules is not a circle of meaning
    edges = {m: {t for t in targets if t in graph and not (m.startswith(t + ".") and t != "workbench")} for m, targets in graph.items()}
    state: dict[str, int] = {}
    path: list[str] = []

    def visit(module: str) -> None:
        state[module] = 1
        path.append(module)
        for target in sorted(edges[module]):
            if state.get(target) == 1:
                pytest.fail("import circle: " + " -> ".join(path[path.index(target):] + [target]))
            if target not in state:
                visit(target)
        path.pop()
        state[module] = 2

    for module in sorted(edges):
        if module not in state:
            visit(module)


def test_the_checker_sees_relative_lazy_and_type_checking_imports(tmp_path):
    fake = tmp_path / "x.py"
    fake.write_text("from typing import TYPE_CHECKING\nfrom ..shapesworld import scenes\n"
                    "def f():\n    from .overlap import soft_iou\nif TYPE_CHECKING:\n    import workbench.capture\n")
    found = imports_of(fake, "workbench.metrics.x")
    assert found == {"workbench.shapesworld.scenes", "workbench.metrics.overlap"}
    assert "shapesworld" not in ALLOWED["metrics"]


@pytest.mark.parametrize("module, heavy", [("workbench", ("torch", "diffusers", "transformers")),
                                           ("workbench.metrics", ("torch", "diffusers", "transformers")),
                                           ("workbench.cli", ("torch", "diffusers", "transformers", "sklearn"))])
def test_light_modules_load_no_heavy_libraries(module, heavy):
    code = f"import sys, {module}; print(' '.join(m for m in {heavy!r} if m in sys.modules))"
    loaded = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.split()
    assert loaded == [], f"import {module} loads {loaded}"
