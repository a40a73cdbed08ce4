"""nbgrader preprocessors for grading that never loses a notebook to one bad cell.

:class:`ResilientExecute` replaces nbgrader's ``Execute`` in ``Autograde.autograde_preprocessors``
(``nbgrader_config.py``). It runs ``gradekit.checks`` in the kernel before the first cell, so
the tests' snapshot of torch and IPython predates the student's code. A cell that runs past the
timeout is interrupted, as in nbgrader; if it ignores the interrupt (a loop that swallows
``KeyboardInterrupt``), or if a cell kills the kernel (``exit()``, ``os._exit``, a crash), that
cell is *disabled* (its source replaced by a ``raise``) and the notebook runs again from the top
in a fresh kernel. The student loses only the tests that need that cell; the disabled cells
are listed in the notebook's metadata (``gradekit.disabled_cells``), which the grading command
reports. After ``max_disabled_cells`` such cells nbgrader marks the submission as failed and the
grading command reports it for manual review.

:class:`LimitOutputBytes` caps each cell's outputs in bytes (nbgrader's ``LimitOutput`` counts
lines only, so one 50 MB line passes it whole). It never removes an output, so an error or a
stderr stream, which costs a test cell its points, stays visible to ``SaveAutoGrades``.
"""

from __future__ import annotations

import copy
import json
from queue import Empty
from time import monotonic
from typing import Any

from jupyter_core.utils import ensure_async
from nbclient import NotebookClient
from nbclient.exceptions import DeadKernelError
from nbformat import NotebookNode
from nbgrader.preprocessors import NbGraderPreprocessor
from nbgrader.preprocessors.execute import Execute, UnresponsiveKernelError
from traitlets import Float, Integer, Unicode

DISABLED_MARK = "# gradekit: this cell was disabled for grading"


class CellHung(Exception):
    """A cell ran past the timeout and did not stop when interrupted."""


class CellExited(Exception):
    """A cell asked the kernel to exit (``exit()``, ``quit()``): the kernel shuts down after it."""


class ResilientExecute(Execute):
    """nbgrader's ``Execute``, plus a preloaded ``gradekit.checks`` and disabling of cells that hang or kill the kernel."""

    preload = Unicode("import gradekit.checks", help="Code run silently in each kernel before the first cell.").tag(config=True)
    interrupt_grace = Float(10.0, help="Seconds a timed-out cell gets to stop after the interrupt.").tag(config=True)
    max_disabled_cells = Integer(3, help="Cells disabled in one notebook before it is reported as failed.").tag(config=True)

    def preprocess(self, nb: NotebookNode, resources: Any = None, km: Any = None) -> tuple[NotebookNode, Any]:
        disabled: dict[int, str] = {}
        while True:
            attempt = copy.deepcopy(nb)
            for index, reason in disabled.items():
                disable_cell(attempt.cells[index], reason)
            self._cell_index: int | None = None
            try:
                executed, resources = self._execute(attempt, resources, km)
            except (CellHung, CellExited, DeadKernelError) as error:
                index = self._cell_index
                reason = str(error) if not isinstance(error, DeadKernelError) else "it stopped the kernel (a crash, os._exit, or out of memory)"
                if index is None or index in disabled or len(disabled) >= self.max_disabled_cells:
                    raise UnresponsiveKernelError(f"cell {index}: {reason}") from error
                disabled[index] = reason
                self.log.warning("Cell %s %s: disabling it and running the notebook again", index, reason)
                continue
            if disabled:
                executed.metadata.setdefault("gradekit", {})["disabled_cells"] = [
                    {"index": index, "grade_id": _grade_id(executed.cells[index]), "reason": reason}
                    for index, reason in sorted(disabled.items())
                ]
            return executed, resources

    def _execute(self, nb: NotebookNode, resources: Any, km: Any) -> tuple[NotebookNode, Any]:
        """nbconvert's ``ExecutePreprocessor.preprocess``, with the preload after the kernel starts."""
        NotebookClient.__init__(self, nb, km)
        self.shutdown_kernel = "graceful"
        self.reset_execution_trackers()
        self._check_assign_resources(resources)
        with self.setup_kernel():
            assert self.kc
            info_msg = self.wait_for_reply(self.kc.kernel_info())
            self.nb.metadata["language_info"] = info_msg["content"]["language_info"]
            if self.preload:
                reply = self.wait_for_reply(self.kc.execute(self.preload, silent=True, store_history=False))
                if reply is None or reply["content"]["status"] != "ok":
                    raise RuntimeError(f"the grading kernel could not run {self.preload!r}: is gradekit installed?")
            for index, cell in enumerate(self.nb.cells):
                self._cell_index = index
                self.preprocess_cell(cell, resources, index)
        self.set_widgets_metadata()
        return self.nb, self.resources

    def on_cell_executed(self, **kwargs: Any) -> None:
        super().on_cell_executed(**kwargs)
        payloads = kwargs["execute_reply"]["content"].get("payload", [])
        if any(p.get("source") == "ask_exit" and not p.get("keepkernel") for p in payloads):
            # the kernel shuts down shortly after: stop here, before a later cell gets the blame
            raise CellExited("it called exit(), which shuts the kernel down")

    async def _async_poll_for_reply(self, msg_id: str, *args: Any, **kwargs: Any) -> dict[str, Any]:
        self._pending_msg_id = msg_id
        return await super()._async_poll_for_reply(msg_id, *args, **kwargs)

    async def _async_handle_timeout(self, timeout: int, cell: NotebookNode | None = None) -> None | dict[str, Any]:
        fallback = await super()._async_handle_timeout(timeout, cell)  # interrupts the kernel
        deadline = monotonic() + self.interrupt_grace
        while (left := deadline - monotonic()) > 0:
            try:
                msg = await ensure_async(self.kc.shell_channel.get_msg(timeout=left))
            except Empty:
                break
            if msg["parent_header"].get("msg_id") == self._pending_msg_id:
                return msg if fallback is not None else None  # it stopped: the cell's own error reply
        self.shutdown_kernel = "immediate"  # a graceful shutdown would wait for the hung cell
        raise CellHung(f"ran past the {timeout} s limit and ignored the interrupt")


