"""Structure guards: no import cycle between swsync's modules, no function over 60 lines, bench/ imports.

Both checks read the source with :mod:`ast` (nothing is imported). An import counts wherever
it is written: at the top, under ``if TYPE_CHECKING:``, inside a function or a ``try``.
``from . import sub`` is an import of the submodule ``sub``, ``from . import name`` one of the
package. Only what a statement names is an edge: the parent packages Python initialises
implicitly (the importing module's own, or those of ``a.b`` in ``import a.b.c``) are not.
The checkers are tested on small synthetic packages first, so a passing run means something.
"""

from __future__ import annotations

import ast
import io
import subprocess
import sys
import tokenize
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PACKAGE = ROOT / "swsync"
MAX_FUNCTION_LINES = 60


# ---------------------------------------------------------------------------- import cycles


@dataclass(frozen=True)
class Import:
    """One import of ``target`` written at ``path:line`` in module ``source``."""

    source: str
    target: str
    path: Path
    line: int

    def __str__(self) -> str:
        return f"{self.source} -> {self.target} ({self.path}:{self.line})"


def find_modules(package: Path) -> dict[str, tuple[Path, bool]]:
    """Every module under ``package`` by dotted name: ``(file, is_package)``."""
    modules: dict[str, tuple[Path, bool]] = {}
    for path in sorted(package.rglob("*.py")):
        parts = list(path.relative_to(package.parent).with_suffix("").parts)
        is_package = parts[-1] == "__init__"
        if is_package:
            parts.pop()
        modules[".".join(parts)] = (path, is_package)
    return modules


def _relative_base(module: str, is_package: bool, level: int) -> str:
    """The package a ``from`` import with ``level`` dots is relative to."""
    parts = module.split(".")
    if not is_package:
        parts.pop()
    if level > 1:
        parts = parts[: len(parts) - (level - 1)]
    return ".".join(parts)


def _named_modules(node: ast.AST, module: str, is_package: bool, modules: dict[str, object]) -> Iterator[str]:
    """The module names one import statement (or ``importlib.import_module("...")`` call) loads."""
    if isinstance(node, ast.Import):
        for alias in node.names:
            yield alias.name
    elif isinstance(node, ast.ImportFrom):
        base = _relative_base(module, is_package, node.level) if node.level else ""
        prefix = ".".join(p for p in (base, node.module or "") if p)
        for alias in node.names:
            sub = f"{prefix}.{alias.name}"
            # ``from pkg import sub`` loads the submodule; ``from pkg import name`` loads pkg.
            yield sub if sub in modules else prefix
    elif (
        isinstance(node, ast.Call)
        and node.args
        and isinstance(node.args[0], ast.Constant)
        and isinstance(node.args[0].value, str)
        and (
            (isinstance(node.func, ast.Attribute) and node.func.attr == "import_module")
            or (isinstance(node.func, ast.Name) and node.func.id == "import_module")
        )
    ):
        yield node.args[0].value


def import_graph(package: Path) -> dict[str, list[Import]]:
    """For each module of ``package``, the imports of other modules of the package it contains."""
    modules = find_modules(package)
    graph: dict[str, list[Import]] = {name: [] for name in modules}
    for name, (path, is_package) in modules.items():
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            for target in _named_modules(node, name, is_package, modules):
                while target and target not in modules:  # ``import pkg.mod.attr``-style: the module
                    target = target.rpartition(".")[0]
                if target and target != name:
                    graph[name].append(
                        Import(name, target, path.relative_to(package.parent), getattr(node, "lineno", 0))
                    )
    return graph


def strongly_connected(graph: dict[str, list[Import]]) -> list[list[str]]:
    """Tarjan's algorithm, iteratively: the components of more than one module, sorted."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    components: list[list[str]] = []
    for root in sorted(graph):
        if root in index:
            continue
        work = [(root, iter(sorted({i.target for i in graph[root]})))]
        index[root] = low[root] = len(index)
        stack.append(root)
        on_stack.add(root)
        while work:
            node, targets = work[-1]
            for target in targets:
                if target not in index:
                    index[target] = low[target] = len(index)
                    stack.append(target)
                    on_stack.add(target)
                    work.append((target, iter(sorted({i.target for i in graph[target]}))))
                    break
                if target in on_stack:
                    low[node] = min(low[node], index[target])
            else:
                work.pop()
                if work:
                    low[work[-1][0]] = min(low[work[-1][0]], low[node])
                if low[node] == index[node]:
                    component = []
                    while True:
                        member = stack.pop()
                        on_stack.discard(member)
                        component.append(member)
                        if member == node:
                            break
                    if len(component) > 1:
                        components.append(sorted(component))
    return sorted(components)


def shortest_cycle(graph: dict[str, list[Import]], component: list[str]) -> list[Import]:
    """One shortest cycle through the component's first module, as the imports that make it."""
    start, members = component[0], set(component)
    came_from: dict[str, Import] = {}
    frontier = [start]
    while frontier:
        following = []
        for node in frontier:
            for edge in graph[node]:
                if edge.target not in members or edge.target in came_from:
                    continue
                came_from[edge.target] = edge
                if edge.target == start:
                    cycle = [edge]
                    while cycle[0].source != start:
                        cycle.insert(0, came_from[cycle[0].source])
                    return cycle
                following.append(edge.target)
        frontier = following
    raise AssertionError(f"no cycle through {start}")  # a component always has one


