"""The layout's floors, read from the imports: a package imports only packages on lower floors.

Packages on one floor never import each other (the GStreamer elements and the training recipes
both stand on the parsing core, side by side). An import inside a function counts too.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
FLOORS: tuple[tuple[str, ...], ...] = (
    ("cli",),  # the command line: one module per command
    ("bench",),  # benchmarks and measurements, run by the CLI or as scripts
    ("pipeline",),  # config, sources, graph builder, runner, metrics, broker
    ("plugins", "training"),  # GStreamer elements | training recipes
    ("transport",),  # the event stream's ZeroMQ publisher and subscriber (uses parsing's codec)
    ("parsing",),  # the method: frame and clip parsing, results, events
    (
        "models",
        "engines",
        "tps",
    ),  # networks | inference back ends | Kinetics-TPS and the synthetic world
    ("media",),  # GStreamer helpers, RGB frame layout and the one decode loop, under all video
)
"""Top floor first."""
PACKAGES = {package: level for level, floor in enumerate(FLOORS) for package in floor}


def imported_packages(path: Path) -> set[str]:
    """The project packages a file imports, by their top-level name."""
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names.add(node.module)
    return {name.split(".")[0] for name in names} & PACKAGES.keys()


def test_every_package_is_on_a_floor():
    packages = {path.parent.name for path in REPO.glob("*/__init__.py")}
    assert packages - {"tests"} == set(PACKAGES)


@pytest.mark.parametrize("package", list(PACKAGES))
def test_nothing_imports_upward_or_sideways(package):
    level = PACKAGES[package]
    wrong = {
        f"{path.relative_to(REPO)} imports {imported}"
        for path in sorted((REPO / package).rglob("*.py"))
        for imported in imported_packages(path)
        if imported != package and PACKAGES[imported] <= level
    }
    assert not wrong, sorted(wrong)
