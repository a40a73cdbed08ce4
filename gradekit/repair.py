"""Put a submission's nbgrader cells back in the release's order before nbgrader sees it.

nbgrader's ``OverwriteCells`` restores the *source* of locked and test cells from the gradebook,
but a deleted cell comes back only through ``add_missing_cells``, which crashes when the cell
before it in the source is a locked, ungraded one (``KeyError: 'train_run'``) or was deleted too,
and it cannot move a cell back to its place. :func:`repair` does both from the release: every cell
of the release that carries nbgrader metadata (solution, test and locked cells) appears exactly
once, in the release's order; a missing one is copied from the release; the student's own cells
follow the nbgrader cell they followed in the submission. What changed is returned as notes for
the instructor's report.
"""

from __future__ import annotations

import copy

from nbformat import NotebookNode


def grade_id(cell: NotebookNode) -> str | None:
    return cell.get("metadata", {}).get("nbgrader", {}).get("grade_id")


def repair(submission: NotebookNode, release: NotebookNode) -> tuple[NotebookNode, list[str]]:
    """The submission with the release's nbgrader cells present, once each, in the release's order.

    Returns the repaired notebook (a copy) and notes such as ``"restored test cell test_x"``.
    """
    order = [grade_id(cell) for cell in release.cells if grade_id(cell)]
    release_cells = {grade_id(cell): cell for cell in release.cells if grade_id(cell)}
    theirs: dict[str, NotebookNode] = {}
    followers: dict[str | None, list[NotebookNode]] = {None: []}
    seen_order: list[str] = []
    notes: list[str] = []
    anchor: str | None = None
    for cell in copy.deepcopy(submission.cells):
        cell_id = grade_id(cell)
        if cell_id in release_cells and cell_id not in theirs:
            theirs[cell_id] = cell
            seen_order.append(cell_id)
            anchor = cell_id
            followers[anchor] = []
            continue
        if cell_id is not None:  # a copy of an nbgrader cell, or an id the release does not know
            notes.append(f"cell {cell_id!r} {'duplicated' if cell_id in theirs else 'unknown'}: kept as an ordinary cell")
            cell.metadata.pop("nbgrader", None)
        followers[anchor].append(cell)

    cells = list(followers[None])
    for cell_id in order:
        if cell_id in theirs:
            cells.append(theirs[cell_id])
        else:
            cells.append(copy.deepcopy(release_cells[cell_id]))
            notes.append(f"restored {_kind(release_cells[cell_id])} {cell_id} from the release")
        cells.extend(followers.get(cell_id, []))
    present = [cell_id for cell_id in order if cell_id in theirs]
    if seen_order != present:
        notes.append("nbgrader cells put back in the release's order")

    repaired = copy.deepcopy(submission)
    repaired.cells = cells
    repaired.metadata["kernelspec"] = copy.deepcopy(release.metadata.get("kernelspec", repaired.metadata.get("kernelspec")))
    return repaired, notes


def _kind(cell: NotebookNode) -> str:
    meta = cell.metadata.nbgrader
    if meta.get("solution"):
        return "solution cell"
    return "test cell" if meta.get("grade") else "locked cell"
