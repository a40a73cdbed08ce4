"""The grading battery: every kind of submission graded by the grading command, scores asserted.

For each assignment (a class per assignment, so that ``--dist loadscope`` runs them on separate
workers), ``tests/battery.py`` builds 14 to 21 kinds of submission from the solution and
release, with the expected score of every test cell and the expected status written down
first. One ``python -m gradekit grade`` run (the command instructors use, ``make grade``) grades
them all, with the assignment's short per-cell timeout from its ``battery.toml``. The tests then
read its ``grades.csv``, feedback files and suspicious-submission report.

Slow by nature (each kind executes the notebook once, the hanging ones wait for the timeout):
about two to five minutes per assignment on two cores; run one with
``pytest tests/test_grading_battery.py -k 01 -s`` to see its table.
"""

from __future__ import annotations

import csv
import html
import os
import re
import subprocess
import sys
import time
from pathlib import Path

import nbformat
import pytest
from battery import (ATTACK_MARK, ATTACKS, BACKGROUND_MARK, GRADED, NO_SUBMISSION, SECRET_VARIABLE, Kind, Spec, attack_kinds,
                     hidden_test_lines, kinds, write_submissions)
from grading_helpers import _ENV, RELEASE, SOURCE, assignment_ids, is_test_cell, make_course, nbgrader, read_notebook

from gradekit.sandbox import sandbox_problem

# The attacks on the grading run (issue 18) are graded for one assignment: the sandbox does not
# depend on the notebook, and each attack costs a run of it.
ATTACK_ASSIGNMENT = (assignment_ids() or [""])[0]
SECRET = "s3cr3t-of-the-instructor-5521"

# 1 MB: the byte limit keeps 100 kB per cell; the untruncated huge output is 50 MB.
OUTPUT_CEILING = 1_000_000


class BatteryRun:
    """One grading run of every kind of one assignment, in a throw-away course."""

    def __init__(self, assignment: str, directory: Path) -> None:
        self.spec = Spec.load(assignment)
        chosen = os.environ.get("BATTERY_KINDS")  # e.g. "full,default-dtype": a quicker run while writing an exercise
        course = directory / "course"
        self.attacks = assignment == ATTACK_ASSIGNMENT and sandbox_problem() is None
        every = kinds(self.spec) + (attack_kinds(self.spec, course) if self.attacks else [])
        self.kinds = [k for k in every if not chosen or k.name in chosen.split(",")]
        self.course = make_course(course, [assignment])
        nbgrader(self.course, "generate_assignment", assignment, "--force")
        submissions, roster = directory / "submissions", directory / "roster.csv"
        write_submissions(self.kinds, submissions, roster)
        self.out = directory / "report"
        started = time.perf_counter()
        self.result = subprocess.run(
            [sys.executable, "-m", "gradekit", "grade", assignment, str(submissions), "--roster", str(roster),
             "--timeout", str(self.spec.timeout), "--out", str(self.out), "--interrupt-grace", "3", "--wall-limit", "600"]
            + (["--require-sandbox"] if os.environ.get("LECTUREKIT_REQUIRE_SANDBOX") else []),
            cwd=self.course,
            env=os.environ | _ENV | {SECRET_VARIABLE: SECRET, "PATH": os.pathsep.join([str(Path(sys.executable).parent), os.environ["PATH"]])},
            capture_output=True,
            text=True,
            timeout=1800,
        )
        self.seconds = time.perf_counter() - started
        assert self.result.returncode == 0, f"the grading command failed:\n{self.result.stdout}\n{self.result.stderr}"
        with open(self.out / "grades.csv", newline="") as handle:
            self.rows = {row["student_id"]: row for row in csv.DictReader(handle)}

    def need(self, *names: str) -> None:
        missing = set(names) - {kind.name for kind in self.kinds}
        if missing:
            pytest.skip(f"this run leaves out {sorted(missing)} (BATTERY_KINDS, or no workflow_kinds in battery.toml)")

    def actual(self, kind: Kind) -> dict[str, float] | None:
        row = self.rows[kind.name]
        if row["score"] == "":
            return None
        return {cell: float(row[cell]) for cell in self.spec.points}

    def table(self) -> str:
        lines = [f"{self.spec.assignment}: {len(self.kinds)} kinds graded in {self.seconds:.0f} s (timeout {self.spec.timeout} s per cell)",
                 f"{'kind':<27} {'expected':>9} {'actual':>7}  status"]
        for kind in self.kinds:
            row = self.rows.get(kind.name, {})
            expected = "-" if kind.total is None else f"{kind.total:g}"
            lines.append(f"{kind.name:<27} {expected:>9} {row.get('score') or '-':>7}  {row.get('status', 'MISSING')}")
        return "\n".join(lines)


