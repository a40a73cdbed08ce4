"""Time the grading command on a class of ordinary submissions of 01-sampling-basics.

Run: ``.venv/bin/python benchmarks/bench_grading.py [--students 100] [--jobs 1 2]`` (minutes;
not part of ``make test``). The class repeats the mix 2/3 complete solutions, 1/6 with one part
wrong, 1/10 alternative solutions, the rest untouched releases, built like the grading
battery's (``tests/battery.py``), in a throw-away course. For each ``--jobs`` value the same
class is graded afresh; the report gives the wall time, the students' summed CPU time (the
``cpu_s`` column of ``grades.csv``: what the sandboxed kernels used) and the scores' agreement
between the runs, so the time for another class size or core count can be extrapolated:
about ``students * cpu_per_student / min(jobs, cores)`` plus nbgrader's serial bookkeeping.
"""

from __future__ import annotations

import argparse
import csv
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))

from battery import Spec, kinds  # noqa: E402
from grading_helpers import _ENV, make_course, nbgrader  # noqa: E402

ASSIGNMENT = "01-sampling-basics"
MIX = {"full": 20, "one-part-wrong": 5, "alternative": 3, "release": 2}  # per 30 students


def class_of(n_students: int) -> list[str]:
    """The kind of each student's submission: MIX, repeated and cut to ``n_students``."""
    block = [name for name, count in MIX.items() for _ in range(count)]
    return [block[i % len(block)] for i in range(n_students)]


def grade_once(directory: Path, n_students: int, jobs: int) -> tuple[float, dict[str, dict[str, str]]]:
    """Grade a fresh course's class with ``--jobs jobs``; return the wall time and the rows."""
    by_name = {kind.name: kind for kind in kinds(Spec.load(ASSIGNMENT))}
    course = make_course(directory / "course", [ASSIGNMENT])
    nbgrader(course, "generate_assignment", ASSIGNMENT, "--force")
    submissions = directory / "uploads"
    for number, name in enumerate(class_of(n_students), start=1):
        for relative, content in by_name[name].files.items():
            path = submissions / f"student{number:03d}" / relative
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(content)
    env = os.environ | _ENV | {"PATH": os.pathsep.join([str(Path(sys.executable).parent), os.environ["PATH"]])}
    out = directory / "report"
    started = time.perf_counter()
    result = subprocess.run(
        [sys.executable, "-m", "gradekit", "grade", ASSIGNMENT, str(submissions), "--jobs", str(jobs), "--out", str(out)],
        cwd=course, env=env, capture_output=True, text=True,
    )
    seconds = time.perf_counter() - started
    if result.returncode:
        raise SystemExit(f"grading failed:\n{result.stdout[-2000:]}\n{result.stderr[-2000:]}")
    with open(out / "grades.csv", newline="") as handle:
        return seconds, {row["student_id"]: row for row in csv.DictReader(handle)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--students", type=int, default=30, help="class size (default: 30)")
    parser.add_argument("--jobs", type=int, nargs="+", default=[1, 2], help="--jobs values to compare (default: 1 2)")
    args = parser.parse_args()
    scores = {}
    for jobs in args.jobs:
        with tempfile.TemporaryDirectory() as tmp:
            seconds, rows = grade_once(Path(tmp), args.students, jobs)
        cpu = sum(float(row["cpu_s"] or 0) for row in rows.values())
        graded = sum(row["status"] == "graded" for row in rows.values())
        scores[jobs] = {student: row["score"] for student, row in rows.items()}
        print(f"JOBS={jobs}: {args.students} submissions of {ASSIGNMENT} ({graded} graded) in {seconds:.0f} s wall"
              f" ({seconds / args.students:.2f} s per student); kernels' CPU {cpu:.0f} s"
              f" ({cpu / args.students:.2f} s per student); load average {os.getloadavg()[0]:.1f}", flush=True)
    first = next(iter(scores.values()))
    same = all(s == first for s in scores.values())
    print(f"scores identical across JOBS={args.jobs}: {same}")


if __name__ == "__main__":
    main()
