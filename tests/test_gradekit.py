"""Unit tests of gradekit's parts, without nbgrader runs (the battery grades end to end)."""

from __future__ import annotations

import copy
import os
import zipfile
from pathlib import Path

import nbformat
import pytest
import torch
from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook, new_output

from gradekit import checks
from gradekit.collect import collect, normalised_stem, unpack
from gradekit.execute import LimitOutputBytes
from gradekit.feedback import ScrubHiddenTracebacks
from gradekit.repair import grade_id, repair
from gradekit.scan import scan


def _cell(grade_id: str, source: str = "", *, solution: bool = False, grade: bool = False, locked: bool = False):
    cell = new_code_cell(source or f"# {grade_id}")
    cell.metadata.nbgrader = {"grade_id": grade_id, "solution": solution, "grade": grade, "locked": locked, "schema_version": 3}
    return cell


def _release():
    return new_notebook(cells=[
        _cell("setup", locked=True),
        new_markdown_cell("Part A"),
        _cell("answer", "raise NotImplementedError()", solution=True),
        _cell("run", locked=True),
        _cell("test_answer", grade=True, locked=True),
    ])


# --------------------------------------------------------------------------------------- repair
def test_repair_restores_a_test_cell_deleted_after_a_locked_cell() -> None:
    submission = copy.deepcopy(_release())
    submission.cells[2].source = "answer = 42"
    del submission.cells[4]  # nbgrader's own restore raises KeyError('run') here
    repaired, notes = repair(submission, _release())
    assert [grade_id(c) for c in repaired.cells] == ["setup", None, "answer", "run", "test_answer"]
    assert repaired.cells[2].source == "answer = 42"
    assert notes == ["restored test cell test_answer from the release"]


def test_repair_puts_moved_cells_back_and_keeps_the_students_own_cells() -> None:
    submission = copy.deepcopy(_release())
    mine = new_code_cell("print('my check')")
    cells = submission.cells
    submission.cells = [cells[0], cells[4], cells[2], mine, cells[3]]  # test moved up, markdown deleted
    repaired, notes = repair(submission, _release())
    assert [grade_id(c) for c in repaired.cells] == ["setup", "answer", None, "run", "test_answer"]
    assert repaired.cells[2].source == "print('my check')"
    assert "nbgrader cells put back in the release's order" in notes


def test_repair_turns_a_duplicated_cell_into_an_ordinary_one() -> None:
    submission = copy.deepcopy(_release())
    submission.cells.append(copy.deepcopy(submission.cells[4]))
    repaired, notes = repair(submission, _release())
    assert [grade_id(c) for c in repaired.cells].count("test_answer") == 1
    assert any("duplicated" in note for note in notes)


# --------------------------------------------------------------------------------------- collect
@pytest.mark.parametrize("name", ["sampling-basics (1).ipynb", "Sampling_Basics.ipynb", "sampling-basics-Copy1.ipynb", "alice_sampling-basics.ipynb"])
def test_notebook_names_are_normalised(name: str) -> None:
    assert normalised_stem(name.removeprefix("alice_")) == normalised_stem("sampling-basics.ipynb")


