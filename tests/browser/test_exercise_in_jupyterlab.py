"""Every exercise as a student meets it: JupyterLab 4 in headless Chromium with the students'
configuration of ``make lab``, "Run All Cells" from the Run menu, then a look at the outputs
and the formulas.

For each assignment in ``exercises/``:

- the untouched release must stop at its first visible test with the NotImplementedError of
  the unfilled function (the cells before it run cleanly, the cells after it do not run);
- a copy filled in with the instructor's solutions must run to the end with every visible test
  passing and no cell writing to stderr;
- every formula of the markdown must be typeset by JupyterLab's MathJax, without a MathJax
  error and without an undefined macro (MathJax draws ``\\E`` in red when no one defined it).

Screenshots of each step go to _build/screenshots/ (``lab-<assignment>-...png``).

Time: 171 s for this file (measured on two busy cores), about 10 s per release (opening,
typesetting, running up to the first test) and 6-20 s per filled-in copy, which executes the
whole notebook (the solution notebooks take 4-12 s of CPU each). That is the cost of what
the test is for, every exercise run once as released and once filled in, and in `make
browser-test` it runs beside the book's tests on the other worker.
"""

from __future__ import annotations

import json
import re
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from .conftest import ROOT, JupyterLab

RUN_TIMEOUT_MS = 180_000  # the slowest notebook (02) runs in about 15 s on a laptop
PASSED = "visible tests passed"  # what the test cells print at their end
ERROR_OUTPUT = '.jp-OutputArea-output[data-mime-type="application/vnd.jupyter.stderr"]'
MATH = re.compile(r"\$\$(.+?)\$\$|\$(.+?)\$", re.DOTALL)
ASSIGNMENTS = sorted(p.name for p in (ROOT / "exercises").iterdir() if p.is_dir() and list(p.glob("*.ipynb")))

# The page's formulas: MathJax 3 draws each in an mjx-container; an error is an mjx-merror, an
# undefined macro red text (mjx-mtext with color: red, mathcolor="red" in the assistive MathML).
MATH_STATE_JS = r"""
() => {
  const panel = document.querySelector(".jp-NotebookPanel:not(.lm-mod-hidden)");
  const rendered = [...panel.querySelectorAll(".jp-MarkdownCell .jp-RenderedMarkdown")];
  return {
    containers: rendered.reduce((n, e) => n + e.querySelectorAll("mjx-container").length, 0),
    errors: [...panel.querySelectorAll("mjx-merror")].map(e => e.textContent.slice(0, 80)),
    undefined: [...panel.querySelectorAll('mjx-assistive-mml [mathcolor="red"]')].map(e => e.textContent),
  };
}
"""


def _nbgrader(cell: dict) -> dict:
    return cell.get("metadata", {}).get("nbgrader", {})


def _notebook_name(assignment: str) -> str:
    (path,) = (ROOT / "exercises" / assignment).glob("*.ipynb")
    return path.name


def _code_cell_indices(notebook: dict) -> tuple[list[int], list[int]]:
    """Indices (among all cells) of the code cells and of the visible test cells."""
    code = [i for i, c in enumerate(notebook["cells"]) if c["cell_type"] == "code"]
    tests = [i for i in code if _nbgrader(notebook["cells"][i]).get("grade") and not _nbgrader(notebook["cells"][i]).get("solution")]
    return code, tests


def _n_formulas(notebook: dict) -> int:
    """Number of $...$ and $$...$$ formulas in the markdown cells."""
    return sum(len(MATH.findall("".join(c["source"]))) for c in notebook["cells"] if c["cell_type"] == "markdown")


def fill_in_solutions(release: dict, source: dict) -> dict:
    """The release notebook with each solution cell replaced by the instructor's solution
    (the source cell with the same grade_id, its ``### BEGIN/END SOLUTION`` lines removed);
    every other cell, the visible tests included, stays as the student got it."""
    solutions = {_nbgrader(c)["grade_id"]: c for c in source["cells"] if _nbgrader(c).get("solution")}
    filled = json.loads(json.dumps(release))
    for cell in filled["cells"]:
        if _nbgrader(cell).get("solution"):
            lines = "".join(solutions[_nbgrader(cell)["grade_id"]]["source"]).splitlines(keepends=True)
            cell["source"] = [line for line in lines if line.strip() not in ("### BEGIN SOLUTION", "### END SOLUTION")]
    return filled


