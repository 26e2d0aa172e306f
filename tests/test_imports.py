"""The package's import graph: no cycle, and no import from a lower layer to a higher one.

Every ``import`` / ``from ... import`` in a module counts, inside functions too; only
imports under ``if TYPE_CHECKING:`` are exempt (they never run).
"""

import ast
from pathlib import Path

import aerialseg

PKG = Path(aerialseg.__file__).parent

# lowest first; a module may import its own layer or lower ones
LAYERS: list[tuple[str, ...]] = [
    ("paths", "profiles", "utils", "config", "validation", "threads", "perf", "display"),
    ("data",),
    ("metrics", "models", "losses", "uncertainty"),
    ("training", "inference"),
    ("evaluation", "runs", "diagnostics"),
    ("results", "objects"),
    ("stats",),
    ("tables", "plots"),
    ("papers",),
    ("registry",),
    ("chapter", "compare", "findings"),
    ("book", "cli", "pages", "bookcheck"),
]


def _module_name(path: Path) -> str:
    rel = path.relative_to(PKG.parent).with_suffix("")
    parts = list(rel.parts)
    if parts[-1] == "__init__":
        parts = parts[:-1]
    return ".".join(parts)


def _layer(module: str) -> int:
    top = module.split(".")[1] if module.count(".") else ""
    for i, names in enumerate(LAYERS):
        if top in names:
            return i
    raise AssertionError(f"module {module} is in no layer: add it to LAYERS in {__file__}")


def _imports(path: Path) -> set[str]:
    tree = ast.parse(path.read_text())
    skip: set[int] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            skip.update(id(n) for n in ast.walk(node))
    found: set[str] = set()
    for node in ast.walk(tree):
        if id(node) in skip:
            continue
        if isinstance(node, ast.Import):
            found.update(a.name for a in node.names if a.name.startswith("aerialseg"))
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0 \
                and node.module.startswith("aerialseg"):
            found.add(node.module)
            for a in node.names:  # "from aerialseg.papers.uce import analysis" is a module
                candidate = f"{node.module}.{a.name}"
                if (PKG.parent / candidate.replace(".", "/")).with_suffix(".py").exists() or \
                        (PKG.parent / candidate.replace(".", "/")).is_dir():
                    found.add(candidate)
    return {m for m in found if m != "aerialseg"}


def _graph() -> dict[str, set[str]]:
    return {_module_name(p): _imports(p) for p in PKG.rglob("*.py")}


def test_every_module_is_in_a_layer():
    for module in _graph():
        if module != "aerialseg":
            _layer(module)


def test_no_import_runs_up_a_layer():
    bad = []
    for module, deps in _graph().items():
        if module == "aerialseg":
            continue
        for dep in deps:
            if _layer(dep) > _layer(module):
                bad.append(f"{module} (layer {_layer(module)}) imports {dep} "
                           f"(layer {_layer(dep)})")
    assert not bad, "imports from a lower to a higher layer:\n" + "\n".join(sorted(bad))


def test_papers_do_not_import_each_other():
    bad = [f"{m} imports {d}" for m, deps in _graph().items() for d in deps
           if m.startswith("aerialseg.papers.") and d.startswith("aerialseg.papers.")
           and m.split(".")[2] != d.split(".")[2]]
    assert not bad, "\n".join(bad)


def test_no_import_cycle():
    graph = _graph()
    # a package's __init__ is imported with any of its submodules: count that edge too
    for m in list(graph):
        parts = m.split(".")
        for k in range(2, len(parts)):
            parent = ".".join(parts[:k])
            if parent in graph and parent != m:
                graph[m] = graph[m] | {parent}
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(m: str) -> None:
        state[m] = 1
        stack.append(m)
        for d in sorted(graph.get(m, ())):
            if d not in graph or d == m:
                continue
            if state.get(d) == 1:
                cycle = stack[stack.index(d):] + [d]
                # a package importing its own submodule (re-export) is not a cycle of layers
                if not all(x.startswith(cycle[0].rsplit(".", 1)[0]) for x in cycle) or \
                        len({x.split(".")[1] for x in cycle}) > 1:
                    raise AssertionError("import cycle: " + " -> ".join(cycle))
            elif d not in state:
                visit(d)
        stack.pop()
        state[m] = 2

    for m in sorted(graph):
        if m not in state:
            visit(m)