def import_cycles(package: Path) -> list[str]:
    """One line per import cycle in ``package``: its modules and one cycle's imports with their places."""
    graph = import_graph(package)
    return [
        f"{' '.join(component)}: " + "; ".join(str(edge) for edge in shortest_cycle(graph, component))
        for component in strongly_connected(graph)
    ]


# ------------------------------------------------------------------------- function length


def _code_lines(source: str) -> set[int]:
    """Lines holding code (a token other than a comment); a multi-line string covers its lines."""
    lines: set[int] = set()
    skip = {tokenize.COMMENT, tokenize.NL, tokenize.NEWLINE, tokenize.INDENT, tokenize.DEDENT, tokenize.ENDMARKER}
    for token in tokenize.generate_tokens(io.StringIO(source).readline):
        if token.type not in skip:
            lines.update(range(token.start[0], token.end[0] + 1))
    return lines


def _docstring_lines(node: ast.AST) -> set[int]:
    """The lines of the docstrings of ``node`` and of every function or class defined in it."""
    lines: set[int] = set()
    for inner in ast.walk(node):
        if isinstance(inner, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)) and inner.body:
            first = inner.body[0]
            if (
                isinstance(first, ast.Expr)
                and isinstance(first.value, ast.Constant)
                and isinstance(first.value.value, str)
            ):
                lines.update(range(first.lineno, (first.end_lineno or first.lineno) + 1))
    return lines


def function_lengths(package: Path) -> Iterator[tuple[int, str]]:
    """``(lines of code, "path:line name")`` for every function and method under ``package``.

    A function spans its ``def`` line to its last line (decorators excluded, nested functions
    included); blank lines, comment-only lines and docstrings do not count.
    """
    for path in sorted(package.rglob("*.py")):
        source = path.read_text()
        code = _code_lines(source)
        text = source.splitlines()
        for node in ast.walk(ast.parse(source, str(path))):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                span = set(range(node.lineno, (node.end_lineno or node.lineno) + 1))
                counted = {n for n in span & code if text[n - 1].strip()} - _docstring_lines(node)
                yield len(counted), f"{path.relative_to(package.parent)}:{node.lineno} {node.name}"


def long_functions(package: Path, limit: int = MAX_FUNCTION_LINES) -> list[str]:
    """Every function of ``package`` longer than ``limit`` lines of code, longest first."""
    return [f"{n} lines: {where}" for n, where in sorted(function_lengths(package), reverse=True) if n > limit]


# --------------------------------------------------------------------------- the checks


def test_no_import_cycle_between_swsync_modules() -> None:
    cycles = import_cycles(PACKAGE)
    if cycles:
        pytest.fail("import cycles in swsync/ (modules: one cycle's imports):\n" + "\n".join(cycles), pytrace=False)


def test_no_function_in_swsync_is_longer_than_60_lines() -> None:
    long = long_functions(PACKAGE)
    if long:
        pytest.fail(f"functions over {MAX_FUNCTION_LINES} lines of code in swsync/:\n" + "\n".join(long), pytrace=False)


BENCH_IMPORT = """
import importlib, pkgutil, sys, traceback
import bench
failed = []
for info in pkgutil.walk_packages(bench.__path__, "bench."):
    try:
        importlib.import_module(info.name)
    except (Exception, SystemExit):
        failed.append(info.name)
        traceback.print_exc()
sys.exit("cannot import: " + ", ".join(failed) if failed else 0)
"""


def test_every_bench_module_imports_with_the_dev_extra() -> None:
    # In a child process: what the benchmarks import must not leak into the tests.
    proc = subprocess.run([sys.executable, "-c", BENCH_IMPORT], cwd=ROOT, capture_output=True, text=True, timeout=60)
    if proc.returncode:
        pytest.fail(proc.stderr, pytrace=False)


# ------------------------------------------------------------------- the checkers themselves


