"""The layout stays what docs/DESIGN.md shows: small classes and modules, no import cycle, layers kept.

Everything is read from the code with ``ast`` (dev/architecture.py), so a new
module is checked the day it lands.
"""

from __future__ import annotations

import ast
import importlib.util
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
MAX_CLASS, MAX_NODE_CLASS, MAX_MODULE = 300, 450, 450


@pytest.fixture(scope="module")
def arch():
    spec = importlib.util.spec_from_file_location("architecture", ROOT / "dev" / "architecture.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _is_ros_node(cls: ast.ClassDef) -> bool:
    return any(ast.unparse(b).split(".")[-1] in ("Node", "LifecycleNode") for b in cls.bases)


def test_no_class_or_module_too_long(arch):
    long = []
    for name, path in arch.modules().items():
        lines = len(path.read_text().splitlines())
        if lines > MAX_MODULE:
            long.append(f"module {name}: {lines} lines (max {MAX_MODULE})")
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ClassDef):
                size, limit = node.end_lineno - node.lineno + 1, MAX_NODE_CLASS if _is_ros_node(node) else MAX_CLASS
                if size > limit:
                    long.append(f"class {name}.{node.name}: {size} lines (max {limit})")
    assert not long, "\n".join(long)


def test_no_import_cycle(arch):
    assert arch.cycles(arch.module_graph()) == []


def test_the_checks_see_a_cycle_and_an_upward_import(arch, tmp_path):
    """The readers above are not blind: a planted cycle and an import of cli/ from offline/ are found."""
    pkg = tmp_path / "sa2va_i_ros"
    for sub in ("offline", "cli"):
        (pkg / sub).mkdir(parents=True)
        (pkg / sub / "__init__.py").write_text('"""x"""\n')
    (pkg / "__init__.py").write_text("")
    (pkg / "offline" / "a.py").write_text("from sa2va_i_ros.offline import b\n")
    (pkg / "offline" / "b.py").write_text("def f():\n    from sa2va_i_ros.offline.a import x\n"
                                          "    from sa2va_i_ros.cli import tool\n")
    (pkg / "offline" / "c.py").write_text("from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n"
                                          "    from sa2va_i_ros.cli import tool\n")
    (pkg / "cli" / "tool.py").write_text("")
    graph = arch.module_graph(tmp_path)
    assert arch.cycles(graph) == [["sa2va_i_ros.offline.a", "sa2va_i_ros.offline.b"]]
    assert arch.package_graph(graph)["offline"] == {"cli"}  # from b, not from c's typing-only import


def test_packages_import_only_the_layers_below(arch):
    graph = arch.package_graph(arch.module_graph())
    assert set(graph) | {"errors"} == set(arch.LAYERS), "a package is missing from dev/architecture.py's LAYERS"
    upward = {pkg: sorted(deps - set(arch.LAYERS[pkg])) for pkg, deps in graph.items() if deps - set(arch.LAYERS[pkg])}
    assert not upward, f"imports not allowed by LAYERS: {upward}"


def test_every_package_says_what_lives_there(arch):
    for name, path in arch.modules().items():
        if path.name == "__init__.py" and name != "sa2va_i_ros":
            assert arch.first_line(path), f"{path.relative_to(ROOT)} has no one-line docstring"


def test_design_picture_matches_the_code(arch):
    design = (ROOT / "docs" / "DESIGN.md").read_text()
    assert arch.updated(design) == design, "docs/DESIGN.md's picture is out of date: run dev/architecture.py"


def test_at_most_one_folder_named_tools():
    files = subprocess.run(["git", "ls-files"], cwd=ROOT, capture_output=True, text=True, check=True).stdout.split()
    folders = {str(Path(f).parent) for f in files if "tools" in Path(f).parent.parts}
    named = {"/".join(Path(f).parts[: Path(f).parts.index("tools") + 1]) for f in folders}
    assert len(named) <= 1, f"several folders named tools: {sorted(named)}"
