"""The package keeps the shape docs/architecture.md describes: modules of at most 400 lines and 120
columns, functions of at most 60, imports that point down, and no import hidden in a function to dodge a cycle."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parents[1] / "src" / "actlab"
MODULES = sorted(SRC.rglob("*.py"))

RUN = {"cli", "commands", "experiment", "workers", "sweep", "tune", "plan"}
TRAIN = {"train", "backprop", "optimizers", "device_data", "board"}
REPORT = {"report", "analysis", "measured", "numbers", "stats", "paired", "interaction", "causes", "plots", "render",
          "messages", "word"}

# imports inside a function, each for start-up time (torch, matplotlib, SciPy), none for a cycle
LAZY = {
    ("cli", "*"): "the command imports what it runs after its parser, with Ctrl-C and SIGTERM held while torch loads",
    ("experiment", "actlab.report"): "plotting and statistics: only the parent process builds the report",
    ("tune", "actlab.report"): "plotting and statistics: imported when the tuned run's report is written",
    ("explain", "actlab.report"): "plotting and statistics: imported when `actlab explain` rebuilds the report",
    ("commands", "actlab.plots"): "matplotlib: only plot-activations draws",
    ("__init__", "*"): "the public names are imported on first use (`actlab presets` pays for none of them)",
}


def layer_of(module: str) -> str:
    """`actlab.report.sections.title` → `report`; `actlab.train` → `train`."""
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else parts[0]


def name_of(path: Path) -> str:
    rel = path.relative_to(SRC.parent).with_suffix("")
    return ".".join(p for p in rel.parts if p != "__init__") or "actlab"


def imports(path: Path) -> list[tuple[str, bool]]:
    """(module imported, inside a function) for every actlab import of the file, TYPE_CHECKING blocks aside."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    found: list[tuple[str, bool]] = []

    def visit(node: ast.AST, in_function: bool) -> None:
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            return
        if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("actlab"):
            found.extend((node.module if node.module != "actlab" else f"actlab.{a.name}", in_function) for a in node.names)
        elif isinstance(node, ast.Import):
            found.extend((a.name, in_function) for a in node.names if a.name.startswith("actlab"))
        inner = in_function or isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef))
        for child in ast.iter_child_nodes(node):
            visit(child, inner)
    visit(tree, False)
    return found


@pytest.mark.parametrize("path", MODULES, ids=lambda p: str(p.relative_to(SRC)))
def test_modules_and_functions_stay_short(path):
    source = path.read_text(encoding="utf-8")
    assert len(source.splitlines()) <= 400, f"{path.name}: {len(source.splitlines())} lines"
    wide = [n for n, line in enumerate(source.splitlines(), start=1) if len(line) > 120]
    assert not wide, f"{path.name}: lines {wide} are wider than the project's 120 columns"
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            assert node.end_lineno - node.lineno + 1 <= 60, f"{path.name}: {node.name}"


@pytest.mark.parametrize("path", MODULES, ids=lambda p: str(p.relative_to(SRC)))
def test_imports_point_down(path):
    here = layer_of(name_of(path)) if name_of(path) != "actlab" else "__init__"
    for module, in_function in imports(path):
        there = layer_of(module)
        if here in REPORT:
            assert there not in RUN | TRAIN, f"{path.name} (report) imports {module}"
        if here in TRAIN:
            assert there not in RUN, f"{path.name} (training) imports {module}"
        if in_function:
            allowed = (here, "*") in LAZY or (here, f"actlab.{there}") in LAZY
            assert allowed, f"{path.name} imports {module} inside a function; import it at the top, or say why in LAZY"


def test_the_rules_can_fail():
    """The checker sees an import inside a function and a report module importing training code."""
    tree = SRC / "report" / "__init__.py"
    assert ("actlab.store", False) in imports(tree)
    assert any(inside for _, inside in imports(SRC / "cli.py"))
    assert layer_of("actlab.report.sections.title") == "report" and layer_of("actlab.train") == "train"
