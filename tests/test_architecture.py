"""Structure checks: what docs/architecture.md claims about sdd_opt/ and benchmarks/.

No import cycle (``TYPE_CHECKING`` imports count: a cycle for the type checker is a cycle of
concepts); the layers (the training core imports no Optuna and nothing above it, study/ imports
neither report/ nor cli/, report/ not cli/); no function over 80 lines in sdd_opt/ or benchmarks/;
every module has its line in docs/architecture.md; the CLI fails loudly on a command module it
cannot import.
"""

import ast
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1] / "sdd_opt"
BENCHMARKS = ROOT.parent / "benchmarks"
MAX_FUNCTION_LINES = 80
# The layers above the training core, each allowed to import the ones before it (and the core).
UPPER = ("sdd_opt.study", "sdd_opt.report", "sdd_opt.cli", "sdd_opt.api")  # api: the public Python API
TOP_HELPERS = ("sdd_opt.testing", "sdd_opt.__main__", "sdd_opt")  # test helpers, `python -m sdd_opt`, the package root
# (which re-exports the public API lazily)


def _modules() -> dict[str, Path]:
    out = {}
    for p in ROOT.rglob("*.py"):
        parts = p.relative_to(ROOT.parent).with_suffix("").parts
        out[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = p
    return out


def _imported_names(path: Path) -> set[str]:
    """Every module ``path`` imports: at top level, inside functions and under ``TYPE_CHECKING``."""
    out = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            out.add(node.module)
            out.update(f"{node.module}.{a.name}" for a in node.names)
        elif isinstance(node, ast.Import):
            out.update(a.name for a in node.names)
    return out


def _imports(name: str, path: Path, mods: dict[str, Path]) -> set[str]:
    """Every sdd_opt module ``name`` imports, at top level, inside functions or for the type checker."""
    tree = ast.parse(path.read_text())
    out = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("sdd_opt"):
            for a in node.names:
                full = f"{node.module}.{a.name}"
                out.add(full if full in mods else node.module)
        elif isinstance(node, ast.Import):
            out.update(a.name for a in node.names if a.name.startswith("sdd_opt"))
    # A package's __init__ and its own submodules (a registry) count as one module.
    return {d for d in out if d in mods and d != name and not d.startswith(name + ".")
            and not name.startswith(d + ".")}


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    index, low, stack, on, found = {}, {}, [], set(), []

    def visit(v):
        index[v] = low[v] = len(index)
        stack.append(v)
        on.add(v)
        for w in graph[v]:
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
                found.append(sorted(comp))

    for v in graph:
        if v not in index:
            visit(v)
    return found


def test_no_import_cycle_among_sdd_opt_modules():
    mods = _modules()
    graph = {n: _imports(n, p, mods) for n, p in mods.items()}
    assert not _cycles(graph)


def test_the_cycle_finder_finds_cycles():
    assert _cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]
    assert not _cycles({"a": {"b"}, "b": set()})


def test_type_checking_imports_count_as_edges(tmp_path):
    """A cycle hidden behind ``if TYPE_CHECKING`` is found too."""
    pkg = tmp_path / "sdd_opt"
    pkg.mkdir()
    (pkg / "a.py").write_text("from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from sdd_opt.b import B\n")
    (pkg / "b.py").write_text("def f():\n    from sdd_opt.a import A\n")
    mods = {"sdd_opt.a": pkg / "a.py", "sdd_opt.b": pkg / "b.py"}
    assert _cycles({n: _imports(n, p, mods) for n, p in mods.items()}) == [["sdd_opt.a", "sdd_opt.b"]]


def _layer(name: str) -> int:
    """0: the training core; 1..4: study/, report/, cli/, api; 5: the test helpers and the package root."""
    if name in TOP_HELPERS:
        return len(UPPER) + 1
    return next((i + 1 for i, u in enumerate(UPPER) if name == u or name.startswith(u + ".")), 0)


def test_layers_import_only_downwards():
    """The core (training, config, data, models) imports no Optuna and nothing above it; study/
    imports neither report/ nor cli/; report/ not cli/."""
    mods = _modules()
    breaches = []
    for name, path in mods.items():
        imported = _imported_names(path)
        if _layer(name) == 0:
            breaches += [f"{name} imports {m}" for m in imported if m == "optuna" or m.startswith("optuna.")]
        for dep in _imports(name, path, mods):
            if _layer(dep) > _layer(name):
                breaches.append(f"{name} imports {dep}")
    assert not breaches, "imports against the layers of docs/architecture.md:\n" + "\n".join(sorted(set(breaches)))


def test_every_module_has_its_line_in_the_architecture_doc():
    doc = (ROOT.parent / "docs" / "architecture.md").read_text()
    listed = set(re.findall(r"`([\w/]+\.py|[\w]+/)`", doc))
    missing = []
    for p in sorted(ROOT.rglob("*.py")):
        rel = p.relative_to(ROOT)
        if p.name in ("__init__.py", "__main__.py") and len(rel.parts) > 1:
            continue  # a package is listed by its modules
        if p.name in ("__init__.py", "__main__.py"):
            continue
        if str(rel) not in listed and p.name not in listed:
            missing.append(str(rel))
    assert not missing, "docs/architecture.md lists no job for: " + ", ".join(missing)


def _long_functions(root: Path) -> list[str]:
    long = []
    for p in root.rglob("*.py"):
        for node in ast.walk(ast.parse(p.read_text())):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                n = node.end_lineno - node.lineno + 1
                if n > MAX_FUNCTION_LINES:
                    long.append(f"{p.relative_to(ROOT.parent)}:{node.name} ({n} lines)")
    return long


@pytest.mark.parametrize("root", [ROOT, BENCHMARKS], ids=["sdd_opt", "benchmarks"])
def test_no_function_over_80_lines(root):
    long = _long_functions(root)
    assert not long, "split these functions: " + ", ".join(long)


def test_a_missing_command_module_fails_loudly(monkeypatch):
    """A command module that moved or cannot be imported stops the CLI, instead of its commands vanishing."""
    import sdd_opt.cli.app as app

    monkeypatch.setattr(app, "SUBCOMMANDS", (("sdd_opt.cli.no_such_module", "gone", None),))
    with pytest.raises(ModuleNotFoundError, match="no_such_module"):
        app._register_subcommands()
    monkeypatch.setattr(app, "SUBCOMMANDS", (("sdd_opt.cli.study", "no_such_command", None),))
    with pytest.raises(AttributeError, match="no_such_command"):
        app._register_subcommands()


def test_importing_a_command_module_registers_nothing():
    """The CLI composes the command groups; ``study curves`` is added by ``sdd_opt.cli.app``, not on import."""
    import subprocess
    import sys

    code = ("import sdd_opt.cli.study as s, sdd_opt.cli.report; assert 'curves' not in s.study.commands; "
            "import sdd_opt.cli.app; assert 'curves' in s.study.commands and 'report' in sdd_opt.cli.app.cli.commands")
    subprocess.run([sys.executable, "-c", code], check=True, cwd=ROOT.parent)
