"""lecturekit's architecture as a test: a declared layer order, no upward import, no cycle, no shim.

Every module of ``lecturekit`` belongs to one layer (its top-level module or package under
``lecturekit``); a module may import from its own layer or a lower one, never from a higher one.
Imports are read from the source with :mod:`ast` (all of them: top level, inside functions,
under ``TYPE_CHECKING``), so a late import cannot hide a circle. A module's ``__all__`` may only
list names the module defines itself: no module re-exports another's names (the checks live in
:mod:`lecturekit.checks` and callers import them from there), and package ``__init__`` files hold a
docstring, not a facade. The checker itself is tested on small fake module graphs, so it is known
to fail when someone adds an upward import, a cycle or a shim.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "lecturekit"

#: lowest first; a module may import from its own layer or any earlier one
LAYERS: list[set[str]] = [
    {"checks"},
    {"device", "progress"},
    {"diagnostics"},
    {"estimates", "broken_phase", "distributions"},
    {"targets"},
    {"quadrature"},
    {"flows"},
    {"training"},
    {"samplers"},
    {"plotting"},
]


def read_package(root: Path, name: str = "lecturekit") -> dict[str, str]:
    """``{module name: source}`` for every ``.py`` file under ``root`` (a package named ``name``)."""
    sources = {}
    for path in sorted(root.rglob("*.py")):
        parts = [name, *path.relative_to(root).with_suffix("").parts]
        if parts[-1] == "__init__":
            parts = parts[:-1]
        sources[".".join(parts)] = path.read_text(encoding="utf-8")
    return sources


def _is_package(module: str, sources: dict[str, str]) -> bool:
    return any(other.startswith(module + ".") for other in sources)


def imported_modules(module: str, source: str, sources: dict[str, str], name: str = "lecturekit") -> set[str]:
    """The modules of the package that ``module`` imports, anywhere in its source."""
    found: set[str] = set()
    package = module if _is_package(module, sources) else module.rpartition(".")[0]
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names if alias.name.split(".")[0] == name)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[: len(package.split(".")) - (node.level - 1)]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module or ""
            if target.split(".")[0] != name:
                continue
            for alias in node.names:  # `from lecturekit.samplers import mcmc` imports a module
                sub = f"{target}.{alias.name}"
                found.add(sub if sub in sources else target)
    found.discard(module)
    return found


def layer_of(module: str, layers: list[set[str]]) -> int | None:
    top = module.split(".")[1] if "." in module else None
    for index, members in enumerate(layers):
        if top in members:
            return index
    return None


def defined_names(source: str) -> set[str]:
    names: set[str] = set()
    for node in ast.parse(source).body:
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            names.add(node.name)
        elif isinstance(node, ast.Assign):
            names.update(t.id for t in node.targets if isinstance(t, ast.Name))
        elif isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name):
            names.add(node.target.id)
    return names


def exported_names(source: str) -> list[str]:
    for node in ast.parse(source).body:
        if isinstance(node, ast.Assign) and any(isinstance(t, ast.Name) and t.id == "__all__" for t in node.targets):
            return [ast.literal_eval(element) for element in node.value.elts]  # type: ignore[attr-defined]
    return []


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One import cycle of ``graph`` as a list of modules (first == last), or None."""
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        stack.append(node)
        for nxt in sorted(graph.get(node, ())):
            if state.get(nxt) == 1:
                return stack[stack.index(nxt) :] + [nxt]
            if nxt not in state and (cycle := visit(nxt)):
                return cycle
        stack.pop()
        state[node] = 2
        return None

    for node in sorted(graph):
        if node not in state and (cycle := visit(node)):
            return cycle
    return None


