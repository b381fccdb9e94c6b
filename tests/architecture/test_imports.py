"""The engine's import rules: no cycle among core's modules or its subpackages, and no UI library inside core.

Every import counts, module-level and inside functions: a deferred import still ties two modules
together. The graph is read from the source (ast), so nothing is executed.
"""
import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
FORBIDDEN_IN_CORE = ("streamlit", "plotly")


def module_name(path: Path) -> str:
    parts = path.relative_to(ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imports_of(path: Path) -> set:
    """Absolute names a file imports (``from a import b`` counts a.b when a.b is a module)."""
    out = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            out |= {a.name for a in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            out.add(node.module)
            out |= {f"{node.module}.{a.name}" for a in node.names}
    return out


def core_graph() -> dict:
    files = {module_name(p): p for p in (ROOT / "core").rglob("*.py")}
    graph = {}
    for name, path in files.items():
        targets = {t for t in imports_of(path) if t in files and t != name}
        # importing a.b.c also runs a and a.b; a package's own __init__ importing its children is not an edge back
        graph[name] = {t for t in targets if not name.startswith(t + ".")}
    return graph


def find_cycle(graph: dict) -> list | None:
    state, stack = {}, []

    def visit(node):
        state[node] = "open"
        stack.append(node)
        for nxt in sorted(graph.get(node, ())):
            if state.get(nxt) == "open":
                return stack[stack.index(nxt):] + [nxt]
            if nxt not in state:
                found = visit(nxt)
                if found:
                    return found
        state[node] = "done"
        stack.pop()
        return None

    for node in sorted(graph):
        if node not in state:
            found = visit(node)
            if found:
                return found
    return None


def test_core_has_no_import_cycle():
    cycle = find_cycle(core_graph())
    assert cycle is None, "import cycle: " + " -> ".join(cycle)


def package_graph(graph: dict) -> dict:
    """The module graph folded onto core's subpackages (core.x.y -> core.x). ``__main__`` modules
    are entry points that nothing imports, so they may call into any package."""
    def top(name: str) -> str:
        return ".".join(name.split(".")[:2])

    out = {}
    for name, targets in graph.items():
        if name.endswith(".__main__"):
            continue
        out.setdefault(top(name), set()).update(top(t) for t in targets if top(t) != top(name))
    return out


def test_core_packages_have_no_import_cycle():
    """The layers read one way: e.g. core.chain may use core.quotes, but core.quotes never core.chain."""
    cycle = find_cycle(package_graph(core_graph()))
    assert cycle is None, "package import cycle: " + " -> ".join(cycle)


def test_the_cycle_finder_finds_a_planted_cycle():
    graph = {"core.a": {"core.b"}, "core.b": {"core.c"}, "core.c": {"core.a"}, "core.d": set()}
    assert find_cycle(graph) == ["core.a", "core.b", "core.c", "core.a"]
    assert find_cycle({"core.a": {"core.b"}, "core.b": set()}) is None


def test_core_imports_no_ui_library():
    offenders = [f"{module_name(p)} imports {t}" for p in (ROOT / "core").rglob("*.py")
                 for t in imports_of(p) if t.split(".")[0] in FORBIDDEN_IN_CORE]
    assert not offenders, "; ".join(offenders)


def test_cli_help_does_not_import_torch():
    """`python -m core.cli --help` answers without loading torch (seconds): the registry imports the
    learned methods only when one is used."""
    import subprocess
    import sys

    probe = ("import sys; from core.cli import build_parser; build_parser(); "
             "import core.repairers.registry as r; r.get_repairer('interp'); print('torch' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", probe], cwd=ROOT, capture_output=True, text=True, timeout=120, check=True)
    assert out.stdout.strip() == "False"
