"""The graded exercises: well-formed sources, a release in sync, and grading that works.

Generic over every assignment folder in ``solutions/``: a new exercise is covered without
touching this file. The fast checks read the notebooks; the ``grading`` ones run nbgrader
end to end in a temporary course (see ``grading_helpers``), never in the repository:

- ``exercises/`` is byte-identical to a fresh ``nbgrader generate_assignment``;
- nbgrader's ``Validator`` passes the solution and, inverted, fails every test of the release
  (its result dict is read: ``nbgrader validate`` exits 0 even when tests fail);
- every test cell follows the test style of ``solutions/README.md``.

Grading itself (the full solution gets full marks, the release zero, and about twenty other
kinds of submission exactly what they should) is ``tests/test_grading_battery.py``.
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest
from grading_helpers import (
    GRADE_ID,
    HIDDEN_MARKERS,
    RELEASE,
    ROOT,
    SOLUTION_MARKERS,
    SOURCE,
    GradingCourse,
    assignment_ids,
    is_solution_cell,
    is_test_cell,
    nbgrader_meta,
    notebook_paths,
    read_notebook,
    relative_files,
)

ASSIGNMENTS = assignment_ids()
# torch functions that build a tensor from scratch: a test must name their dtype and device
# (arange is left out: integer index ranges are fine on the default device).
TORCH_FACTORIES = {"randn", "rand", "zeros", "ones", "full", "tensor", "empty", "linspace"}


def _torch_factory_calls(source: str) -> list[ast.Call]:
    """Every call ``torch.<factory>(...)`` in a code cell, however its arguments are wrapped."""
    return [
        node
        for node in ast.walk(ast.parse(source))
        if isinstance(node, ast.Call)
        and isinstance(node.func, ast.Attribute)
        and isinstance(node.func.value, ast.Name)
        and node.func.value.id == "torch"
        and node.func.attr in TORCH_FACTORIES
    ]


def test_course_has_assignments() -> None:
    assert ASSIGNMENTS, f"no assignment (a folder with a notebook) in {SOURCE}"


def test_release_folders_match_sources() -> None:
    released = sorted(p.name for p in RELEASE.iterdir() if p.is_dir()) if RELEASE.is_dir() else []
    assert released == ASSIGNMENTS, "exercises/ and solutions/ hold different assignments: run `make exercises`"


# --------------------------------------------------------------------------------------- static checks
@pytest.mark.parametrize("assignment", ASSIGNMENTS)
def test_source_metadata(assignment: str) -> None:
    """nbgrader schema 3, unique grade ids, points on every test cell, python3 kernel."""
    notebooks = notebook_paths(SOURCE / assignment)
    assert notebooks
    grade_ids: list[str] = []
    for path in notebooks:
        nb = read_notebook(path)
        assert nb.metadata.kernelspec.name == "python3", f"{path.name}: kernel must be python3"
        n_tests = 0
        for cell in nb.cells:
            meta = nbgrader_meta(cell)
            if not meta:
                continue
            assert meta.get("schema_version") == 3, f"{path.name}: cell {meta.get('grade_id')} is not schema 3"
            assert GRADE_ID.match(meta.get("grade_id", "")), f"{path.name}: bad grade_id {meta.get('grade_id')!r}"
            grade_ids.append(meta["grade_id"])
            if is_test_cell(cell):
                n_tests += 1
                assert meta.get("locked") is True, f"{meta['grade_id']}: test cells must be locked"
                assert float(meta.get("points", 0)) > 0, f"{meta['grade_id']}: a test cell needs points"
        assert n_tests > 0, f"{path.name} has no graded test cell"
    assert len(grade_ids) == len(set(grade_ids)), f"duplicate grade_id in {assignment}"


@pytest.mark.parametrize("assignment", ASSIGNMENTS)
def test_source_marks_solutions_and_hidden_tests(assignment: str) -> None:
    """Every solution cell has a solution region; every test cell visible tests and hidden tests."""
    for path in notebook_paths(SOURCE / assignment):
        for cell in read_notebook(path).cells:
            grade_id = nbgrader_meta(cell).get("grade_id")
            if is_solution_cell(cell) and cell.cell_type == "code":
                for marker in SOLUTION_MARKERS:
                    assert cell.source.count(marker) == 1, f"{grade_id}: needs exactly one {marker!r}"
            if is_test_cell(cell):
                for marker in HIDDEN_MARKERS:
                    assert cell.source.count(marker) == 1, f"{grade_id}: needs exactly one {marker!r}"
                visible = cell.source.split(HIDDEN_MARKERS[0])[0]
                assert "assert" in visible, f"{grade_id}: no visible test to give students feedback"


@pytest.mark.parametrize("assignment", ASSIGNMENTS)
def test_test_cells_follow_the_style(assignment: str) -> None:
    """solutions/README.md: intact() first; no tensor without an explicit dtype and device;
    hidden tests compare with assert_close/assert_equal, not torch.allclose/equal."""
    for path in notebook_paths(SOURCE / assignment):
        for cell in read_notebook(path).cells:
            if not is_test_cell(cell):
                continue
            grade_id = nbgrader_meta(cell)["grade_id"]
            lines = cell.source.splitlines()
            assert lines[1].startswith("from gradekit.checks import") and lines[2] == "intact()", (
                f"{grade_id}: the first lines must import from gradekit.checks and call intact()"
            )
            hidden = cell.source.split(HIDDEN_MARKERS[0])[1]
            for name in ("torch.allclose", "torch.equal", "torch.isclose"):
                assert name not in hidden, f"{grade_id}: hidden tests use {name} (use assert_close or assert_equal)"
            for call in _torch_factory_calls(cell.source):
                names = {keyword.arg for keyword in call.keywords}
                assert None in names or names & {"dtype", "device"}, (
                    f"{grade_id}: no explicit dtype/device in {ast.unparse(call)!r} (line {call.lineno})"
                )


@pytest.mark.parametrize("folder", [SOURCE, RELEASE], ids=["solutions", "exercises"])
def test_notebooks_committed_without_outputs(folder: Path) -> None:
    for path in sorted(folder.rglob("*.ipynb")):
        nb = read_notebook(path)
        dirty = [i for i, c in enumerate(nb.cells) if c.cell_type == "code" and (c.outputs or c.execution_count)]
        assert not dirty, f"{path.relative_to(ROOT)}: cells {dirty} have outputs (clear them before committing)"


@pytest.mark.parametrize("assignment", ASSIGNMENTS)
def test_release_hides_solutions_and_hidden_tests(assignment: str) -> None:
    for path in notebook_paths(RELEASE / assignment):
        for cell in read_notebook(path).cells:
            for marker in SOLUTION_MARKERS + HIDDEN_MARKERS:
                assert marker not in cell.source, f"{path.name}: {marker!r} leaked into the release"
            if is_solution_cell(cell) and cell.cell_type == "code":
                assert "raise NotImplementedError()" in cell.source


# --------------------------------------------------------------------------------------- nbgrader runs
@pytest.fixture(scope="module")
def course(tmp_path_factory: pytest.TempPathFactory) -> GradingCourse:
    """A temporary course; it generates, validates and grades an assignment when a test asks."""
    return GradingCourse(tmp_path_factory.mktemp("course"))


@pytest.mark.grading
@pytest.mark.parametrize("assignment", ASSIGNMENTS)
def test_release_is_freshly_generated(course: GradingCourse, assignment: str) -> None:
    fresh = relative_files(course.release(assignment))
    committed = relative_files(RELEASE / assignment)
    assert fresh, "generate_assignment wrote nothing"
    assert sorted(committed) == sorted(fresh), f"exercises/{assignment} has other files than a regeneration"
    stale = [name for name in fresh if committed[name] != fresh[name]]
    assert not stale, f"exercises/{assignment}: {stale} differ from a regeneration: run `make exercises`"


@pytest.mark.grading
@pytest.mark.parametrize("assignment", ASSIGNMENTS)
def test_validator_passes_solution_and_inverts_on_release(course: GradingCourse, assignment: str) -> None:
    results = course.validate(assignment)
    assert {kind for _, kind in results} == {"source", "release"}
    for (notebook, kind), result in results.items():
        # {} means: every test passed (source), or no test passed (release, inverted)
        assert result == {}, f"{kind} {notebook}: {result}"


# --------------------------------------------------------------------------------------- house style
# solutions/README.md, "The notebook's house style": what a student finds in every exercise.
POINTS_IN_TITLE = re.compile(r"\((\d+) points?\)$")
TABLE_ROW = re.compile(r"^\|\s*[A-Z]\s*\|.*\|\s*(\d+)\s*\|\s*$", re.MULTILINE)
RULES = {"dtype": "dtype", "device": "device", "in place": "in place", "vectorise": "vectoris"}
# The book's symbols: the target is rho_* (rho*), the flow rho_theta, the base rho_B; q is
# only a Metropolis-Hastings proposal kernel q(x' | x). "log p", "p(x)", "log q" and a
# one-argument "q(x)" name the target or the flow with other symbols.
FOREIGN_SYMBOLS = re.compile(r"\blog [pq]\b(?!\()|\bp\(x|\bq\((?![^)]*(?:\||\\mid))[^)]*\)")
MAX_LINE = 88  # the book's and the exercises' code width (no sideways scrolling)
# TeX macros that MathJax 3 in JupyterLab knows without configuration (base, AMS and the
# packages it autoloads), as far as the exercises use them. The book's own macros (\E, \R in
# _config.yml) are unknown to JupyterLab: an exercise writes \mathbb{E} or defines the macro
# with \newcommand in its own markdown.
KNOWN_MACROS = set(
    """alpha approx arg bar begin beta big Big bigg Bigg bmatrix boldsymbol cdot cdots circ
    cos dagger ddots Delta det dfrac displaystyle dots ell end epsilon eta exp frac gamma
    Gamma ge geq hat in infty int kappa lambda Lambda langle lceil ldots le left leq lfloor
    ln log lVert mathbb mathbf mathcal mathrm max mid min mu nabla neq nu odot operatorname
    otimes partial phi Phi pi pm prod propto psi qquad quad rangle rceil rfloor rho right
    rVert sigma Sigma sim sin sqrt sum tanh tau text textrm tfrac theta Theta tilde times to
    top varepsilon varphi vdots widehat widetilde xi zeta""".split()
)
DEFINED_MACRO = re.compile(r"\\(?:re)?newcommand\{?\\([A-Za-z]+)|\\def\\([A-Za-z]+)|\\DeclareMathOperator\{\\([A-Za-z]+)\}")
MATH = re.compile(r"\$\$(.+?)\$\$|\$(.+?)\$", re.DOTALL)


def _test_points(nb) -> float:
    return sum(float(nbgrader_meta(c)["points"]) for c in nb.cells if is_test_cell(c))


@pytest.mark.parametrize("assignment", ASSIGNMENTS)
def test_notebook_follows_the_house_style(assignment: str) -> None:
    """Introduction with a points table that adds up, how it is graded and the rules (dtype,
    device, no in-place changes, vectorisation); a setup cell that picks the device and one
    thread; each test cell's first line states the points it carries."""
    for path in notebook_paths(SOURCE / assignment):
        nb = read_notebook(path)
        intro = nb.cells[0]
        assert intro.cell_type == "markdown" and intro.source.startswith("# Exercise "), (
            f"{path.name}: the first cell is the introduction, '# Exercise <n>: <title>'"
        )
        rows = [int(points) for points in TABLE_ROW.findall(intro.source)]
        assert "| part | you write | points |" in intro.source and rows, (
            f"{path.name}: the introduction needs the table '| part | you write | points |'"
        )
        assert sum(rows) == _test_points(nb), (
            f"{path.name}: the points table adds up to {sum(rows)}, the test cells carry {_test_points(nb)}"
        )
        assert "**How it is graded.**" in intro.source, f"{path.name}: no '**How it is graded.**' paragraph"
        assert "**Rules.**" in intro.source, f"{path.name}: no '**Rules.**' paragraph"
        rules = intro.source.split("**Rules.**")[1].split("\n\n")[0].lower()
        missing = [name for name, word in RULES.items() if word not in rules]
        assert not missing, f"{path.name}: the rules do not mention {missing}"
        setup = [c for c in nb.cells if nbgrader_meta(c).get("grade_id") == "setup"]
        assert setup, f"{path.name}: no setup cell (grade_id 'setup')"
        for needed in ("device = default_device()", "torch.set_num_threads(1)"):
            assert needed in setup[0].source, f"{path.name}: the setup cell lacks {needed!r}"
        for cell in nb.cells:
            if is_test_cell(cell):
                first = cell.source.splitlines()[0]
                stated = POINTS_IN_TITLE.search(first)
                assert first.startswith("# Tests for ") and stated, f"{path.name}: first line {first!r}"
                assert float(stated.group(1)) == float(nbgrader_meta(cell)["points"]), (
                    f"{path.name}: {first!r} but the cell carries {nbgrader_meta(cell)['points']} points"
                )