def _battery_class(assignment: str) -> type:
    @pytest.mark.grading
    class TestBattery:
        f"""The battery of {assignment}."""

        @pytest.fixture(scope="class")
        @classmethod
        def run(cls, tmp_path_factory: pytest.TempPathFactory) -> BatteryRun:
            run = BatteryRun(assignment, tmp_path_factory.mktemp(f"battery-{assignment}"))
            print("\n" + run.table())
            if os.environ.get("BATTERY_TABLE_DIR"):  # the table, also under pytest-xdist (which hides prints)
                Path(os.environ["BATTERY_TABLE_DIR"], f"battery-{assignment}.txt").write_text(run.table() + "\n")
            return run

        def test_at_least_twelve_kinds(self, run: BatteryRun) -> None:
            assert len(kinds(run.spec)) >= 12

        def test_every_student_has_a_row(self, run: BatteryRun) -> None:
            assert sorted(run.rows) == sorted(kind.name for kind in run.kinds)

        def test_scores_and_status(self, run: BatteryRun) -> None:
            wrong = []
            for kind in run.kinds:
                row = run.rows[kind.name]
                category = row["status"].split(":")[0]
                if category != kind.status or run.actual(kind) != kind.scores:
                    wrong.append(f"{kind.name} ({kind.what}): expected {kind.scores} [{kind.status}], got {run.actual(kind)} [{row['status']}]")
                if kind.total is not None and float(row["score"]) != kind.total:
                    wrong.append(f"{kind.name}: total {row['score']}, expected {kind.total}")
            assert not wrong, "\n".join(wrong) + "\n" + run.table()

        def test_not_graded_is_never_a_zero(self, run: BatteryRun) -> None:
            for kind in run.kinds:
                if kind.scores is None:
                    assert run.rows[kind.name]["score"] == "", f"{kind.name}: a student who was not graded has a score"
            if "no-submission" in run.rows:
                assert run.rows["no-submission"]["status"] == NO_SUBMISSION

        def test_disabled_cells_are_named(self, run: BatteryRun) -> None:
            run.need("uninterruptible-loop", "exit", "kernel-death")
            for name in ("uninterruptible-loop", "exit", "kernel-death"):
                assert f"cell {run.spec.fault_cell} disabled" in run.rows[name]["status"], run.rows[name]["status"]

        def test_feedback_has_no_hidden_test(self, run: BatteryRun) -> None:
            secret = hidden_test_lines(assignment)
            assert secret, "the assignment has no hidden tests to look for"
            pages = sorted((run.course / "feedback").rglob("*.html"))
            graded = [k for k in run.kinds if k.scores is not None]
            assert len(pages) == len(graded), f"{len(pages)} feedback files for {len(graded)} graded students"
            visible = "intact()"  # every test cell's visible part has it: proves the text extraction works
            for page in pages:
                text = html.unescape(re.sub(r"<[^>]+>", "", page.read_text()))
                assert visible in text, f"{page}: no test cell found in the feedback"
                leaked = [line for line in secret if line in text]
                assert not leaked, f"{page.relative_to(run.course)} shows hidden tests: {leaked[:3]}"

        def test_outputs_are_capped_in_bytes(self, run: BatteryRun) -> None:
            run.need("huge-output")
            for folder in ("autograded", "feedback"):
                files = [p for p in (run.course / folder / "huge-output").rglob("*") if p.suffix in (".ipynb", ".html")]
                assert files and all(p.stat().st_size < OUTPUT_CEILING for p in files), [(p.name, p.stat().st_size) for p in files]
            notebook = nbformat.read(next((run.course / "autograded" / "huge-output").rglob("*.ipynb")), as_version=4)
            assert any("output truncated by the grading command" in str(cell.get("outputs", "")) for cell in notebook.cells)

        def test_suspicious_report(self, run: BatteryRun) -> None:
            report = (run.out / "suspicious.md").read_text()
            flagged = set(re.findall(r"^## (\S+)$", report, flags=re.MULTILINE))
            expected = {kind.name for kind in run.kinds if kind.flagged}
            assert flagged == expected, f"flagged {sorted(flagged)}, expected {sorted(expected)}"

        def test_release_untouched_and_reported(self, run: BatteryRun) -> None:
            run.need("release", "misnamed", "deleted-tests")
            assert run.rows["release"]["status"] == GRADED and float(run.rows["release"]["score"]) == 0
            assert "graded as" in run.rows["misnamed"]["notes"]
            assert "restored test cell" in run.rows["deleted-tests"]["notes"]
            assert (RELEASE / assignment).is_dir()

        # ---- attacks on the grading run (one assignment) --------------------------------------
        def _attacks(self, run: BatteryRun) -> None:
            if assignment != ATTACK_ASSIGNMENT:
                pytest.skip(f"the attacks are graded for {ATTACK_ASSIGNMENT} only")
            if not run.attacks:
                if os.environ.get("LECTUREKIT_REQUIRE_SANDBOX"):
                    pytest.fail(f"LECTUREKIT_REQUIRE_SANDBOX is set, but: {sandbox_problem()}")
                pytest.skip(f"no sandbox here: {sandbox_problem()}")
            run.need(*ATTACKS)

        def test_attacks_fail_with_a_status_naming_them(self, run: BatteryRun) -> None:
            self._attacks(run)
            wrong = [f"{name}: {run.rows[name]['status']!r} does not name {violation!r}"
                     for name, (_, _, violation, _) in ATTACKS.items() if violation not in run.rows[name]["status"]]
            assert not wrong, "\n".join(wrong)

        def test_attacks_leave_no_process(self, run: BatteryRun) -> None:
            self._attacks(run)
            alive = []
            for entry in Path("/proc").iterdir():
                try:
                    if entry.name.isdigit() and BACKGROUND_MARK.encode() in (entry / "cmdline").read_bytes():
                        alive.append(entry.name)
                except OSError:
                    continue
            assert not alive, f"processes started by a student survived grading: {alive}"
            assert not (run.course / "grades-rewritten").exists()

        def test_attacks_change_nothing_of_others(self, run: BatteryRun) -> None:
            self._attacks(run)
            big = [p for p in run.course.rglob("*") if p.is_file() and p.stat().st_size > 5_000_000]
            assert not big, f"files over 5 MB in the course: {big}"
            for path in [*run.course.rglob("*.ipynb"), *run.course.rglob("*.html"), run.out / "grades.csv"]:
                text = path.read_text(errors="replace")
                if "attack-write-others" not in path.parts:  # the attacker's own files quote their code
                    assert ATTACK_MARK not in text, f"{path}: an attacker's text"
                assert SECRET not in text, f"{path}: the grading shell's environment reached the student"
            environment = next((run.course / "feedback" / "attack-environment").rglob("*.html")).read_text()
            assert "MPLBACKEND" in environment, "the environment attack's output is not in its feedback"
            from nbgrader.api import Gradebook

            source = read_notebook(SOURCE / assignment / run.spec.notebook)
            tests = {c.metadata.nbgrader["grade_id"]: c.source for c in source.cells if is_test_cell(c)}
            with Gradebook(f"sqlite:///{run.course / 'gradebook.db'}") as gradebook:
                notebook = gradebook.find_notebook(run.spec.notebook.removesuffix(".ipynb"), assignment)
                stored = {cell.name: cell.source for cell in notebook.source_cells if cell.name in tests}
                scores = {s.student.id: s.score for s in gradebook.find_assignment(assignment).submissions}
            assert stored == tests, "a test cell's source changed in the gradebook"
            for kind in run.kinds:
                if kind.total is not None:
                    assert scores[kind.name] == kind.total, f"{kind.name}: gradebook score {scores[kind.name]}, expected {kind.total}"

        def test_hidden_tests_captured_in_the_kernel_stay_out_of_feedback(self, run: BatteryRun) -> None:
            self._attacks(run)
            secret = hidden_test_lines(assignment)
            autograded = next((run.course / "autograded" / "attack-hidden-tests").rglob("*.ipynb")).read_text()
            assert "CAPTURED" in autograded and any(line in autograded for line in secret), "the capture did not happen: the test proves nothing"
            page = next((run.course / "feedback" / "attack-hidden-tests").rglob("*.html")).read_text()
            text = html.unescape(re.sub(r"<[^>]+>", "", page))
            assert not [line for line in secret if line in text]

    TestBattery.__name__ = TestBattery.__qualname__ = "TestBattery_" + re.sub(r"\W", "_", assignment)
    return TestBattery