def _open(page, lab: JupyterLab, relative_path: str, n_cells: int) -> None:
    """Open the notebook and wait until every cell is rendered and its kernel idle."""
    page.goto(lab.lab_url(relative_path), wait_until="domcontentloaded", timeout=90_000)
    page.wait_for_function(
        """(n) => {
            const panel = document.querySelector(".jp-NotebookPanel:not(.lm-mod-hidden)");
            if (!panel || panel.querySelectorAll(".jp-Cell").length !== n) return false;
            const kernel = panel.querySelector(".jp-NotebookPanel-toolbar .jp-KernelName");
            const status = panel.querySelector(".jp-Notebook-ExecutionIndicator");
            return /Python 3/.test(kernel?.textContent || "") && status?.dataset.status === "idle";
        }""",
        arg=n_cells,
        timeout=90_000,
    )


def _check_formulas(page, notebook: dict, name: str) -> None:
    """Every formula typeset, none with a MathJax error or an undefined macro."""
    expected = _n_formulas(notebook)
    try:
        page.wait_for_function(
            """(n) => {
                const panel = document.querySelector(".jp-NotebookPanel:not(.lm-mod-hidden)");
                return panel.querySelectorAll(".jp-MarkdownCell .jp-RenderedMarkdown mjx-container").length >= n;
            }""",
            arg=expected,
            timeout=60_000,
        )
    finally:
        state = page.evaluate(MATH_STATE_JS)
    assert state["containers"] >= expected, f"{name}: {state['containers']} of {expected} formulas typeset"
    assert not state["errors"], f"{name}: MathJax errors {state['errors']}"
    assert not state["undefined"], f"{name}: undefined TeX macros {state['undefined']} (JupyterLab knows no _config.yml macros)"


def _run_all(page) -> object:
    """Run > Run All Cells; returns the cells."""
    page.locator(".lm-MenuBar-itemLabel", has_text=re.compile(r"^Run$")).click()
    page.locator(".lm-Menu-content .lm-Menu-itemLabel", has_text=re.compile(r"^Run All Cells$")).click()
    return page.locator(".jp-NotebookPanel:not(.lm-mod-hidden) .jp-Cell")


def _wait_for_prompt_number(page, cells, index: int) -> None:
    """Wait until cell ``index`` shows an execution count and no cell is queued or running."""
    page.wait_for_function(
        """([cells, index]) => {
            const prompt = cells[index].querySelector(".jp-InputPrompt").textContent;
            const busy = cells.some(c => /\\[\\*\\]/.test(c.querySelector(".jp-InputPrompt")?.textContent || ""));
            return /\\[\\d+\\]/.test(prompt) && !busy;
        }""",
        arg=[cells.element_handles(), index],
        timeout=RUN_TIMEOUT_MS,
    )


def _show(page, element) -> None:
    """Scroll ``element`` into view and let JupyterLab paint it."""
    element.scroll_into_view_if_needed()
    page.wait_for_timeout(500)


def _outputs(cells, index: int) -> tuple[str, str]:
    """(error text, all output text) of cell ``index``."""
    cell = cells.nth(index)
    errors = "\n".join(cell.locator(ERROR_OUTPUT).all_text_contents())
    return errors, "\n".join(cell.locator(".jp-OutputArea").all_text_contents())


@pytest.mark.parametrize("assignment", ASSIGNMENTS)
def test_release_renders_and_stops_at_the_first_test(page, jupyter_lab: JupyterLab, screenshots: Path, assignment: str) -> None:
    """The release as a student opens it: formulas typeset, Run All stops at the first test
    cell with the NotImplementedError of the unfilled function."""
    name = _notebook_name(assignment)
    release = json.loads((jupyter_lab.root / assignment / name).read_text())
    code, tests = _code_cell_indices(release)
    first_test = tests[0]
    _open(page, jupyter_lab, f"{assignment}/{name}", len(release["cells"]))
    _check_formulas(page, release, f"{assignment}/{name}")
    page.screenshot(path=screenshots / f"lab-{assignment}-release-opened.png")

    cells = _run_all(page)
    _wait_for_prompt_number(page, cells, first_test)
    _show(page, cells.nth(first_test).locator(".jp-OutputArea"))
    page.screenshot(path=screenshots / f"lab-{assignment}-release-run-all.png")

    errors, _ = _outputs(cells, first_test)
    assert "NotImplementedError" in errors, f"first visible test cell (cell {first_test}) shows {errors!r}"
    for index in (i for i in code if i < first_test):
        earlier_errors, _ = _outputs(cells, index)
        assert not earlier_errors, f"cell {index}, before the first test, failed: {earlier_errors!r}"
    # Run All stops at the error, like the student's JupyterLab: later cells did not run.
    later = cells.nth(tests[1]).locator(".jp-InputPrompt").text_content()
    assert not re.search(r"\d", later), f"cell {tests[1]} ran after the error (prompt {later!r})"


