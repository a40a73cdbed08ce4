"""The grading battery: kinds of submission built from an assignment's solution and release.

Generic over assignments: each ``solutions/<assignment>/battery.toml`` declares which solution
cells each test cell needs, a wrong and an alternative implementation, and lecturekit shortcuts
(see ``solutions/README.md``). From these, :func:`kinds` builds the submissions, each with the
score of every test cell and the status the grading command must report, written down before
anything is graded. Each kind is one student, named after it.
"""

from __future__ import annotations

import copy
import tomllib
from dataclasses import dataclass, field
from pathlib import Path

import nbformat
from grading_helpers import RELEASE, SOURCE, complete_release, is_solution_cell, is_test_cell, nbgrader_meta, notebook_paths, read_notebook
from nbformat import NotebookNode
from nbformat.v4 import new_code_cell

GRADED, REVIEW, NOT_GRADED, NO_SUBMISSION = "graded", "graded, needs review", "not graded", "no submission"

INFINITE_LOOP = "while True:\n    pass\n"
UNINTERRUPTIBLE_LOOP = """import time
while True:  # swallows Ctrl-C: the interrupt cannot stop it
    try:
        time.sleep(0.05)
    except KeyboardInterrupt:
        pass
"""
PATCH_TORCH = """import torch
torch.allclose = lambda *args, **kwargs: True
torch.isclose = lambda input, *args, **kwargs: torch.ones_like(input, dtype=torch.bool)
torch.equal = lambda *args, **kwargs: True
"""
STRIP_ASSERTS = """import ast


class _NoAsserts(ast.NodeTransformer):
    def visit_Assert(self, node):
        return ast.Pass()


get_ipython().ast_transformers.append(_NoAsserts())
"""
HUGE_OUTPUT = 'print("0123456789" * 5_000_000)  # one line of 50 MB\n'


@dataclass
class Spec:
    """``battery.toml`` of one assignment, checked against its source notebook."""

    assignment: str
    notebook: str  # the (single) notebook's file name
    timeout: int
    workflow_kinds: bool  # also the kinds that test the grading command's own kernel handling
    fault_cell: str
    depends: dict[str, list[str]]
    alternative: dict[str, str]
    wrong: dict[str, str]
    reference: dict[str, str]
    points: dict[str, float] = field(default_factory=dict)  # test cell -> points, notebook order
    solutions: list[str] = field(default_factory=list)  # solution cells, notebook order

    @classmethod
    def load(cls, assignment: str) -> Spec:
        path = SOURCE / assignment / "battery.toml"
        if not path.is_file():
            raise AssertionError(f"{path} is missing: declare the battery's expectations (see solutions/README.md)")
        raw = tomllib.loads(path.read_text())
        (notebook,) = [p.name for p in notebook_paths(SOURCE / assignment)]  # one notebook per assignment so far
        source = read_notebook(SOURCE / assignment / notebook)
        spec = cls(
            assignment,
            notebook,
            int(raw["timeout"]),
            bool(raw.get("workflow_kinds", False)),
            raw.get("fault_cell", ""),
            raw["depends"],
            raw.get("alternative", {}),
            raw["wrong"],
            raw.get("reference", {}),
        )
        spec.points = {nbgrader_meta(c)["grade_id"]: float(nbgrader_meta(c)["points"]) for c in source.cells if is_test_cell(c)}
        spec.solutions = [nbgrader_meta(c)["grade_id"] for c in source.cells if is_solution_cell(c) and c.cell_type == "code"]
        spec.fault_cell = spec.fault_cell or spec.solutions[0]
        unknown = {cell for cells in spec.depends.values() for cell in cells} - set(spec.solutions)
        named = set(spec.alternative) | set(spec.wrong) | set(spec.reference) | {spec.fault_cell}
        problems = [
            f"[depends] must list every test cell {sorted(spec.points)}" if set(spec.depends) != set(spec.points) else "",
            f"unknown solution cells {sorted(unknown | (named - set(spec.solutions)))}" if unknown or named - set(spec.solutions) else "",
            "[wrong] must break at least one test" if not spec.wrong else "",
        ]
        if any(problems):
            raise AssertionError(f"{path}: " + "; ".join(p for p in problems if p))
        return spec

    def scores(self, broken: set[str] = frozenset(), failing: set[str] = frozenset()) -> dict[str, float]:
        """Expected score of each test cell: 0 if it needs a broken solution cell or is in ``failing``."""
        return {t: 0.0 if (set(self.depends[t]) & broken or t in failing) else p for t, p in self.points.items()}


@dataclass
class Kind:
    """One kind of submission: the files a student hands in, and what grading must report."""

    name: str
    what: str
    files: dict[str, bytes]  # path inside the student's folder -> content
    scores: dict[str, float] | None  # per test cell; None when the student cannot be graded
    status: str
    flagged: bool = False  # must appear in the suspicious-submission report
    violation: str = ""  # what the status must name (attack kinds)

    @property
    def total(self) -> float | None:
        return None if self.scores is None else sum(self.scores.values())


