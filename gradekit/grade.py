"""The instructor's grading command: collect, repair, autograde, feedback, report. Around nbgrader.

``python -m gradekit grade ASSIGNMENT SUBMISSIONS [--roster students.csv] [--timeout S]``
(``make grade``), run from the course root (the folder with ``nbgrader_config.py``):

1. **collect** the submissions from an LMS zip or a folder (``gradekit.collect``): one entry per
   student, notebook names normalised; a student whose entry holds no notebook, several candidates,
   or an invalid file is reported with the reason, never graded as 0;
2. **repair** each notebook from the release (``gradekit.repair``) and write it to
   ``submitted/<student>/<assignment>/``; **scan** it for suspicious code (``gradekit.scan``);
3. **execute** each notebook in a sandbox (``gradekit.sandbox``: bubblewrap, no network, a clean
   environment, limits), ``--jobs`` students at a time, after nbgrader's own sanitising
   preprocessors restored its test cells from the gradebook;
4. **autograde** every student in one ``nbgrader autograde`` run, which executes nothing: its
   ``gradekit.sandbox.SandboxedExecute`` step takes the outputs from step 3, so the gradebook is
   written by the grading process alone, after every sandbox exited;
5. **feedback** with ``nbgrader generate_feedback`` (hidden tests and their tracebacks removed);
6. **report** in ``reports/<assignment>/``: ``grades.csv`` (one row per student of the roster and
   per submission, with a ``status``, the score and each test cell's score), ``suspicious.md``,
   the nbgrader logs; and a summary on the terminal. ``grades.csv`` also has each student's
   wall and CPU time in the sandbox.
"""

from __future__ import annotations

import argparse
import csv
import importlib
import json
import os
import shutil
import subprocess
import sys
import threading
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import nbformat
from nbgrader.api import Gradebook, MissingEntry
from traitlets.config.loader import PyFileConfigLoader

from gradekit.collect import Collected, alias_key, collect, unpack
from gradekit.feedback import leaking_cells
from gradekit.repair import repair
from gradekit.sandbox import Limits, Result, result_dict, run_notebook, sandbox_problem
from gradekit.scan import Flag, scan

GRADED, NO_SUBMISSION = "graded", "no submission"


@dataclass
class Row:
    """One student's line of ``grades.csv``."""

    student: str
    status: str = NO_SUBMISSION
    score: float | None = None
    max_score: float = 0.0
    cells: dict[str, float | None] = field(default_factory=dict)  # test cell -> score
    notes: list[str] = field(default_factory=list)
    flags: list[Flag] = field(default_factory=list)
    on_roster: bool = False
    wall_s: float | None = None  # in the sandbox, all notebooks of the assignment
    cpu_s: float | None = None

    @property
    def needs_review(self) -> bool:
        return self.status != GRADED and self.status != NO_SUBMISSION


@dataclass
class Course:
    """An nbgrader course folder and the settings the grading command reads from its config."""

    root: Path

    def __post_init__(self) -> None:
        config_file = self.root / "nbgrader_config.py"
        if not config_file.is_file():
            raise SystemExit(f"no nbgrader_config.py in {self.root}: run the grading command from the course root")
        self.config = PyFileConfigLoader(config_file.name, path=str(self.root)).load_config()
        directories = self.config.CourseDirectory
        self.release = self.root / directories.get("release_directory", "release")
        self.submitted = self.root / directories.get("submitted_directory", "submitted")
        self.autograded = self.root / directories.get("autograded_directory", "autograded")
        self.feedback = self.root / directories.get("feedback_directory", "feedback")
        db_url = directories.get("db_url", "sqlite:///gradebook.db")
        self.db_url = db_url.replace("sqlite:///", f"sqlite:///{self.root}/") if db_url.startswith("sqlite:///") and not db_url.startswith("sqlite:////") else db_url

    def nbgrader(self, *args: str, log: Path) -> int:
        """Run ``nbgrader *args`` in the course; its output goes to ``log``. Returns the exit status."""
        env = os.environ | {"PATH": os.pathsep.join([str(Path(sys.executable).parent), os.environ.get("PATH", "")])}
        with open(log, "w") as handle:
            return subprocess.run([sys.executable, "-m", "nbgrader", *args], cwd=self.root, env=env, stdout=handle, stderr=subprocess.STDOUT).returncode


