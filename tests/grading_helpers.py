"""Helpers for ``tests/test_exercises.py``: nbgrader runs in throw-away course directories.

Nothing here writes into the repository. A :class:`GradingCourse` holds a copy of
``nbgrader_config.py`` and of ``solutions/`` in a temporary directory; every ``nbgrader``
command runs there, with the same interpreter as the tests, so the gradebook, ``exercises/``,
``submitted/``, ``autograded/`` and ``feedback/`` it creates all live under that directory.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path

import nbformat
from nbformat import NotebookNode
from traitlets.config import Config
from traitlets.config.loader import PyFileConfigLoader

ROOT = Path(__file__).resolve().parents[1]
CONFIG_FILE = ROOT / "nbgrader_config.py"
_IGNORED = shutil.ignore_patterns(".ipynb_checkpoints", "__pycache__")
# Quiet, fast and reproducible executions: no figure rendering, no progress bars, and one
# thread per kernel (the notebooks' tensors are small; extra threads only compete for cores).
_ENV = {
    "MPLBACKEND": "Agg",
    "TQDM_DISABLE": "1",
    "PYDEVD_DISABLE_FILE_VALIDATION": "1",
    "OMP_NUM_THREADS": "1",
    "MKL_NUM_THREADS": "1",
}

SOLUTION_MARKERS = ("### BEGIN SOLUTION", "### END SOLUTION")
HIDDEN_MARKERS = ("### BEGIN HIDDEN TESTS", "### END HIDDEN TESTS")
GRADE_ID = re.compile(r"^[A-Za-z0-9_-]+$")


def course_config() -> Config:
    """The course's nbgrader configuration, read from ``nbgrader_config.py``."""
    return PyFileConfigLoader(CONFIG_FILE.name, path=str(CONFIG_FILE.parent)).load_config()


def _directory(name: str) -> Path:
    return ROOT / course_config().CourseDirectory[name]


SOURCE = _directory("source_directory")  # solutions/
RELEASE = _directory("release_directory")  # exercises/


def assignment_ids() -> list[str]:
    """Every assignment of the course: a folder of ``solutions/`` holding a notebook."""
    if not SOURCE.is_dir():
        return []
    return sorted(p.name for p in SOURCE.iterdir() if p.is_dir() and any(p.glob("*.ipynb")))


def notebook_paths(folder: Path) -> list[Path]:
    return sorted(folder.glob("*.ipynb"))


def read_notebook(path: Path) -> NotebookNode:
    return nbformat.read(path, as_version=4)


def nbgrader_meta(cell: NotebookNode) -> dict:
    return cell.get("metadata", {}).get("nbgrader", {})


def is_test_cell(cell: NotebookNode) -> bool:
    meta = nbgrader_meta(cell)
    return bool(meta.get("grade")) and not meta.get("solution") and cell.cell_type == "code"


def is_solution_cell(cell: NotebookNode) -> bool:
    return bool(nbgrader_meta(cell).get("solution"))


def relative_files(folder: Path) -> dict[str, bytes]:
    """Every file under ``folder`` (checkpoints and caches excluded), by relative path."""
    return {
        p.relative_to(folder).as_posix(): p.read_bytes()
        for p in sorted(folder.rglob("*"))
        if p.is_file() and ".ipynb_checkpoints" not in p.parts and "__pycache__" not in p.parts
    }


def make_course(directory: Path, assignments: Iterable[str]) -> Path:
    """A fresh course in ``directory``: the config and the sources of ``assignments``."""
    directory.mkdir(parents=True, exist_ok=True)
    shutil.copy2(CONFIG_FILE, directory / CONFIG_FILE.name)
    source = directory / SOURCE.relative_to(ROOT)
    for assignment in assignments:
        shutil.copytree(SOURCE / assignment, source / assignment, ignore=_IGNORED)
    return directory