def _bytes(notebook: NotebookNode) -> bytes:
    return nbformat.writes(notebook).encode("utf-8")


def _replace(notebook: NotebookNode, sources: dict[str, str]) -> NotebookNode:
    changed = copy.deepcopy(notebook)
    for cell in changed.cells:
        grade_id = nbgrader_meta(cell).get("grade_id")
        if grade_id in sources:
            cell.source = sources[grade_id].strip("\n")
    return changed


def _prefix(notebook: NotebookNode, grade_id: str, code: str) -> NotebookNode:
    source = next(c.source for c in notebook.cells if nbgrader_meta(c).get("grade_id") == grade_id)
    return _replace(notebook, {grade_id: code + source})


def _delete(notebook: NotebookNode, grade_ids: set[str]) -> NotebookNode:
    changed = copy.deepcopy(notebook)
    changed.cells = [c for c in changed.cells if nbgrader_meta(c).get("grade_id") not in grade_ids]
    return changed


def _insert_after(notebook: NotebookNode, grade_id: str, code: str) -> NotebookNode:
    changed = copy.deepcopy(notebook)
    index = next(i for i, c in enumerate(changed.cells) if nbgrader_meta(c).get("grade_id") == grade_id)
    changed.cells.insert(index + 1, new_code_cell(code))
    return changed


def _tests_after(notebook: NotebookNode, grade_id: str) -> set[str]:
    """Test cells that come after ``grade_id`` in the notebook."""
    ids = [nbgrader_meta(c).get("grade_id") for c in notebook.cells]
    start = ids.index(grade_id)
    return {i for i in ids[start:] if i and is_test_cell(notebook.cells[ids.index(i)])}


def _previous_nbgrader_cell(notebook: NotebookNode, grade_id: str) -> NotebookNode:
    cells = [c for c in notebook.cells if nbgrader_meta(c).get("grade_id")]
    index = next(i for i, c in enumerate(cells) if nbgrader_meta(c)["grade_id"] == grade_id)
    return cells[index - 1]


# Kinds that test how the grading command copes with a cell past the timeout, a kernel that hangs,
# exits or dies, a huge output, an AST transformer, or a deleted solution cell. Its handling does
# not depend on the notebook, so only the assignment whose battery.toml sets
# ``workflow_kinds = true`` (01) pays for them: each costs a timeout or a second run of the
# notebook, and `make test` must stay under 20 minutes with every assignment's battery in it.
# (The scores a broken cell costs, which do depend on the notebook, every battery checks with
# the "raises" kind.)
WORKFLOW_KINDS = frozenset(
    {"infinite-loop", "uninterruptible-loop", "exit", "kernel-death", "huge-output", "cheat-ast",
     "deleted-solution-and-test"}
)