def read_roster(path: Path | None) -> dict[str, dict[str, str]]:
    """Student ids (column ``id`` or ``student_id``) with optional ``first_name``, ``last_name``, ``email``."""
    if path is None:
        return {}
    with open(path, newline="") as handle:
        rows = list(csv.DictReader(handle))
    key = next((k for k in ("id", "student_id") if rows and k in rows[0]), None)
    if key is None:
        raise SystemExit(f"--roster {path}: expected a CSV file with a column 'id' or 'student_id'")
    return {row[key].strip(): {k: row[k] for k in ("first_name", "last_name", "email") if row.get(k)} for row in rows if row[key].strip()}


ALIAS_COLUMNS = ("lms_id", "canvas_id", "moodle_id", "user_id", "login", "sis_login_id", "name")


def read_aliases(path: Path | None) -> dict[str, str]:
    """Roster columns an LMS export names students by (LMS user id, login, name; also
    ``first_name last_name``), each mapped to the roster id, compared by :func:`alias_key`."""
    if path is None:
        return {}
    with open(path, newline="") as handle:
        rows = list(csv.DictReader(handle))
    key = "id" if rows and "id" in rows[0] else "student_id"
    aliases: dict[str, str] = {}
    for row in rows:
        names = [row.get(c) or "" for c in ALIAS_COLUMNS]
        if row.get("first_name") or row.get("last_name"):
            first, last = row.get("first_name") or "", row.get("last_name") or ""
            names += [f"{first} {last}", f"{last}{first}"]
        for name in names:
            if name.strip():
                aliases.setdefault(alias_key(name), row[key].strip())
    return aliases


def grade(course: Course, assignment: str, submissions: Path, roster_file: Path | None, options: list[str], out: Path,
          limits: Limits | None = None, jobs: int = 1) -> list[Row]:
    """Grade ``submissions`` of ``assignment``; write the report to ``out``; one row per student.

    ``options`` go to ``nbgrader autograde``; ``limits`` are the sandbox's; ``jobs`` notebooks
    execute at a time.
    """
    limits = limits or Limits()
    out.mkdir(parents=True, exist_ok=True)
    roster = read_roster(roster_file)
    _ensure_in_gradebook(course, assignment, out)
    release = course.release / assignment
    release_notebooks = sorted(p.name for p in release.glob("*.ipynb"))
    if not release_notebooks:
        raise SystemExit(f"ASSIGNMENT: no notebook in {release}")

    aliases = read_aliases(roster_file)
    collected = collect(unpack(submissions, out, list(roster)), release_notebooks, list(roster), aliases)
    rows = {student: Row(student, on_roster=True) for student in roster}
    for student, record in collected.items():
        row = rows.setdefault(student, Row(student))
        row.notes += record.notes
        _clear(course, student, assignment)
        if record.problem:
            row.status = f"not graded: {record.problem}"
            continue
        _submit(course, assignment, record, release, row)

    with Gradebook(course.db_url) as gradebook:
        for student in rows:
            gradebook.update_or_create_student(student, **roster.get(student, {}))
    results = out / "executed"  # not in the course's folders: never inside a sandbox
    shutil.rmtree(results, ignore_errors=True)
    execute_all(course, assignment, [s for s in rows if (course.submitted / s / assignment).is_dir() and not rows[s].status.startswith("not graded")],
                release_notebooks, limits, jobs, results)
    course.nbgrader("autograde", assignment, "--force", f"--SandboxedExecute.results={results}", *options, log=out / "autograde.log")
    course.nbgrader("generate_feedback", assignment, "--force", log=out / "feedback.log")
    for student in sorted(p.name for p in course.submitted.iterdir() if (p / assignment).is_dir()):
        rows.setdefault(student, Row(student))  # submitted earlier: nbgrader graded it again
    _read_results(course, assignment, release_notebooks, rows, collected, results)
    ordered = [rows[s] for s in sorted(rows)]
    write_csv(ordered, out / "grades.csv")
    write_suspicious(ordered, out / "suspicious.md")
    return ordered


