"""The package graph of sa2va_i_ros, read from the code, and the picture in docs/DESIGN.md drawn from it.

Imports are read with ``ast`` (module level and inside functions; an import under
``if TYPE_CHECKING:`` never runs and is left out). ``LAYERS`` says which packages
each package may import; ``test/test_layout.py`` checks the code against it, and
that the picture between the markers in docs/DESIGN.md is this script's output:

    .venv/bin/python dev/architecture.py          # rewrite the picture in docs/DESIGN.md
    .venv/bin/python dev/architecture.py --check  # exit 1 if it is out of date
"""

from __future__ import annotations

import argparse
import ast
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = "sa2va_i_ros"
BEGIN, END = "<!-- architecture:begin -->", "<!-- architecture:end -->"

# Each package and what it may import (bottom to top). ``errors`` is a module at the root.
LAYERS: dict[str, tuple[str, ...]] = {
    "errors": (),
    "model": ("errors",),
    "imaging": ("errors",),
    "tracking": ("errors", "model"),
    "grounding": ("errors", "model", "tracking"),
    "runtime": ("errors", "model", "imaging", "tracking", "grounding"),
    "offline": ("errors", "model", "imaging", "tracking", "grounding"),
    "ros": ("errors", "model", "imaging", "tracking", "grounding", "runtime"),
    "testing": ("errors", "model", "imaging", "tracking", "grounding", "runtime", "offline", "ros"),
    "cli": ("errors", "model", "imaging", "tracking", "grounding", "runtime", "offline", "ros", "testing"),
}


def modules(root: Path = ROOT) -> dict[str, Path]:
    """Dotted module name -> file, for every module of the package (a package is its ``__init__``)."""
    out = {}
    for path in sorted((root / PACKAGE).rglob("*.py")):
        parts = list(path.relative_to(root).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts = parts[:-1]
        out[".".join(parts)] = path
    return out


def _runtime_nodes(tree: ast.AST):
    """Every node except those under ``if TYPE_CHECKING:``."""
    stack = [tree]
    while stack:
        node = stack.pop()
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            stack.extend(node.orelse)
            continue
        yield node
        stack.extend(ast.iter_child_nodes(node))


def imports(name: str, path: Path, known: dict[str, Path]) -> set[str]:
    """The package's modules that ``name`` imports."""
    is_package = path.name == "__init__.py"
    found = set()
    for node in _runtime_nodes(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.ImportFrom):
            if node.level:
                base = name.split(".") if is_package else name.split(".")[:-1]
                base = base[: len(base) - (node.level - 1)]
                module = ".".join(base + ([node.module] if node.module else []))
            else:
                module = node.module or ""
            if module in known:
                found.add(module)
            found |= {f"{module}.{a.name}" for a in node.names if f"{module}.{a.name}" in known}
        elif isinstance(node, ast.Import):
            found |= {a.name for a in node.names if a.name in known}
    found.discard(name)
    return found


def module_graph(root: Path = ROOT) -> dict[str, set[str]]:
    known = modules(root)
    return {name: imports(name, path, known) for name, path in known.items()}


def package_of(module: str) -> str:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else ""


def package_graph(graph: dict[str, set[str]]) -> dict[str, set[str]]:
    out: dict[str, set[str]] = {}
    for name, deps in graph.items():
        if package_of(name):
            out.setdefault(package_of(name), set()).update(
                package_of(d) for d in deps if package_of(d) and package_of(d) != package_of(name))
    return out


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan, iterative)."""
    index, low, on, stack, found, counter = {}, {}, set(), [], [], [0]
    for start in graph:
        if start in index:
            continue
        work = [(start, iter(sorted(graph[start])))]
        index[start] = low[start] = counter[0]
        counter[0] += 1
        stack.append(start)
        on.add(start)
        while work:
            node, children = work[-1]
            child = next(children, None)
            if child is not None:
                if child not in index:
                    index[child] = low[child] = counter[0]
                    counter[0] += 1
                    stack.append(child)
                    on.add(child)
                    work.append((child, iter(sorted(graph.get(child, ())))))
                elif child in on:
                    low[node] = min(low[node], index[child])
                continue
            work.pop()
            if work:
                low[work[-1][0]] = min(low[work[-1][0]], low[node])
            if low[node] == index[node]:
                component = []
                while True:
                    w = stack.pop()
                    on.discard(w)
                    component.append(w)
                    if w == node:
                        break
                if len(component) > 1:
                    found.append(sorted(component))
    return found


def first_line(path: Path) -> str:
    doc = ast.get_docstring(ast.parse(path.read_text())) or ""
    return doc.split("\n")[0].rstrip(".")


def picture(root: Path = ROOT) -> str:
    """A mermaid flowchart of the packages (each with its one-line docstring) and their imports, with the
    edges implied by others left out."""
    graph = package_graph(module_graph(root))
    reach = {p: _reachable(graph, p) for p in graph}
    lines = ["```mermaid", "flowchart TD"]
    for pkg in LAYERS:
        path = root / PACKAGE / (f"{pkg}.py" if pkg == "errors" else f"{pkg}/__init__.py")
        text = first_line(path).replace('"', "'")
        lines.append(f'    {pkg}["<b>{pkg}/</b><br/>{text}"]' if pkg != "errors" else
                     f'    {pkg}["<b>errors.py</b><br/>{text}"]')
    for pkg in LAYERS:
        for dep in sorted(graph.get(pkg, ()), key=list(LAYERS).index):
            if dep == "errors" or any(dep in reach[o] for o in graph[pkg] if o != dep):
                continue  # implied by a longer path (everything may use errors)
            lines.append(f"    {pkg} --> {dep}")
    lines.append("```")
    return "\n".join(lines)


def _reachable(graph: dict[str, set[str]], start: str) -> set[str]:
    seen, todo = set(), [start]
    while todo:
        for dep in graph.get(todo.pop(), ()):
            if dep not in seen:
                seen.add(dep)
                todo.append(dep)
    return seen


def updated(design: str, root: Path = ROOT) -> str:
    head, rest = design.split(BEGIN, 1)
    _, tail = rest.split(END, 1)
    return f"{head}{BEGIN}\n{picture(root)}\n{END}{tail}"


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--check", action="store_true", help="exit 1 if docs/DESIGN.md's picture is out of date")
    args = parser.parse_args(argv)
    design = ROOT / "docs" / "DESIGN.md"
    text = design.read_text()
    new = updated(text)
    if args.check:
        if new != text:
            print("docs/DESIGN.md: the architecture picture is out of date; run dev/architecture.py", file=sys.stderr)
            return 1
        return 0
    design.write_text(new)
    return 0


if __name__ == "__main__":
    sys.exit(main())
