"""An exercise as a student meets it: JupyterLab 4 in headless Chromium, "Run All Cells" from
the Run menu, then a look at the outputs. The untouched release must stop at its first visible
test with the NotImplementedError of the unfilled function; a copy filled in with the
instructor's solutions must run to the end with every visible test passing.
Screenshots of each step go to _build/screenshots/.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from .conftest import ROOT, JupyterLab

ASSIGNMENT = "01-sampling-basics"
NOTEBOOK = "sampling-basics.ipynb"
FILLED_IN = "sampling-basics-filled-in.ipynb"
RUN_TIMEOUT_MS = 180_000  # the whole notebook runs in well under a minute on a laptop
PASSED = "visible tests passed"  # what this exercise's test cells print at their end
ERROR_OUTPUT = '.jp-OutputArea-output[data-mime-type="application/vnd.jupyter.stderr"]'


def _nbgrader(cell: dict) -> dict:
    return cell.get("metadata", {}).get("nbgrader", {})


def _code_cell_indices(notebook: dict) -> tuple[list[int], list[int]]:
    """Indices (among all cells) of the code cells and of the visible test cells."""
    code = [i for i, c in enumerate(notebook["cells"]) if c["cell_type"] == "code"]
    tests = [i for i in code if _nbgrader(notebook["cells"][i]).get("grade") and not _nbgrader(notebook["cells"][i]).get("solution")]
    return code, tests


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


def _open_and_run_all(page, lab: JupyterLab, relative_path: str, n_cells: int, screenshot: Path) -> object:
    """Open the notebook, wait for its kernel, then Run > Run All Cells; returns the cells."""
    page.goto(lab.lab_url(relative_path), wait_until="domcontentloaded", timeout=90_000)
    # Ready: every cell rendered, and the toolbar names the kernel and shows it idle.
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
    page.screenshot(path=screenshot.with_name(screenshot.stem.replace("-run-all", "") + "-opened.png"))
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
    """Scroll ``element`` into view and let JupyterLab paint it (off-screen cells are skipped)."""
    element.scroll_into_view_if_needed()
    page.wait_for_timeout(1_000)


def _outputs(cells, index: int) -> tuple[str, str]:
    """(error text, all output text) of cell ``index``."""
    cell = cells.nth(index)
    errors = "\n".join(cell.locator(ERROR_OUTPUT).all_text_contents())
    return errors, "\n".join(cell.locator(".jp-OutputArea").all_text_contents())


def test_release_run_all_stops_at_the_first_test_with_not_implemented_error(page, jupyter_lab: JupyterLab, screenshots: Path) -> None:
    release = json.loads((jupyter_lab.root / ASSIGNMENT / NOTEBOOK).read_text())
    code, tests = _code_cell_indices(release)
    first_test = tests[0]
    shot = screenshots / f"lab-{ASSIGNMENT}-release-run-all.png"
    cells = _open_and_run_all(page, jupyter_lab, f"{ASSIGNMENT}/{NOTEBOOK}", len(release["cells"]), shot)
    _wait_for_prompt_number(page, cells, first_test)
    _show(page, cells.nth(first_test).locator(".jp-OutputArea"))
    page.screenshot(path=shot)

    errors, _ = _outputs(cells, first_test)
    assert "NotImplementedError" in errors, f"first visible test cell (cell {first_test}) shows {errors!r}"
    for index in (i for i in code if i < first_test):
        earlier_errors, _ = _outputs(cells, index)
        assert not earlier_errors, f"cell {index}, before the first test, failed: {earlier_errors!r}"
    # Run All stops at the error, like the student's JupyterLab: later cells did not run.
    later = cells.nth(tests[1]).locator(".jp-InputPrompt").text_content()
    assert not re.search(r"\d", later), f"cell {tests[1]} ran after the error (prompt {later!r})"


def test_filled_in_copy_passes_every_visible_test(page, jupyter_lab: JupyterLab, screenshots: Path) -> None:
    release = json.loads((jupyter_lab.root / ASSIGNMENT / NOTEBOOK).read_text())
    source = json.loads((ROOT / "solutions" / ASSIGNMENT / NOTEBOOK).read_text())
    filled = fill_in_solutions(release, source)
    (jupyter_lab.root / ASSIGNMENT / FILLED_IN).write_text(json.dumps(filled, indent=1))
    code, tests = _code_cell_indices(filled)
    assert len(tests) >= 2

    shot = screenshots / f"lab-{ASSIGNMENT}-filled-in-run-all.png"
    cells = _open_and_run_all(page, jupyter_lab, f"{ASSIGNMENT}/{FILLED_IN}", len(filled["cells"]), shot)
    _wait_for_prompt_number(page, cells, code[-1])
    _show(page, cells.nth(tests[-1]).locator(".jp-OutputArea"))
    page.screenshot(path=shot)

    for index in code:
        prompt = cells.nth(index).locator(".jp-InputPrompt").text_content()
        errors, output = _outputs(cells, index)
        assert re.search(r"\[\d+\]", prompt), f"cell {index} did not run (prompt {prompt!r})"
        assert not errors, f"cell {index} {'(a visible test) ' if index in tests else ''}failed: {errors[-2000:]!r}"
        if index in tests and PASSED in "".join(filled["cells"][index]["source"]):
            assert PASSED in output, f"test cell {index} ran but did not print {PASSED!r}: {output!r}"


def test_fill_in_solutions_only_touches_solution_cells() -> None:
    release = json.loads((ROOT / "exercises" / ASSIGNMENT / NOTEBOOK).read_text())
    source = json.loads((ROOT / "solutions" / ASSIGNMENT / NOTEBOOK).read_text())
    filled = fill_in_solutions(release, source)
    for before, after in zip(release["cells"], filled["cells"], strict=True):
        if _nbgrader(before).get("solution"):
            assert "NotImplementedError" in "".join(before["source"])
            assert "NotImplementedError" not in "".join(after["source"]) and "SOLUTION" not in "".join(after["source"])
        else:
            assert after == before


if __name__ == "__main__":  # pragma: no cover
    pytest.main([__file__, "-v"])