def _ensure_in_gradebook(course: Course, assignment: str, out: Path) -> None:
    with Gradebook(course.db_url) as gradebook:
        try:
            gradebook.find_assignment(assignment)
            return
        except MissingEntry:
            pass
    print(f"{assignment} is not in the gradebook yet: nbgrader generate_assignment {assignment} records its tests")
    if course.nbgrader("generate_assignment", assignment, "--force", log=out / "generate.log"):
        raise SystemExit(f"nbgrader generate_assignment failed: see {out / 'generate.log'}")


def _clear(course: Course, student: str, assignment: str) -> None:
    """Remove an earlier submission's files of this student, so that nothing stale is graded or reported."""
    for folder in (course.submitted, course.autograded, course.feedback):
        shutil.rmtree(folder / student / assignment, ignore_errors=True)


def _submit(course: Course, assignment: str, record: Collected, release: Path, row: Row) -> None:
    folder = course.submitted / record.student / assignment
    folder.mkdir(parents=True, exist_ok=True)
    for name, notebook in record.notebooks.items():
        released = nbformat.read(release / name, as_version=4)
        repaired, notes = repair(notebook, released)
        row.notes += [f"{name}: {note}" for note in notes]
        row.flags += scan(repaired, released)
        nbformat.write(repaired, folder / name)


def execute_all(course: Course, assignment: str, students: list[str], notebooks: list[str], limits: Limits, jobs: int, results: Path) -> None:
    """Execute each student's notebooks in a sandbox, ``jobs`` at a time; one JSON result per notebook.

    The notebook each sandbox gets is the one nbgrader would execute: the submitted notebook
    through ``Autograde``'s sanitising preprocessors (outputs cleared, test and locked cells
    restored from the gradebook), with the course's configuration.
    """
    from nbgrader.converters import Autograde

    names = course.config.Autograde.get("sanitize_preprocessors") or Autograde.class_traits()["sanitize_preprocessors"].default()
    tasks = []
    for student in students:
        for name in notebooks:
            path = course.submitted / student / assignment / name
            if not path.is_file():
                continue
            nb = nbformat.read(path, as_version=4)
            resources = {"nbgrader": {"student": student, "assignment": assignment, "notebook": Path(name).stem, "db_url": course.db_url}}
            for preprocessor in names:
                cls = preprocessor if isinstance(preprocessor, type) else _import(preprocessor)
                nb, resources = cls(config=course.config).preprocess(nb, resources)
            tasks.append((student, name, nb))
    slots = list(range(jobs))
    lock = threading.Lock()

    def run(task: tuple[str, str, nbformat.NotebookNode]) -> None:
        student, name, nb = task
        with lock:
            slot = slots.pop()
        try:
            result = run_notebook(nb, limits, slot=slot, files=course.submitted / student / assignment)
        finally:
            with lock:
                slots.append(slot)
        folder = results / student
        folder.mkdir(parents=True, exist_ok=True)
        (folder / f"{Path(name).stem}.json").write_text(json.dumps(result_dict(result)))

    with ThreadPoolExecutor(max_workers=max(1, jobs)) as pool:
        list(pool.map(run, tasks))


def _import(dotted: str) -> type:
    module, _, name = dotted.rpartition(".")
    return getattr(importlib.import_module(module), name)


def _sandbox_results(results: Path, student: str, notebooks: list[str]) -> list[Result]:
    found = []
    for name in notebooks:
        path = results / student / f"{Path(name).stem}.json"
        if path.is_file():
            found.append(Result(**json.loads(path.read_text())))
    return found


