"""The executables colcon installs (scripts/) and the console scripts pip installs are the same entry points."""

import ast
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_every_script_matches_a_console_script_and_is_installed():
    setup = (ROOT / "setup.py").read_text()
    console = dict(re.findall(r'"([\w-]+) = ([\w.]+):main"', setup))
    cmake = (ROOT / "CMakeLists.txt").read_text()
    scripts = sorted(p for p in (ROOT / "scripts").iterdir() if p.is_file())
    assert {p.name for p in scripts} == set(console)
    for script in scripts:
        tree = ast.parse(script.read_text())
        (imp,) = [n for n in tree.body if isinstance(n, ast.ImportFrom)]
        assert imp.module == console[script.name] and imp.names[0].name == "main", script.name
        assert f"scripts/{script.name}" in cmake, f"{script.name} is not installed by CMakeLists.txt"
        assert script.stat().st_mode & 0o111, f"{script.name} is not executable"
