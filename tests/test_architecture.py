"""The layer contract and the import rules of docs/architecture.md, checked on the source.

``make lint`` runs import-linter's layers contract (``[tool.importlinter]`` in pyproject.toml).
These tests add what it does not check: no import cycles, no function-level imports of the
package's own modules (they would hide cycles from mypy), and that the contract really fails on
an upward import.
"""

from __future__ import annotations

import ast
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parents[1] / "src" / "lifecircle"
ROOT = SRC.parents[1]

#: Function-level imports of the package's own modules that are allowed, and why: the modules
#: of compiled kernels import Numba (0.3 s), so they are imported where they are first used and
#: commands that never snap or route (help, validation, exports) do not pay for it.
ALLOWED_LOCAL_IMPORTS: set[tuple[str, str]] = {
    ("lifecircle.snapping", "lifecircle._piece_grid"),
    ("lifecircle.routing", "lifecircle._readoff"),
    ("lifecircle.extract", "lifecircle._opl"),
}


def module_name(path: Path) -> str:
    parts = list(path.relative_to(SRC.parent).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts = parts[:-1]
    return ".".join(parts)


def own_imports(path: Path) -> list[tuple[str, int, bool]]:
    """(imported lifecircle module, line, at module level?) for every import in ``path``."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    me = module_name(path)
    package = me if path.name == "__init__.py" else me.rpartition(".")[0]
    out = []

    def visit(node: ast.AST, top: bool) -> None:
        for child in ast.iter_child_nodes(node):
            inner = top and not isinstance(
                child, ast.FunctionDef | ast.AsyncFunctionDef | ast.Lambda
            )
            if isinstance(child, ast.Import):
                out.extend(
                    (a.name, child.lineno, top)
                    for a in child.names
                    if a.name.startswith("lifecircle")
                )
            elif isinstance(child, ast.ImportFrom):
                base = child.module or ""
                if child.level:
                    pkg = package.split(".")
                    base = ".".join(pkg[: len(pkg) - child.level + 1] + ([base] if base else []))
                if base.startswith("lifecircle"):
                    out.extend(
                        (f"{base}.{a.name}" if base == "lifecircle" else base, child.lineno, top)
                        for a in child.names
                    )
            visit(child, inner)

    visit(tree, True)
    return out


def all_modules() -> dict[str, Path]:
    return {module_name(p): p for p in SRC.rglob("*.py")}


def resolve(name: str, modules: dict[str, Path]) -> str | None:
    """The module an import refers to (``from lifecircle import X`` may name a module or not)."""
    while name and name not in modules:
        name = name.rpartition(".")[0]
    return name or None


def test_no_function_level_imports_of_own_modules() -> None:
    modules = all_modules()
    bad = []
    for name, path in modules.items():
        for target, line, top in own_imports(path):
            t = resolve(target, modules)
            if not top and t is not None and (name, t) not in ALLOWED_LOCAL_IMPORTS:
                bad.append(f"{path.relative_to(ROOT)}:{line} imports {t} inside a function")
    assert not bad, "imports of lifecircle modules must be at module top:\n" + "\n".join(bad)


def test_no_import_cycles() -> None:
    modules = all_modules()
    graph: dict[str, set[str]] = {m: set() for m in modules}
    for name, path in modules.items():
        for target, _line, _top in own_imports(path):
            t = resolve(target, modules)
            # a package's __init__ re-exporting its own submodules is not a cycle of layers
            if t is not None and t != name and not t.startswith(name + ".") and t != "lifecircle":
                graph[name].add(t)
    # Tarjan's strongly connected components
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on: set[str] = set()
    cycles: list[list[str]] = []

    def strong(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on.add(v)
        for w in graph[v]:
            if w not in index:
                strong(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                cycles.append(sorted(comp))

    sys.setrecursionlimit(10_000)
    for v in graph:
        if v not in index:
            strong(v)
    assert not cycles, f"import cycles: {cycles}"


def test_nothing_imports_the_package_root() -> None:
    """Modules import ``lifecircle.x`` directly: the root is the public façade, above everything."""
    bad = []
    for name, path in all_modules().items():
        if name == "lifecircle":
            continue
        tree = ast.parse(path.read_text(encoding="utf-8"))
        for node in ast.walk(tree):
            if isinstance(node, ast.ImportFrom) and node.module == "lifecircle" and not node.level:
                names = [a.name for a in node.names]
                mods = [n for n in names if (SRC / n).exists() or (SRC / f"{n}.py").exists()]
                if len(mods) != len(names):
                    bad.append(
                        f"{path.relative_to(ROOT)}:{node.lineno} from lifecircle import {names}"
                    )
    assert not bad, "\n".join(bad)


@pytest.mark.slow
def test_layer_contract_fails_on_an_upward_import(tmp_path: Path) -> None:
    """import-linter's contract is real: an engine module importing the pipeline breaks it."""
    lint = Path(sys.executable).with_name("lint-imports")
    if not lint.exists():
        pytest.fail("lint-imports is missing: install the dev extra (pip install -e '.[dev]')")
    pkg = tmp_path / "src" / "lifecircle"
    shutil.copytree(SRC, pkg, ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copy(ROOT / "pyproject.toml", tmp_path / "pyproject.toml")
    ok = subprocess.run(
        [str(lint)],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        env={"PYTHONPATH": str(tmp_path / "src"), "PATH": "/usr/bin:/bin"},
    )
    assert ok.returncode == 0, ok.stdout[-2000:] + ok.stderr[-2000:]
    cov = pkg / "coverage.py"
    cov.write_text(
        cov.read_text(encoding="utf-8") + "\n\ndef _upward() -> None:\n"
        "    import lifecircle.pipeline  # noqa: F401\n",
        encoding="utf-8",
    )
    broken = subprocess.run(
        [str(lint)],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        env={"PYTHONPATH": str(tmp_path / "src"), "PATH": "/usr/bin:/bin"},
    )
    assert broken.returncode != 0
    assert "lifecircle.coverage is not allowed to import lifecircle.pipeline" in broken.stdout