def _read_results(course: Course, assignment: str, notebooks: list[str], rows: dict[str, Row], collected: dict[str, Collected], results: Path) -> None:
    with Gradebook(course.db_url) as gradebook:
        graded_assignment = gradebook.find_assignment(assignment)
        test_cells = [(nb.name, cell.name, cell.max_score) for nb in graded_assignment.notebooks for cell in nb.grade_cells]
        max_score = sum(points for _, _, points in test_cells)
        for student, row in rows.items():
            row.max_score = max_score
            row.cells = {cell: None for _, cell, _ in test_cells}
            if row.status.startswith("not graded"):
                continue
            autograded = [course.autograded / student / assignment / name for name in notebooks]
            if not (course.submitted / student / assignment).is_dir():
                continue  # no submission
            ran = _sandbox_results(results, student, notebooks)
            if ran:
                row.wall_s, row.cpu_s = sum(r.wall_s for r in ran), sum(r.cpu_s for r in ran)
            failed = [r.error for r in ran if r.error]
            if failed:
                row.status = "not graded: sandbox: " + "; ".join(failed) + "; needs manual review"
                continue
            if not all(path.is_file() for path in autograded):
                row.status = f"not graded: nbgrader could not grade it (see {assignment} autograde.log), needs manual review"
                continue
            row.status = GRADED
            row.score = gradebook.find_submission(assignment, student).score
            for notebook, cell, _ in test_cells:
                row.cells[cell] = gradebook.find_grade(cell, notebook, assignment, student).score
            problems = [f"sandbox: {v}" for r in ran for v in r.violations]
            for path in autograded:
                executed = nbformat.read(path, as_version=4)
                for disabled in executed.metadata.get("gradekit", {}).get("disabled_cells", []):
                    problems.append(f"cell {disabled['grade_id'] or disabled['index']} disabled: {disabled['reason']}")
                leaking = leaking_cells(executed)
                if leaking:
                    problems.append(f"output quotes the hidden tests (cell {', '.join(map(str, leaking))}; removed from the feedback)")
                if not (course.feedback / student / assignment / f"{path.stem}.html").is_file():
                    row.notes.append(f"no feedback file for {path.name} (see feedback.log)")
            if row.flags:
                problems.append(f"{len(row.flags)} suspicious line(s), see suspicious.md")
            if problems:
                row.status = "graded, needs review: " + "; ".join(problems)