def nbgrader(course: Path, *args: str, timeout: float = 900) -> subprocess.CompletedProcess:
    """Run ``nbgrader *args`` from the course root, as the README tells instructors to.

    Raises with nbgrader's log when it exits non-zero. A zero exit says little (``validate``
    exits 0 on failing tests, ``autograde`` on failing submissions): callers read results
    from the gradebook or the files written.
    """
    result = subprocess.run(
        [sys.executable, "-m", "nbgrader", *args],
        cwd=course,
        env=os.environ | _ENV | {"PATH": _path_with_interpreter()},
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    if result.returncode != 0:
        raise AssertionError(f"nbgrader {' '.join(args)} exited {result.returncode}:\n{result.stdout}\n{result.stderr}")
    return result


def _path_with_interpreter() -> str:
    """``$PATH`` with this interpreter's scripts first: nbgrader runs ``alembic`` by name
    when it creates a gradebook, and fails if the virtualenv is not on the path."""
    return os.pathsep.join([str(Path(sys.executable).parent), os.environ.get("PATH", "")])


@contextmanager
def _execution_environ() -> Iterator[None]:
    """Set ``_ENV`` in ``os.environ`` (kernels started in this process inherit it), then restore it."""
    saved = {name: os.environ.get(name) for name in _ENV}
    os.environ.update(_ENV)
    try:
        yield
    finally:
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


def strip_solution_markers(source: str) -> str:
    """A solution cell's code as a student would write it: the nbgrader marker lines removed."""
    return "\n".join(line for line in source.splitlines() if line.strip() not in SOLUTION_MARKERS)


def complete_release(release: NotebookNode, source: NotebookNode) -> NotebookNode:
    """The release notebook with every solution cell filled in from the source notebook.

    This is a perfect student's submission: the release's locked cells, metadata and
    checksums untouched, the answers written where ``# YOUR CODE HERE`` was.
    """
    answers = {nbgrader_meta(c)["grade_id"]: c.source for c in source.cells if is_solution_cell(c)}
    completed = nbformat.from_dict(release)
    filled = set()
    for cell in completed.cells:
        if is_solution_cell(cell):
            grade_id = nbgrader_meta(cell)["grade_id"]
            cell.source = strip_solution_markers(answers[grade_id])
            filled.add(grade_id)
    if filled != set(answers):
        raise AssertionError(f"solution cells differ between source and release: {sorted(filled ^ set(answers))}")
    return completed


class GradingCourse:
    """A throw-away nbgrader course in ``directory``; each step runs once per assignment, on demand.

    (Grading submissions is ``tests/test_grading_battery.py``'s, with the grading command.)
    """

    def __init__(self, directory: Path) -> None:
        self.root = make_course(directory, assignment_ids())
        self._generated: set[str] = set()
        self._validations: dict[str, dict[tuple[str, str], dict]] = {}

    def release(self, assignment: str) -> Path:
        """``nbgrader generate_assignment <assignment> --force``; the release folder it wrote."""
        if assignment not in self._generated:
            nbgrader(self.root, "generate_assignment", assignment, "--force")
            self._generated.add(assignment)
        return self.root / RELEASE.relative_to(ROOT) / assignment

    def validate(self, assignment: str) -> dict[tuple[str, str], dict]:
        """``Validator.validate`` of copies of the committed notebooks, by (notebook, kind).

        Kind ``source``: the solution, validated normally. Kind ``release``: the committed
        release, validated with ``invert=True`` (it complains about every test that passes).
        """
        from nbgrader.validator import Validator

        if assignment not in self._validations:
            results = {}
            with _execution_environ():
                for kind, folder, invert in (("source", SOURCE, False), ("release", RELEASE, True)):
                    copy = self.root / "validate" / kind / assignment
                    shutil.copytree(folder / assignment, copy, ignore=_IGNORED)
                    for path in notebook_paths(copy):
                        validator = Validator(config=course_config(), invert=invert)
                        results[(path.name, kind)] = validator.validate(str(path))
            self._validations[assignment] = results
        return self._validations[assignment]
