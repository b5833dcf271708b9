"""Structure checks over sdd_opt/: no import cycle, no function over 80 lines."""

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1] / "sdd_opt"
MAX_FUNCTION_LINES = 80


def _modules() -> dict[str, Path]:
    out = {}
    for p in ROOT.rglob("*.py"):
        parts = p.relative_to(ROOT.parent).with_suffix("").parts
        out[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = p
    return out


def _in_type_checking(node, parents) -> bool:
    while node in parents:
        node = parents[node]
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            return True
    return False


def _imports(name: str, path: Path, mods: dict[str, Path]) -> set[str]:
    """Every sdd_opt module ``name`` imports, at top level or inside functions (not TYPE_CHECKING)."""
    tree = ast.parse(path.read_text())
    parents = {child: node for node in ast.walk(tree) for child in ast.iter_child_nodes(node)}
    out = set()
    for node in ast.walk(tree):
        if _in_type_checking(node, parents):
            continue
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


def test_no_function_over_80_lines():
    long = []
    for p in ROOT.rglob("*.py"):
        for node in ast.walk(ast.parse(p.read_text())):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                n = node.end_lineno - node.lineno + 1
                where = f"{p.relative_to(ROOT.parent)}:{node.name}"
                if n > MAX_FUNCTION_LINES:
                    long.append(f"{where} ({n} lines)")
    assert not long, "split these functions: " + ", ".join(long)


def test_importing_a_command_module_registers_nothing():
    """The CLI composes the command groups; ``study curves`` is added by ``sdd_opt.cli.app``, not on import."""
    import subprocess
    import sys

    code = ("import sdd_opt.cli.study as s, sdd_opt.cli.report; assert 'curves' not in s.study.commands; "
            "import sdd_opt.cli.app; assert 'curves' in s.study.commands and 'report' in sdd_opt.cli.app.cli.commands")
    subprocess.run([sys.executable, "-c", code], check=True, cwd=ROOT.parent)