for _assignment in assignment_ids():
    _cls = _battery_class(_assignment)
    globals()[_cls.__name__] = _cls


def _grade_with_jobs(assignment: str, chosen: list[Kind], directory: Path, jobs: int) -> dict[str, dict[str, str]]:
    course = make_course(directory / "course", [assignment])
    nbgrader(course, "generate_assignment", assignment, "--force")
    write_submissions(chosen, directory / "submissions", directory / "roster.csv")
    spec = Spec.load(assignment)
    result = subprocess.run(
        [sys.executable, "-m", "gradekit", "grade", assignment, str(directory / "submissions"), "--roster", str(directory / "roster.csv"),
         "--timeout", str(spec.timeout), "--out", str(directory / "report"), "--jobs", str(jobs)],
        cwd=course, env=os.environ | _ENV | {"PATH": os.pathsep.join([str(Path(sys.executable).parent), os.environ["PATH"]])},
        capture_output=True, text=True, timeout=1200,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    with open(directory / "report" / "grades.csv", newline="") as handle:
        rows = {row["student_id"]: row for row in csv.DictReader(handle)}
    for row in rows.values():
        assert float(row["wall_s"]) > 0 and float(row["cpu_s"]) > 0 if row["score"] else True
    return {student: {k: v for k, v in row.items() if k not in ("wall_s", "cpu_s")} for student, row in rows.items()}


@pytest.mark.grading
def test_parallel_grading_gives_the_same_results(tmp_path: Path) -> None:
    """``--jobs 3`` grades three students concurrently, with the rows of ``--jobs 1`` (times aside)."""
    spec = Spec.load(ATTACK_ASSIGNMENT)
    chosen = [kind for kind in kinds(spec) if kind.name in ("full", "one-part-wrong", "release")]
    one = _grade_with_jobs(ATTACK_ASSIGNMENT, chosen, tmp_path / "jobs1", 1)
    three = _grade_with_jobs(ATTACK_ASSIGNMENT, chosen, tmp_path / "jobs3", 3)
    assert one == three
    assert {student: float(row["score"]) for student, row in one.items()} == {kind.name: kind.total for kind in chosen}
