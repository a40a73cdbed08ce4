"""The graded exercises: well-formed sources, a release in sync, and grading that works.

Generic over every assignment folder in ``solutions/``: a new exercise is covered without
touching this file. The fast checks read the notebooks; the ``grading`` ones run nbgrader
end to end in a temporary course (see ``grading_helpers``), never in the repository:

- ``exercises/`` is byte-identical to a fresh ``nbgrader generate_assignment``;
- nbgrader's ``Validator`` passes the solution and, inverted, fails every test of the release
  (its result dict is read: ``nbgrader validate`` exits 0 even when tests fail);
- ``nbgrader autograde`` gives a completed release full marks and the unmodified release
  zero, cell by cell, read from the gradebook; feedback and the CSV export work.
"""

from __future__ import annotations

import csv
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
COMPLETE, UNTOUCHED = GradingCourse.COMPLETE, GradingCourse.UNTOUCHED


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


def _test_cell_points(assignment: str) -> dict[tuple[str, str], float]:
    """Points of every test cell of the source, by (notebook, grade_id)."""
    return {
        (path.stem, nbgrader_meta(cell)["grade_id"]): float(nbgrader_meta(cell)["points"])
        for path in notebook_paths(SOURCE / assignment)
        for cell in read_notebook(path).cells
        if is_test_cell(cell)
    }


@pytest.mark.grading
@pytest.mark.parametrize("assignment", ASSIGNMENTS)
def test_autograde_scores_cell_by_cell(course: GradingCourse, assignment: str) -> None:
    course.grade(assignment)
    points = _test_cell_points(assignment)
    total = sum(points.values())
    with course.gradebook() as gradebook:
        in_gradebook = {
            (nb.name, cell.name): cell.max_score for nb in gradebook.find_assignment(assignment).notebooks for cell in nb.grade_cells
        }
        assert in_gradebook == points, "the gradebook's grade cells differ from the source's test cells"
        for (notebook, grade_id), max_score in points.items():
            complete = gradebook.find_grade(grade_id, notebook, assignment, COMPLETE)
            untouched = gradebook.find_grade(grade_id, notebook, assignment, UNTOUCHED)
            assert complete.max_score == untouched.max_score == max_score
            assert complete.score == max_score, f"{grade_id} fails on the solution (score {complete.score}/{max_score})"
            assert untouched.score == 0, f"{grade_id} passes on the unmodified release (score {untouched.score}/{max_score})"
        complete = gradebook.find_submission(assignment, COMPLETE)
        untouched = gradebook.find_submission(assignment, UNTOUCHED)
        assert complete.max_score == untouched.max_score == total
        assert complete.score == total and untouched.score == 0


@pytest.mark.grading
@pytest.mark.parametrize("assignment", ASSIGNMENTS)
def test_feedback_and_csv_export(course: GradingCourse, assignment: str) -> None:
    graded = course.grade(assignment)
    for path in notebook_paths(RELEASE / assignment):
        for student in (COMPLETE, UNTOUCHED):
            assert (graded / "autograded" / student / assignment / path.name).is_file()
            assert (graded / "feedback" / student / assignment / f"{path.stem}.html").is_file()
    with open(graded / "grades.csv", newline="") as handle:
        rows = {row["student_id"]: row for row in csv.DictReader(handle) if row["assignment"] == assignment}
    total = sum(_test_cell_points(assignment).values())
    assert float(rows[COMPLETE]["score"]) == float(rows[COMPLETE]["max_score"]) == total
    assert float(rows[UNTOUCHED]["score"]) == 0