# Attacks on the grading run itself (issue 18), each in a cell of its own after the first solution
# cell, run in the sandbox: each must fail harmlessly. ``{course}`` is the course's absolute path,
# ``{assignment}`` and ``{notebook}`` the assignment's. Graded for one assignment only (the first):
# the sandbox does not depend on the notebook.
ATTACK_MARK = "ATTACKER-WAS-HERE-8431"
BACKGROUND_MARK = "987.654"  # a sleep of that many seconds, looked for after grading
SECRET_VARIABLE = "GRADEKIT_BATTERY_SECRET"
ATTACKS = {
    # kind: (what, code, the violation the status names, flagged by the suspicious-code scan)
    "attack-read-solutions": ("the mistake, then the solution cells read from solutions/ and run", """
import json
for _path in ["{course}/solutions/{assignment}/{notebook}", "../../../solutions/{assignment}/{notebook}"]:
    try:
        _cells = json.load(open(_path))["cells"]
    except OSError as _error:
        _last = _error
        continue
    for _cell in _cells:
        if "BEGIN SOLUTION" in "".join(_cell["source"]):
            exec("".join(_cell["source"]))
    break
else:
    raise _last
""", "tried to reach a file outside the sandbox", True),
    "attack-read-gradebook": ("prints gradebook.db (hidden tests in it)", """
print(open("{course}/gradebook.db", "rb").read()[:5000])
""", "tried to reach a file outside the sandbox", False),
    "attack-write-gradebook": ("sets every score in gradebook.db to 100 and a test's source to `pass`", """
import sqlite3
_db = sqlite3.connect("file:{course}/gradebook.db?mode=rw", uri=True)
_db.execute("update grade set manual_score = 100")
_db.execute("update source_cell set source = 'pass'")
_db.commit()
""", "tried to open a database outside the sandbox", False),
    "attack-write-others": ("overwrites another student's submitted and autograded notebooks", """
for _folder in ("submitted", "autograded", "feedback"):
    with open(f"{course}/{{_folder}}/full/{assignment}/{notebook}", "w") as _file:
        _file.write("{mark}")
""", "tried to reach a file outside the sandbox", False),
    "attack-background": ("starts a detached process meant to rewrite grades.csv later", """
import subprocess
subprocess.Popen(["sh", "-c", "sleep {background}; echo 0 > {course}/grades-rewritten"], start_new_session=True)
""", "background process(es) running, killed", False),
    "attack-big-file": ("writes a 300 MB file in its folder", """
with open("big.bin", "wb") as _file:
    for _ in range(300):
        _file.write(bytes(2**20))
""", "hit the file-size limit", False),
    "attack-network": ("opens a TCP connection to the internet", """
import socket
socket.create_connection(("1.1.1.1", 80), timeout=5)
""", "tried the network (blocked)", False),
    "attack-environment": ("prints the environment (looking for the instructor's secrets)", """
import os
print(sorted(os.environ.items()))
""", "", False),
    "attack-processes": ("starts processes until it cannot", """
import subprocess
_children = []
try:
    for _ in range(5000):
        _children.append(subprocess.Popen(["sleep", "30"]))
finally:
    for _child in _children:
        _child.kill()
        _child.wait()
""", "hit the process limit", False),
    "attack-memory": ("allocates 64 GB", """
_block = bytearray(64 * 2**30)
""", "hit the memory limit", False),
    "attack-hidden-tests": ("captures the test cells' source from inside the kernel and prints it", """
import glob, sys
def _show(info):
    print("CAPTURED", info.raw_cell)
    print("FRAME", sys._getframe(1).f_globals.get("In", [])[-1:])
get_ipython().events.register("pre_run_cell", _show)
get_ipython().events.register("post_run_cell", lambda result: print("OUT", In[-1]))
for _path in glob.glob("*.ipynb") + glob.glob("../*/*.ipynb"):
    print(open(_path).read())
""", "output quotes the hidden tests", True),
}


def attack_kinds(spec: Spec, course: Path) -> list[Kind]:
    """The attacks on the grading run, for the course at ``course``."""
    name = spec.notebook
    release = read_notebook(RELEASE / spec.assignment / name)
    full = complete_release(release, read_notebook(SOURCE / spec.assignment / name))
    wrong = set(spec.wrong)
    wrong_cell = sorted(wrong, key=spec.solutions.index)[0]
    battery = []
    for kind, (what, code, violation, flagged) in ATTACKS.items():
        code = code.strip().format(course=course, assignment=spec.assignment, notebook=name, mark=ATTACK_MARK, background=BACKGROUND_MARK)
        if kind == "attack-read-solutions":  # would give full marks to the wrong answer if it worked
            notebook, scores = _insert_after(_replace(full, spec.wrong), wrong_cell, code), spec.scores(wrong)
        else:
            notebook, scores = _insert_after(full, spec.solutions[0], code), spec.scores()
        battery.append(Kind(kind, what, {name: _bytes(notebook)}, scores, REVIEW if violation else GRADED, flagged=flagged, violation=violation))
    return battery