@pytest.mark.parametrize("assignment", ASSIGNMENTS)
def test_notebook_uses_the_books_symbols(assignment: str) -> None:
    """Text, docstrings and test messages name the target rho_* and the flow rho_theta, as the
    book does, never p and q."""
    for path in notebook_paths(RELEASE / assignment):
        for index, cell in enumerate(read_notebook(path).cells):
            for line in cell.source.splitlines():
                match = FOREIGN_SYMBOLS.search(line)
                assert not match, f"{path.name}, cell {index}: {match.group(0)!r} in {line.strip()!r}: use rho_* / rho_theta"


@pytest.mark.parametrize("folder", [SOURCE, RELEASE], ids=["solutions", "exercises"])
def test_code_lines_fit_the_page(folder: Path) -> None:
    """Code cells are at most 88 characters wide: no sideways scrolling in JupyterLab."""
    long = [
        f"{path.relative_to(ROOT)}, cell {index}: {len(line)} characters: {line.strip()[:60]!r}..."
        for path in sorted(folder.rglob("*.ipynb"))
        for index, cell in enumerate(read_notebook(path).cells)
        if cell.cell_type == "code"
        for line in cell.source.splitlines()
        if len(line) > MAX_LINE
    ]
    assert not long, f"lines longer than {MAX_LINE} characters:\n" + "\n".join(long)


