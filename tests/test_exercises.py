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
            for line in cell.source.splitlines():
                if re.search(r"torch\.(randn|rand|zeros|ones|full|tensor|empty|linspace|arange)\(", line) and "arange(" not in line:
                    assert re.search(r"\*\*\w+|dtype=|device=", line), f"{grade_id}: no explicit dtype/device in {line.strip()!r}"


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
