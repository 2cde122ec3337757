"""The package's layers, checked from the source: no import cycle and no upward import.

Every ``import`` / ``from ... import`` statement anywhere in a module counts, at module level,
inside functions or under ``TYPE_CHECKING``: a function-level import that closes a cycle is
still a design loop, only deferred. ``from pkg import name`` is an edge to ``pkg.name`` when that
is a module of the package, else to ``pkg``. The facade ``edgeseg/__init__.py`` (lazy ``load`` /
``quantize``) is the top of the graph: package modules must not import from it.
"""
from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1] / "edgeseg"

# Layers that deployment runs on: a device install (no torch, no training) must be able to use them.
DEPLOYMENT = ("edgeseg.backends", "edgeseg.inference")
TORCH_FREE_AT_IMPORT = ("edgeseg.backends", "edgeseg.inference", "edgeseg.export.metadata", "edgeseg.formats",
                        "edgeseg.assets", "edgeseg.cli", "edgeseg.config", "edgeseg.checkpoint", "edgeseg.evaluation",
                        "edgeseg.profiles")


def _modules() -> dict[str, Path]:
    mods = {}
    for path in ROOT.rglob("*.py"):
        rel = path.relative_to(ROOT.parent).with_suffix("")
        parts = list(rel.parts)
        if parts[-1] == "__init__":
            parts = parts[:-1]
        mods[".".join(parts)] = path
    return mods


def _imports(path: Path, module: str, modules: dict[str, Path]) -> list[tuple[str, int, bool]]:
    """``(imported module, line, at module level)`` for every edgeseg import in ``path``."""
    tree = ast.parse(path.read_text(), str(path))
    top_level = {id(n) for n in tree.body}
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    out = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join(anchor + ([base] if base else []))
            names = [f"{base}.{a.name}" if f"{base}.{a.name}" in modules else base for a in node.names]
        else:
            continue
        for name in names:
            if name == "edgeseg" or name.startswith("edgeseg."):
                while name not in modules and "." in name:
                    name = name.rpartition(".")[0]
                out.append((name, node.lineno, id(node) in top_level))
    return out


def _graph() -> dict[str, set[str]]:
    modules = _modules()
    return {m: {t for t, _, _ in _imports(p, m, modules) if t != m} for m, p in modules.items()}


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan)."""
    index, low, stack, on, out = {}, {}, [], set(), []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on.add(v)
        for w in graph.get(v, ()):
            if w not in index:
                visit(w)
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
                out.append(sorted(comp))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return out


def test_the_checker_finds_a_cycle():
    assert _cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]
    assert _cycles({"a": {"b"}, "b": set()}) == []


def test_no_import_cycle_in_the_package():
    graph = _graph()
    assert len(graph) > 60  # the whole package was read
    assert _cycles(graph) == []


def test_package_modules_do_not_import_the_facade():
    graph = _graph()
    assert [m for m, deps in graph.items() if "edgeseg" in deps and m != "edgeseg"] == []


def test_deployment_never_imports_training():
    graph = _graph()
    bad = {m: sorted(d for d in deps if d.startswith("edgeseg.training"))
           for m, deps in graph.items() if m.startswith(DEPLOYMENT)}
    assert {m: d for m, d in bad.items() if d} == {}


def test_torch_free_modules_import_no_torch_at_module_level():
    """A device install (base + one runtime extra) has no torch: these modules must import without it."""
    bad = []
    for module, path in _modules().items():
        if not module.startswith(TORCH_FREE_AT_IMPORT) or module == "edgeseg.backends.torch_backend":
            continue
        tree = ast.parse(path.read_text())
        for node in tree.body:
            names = ([a.name for a in node.names] if isinstance(node, ast.Import)
                     else [node.module or ""] if isinstance(node, ast.ImportFrom) else [])
            bad += [f"{module}:{node.lineno} {n}" for n in names if n.split(".")[0] in ("torch", "timm", "transformers")]
    assert bad == []


def test_importing_the_cli_changes_no_environment_variable():
    """``edgeseg`` / ``edgeseg.cli`` set nothing on import (``main()`` sets OMP_WAIT_POLICY for
    torch). Third-party imports may (OpenCV's loader edits LD_LIBRARY_PATH), so the rest of the
    package is checked from its source: no module writes ``os.environ`` at import time."""
    import os
    import subprocess
    import sys

    code = ("import os; before = dict(os.environ)\n"
            "import edgeseg, edgeseg.cli\n"
            "print(sorted(k for k in set(before) | set(os.environ) if before.get(k) != os.environ.get(k)))")
    env = {k: v for k, v in os.environ.items() if k != "OMP_WAIT_POLICY"}
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, env=env)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "[]"
    writes = []
    for module, path in _modules().items():
        for node in ast.parse(path.read_text()).body:  # module level only: functions run when called
            text = ast.unparse(node)
            if "os.environ" in text and not isinstance(node, (ast.FunctionDef, ast.ClassDef, ast.AsyncFunctionDef)):
                writes.append(f"{module}:{node.lineno}")
    assert writes == []