def undefined_macros(markdown_sources: list[str]) -> set[str]:
    """TeX macros in the math of these markdown cells that JupyterLab's MathJax does not know
    and that no cell defines (\\newcommand, \\renewcommand, \\def, \\DeclareMathOperator)."""
    text = "\n".join(markdown_sources)
    defined = {name for groups in DEFINED_MACRO.findall(text) for name in groups if name}
    used = {
        name
        for display, inline in MATH.findall(text)
        for name in re.findall(r"\\([A-Za-z]+)", display or inline)
    }
    return used - KNOWN_MACROS - defined - {"newcommand", "renewcommand", "def", "DeclareMathOperator"}


def test_undefined_macro_is_caught() -> None:
    assert undefined_macros([r"$\E[\hat Z] = Z$"]) == {"E"}
    assert undefined_macros([r"$\newcommand{\E}{\mathbb{E}}$", r"$$\E[X] = \mu$$"]) == set()


@pytest.mark.parametrize("assignment", ASSIGNMENTS)
def test_math_uses_only_macros_jupyterlab_knows(assignment: str) -> None:
    for path in notebook_paths(RELEASE / assignment):
        markdown = [c.source for c in read_notebook(path).cells if c.cell_type == "markdown"]
        unknown = undefined_macros(markdown)
        assert not unknown, (
            f"{path.name}: JupyterLab does not know {sorted(unknown)}: write them out (\\mathbb{{E}}) "
            "or define them with \\newcommand in the notebook (the book's _config.yml macros do not apply)"
        )


@pytest.mark.parametrize("assignment", ASSIGNMENTS)
def test_visible_tests_try_single_precision(assignment: str) -> None:
    """Every test cell's visible part tries float32, the dtype edge that the hidden tests
    check for every function (solutions/README.md, rule 9)."""
    for path in notebook_paths(SOURCE / assignment):
        for cell in read_notebook(path).cells:
            if is_test_cell(cell):
                visible = "\n".join(cell.source.split(HIDDEN_MARKERS[0])[0].splitlines()[3:])
                assert re.search(r"\bF32\b|float32|\.float\(\)", visible), (
                    f"{nbgrader_meta(cell)['grade_id']}: no visible float32 case"
                )