def kinds(spec: Spec) -> list[Kind]:
    """The battery for one assignment, expected scores and statuses included."""
    name = spec.notebook
    release = read_notebook(RELEASE / spec.assignment / name)
    full = complete_release(release, read_notebook(SOURCE / spec.assignment / name))
    all_points = spec.scores()
    fault = spec.fault_cell
    wrong = set(spec.wrong)
    wrong_cell = sorted(wrong, key=spec.solutions.index)[0]
    wrong_nb = _replace(full, spec.wrong)
    after_cheat = _tests_after(full, wrong_cell)
    tests = list(spec.points)
    after_solution = next(t for t in tests if is_solution_cell(_previous_nbgrader_cell(full, t)))
    after_locked = [t for t in tests if not is_solution_cell(_previous_nbgrader_cell(full, t)) and not is_test_cell(_previous_nbgrader_cell(full, t))]
    deleted = [after_solution] + after_locked[:1]
    test_of_fault = next(t for t in tests if fault in spec.depends[t])
    first_solution = spec.solutions[0]
    zero = dict.fromkeys(spec.points, 0.0)

    battery = [
        Kind("full", "the release completed with the solutions", {name: _bytes(full)}, all_points, GRADED),
        Kind("alternative", f"other correct code for {', '.join(spec.alternative)}", {name: _bytes(_replace(full, spec.alternative))}, all_points, GRADED),
        Kind("release", "the release, untouched", {name: _bytes(release)}, zero, GRADED),
        Kind("one-part-wrong", f"a plausible mistake in {', '.join(spec.wrong)}", {name: _bytes(wrong_nb)}, spec.scores(wrong), GRADED),
        Kind("raises", f"{fault} raises before defining anything", {name: _bytes(_prefix(full, fault, 'raise RuntimeError("unfinished")\n'))}, spec.scores({fault}), GRADED),
        Kind("infinite-loop", f"an endless loop at the top of {fault} (the timeout interrupts it)", {name: _bytes(_prefix(full, fault, INFINITE_LOOP))}, spec.scores({fault}), GRADED),
        Kind("uninterruptible-loop", f"a loop in {fault} that swallows the interrupt: the cell is disabled, the notebook re-run", {name: _bytes(_prefix(full, fault, UNINTERRUPTIBLE_LOOP))}, spec.scores({fault}), REVIEW),
        Kind("exit", f"exit() at the top of {fault}: the kernel shuts down; the cell is disabled, the notebook re-run", {name: _bytes(_prefix(full, fault, "exit()\n"))}, spec.scores({fault}), REVIEW),
        Kind("kernel-death", f"os._exit(1) at the top of {fault}: the cell is disabled, the notebook re-run", {name: _bytes(_prefix(full, fault, "import os\nos._exit(1)\n"))}, spec.scores({fault}), REVIEW),
        Kind("edited-test", f"the mistake in {wrong_cell}, and its tests replaced by a print", {name: _bytes(_replace(wrong_nb, {t: 'print("all tests passed")' for t in tests if wrong & set(spec.depends[t])}))}, spec.scores(wrong), GRADED),
        Kind("deleted-tests", f"full solution, test cells {', '.join(deleted)} deleted (after a solution cell{' and after a locked cell' if after_locked else ''})", {name: _bytes(_delete(full, set(deleted)))}, all_points, GRADED),
        Kind("deleted-solution-and-test", f"solution cell {fault} and its test {test_of_fault} deleted", {name: _bytes(_delete(full, {fault, test_of_fault}))}, spec.scores({fault}), GRADED),
        Kind("default-dtype", "full solution that calls torch.set_default_dtype(torch.float64) first", {name: _bytes(_prefix(full, spec.solutions[0], "torch.set_default_dtype(torch.float64)\n"))}, all_points, GRADED),
        Kind("cheat-patch", f"the mistake in {wrong_cell}, with torch.allclose/isclose/equal replaced", {name: _bytes(_prefix(wrong_nb, wrong_cell, PATCH_TORCH))}, spec.scores(wrong, failing=after_cheat), REVIEW, flagged=True),
        Kind("cheat-ast", f"the mistake in {wrong_cell}, with an AST transformer that strips assert", {name: _bytes(_prefix(wrong_nb, wrong_cell, STRIP_ASSERTS))}, spec.scores(wrong, failing=after_cheat), REVIEW, flagged=True),
        Kind("calls-lecturekit", f"{', '.join(spec.reference)} taken from lecturekit", {name: _bytes(_replace(full, spec.reference))}, all_points, REVIEW, flagged=True),
        Kind("misnamed", f"full solution saved as '{Path(name).stem} (1).ipynb'", {f"{Path(name).stem} (1).ipynb": _bytes(full)}, all_points, GRADED),
        Kind("huge-output", "full solution printing one line of 50 MB", {name: _bytes(_insert_after(full, first_solution, HUGE_OUTPUT))}, all_points, GRADED),
        Kind("missing-notebook", "a folder without a notebook", {"answers.txt": b"I did it all in my head.\n"}, None, NOT_GRADED),
        Kind("invalid-json", "a notebook file cut in half", {name: _bytes(full)[: len(_bytes(full)) // 2]}, None, NOT_GRADED),
        Kind("no-submission", "on the roster, handed in nothing", {}, None, NO_SUBMISSION),
    ]
    if not spec.workflow_kinds:
        battery = [kind for kind in battery if kind.name not in WORKFLOW_KINDS]
    return battery


def write_submissions(battery: list[Kind], folder: Path, roster: Path) -> None:
    """One folder per kind (the student's id is the kind's name) and a roster with every kind."""
    for kind in battery:
        for relative, content in kind.files.items():
            path = folder / kind.name / relative
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(content)
    roster.write_text("id,first_name,last_name\n" + "".join(f"{k.name},Battery,{k.name}\n" for k in battery))


def hidden_test_lines(assignment: str) -> list[str]:
    """Distinctive lines of the assignment's hidden tests that appear nowhere in its release."""
    from gradekit.feedback import hidden_lines

    lines = []
    for path in notebook_paths(SOURCE / assignment):
        public = "\n".join(cell.source for cell in read_notebook(RELEASE / assignment / path.name).cells)
        hidden = (line for cell in read_notebook(path).cells if is_test_cell(cell) for line in hidden_lines(cell.source))
        lines += [line for line in hidden if line not in public]
    return lines