def disable_cell(cell: NotebookNode, reason: str) -> None:
    """Replace a code cell's source by a ``raise`` that says why (the cell's outputs show it)."""
    cell.source = f"{DISABLED_MARK}: {reason}.\nraise RuntimeError({('disabled for grading: ' + reason)!r})\n"
    cell.outputs = []


def _grade_id(cell: NotebookNode) -> str | None:
    return cell.get("metadata", {}).get("nbgrader", {}).get("grade_id")


class LimitOutputBytes(NbGraderPreprocessor):
    """Cap the outputs of each code cell at ``max_bytes`` bytes (UTF-8), keeping every output's type."""

    max_bytes = Integer(100_000, help="Most bytes of output kept per cell (-1: no limit).").tag(config=True)
    notice = "\n... output truncated by the grading command (more than {limit} bytes) ...\n"

    def preprocess_cell(self, cell: NotebookNode, resources: Any, index: int) -> tuple[NotebookNode, Any]:
        if self.max_bytes < 0 or cell.cell_type != "code":
            return cell, resources
        budget = self.max_bytes
        for output in cell.get("outputs", []):
            budget = self._limit(output, budget)
        return cell, resources

    def _cut(self, text: str, budget: int) -> tuple[str, int]:
        data = text.encode("utf-8")
        if len(data) <= budget:
            return text, budget - len(data)
        kept = data[: max(budget, 0)].decode("utf-8", errors="ignore")
        return kept + self.notice.format(limit=self.max_bytes), 0

    def _limit(self, output: NotebookNode, budget: int) -> int:
        if output.output_type == "stream":
            output.text, budget = self._cut(output.text, budget)
        elif output.output_type == "error":
            output.evalue, budget = self._cut(output.evalue, budget)
            lines = []
            for line in output.traceback:
                line, budget = self._cut(line, budget)
                lines.append(line)
                if budget == 0:
                    break
            output.traceback = lines
        elif output.output_type in ("display_data", "execute_result"):
            size = len(json.dumps(output.get("data", {})).encode("utf-8"))
            if size > budget:
                output.data = {"text/plain": self.notice.format(limit=self.max_bytes).strip()}
                output.metadata = {}
                budget = 0
            else:
                budget -= size
        return budget