def test_collect_from_an_lms_zip(tmp_path: Path) -> None:
    notebook = nbformat.writes(_release()).encode()
    archive = tmp_path / "uploads.zip"
    with zipfile.ZipFile(archive, "w") as zipped:
        zipped.writestr("Assignment 1/alice_sampling-basics (1).ipynb", notebook)
        zipped.writestr("Assignment 1/bob/work/sampling-basics.ipynb", notebook)
        zipped.writestr("Assignment 1/bob/work/.ipynb_checkpoints/sampling-basics-checkpoint.ipynb", notebook)
        zipped.writestr("Assignment 1/carol/readme.txt", b"no notebook")
        zipped.writestr("Assignment 1/dave_sampling-basics.ipynb", notebook[: len(notebook) // 2])
    found = collect(unpack(archive, tmp_path, ["alice", "bob", "carol", "dave"]), ["sampling-basics.ipynb"], ["alice", "bob", "carol", "dave"])
    assert sorted(found) == ["alice", "bob", "carol", "dave"]
    assert found["alice"].problem is None and found["alice"].notes == ["'alice_sampling-basics (1).ipynb' graded as sampling-basics.ipynb"]
    assert found["bob"].problem is None and found["bob"].notes == []
    assert found["carol"].problem.startswith("no notebook")
    assert "not a valid notebook" in found["dave"].problem


def test_unpack_refuses_paths_that_leave_the_folder(tmp_path: Path) -> None:
    archive = tmp_path / "evil.zip"
    with zipfile.ZipFile(archive, "w") as zipped:
        zipped.writestr("../outside.ipynb", b"{}")
    with pytest.raises(ValueError, match="unsafe path"):
        unpack(archive, tmp_path, [])


# --------------------------------------------------------------------------------------- scan
def test_scan_flags_cheats_and_lecturekit_but_not_ordinary_code() -> None:
    notebook = _release()
    notebook.cells[0].source = "from lecturekit.samplers.mcmc import MALA"
    notebook.cells[2].source = "import torch as t\nt.allclose = lambda *a, **k: True\nanswer = MALA"
    notebook.cells.append(new_code_cell("get_ipython().ast_transformers.append(None)\nexec('x = 1')"))
    notebook.cells.append(new_code_cell("model.eval()\nlayers.modules()\ntorch.compile\nx = torch.zeros(3)"))
    reasons = [flag.reason for flag in scan(notebook)]
    assert "replaces t.allclose" in reasons
    assert "uses MALA from lecturekit in a solution cell" in reasons
    assert "touches IPython's AST transformers" in reasons and "runs code from a string (exec)" in reasons
    assert not [flag for flag in scan(notebook) if flag.cell == "cell 6"], "ordinary code was flagged"


def test_scan_exempts_lecturekit_names_the_release_offers() -> None:
    release = _release()
    release.cells[0].source = "from lecturekit.samplers.mcmc import MALA\nfrom lecturekit.flows.core import Flow"
    solution = release.cells[2]
    solution.source = "def step(flow: Flow):\n    raise NotImplementedError()"
    submission = copy.deepcopy(release)
    submission.cells[2].source = "def step(flow: Flow):\n    return MALA"
    reasons = [flag.reason for flag in scan(submission, release)]
    assert reasons == ["uses MALA from lecturekit in a solution cell"], reasons
    release.cells[1].source = "Part A: build the kernel with `MALA(target, step_size)`."
    assert scan(submission, release) == [], "a tool the instructions offer was flagged"


# --------------------------------------------------------------------------------------- preprocessors
def test_output_limit_counts_bytes_and_keeps_every_output() -> None:
    cell = new_code_cell("print(...)")
    cell.outputs = [new_output("stream", name="stdout", text="é" * 1_000_000), new_output("stream", name="stderr", text="warning")]
    LimitOutputBytes(max_bytes=1000).preprocess_cell(cell, {}, 0)
    assert len(cell.outputs[0].text.encode()) < 1200 and "truncated" in cell.outputs[0].text
    assert cell.outputs[1].name == "stderr", "a stderr output (which costs the points) must stay"


def test_tracebacks_quoting_hidden_tests_are_shortened() -> None:
    source = "assert f(1) == 1\n### BEGIN HIDDEN TESTS\nassert f(_secret_input) == 2, 'f is wrong'\n### END HIDDEN TESTS"
    cell = _cell("test_f", source, grade=True, locked=True)
    cell.outputs = [new_output("error", ename="AssertionError", evalue="f is wrong", traceback=["\x1b[31m----> 3 assert f(_secret_input) == 2, 'f is wrong'\x1b[0m"])]
    visible = _cell("test_g", source.replace("_secret_input", "_other"), grade=True, locked=True)
    visible.outputs = [new_output("error", ename="AssertionError", evalue="", traceback=["----> 1 assert f(1) == 1"])]
    ScrubHiddenTracebacks().preprocess_cell(cell, {}, 0)
    ScrubHiddenTracebacks().preprocess_cell(visible, {}, 0)
    assert cell.outputs[0].traceback == ["AssertionError: f is wrong", "(raised in a hidden test: its code is not shown)"]
    assert visible.outputs[0].traceback == ["----> 1 assert f(1) == 1"], "a visible test's traceback must stay"


# --------------------------------------------------------------------------------------- checks
def test_intact_notices_a_replaced_function(monkeypatch: pytest.MonkeyPatch) -> None:
    checks.intact()
    monkeypatch.setattr(torch, "allclose", lambda *args, **kwargs: True)
    with pytest.raises(checks.IntegrityError, match="torch.allclose"):
        checks.intact()


def test_intact_accepts_torch_changing_its_own_bindings() -> None:
    previous = torch.get_default_dtype()
    torch.set_default_dtype(torch.float64)  # rebinds torch.Storage
    try:
        checks.intact()
    finally:
        torch.set_default_dtype(previous)


def test_assert_close_refuses_lying_tensor_subclasses() -> None:
    class Liar(torch.Tensor):
        @classmethod
        def __torch_function__(cls, func, types, args=(), kwargs=None):
            return True

    liar = torch.zeros(3).as_subclass(Liar)
    with pytest.raises(AssertionError, match="expected a torch.Tensor, got Liar"):
        checks.assert_close(liar, torch.ones(3), rtol=0, atol=0)


def test_assert_close_and_assert_tensor_check_dtype_shape_and_values() -> None:
    checks.assert_close(torch.ones(3, **checks.F64), torch.ones(3, **checks.F64) + 1e-12, rtol=0, atol=1e-9)
    with pytest.raises(AssertionError, match="dtype"):
        checks.assert_close(torch.ones(3, **checks.F32), torch.ones(3, **checks.F64), rtol=0, atol=1)
    with pytest.raises(AssertionError, match="largest difference 0.5"):
        checks.assert_close(torch.ones(3, **checks.F64), torch.full((3,), 1.5, **checks.F64), rtol=0, atol=1e-3)
    checks.assert_tensor(torch.zeros(2, 3, **checks.F32), shape=(2, 3), **checks.F32)
    with pytest.raises(AssertionError, match="shape"):
        checks.assert_tensor(torch.zeros(3, **checks.F32), shape=(2, 3), **checks.F32)


# --------------------------------------------------------------------------------------- collect (issue 18)
def test_several_candidates_are_reported_never_chosen(tmp_path: Path) -> None:
    notebook = nbformat.writes(_release())
    (tmp_path / "alice").mkdir()
    (tmp_path / "alice" / "sampling-basics.ipynb").write_text(notebook)
    (tmp_path / "alice" / "sampling-basics (1).ipynb").write_text(notebook)
    found = collect(tmp_path, ["sampling-basics.ipynb"], ["alice"])
    assert found["alice"].problem.startswith("several candidates: ")
    assert "sampling-basics.ipynb" in found["alice"].problem and "sampling-basics (1).ipynb" in found["alice"].problem


def test_ids_match_after_nfc_and_case_folding_and_keep_the_roster_spelling(tmp_path: Path) -> None:
    import unicodedata

    roster_id = unicodedata.normalize("NFC", "Zoë")
    folder = tmp_path / (unicodedata.normalize("NFD", "zoë") + "_sampling-basics.ipynb")  # as a macOS zip stores it
    folder.write_text(nbformat.writes(_release()))
    found = collect(tmp_path, ["sampling-basics.ipynb"], [roster_id])
    assert list(found) == [roster_id] and found[roster_id].problem is None


# --------------------------------------------------------------------------------------- sandbox (issue 18)
def _sandbox_or_skip() -> None:
    from gradekit.sandbox import sandbox_problem

    problem = sandbox_problem()
    if problem:
        if os.environ.get("LECTUREKIT_REQUIRE_SANDBOX"):
            pytest.fail(f"LECTUREKIT_REQUIRE_SANDBOX is set, but: {problem}")
        pytest.skip(f"no sandbox here: {problem}")


def _kernel_notebook(*sources: str):
    notebook = new_notebook(cells=[new_code_cell(source) for source in sources])
    notebook.metadata.kernelspec = {"name": "python3", "display_name": "Python 3", "language": "python"}
    return notebook


def test_sandbox_sees_only_what_the_notebook_needs(monkeypatch: pytest.MonkeyPatch) -> None:
    from gradekit.sandbox import Limits, run_notebook

    _sandbox_or_skip()
    monkeypatch.setenv("GRADEKIT_TEST_SECRET", "do-not-show")
    here = Path(__file__).resolve().parents[1]
    result = run_notebook(_kernel_notebook(
        "import os, lecturekit; print(sorted(os.environ))",
        f"print(sorted(os.listdir({str(here)!r})))",
        "print(open(os.environ['HOME'] + '/mine.txt', 'w').write('ok'))",
    ), Limits(cell_timeout=60, wall_s=120))
    assert result.error is None and result.sandbox == "bubblewrap"
    texts = [o.get("text", "") for cell in result.notebook["cells"] for o in cell["outputs"]]
    assert "GRADEKIT_TEST_SECRET" not in texts[0] and "MPLBACKEND" in texts[0]
    visible = set(eval(texts[1]))  # the repository as the sandbox shows it: no solutions/, no tests/
    assert "lecturekit" in visible and visible <= {".venv", "lecturekit", "gradekit"}, visible
    assert texts[2].strip() == "2", "the scratch folder is not writable"
    assert result.wall_s > 0 and result.cpu_s > 0


def test_sandbox_wall_time_limit_kills_everything() -> None:
    from gradekit.sandbox import Limits, run_notebook

    _sandbox_or_skip()
    result = run_notebook(_kernel_notebook("import subprocess\nsubprocess.Popen(['sleep', '4321.5'])\nwhile True:\n    pass"),
                          Limits(cell_timeout=600, wall_s=8))
    assert result.error == "hit the wall-time limit (8 s for the whole notebook)"
    alive = [p for p in Path("/proc").iterdir() if p.name.isdigit() and b"4321.5" in _cmdline(p)]
    assert not alive, "a process of the sandbox survived the wall-time limit"


def _cmdline(path: Path) -> bytes:
    try:
        return (path / "cmdline").read_bytes()
    except OSError:
        return b""


def test_summary_warns_about_every_off_roster_row_and_every_student_left_without() -> None:
    from gradekit.grade import Row, summary

    rows = [Row("alice", on_roster=True), Row("bob", status="graded", score=3.0, on_roster=True), Row("1234567", status="graded", score=2.0)]
    text = summary(rows, "01", Path("out"))
    assert "WARNING: 1 submission(s) match no roster id" in text
    assert "off the roster: 1234567" in text and "on the roster, no submission: alice" in text
    assert "WARNING" not in summary(rows[:2], "01", Path("out"))


def test_canvas_and_moodle_export_names_map_to_roster_columns(tmp_path: Path) -> None:
    from gradekit.grade import read_aliases

    roster = tmp_path / "roster.csv"
    roster.write_text("id,first_name,last_name,canvas_id,login\ns01,Jane,Doe,123456,jdoe\ns02,Zoë,Roe,,zroe\n")
    notebook = nbformat.writes(_release())
    canvas, moodle = tmp_path / "canvas", tmp_path / "moodle"
    canvas.mkdir()
    (canvas / "doejane_123456_7890123_sampling-basics.ipynb").write_text(notebook)
    (canvas / "roezoë_late_555_7890124_sampling-basics-1.ipynb").write_text(notebook)
    (moodle / "Jane Doe_991_assignsubmission_file_").mkdir(parents=True)
    (moodle / "Jane Doe_991_assignsubmission_file_" / "sampling-basics.ipynb").write_text(notebook)
    aliases = read_aliases(roster)
    found = collect(canvas, ["sampling-basics.ipynb"], ["s01", "s02"], aliases)
    assert sorted(found) == ["s01", "s02"] and all(record.problem is None for record in found.values()), found
    found = collect(moodle, ["sampling-basics.ipynb"], ["s01", "s02"], aliases)
    assert list(found) == ["s01"] and found["s01"].problem is None