def layer_violations(sources: dict[str, str], layers: list[set[str]], name: str = "lecturekit") -> list[str]:
    """Every broken rule, one line each; empty when the package follows the layering."""
    problems: list[str] = []
    graph = {module: imported_modules(module, source, sources, name) for module, source in sources.items()}
    for module, deps in sorted(graph.items()):
        if module == name:
            continue
        own = layer_of(module, layers)
        if own is None:
            problems.append(f"{module} is in no layer: add it to LAYERS")
            continue
        for dep in sorted(deps):
            if dep == name:
                problems.append(f"{module} imports the package root {name}")
                continue
            other = layer_of(dep, layers)
            if other is None or other > own:
                problems.append(f"upward import: {module} (layer {own}) imports {dep} (layer {other})")
    if cycle := find_cycle(graph):
        problems.append("import cycle: " + " -> ".join(cycle))
    for module, source in sorted(sources.items()):
        own_names = defined_names(source)
        for exported in exported_names(source):
            if exported not in own_names:
                problems.append(f"re-export: {module}.__all__ lists {exported!r}, defined elsewhere")
        if _is_package(module, sources) and graph[module]:
            problems.append(f"package facade: {module}/__init__.py imports {sorted(graph[module])}")
    return problems


# --------------------------------------------------------------------------- the real package


def test_every_module_follows_the_layers() -> None:
    sources = read_package(PACKAGE)
    assert len(sources) > 20  # the walk found the package
    assert layer_violations(sources, LAYERS) == []


def test_layers_name_existing_modules_only() -> None:
    tops = {module.split(".")[1] for module in read_package(PACKAGE) if "." in module}
    declared = set().union(*LAYERS)
    assert declared == tops - {"__init__"}


def test_each_public_name_is_defined_once() -> None:
    """A newcomer finds each concept in one file: no public name is defined in two modules."""
    where: dict[str, list[str]] = {}
    for module, source in read_package(PACKAGE).items():
        for exported in exported_names(source):
            where.setdefault(exported, []).append(module)
    duplicates = {name: modules for name, modules in where.items() if len(modules) > 1}
    assert duplicates == {}


# --------------------------------------------------------------------------- the checker itself

FAKE_LAYERS = [{"checks"}, {"targets"}, {"flows"}]


def fake(**modules: str) -> dict[str, str]:
    return {("pkg." + key.replace("__", ".")).removesuffix(".init"): value for key, value in modules.items()}


def test_checker_accepts_a_clean_fake_package() -> None:
    sources = fake(
        checks="def check(): ...\n__all__ = ['check']\n",
        targets__init='"""Targets."""\n',
        targets__base="from pkg.checks import check\nclass Target: ...\n__all__ = ['Target']\n",
        flows="from pkg.targets.base import Target\nfrom pkg import checks\n",
    )
    assert layer_violations(sources, FAKE_LAYERS, name="pkg") == []


@pytest.mark.parametrize("how", ["top", "late", "relative", "module"])
def test_checker_finds_an_upward_import(how: str) -> None:
    code = {
        "top": "from pkg.flows import Flow\n",
        "late": "def load():\n    from pkg.flows import Flow\n    return Flow\n",
        "relative": "from ..flows import Flow\n",
        "module": "import pkg.flows\n",
    }[how]
    sources = fake(
        checks="",
        targets__init="",
        targets__base=code,
        flows="from pkg.targets.base import Target\n",
    )
    problems = layer_violations(sources, FAKE_LAYERS, name="pkg")
    assert any(p.startswith("upward import: pkg.targets.base (layer 1) imports pkg.flows (layer 2)") for p in problems)
    assert any(p.startswith("import cycle: ") for p in problems)


def test_checker_finds_a_cycle_inside_one_layer() -> None:
    sources = fake(checks="", targets__init="", targets__a="from pkg.targets.b import x\n", targets__b="from pkg.targets.a import y\n")
    problems = layer_violations(sources, FAKE_LAYERS, name="pkg")
    assert problems == ["import cycle: pkg.targets.a -> pkg.targets.b -> pkg.targets.a"]


def test_checker_finds_a_shim_a_facade_and_an_unplaced_module() -> None:
    sources = fake(
        checks="def check(): ...\n",
        targets__init="from pkg.targets.base import Target\n__all__ = ['Target']\n",
        targets__base="from pkg.checks import check\nclass Target: ...\n__all__ = ['Target', 'check']\n",
        extras="",
    )
    problems = layer_violations(sources, FAKE_LAYERS, name="pkg")
    assert "pkg.extras is in no layer: add it to LAYERS" in problems
    assert "re-export: pkg.targets.base.__all__ lists 'check', defined elsewhere" in problems
    assert "re-export: pkg.targets.__all__ lists 'Target', defined elsewhere" in problems
    assert "package facade: pkg.targets/__init__.py imports ['pkg.targets.base']" in problems
