"""Time the grading command on a class of 30 ordinary submissions of 01-sampling-basics.

Run: ``.venv/bin/python benchmarks/bench_grading.py`` (a few minutes; not part of ``make test``).
The class: 20 complete solutions, 5 with one part wrong, 3 alternative solutions, 2 untouched
releases, built like the grading battery's (``tests/battery.py``), in a throw-away course.
"""

from __future__ import annotations

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
MIX = {"full": 20, "one-part-wrong": 5, "alternative": 3, "release": 2}


def main() -> None:
    by_name = {kind.name: kind for kind in kinds(Spec.load(ASSIGNMENT))}
    with tempfile.TemporaryDirectory() as tmp:
        directory = Path(tmp)
        course = make_course(directory / "course", [ASSIGNMENT])
        nbgrader(course, "generate_assignment", ASSIGNMENT, "--force")
        submissions = directory / "uploads"
        number = 0
        for name, count in MIX.items():
            for _ in range(count):
                number += 1
                for relative, content in by_name[name].files.items():
                    path = submissions / f"student{number:02d}" / relative
                    path.parent.mkdir(parents=True, exist_ok=True)
                    path.write_bytes(content)
        env = os.environ | _ENV | {"PATH": os.pathsep.join([str(Path(sys.executable).parent), os.environ["PATH"]])}
        started = time.perf_counter()
        result = subprocess.run([sys.executable, "-m", "gradekit", "grade", ASSIGNMENT, str(submissions)], cwd=course, env=env, capture_output=True, text=True)
        seconds = time.perf_counter() - started
        print(result.stdout[-2000:], result.stderr[-2000:] if result.returncode else "")
        print(f"graded {number} submissions of {ASSIGNMENT} in {seconds:.0f} s ({seconds / number:.1f} s each); load average {os.getloadavg()}")


if __name__ == "__main__":
    main()