@pytest.mark.parametrize("assignment", ASSIGNMENTS)
def test_filled_in_copy_passes_every_visible_test(page, jupyter_lab: JupyterLab, screenshots: Path, assignment: str) -> None:
    name = _notebook_name(assignment)
    release = json.loads((jupyter_lab.root / assignment / name).read_text())
    source = json.loads((ROOT / "solutions" / assignment / name).read_text())
    filled = fill_in_solutions(release, source)
    filled_name = name.replace(".ipynb", "-filled-in.ipynb")
    (jupyter_lab.root / assignment / filled_name).write_text(json.dumps(filled, indent=1))
    code, tests = _code_cell_indices(filled)
    assert len(tests) >= 2

    _open(page, jupyter_lab, f"{assignment}/{filled_name}", len(filled["cells"]))
    cells = _run_all(page)
    _wait_for_prompt_number(page, cells, code[-1])
    _show(page, cells.nth(tests[-1]).locator(".jp-OutputArea"))
    page.screenshot(path=screenshots / f"lab-{assignment}-filled-in-run-all.png")

    for index in code:
        prompt = cells.nth(index).locator(".jp-InputPrompt").text_content()
        errors, output = _outputs(cells, index)
        assert re.search(r"\[\d+\]", prompt), f"cell {index} did not run (prompt {prompt!r})"
        assert not errors, f"cell {index} {'(a visible test) ' if index in tests else ''}failed: {errors[-2000:]!r}"
        if index in tests:
            assert PASSED in output, f"test cell {index} ran but did not print {PASSED!r}: {output!r}"
    # the outputs' formulas too (none so far), and those of the markdown after a full run
    _check_formulas(page, filled, f"{assignment}/{filled_name}")


def test_students_lab_shows_no_instructor_tools(page, jupyter_lab: JupyterLab, screenshots: Path) -> None:
    """`make lab`'s configuration (jupyter-student/): no Nbgrader menu, no Create Assignment
    or Formgrader, and the formgrader's server extension is off; the Validate button stays."""
    assignment = ASSIGNMENTS[0]
    name = _notebook_name(assignment)
    release = json.loads((jupyter_lab.root / assignment / name).read_text())
    _open(page, jupyter_lab, f"{assignment}/{name}", len(release["cells"]))
    menus = page.locator(".lm-MenuBar-itemLabel").all_text_contents()
    assert "Run" in menus and "Nbgrader" not in menus, f"menu bar: {menus}"
    tab_titles = page.locator(".lm-TabBar-tabLabel, .lm-TabBar-tab").evaluate_all("tabs => tabs.map(t => t.title || t.textContent)")
    assert not [t for t in tab_titles if re.search(r"create assignment|formgrader|courses|assignments", t, re.I)], tab_titles
    page.locator(".lm-MenuBar-itemLabel", has_text=re.compile(r"^View$")).click()
    view_menu = page.locator(".lm-Menu-content .lm-Menu-itemLabel").all_text_contents()
    page.keyboard.press("Escape")
    assert not [item for item in view_menu if "Create Assignment" in item], view_menu
    page.screenshot(path=screenshots / "lab-students-tools.png")
    assert page.locator(".jp-NotebookPanel-toolbar").get_by_text("Validate").count() == 1, "the Validate button is a student tool"
    try:
        with urllib.request.urlopen(f"{jupyter_lab.url}/formgrader?token={jupyter_lab.token}", timeout=10) as response:
            status = response.status
    except urllib.error.HTTPError as error:
        status = error.code
    assert status == 404, f"/formgrader answers {status}: the instructor's server extension is on"


def test_fill_in_solutions_only_touches_solution_cells() -> None:
    for assignment in ASSIGNMENTS:
        name = _notebook_name(assignment)
        release = json.loads((ROOT / "exercises" / assignment / name).read_text())
        source = json.loads((ROOT / "solutions" / assignment / name).read_text())
        filled = fill_in_solutions(release, source)
        for before, after in zip(release["cells"], filled["cells"], strict=True):
            if _nbgrader(before).get("solution"):
                assert "NotImplementedError" in "".join(before["source"])
                assert "NotImplementedError" not in "".join(after["source"]) and "SOLUTION" not in "".join(after["source"])
            else:
                assert after == before


if __name__ == "__main__":  # pragma: no cover
    pytest.main([__file__, "-v"])