def write_package(root: Path, files: dict[str, str]) -> Path:
    """A package ``pkg`` under ``root`` made of ``files`` (paths relative to it); returns its directory."""
    package = root / "pkg"
    for name, text in files.items():
        path = package / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    return package


ACYCLIC = {
    "__init__.py": "from .client import Client\nfrom . import util\n",
    "client.py": "from . import util\nfrom .sub.leaf import leaf\nimport pkg.errors\n",
    "util.py": "from pkg.errors import Error\n",
    "errors.py": "class Error(Exception):\n    pass\n",
    "sub/__init__.py": "from . import leaf as leaf\n",
    # ``from .. import errors`` is pkg.errors; were it pkg, pkg -> client -> sub.leaf -> pkg.
    "sub/leaf.py": "from .. import errors\n\ndef leaf() -> None:\n    pass\n",
}


def test_an_acyclic_package_passes(tmp_path: Path) -> None:
    assert import_cycles(write_package(tmp_path, ACYCLIC)) == []


@pytest.mark.parametrize(
    ("files", "members"),
    [
        pytest.param({"a.py": "import pkg.b\n", "b.py": "from pkg import a\n"}, ["pkg.a", "pkg.b"], id="top-level"),
        pytest.param(
            {
                "a.py": "from .b import B\n",
                "b.py": "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from .a import A\n",
            },
            ["pkg.a", "pkg.b"],
            id="type-checking-only",
        ),
        pytest.param(
            {"a.py": "from . import b\n", "b.py": "def f():\n    from .a import x\n    return x\n"},
            ["pkg.a", "pkg.b"],
            id="function-level",
        ),
        pytest.param(
            {"a.py": "from .sub import c\n", "sub/__init__.py": "", "sub/c.py": "from ..a import A\n"},
            ["pkg.a", "pkg.sub.c"],
            id="relative-submodule",
        ),
        pytest.param(
            {
                "a.py": "import importlib\nb = importlib.import_module('pkg.b')\n",
                "b.py": "try:\n    import pkg.a\nexcept ImportError:\n    pass\n",
            },
            ["pkg.a", "pkg.b"],
            id="import_module-and-try",
        ),
        pytest.param(
            {"__init__.py": "from .a import A\n", "a.py": "from pkg.b import B\n", "b.py": "from pkg import A\n"},
            ["pkg", "pkg.a", "pkg.b"],
            id="through-the-package-init",
        ),
    ],
)
def test_an_import_cycle_is_found(tmp_path: Path, files: dict[str, str], members: list[str]) -> None:
    cycles = import_cycles(write_package(tmp_path, {"__init__.py": "", **files}))
    assert len(cycles) == 1 and cycles[0].startswith(" ".join(members) + ": "), cycles


def test_a_cycle_is_reported_with_the_imports_that_make_it(tmp_path: Path) -> None:
    package = write_package(
        tmp_path, {"__init__.py": "", "a.py": "\nimport pkg.b\n", "b.py": "import os\n\n\nfrom . import a\n"}
    )
    assert import_cycles(package) == ["pkg.a pkg.b: pkg.a -> pkg.b (pkg/a.py:2); pkg.b -> pkg.a (pkg/b.py:4)"]


def _function(name: str, code_lines: int) -> str:
    """A function ``name`` of exactly ``code_lines`` (> 6) lines of code, padded with what does not count."""
    body = [f"    x{i} = {i}" for i in range(code_lines - 6)]
    half = len(body) // 2
    return "\n".join(
        [
            "@decorator",
            f"def {name}(",  # the signature's three lines count
            "    a: int,",
            ") -> None:",
            '    """A docstring',
            "",
            '    over several lines."""',
            "    # a comment",
            "",
            *body[:half],
            "    def inner() -> None:",  # counts, nested functions are part of the function
            '        """Nested docstrings do not count either."""',
            "        # nor comments",
            *["    " + line for line in body[half:]],
            '    s = """a string, two lines of code:',
            "",
            '    # is not a comment"""',
            "",
            "",
        ]
    )


def test_function_length_counts_code_lines_only(tmp_path: Path) -> None:
    source = "def decorator(f):\n    return f\n\n\n" + _function("fits", 60) + _function("too_long", 61)
    package = write_package(tmp_path, {"__init__.py": "", "m.py": source})
    lengths = [(where.split()[-1], n) for n, where in function_lengths(package)]
    assert sorted(lengths) == [("decorator", 2), ("fits", 60), ("inner", 28), ("inner", 29), ("too_long", 61)]
    line = source.splitlines().index("def too_long(") + 1
    assert long_functions(package) == [f"61 lines: pkg/m.py:{line} too_long"]
