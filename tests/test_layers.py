"""The house stays as built (docs/STYLE.md habit 14): each folder of rlearly/ is one layer, imports point down only,
and no module imports itself back through others. Imports inside functions count: a lazy import hides a circle, it
does not remove it. The graph is read from the source with `ast` (nothing is imported)."""
import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / "rlearly"

# lowest first; a module may import its own layer and those before it (within a layer, without a circle)
LAYERS = [
    ("rlearly", "rlearly.errors", "rlearly.extras", "rlearly.hub", "rlearly.files", "rlearly.seeds",
     "rlearly.machine"),
    ("rlearly.config",),
    ("rlearly.lm",),
    ("rlearly.data",),
    ("rlearly.tasks",),
    ("rlearly.sampling",),
    ("rlearly.evaluation",),
    ("rlearly.train",),
    ("rlearly.study",),
    ("rlearly.results",),
    ("rlearly.cli",),
]


def modules() -> dict[str, Path]:
    out = {}
    for p in PACKAGE.rglob("*.py"):
        parts = list(p.relative_to(PACKAGE.parent).with_suffix("").parts)
        out[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = p
    return out


def imports_of(name: str, path: Path, known) -> set[str]:
    """The rlearly modules `name` imports anywhere in its file (the package itself for `import rlearly`)."""
    package = name if path.name == "__init__.py" else name.rsplit(".", 1)[0]
    out = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            out |= {a.name for a in node.names if a.name.split(".")[0] == "rlearly"}
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[:len(package.split(".")) - node.level + 1]
                mod = ".".join(base + ([node.module] if node.module else []))
            else:
                mod = node.module or ""
            if mod.split(".")[0] != "rlearly":
                continue
            for a in node.names:  # `from rlearly.x import y`: the submodule y where there is one, else x
                out.add(f"{mod}.{a.name}" if f"{mod}.{a.name}" in known else mod)
    return {m for m in out if m != name}


def graph() -> dict[str, set[str]]:
    mods = modules()
    return {m: imports_of(m, p, mods) for m, p in mods.items()}


def layer(module: str) -> int:
    best = None
    for i, names in enumerate(LAYERS):
        for n in names:
            if (module == n or module.startswith(n + ".")) and (best is None or len(n) > len(best[1])):
                best = (i, n)
    assert best is not None, f"{module} is in no layer of tests/test_layers.py"
    return best[0]


def cycles(g: dict[str, set[str]]) -> list[list[str]]:
    """Every strongly connected set of more than one module (Tarjan), as a sorted list."""
    index, low, stack, on, out, counter = {}, {}, [], set(), [], [0]

    def visit(v):
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on.add(v)
        for w in g.get(v, ()):
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

    for v in sorted(g):
        if v not in index:
            visit(v)
    return out


def test_no_import_circle():
    assert cycles(graph()) == []


def test_every_import_points_down_a_layer():
    up = [f"{m} ({LAYERS[layer(m)][0]}) imports {d} ({LAYERS[layer(d)][0]})"
          for m, deps in sorted(graph().items()) for d in sorted(deps) if layer(d) > layer(m)]
    assert up == []


def test_the_checks_fail_on_a_circle_and_an_upward_import():
    """The two rules can fail: a made-up graph with a circle, and one import up a layer."""
    assert cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]
    assert layer("rlearly.lm.checkpoint") < layer("rlearly.train.dist")  # checkpoint -> train.dist would be flagged


def test_the_root_package_imports_nothing():
    """`import rlearly` costs nothing and hides no import: its old module names are strings (rlearly.MOVED)."""
    assert graph()["rlearly"] == set()


def test_old_module_names_still_import():
    """`from rlearly import analysis` (and every other name the package had before its layers) gives the module from
    its new home, so notebooks and user code written against the flat package keep running."""
    import importlib

    import rlearly

    for old, new in rlearly.MOVED.items():
        assert getattr(rlearly, old) is importlib.import_module(new), old
    assert set(rlearly.MOVED) >= {"analysis", "claims", "completions", "plots", "report", "evaluate", "checkpoint"}