def write_csv(rows: list[Row], path: Path) -> None:
    cells = list(rows[0].cells) if rows else []
    tmp = path.with_suffix(".csv.tmp")
    with open(tmp, "w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["student_id", "status", "score", "max_score", *cells, "wall_s", "cpu_s", "notes"])
        for row in rows:
            score = "" if row.score is None else f"{row.score:g}"
            per_cell = ["" if row.cells.get(c) is None else f"{row.cells[c]:g}" for c in cells]
            times = ["" if t is None else f"{t:.1f}" for t in (row.wall_s, row.cpu_s)]
            writer.writerow([row.student, row.status, score, f"{row.max_score:g}", *per_cell, *times, "; ".join(row.notes)])
    tmp.replace(path)  # never a half-written gradebook export


def write_suspicious(rows: list[Row], path: Path) -> None:
    lines = ["# Suspicious code in submissions", "", "Flagged for a person to read; no grade was changed.", ""]
    flagged = [row for row in rows if row.flags]
    for row in flagged:
        lines.append(f"## {row.student}")
        lines += [f"- {flag}" for flag in row.flags] + [""]
    if not flagged:
        lines.append("Nothing flagged.")
    path.write_text("\n".join(lines) + "\n")


def summary(rows: list[Row], assignment: str, out: Path) -> str:
    graded = [r for r in rows if r.score is not None]
    lines = [f"{assignment}: {len(rows)} students, {len(graded)} graded"]
    if graded:
        mean = sum(r.score for r in graded) / len(graded)
        lines.append(f"  mean score {mean:.2f} / {rows[0].max_score:g}")
    counts: dict[str, int] = {}
    for row in rows:
        counts[row.status.split(":")[0]] = counts.get(row.status.split(":")[0], 0) + 1
    lines += [f"  {status}: {n}" for status, n in sorted(counts.items())]
    off_roster = [r for r in rows if not r.on_roster]
    if off_roster and any(r.on_roster for r in rows):
        # an id the roster does not know is usually a student whose upload is named differently
        # (an LMS user id, a login, NFD accents): never a silent extra row and a silent missing one
        lines.append(f"  WARNING: {len(off_roster)} submission(s) match no roster id: check the roster's ids against the upload's names")
        lines += [f"    off the roster: {r.student} ({r.status})" for r in off_roster]
        lines += [f"    on the roster, no submission: {r.student}" for r in rows if r.on_roster and r.status == NO_SUBMISSION]
    review = [r for r in rows if r.needs_review]
    if review:
        lines.append("  needs attention:")
        lines += [f"    {r.student}: {r.status}" for r in review]
    lines.append(f"  report: {out / 'grades.csv'}, {out / 'suspicious.md'}; feedback in feedback/<student>/{assignment}/")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m gradekit", description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    command = sub.add_parser("grade", help="collect, autograde, give feedback and report one assignment")
    command.add_argument("assignment", help="assignment id, e.g. 01-sampling-basics")
    command.add_argument("submissions", type=Path, help="folder or LMS zip with one entry per student")
    command.add_argument("--roster", type=Path, help="CSV with a column id (or student_id): every student gets a row")
    command.add_argument("--timeout", type=int, help="seconds per cell (default: nbgrader_config.py's)")
    command.add_argument("--interrupt-grace", type=float, help="seconds a timed-out cell gets to stop after the interrupt (default 10)")
    command.add_argument("--jobs", type=int, default=os.cpu_count() or 1, help="students graded at a time (default: the number of cores)")
    command.add_argument("--wall-limit", type=float, help="seconds for one whole notebook in the sandbox (default 1800)")
    command.add_argument("--memory-mb", type=int, help="address space of each process in the sandbox (default 4096)")
    command.add_argument("--require-sandbox", action="store_true", help="refuse to grade where bubblewrap cannot run")
    command.add_argument("--course", type=Path, default=Path.cwd(), help="course root (default: here)")
    command.add_argument("--out", type=Path, help="report folder (default: reports/<assignment>)")
    args = parser.parse_args(argv)
    if not args.submissions.exists():
        parser.error(f"SUBMISSIONS: {args.submissions} does not exist")
    if args.jobs < 1:
        parser.error(f"--jobs: expected a positive number, got {args.jobs}")
    course = Course(args.course.resolve())
    out = (args.out or course.root / "reports" / args.assignment).resolve()
    limits = _limits(course, args)
    problem = sandbox_problem()
    if problem and args.require_sandbox:
        raise SystemExit(f"--require-sandbox: {problem}")
    if problem:
        print(NOT_SANDBOXED.format(problem=problem), file=sys.stderr)
    rows = grade(course, args.assignment, args.submissions.resolve(), args.roster, [], out, limits, args.jobs)
    print(summary(rows, args.assignment, out))
    if problem:
        print(NOT_SANDBOXED.format(problem=problem))
    return 0


NOT_SANDBOXED = """
!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!
!! WARNING: students' code ran WITHOUT the sandbox: {problem}.
!! It had a clean environment, the limits and a scratch folder, but it could read and write
!! everything the instructor can (solutions/, gradebook.db, other students' files) and use the
!! network. Install bubblewrap with working user namespaces, or grade in a container without
!! network (README, "Isolating the grading run"), and grade again.
!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!
"""


def _limits(course: Course, args: argparse.Namespace) -> Limits:
    """The sandbox's limits: the command line, else ``nbgrader_config.py``, else :class:`Limits`' defaults."""
    config = course.config.get("SandboxedExecute", {})
    defaults = Limits()
    return Limits(
        wall_s=args.wall_limit or config.get("wall_limit", defaults.wall_s),
        memory_mb=args.memory_mb or config.get("memory_mb", defaults.memory_mb),
        cell_timeout=args.timeout or config.get("timeout", course.config.get("ExecutePreprocessor", {}).get("timeout", defaults.cell_timeout)),
        interrupt_grace=args.interrupt_grace if args.interrupt_grace is not None else config.get("interrupt_grace", defaults.interrupt_grace),
        max_output_bytes=course.config.get("LimitOutputBytes", {}).get("max_bytes", defaults.max_output_bytes),
    )
