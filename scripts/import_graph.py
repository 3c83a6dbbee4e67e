"""Module sizes and the import graph of the lifecircle package (for reviews and closing notes).

Usage::

    python scripts/import_graph.py            # this checkout's src/lifecircle
    python scripts/import_graph.py OTHER/src  # another tree, e.g. an older release

Prints one line per module: lines of code, the layer it sits on (from ``[tool.importlinter]`` in
pyproject.toml), and the package modules it imports (``*`` marks an import inside a function).
Then the totals: modules, import edges, function-level imports, import cycles.
"""

from __future__ import annotations

import ast
import sys
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def module_name(path: Path, src: Path) -> str:
    parts = list(path.relative_to(src).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts = parts[:-1]
    return ".".join(parts)


def imports(path: Path, src: Path) -> list[tuple[str, bool]]:
    """(imported lifecircle module, at module level?) pairs."""
    me = module_name(path, src)
    package = me if path.name == "__init__.py" else me.rpartition(".")[0]
    out: list[tuple[str, bool]] = []

    def visit(node: ast.AST, top: bool) -> None:
        for child in ast.iter_child_nodes(node):
            inner = top and not isinstance(child, ast.FunctionDef | ast.AsyncFunctionDef)
            if isinstance(child, ast.Import):
                out.extend((a.name, top) for a in child.names if a.name.startswith("lifecircle"))
            elif isinstance(child, ast.ImportFrom):
                base = child.module or ""
                if child.level:
                    pkg = package.split(".")
                    base = ".".join(pkg[: len(pkg) - child.level + 1] + ([base] if base else []))
                if base == "lifecircle":
                    out.extend((f"lifecircle.{a.name}", top) for a in child.names)
                elif base.startswith("lifecircle."):
                    out.append((base, top))
            visit(child, inner)

    visit(ast.parse(path.read_text(encoding="utf-8")), True)
    return out


def layers() -> dict[str, int]:
    data = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))
    order = data["tool"]["importlinter"]["contracts"][0]["layers"]
    out: dict[str, int] = {}
    for rank, spec in enumerate(reversed(order)):
        for name in spec.replace(":", "|").split("|"):
            out[f"lifecircle.{name.strip().strip('()')}"] = rank
    return out


def main(src: Path) -> None:
    files = {module_name(p, src): p for p in sorted((src / "lifecircle").rglob("*.py"))}
    rank = layers()

    def layer_of(mod: str) -> str:
        while mod and mod not in rank:
            mod = mod.rpartition(".")[0]
        return str(rank[mod]) if mod else "-"

    def resolve(name: str) -> str | None:
        while name and name not in files:
            name = name.rpartition(".")[0]
        return name or None

    edges = set()
    local: set[tuple[str, str]] = set()
    print(f"{'module':38s} {'lines':>6s} layer  imports (* = inside a function)")
    for name, path in files.items():
        n = sum(1 for line in path.read_text(encoding="utf-8").splitlines() if line.strip())
        targets = []
        for target, top in imports(path, src):
            t = resolve(target)
            if t is None or t == name:
                continue
            edges.add((name, t))
            if not top:
                local.add((name, t))
            targets.append(("" if top else "*") + t.removeprefix("lifecircle."))
        print(f"{name:38s} {n:6d} {layer_of(name):>5s}  {', '.join(sorted(set(targets)))}")
    graph: dict[str, set[str]] = {m: set() for m in files}
    for a, b in edges:
        if not b.startswith(a + ".") and b != "lifecircle":
            graph[a].add(b)
    seen: dict[str, int] = {}
    cyc: set[frozenset[str]] = set()

    def dfs(v: str, path: list[str]) -> None:
        seen[v] = 1
        for w in graph[v]:
            if seen.get(w) == 1:
                cyc.add(frozenset(path[path.index(w) :]))
            elif w not in seen:
                dfs(w, [*path, w])
        seen[v] = 2

    for v in graph:
        if v not in seen:
            dfs(v, [v])
    print(
        f"\n{len(files)} modules, {len(edges)} import edges, {len(local)} function-level imports "
        f"of package modules (distinct module pairs), {len(cyc)} import cycle(s)"
    )
    for c in cyc:
        print("  cycle:", " <-> ".join(sorted(c)))


if __name__ == "__main__":
    main(Path(sys.argv[1]) if len(sys.argv) > 1 else ROOT / "src")
