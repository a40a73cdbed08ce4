"""Feedback that gives nothing hidden away: a preprocessor for ``GenerateFeedback``.

nbgrader's ``ClearHiddenTests`` removes the hidden tests from the cells' source, but a failing
hidden test's traceback still quotes the lines around the failure, and a student's code sees
every test cell's source from inside its kernel (IPython's ``pre_run_cell`` event, ``In``,
``sys._getframe``, the history) and can print it. :class:`ScrubHiddenTests` runs before
``ClearHiddenTests`` (``nbgrader_config.py``) on the copy the feedback is made from:

- in a cell with hidden tests, an error whose traceback or message quotes a line of the hidden
  region keeps only its exception type (and its message, unless that quotes one), and every
  other output (printed text, displays) is removed;
- in any cell, an output that quotes a line of any hidden test is replaced by a note.

Quoting is matched on the hidden tests' distinctive lines (:func:`hidden_lines`): a student who
encodes what they captured (base64, reversed) is not caught here; ``autograded/`` keeps the
outputs as they were, and the grading command flags every output that quotes a hidden test.
"""

from __future__ import annotations

import re
from typing import Any

import nbformat
import nbformat.v4

from nbformat import NotebookNode
from nbgrader.preprocessors import NbGraderPreprocessor

_ANSI = re.compile(r"\x1b\[[0-9;]*[A-Za-z]")
BEGIN, END = "### BEGIN HIDDEN TESTS", "### END HIDDEN TESTS"


def hidden_lines(source: str) -> list[str]:
    """The distinctive lines between the hidden-test markers, stripped."""
    if BEGIN not in source:
        return []
    hidden = source.split(BEGIN, 1)[1].split(END, 1)[0]
    lines = (line.strip() for line in hidden.splitlines())
    return [line for line in lines if len(line) >= 8 and not line.startswith("#")]  # skip ")" and the like


REMOVED = "(output removed from the feedback: it quotes a hidden test)"
HIDDEN_CELL_OUTPUT = "(output of a cell with hidden tests: not shown)"


def _text(output: NotebookNode) -> str:
    parts = [output.get("text", ""), output.get("ename", ""), output.get("evalue", ""), "\n".join(output.get("traceback", []))]
    parts += [str(value) for value in output.get("data", {}).values()]
    return _ANSI.sub("", "\n".join(str(p) for p in parts))


def secret_lines(nb: NotebookNode) -> list[str]:
    """The hidden tests' distinctive lines that appear nowhere else in the notebook's source
    (a hidden test may repeat a line of a visible cell: quoting that one gives nothing away)."""
    public = []
    for cell in nb.cells:
        source = cell.get("source", "")
        while BEGIN in source:
            before, rest = source.split(BEGIN, 1)
            source = before + (rest.split(END, 1)[1] if END in rest else "")
        public.append(source)
    public_text = "\n".join(public)
    hidden = [line for cell in nb.cells if cell.cell_type == "code" for line in hidden_lines(cell.source)]
    return [line for line in dict.fromkeys(hidden) if line not in public_text]


def quotes(output: NotebookNode, secret: list[str]) -> bool:
    """Whether ``output`` shows any of the ``secret`` lines."""
    text = _text(output)
    return any(line in text for line in secret)


def leaking_cells(nb: NotebookNode) -> list[int]:
    """Cells whose outputs quote hidden tests where the tests themselves would not.

    A hidden test's own error (its traceback and message) and a warning it raises (which quotes
    one line of it) are genuine; so in a cell with hidden tests, only a non-error output that
    quotes two or more of its hidden lines is counted, and in any other cell, any quote. The
    feedback loses all of these either way (:class:`ScrubHiddenTests`).
    """
    secret = secret_lines(nb)
    found = []
    for index, cell in enumerate(nb.cells):
        own = [line for line in hidden_lines(cell.get("source", "")) if line in secret] if cell.cell_type == "code" else []
        for output in cell.get("outputs", []):
            if own:
                text = _text(output)
                leaked = output.output_type != "error" and len({line for line in secret if line in text}) >= 2
            else:
                leaked = quotes(output, secret)
            if leaked:
                found.append(index)
                break
    return found


class ScrubHiddenTests(NbGraderPreprocessor):
    """Remove every output that shows a hidden test (see the module's docstring)."""

    def preprocess(self, nb: NotebookNode, resources: Any) -> tuple[NotebookNode, Any]:
        self._secret = secret_lines(nb)
        for index, cell in enumerate(nb.cells):
            self._scrub(cell, hidden_lines(cell.source) if cell.cell_type == "code" else [])
        return nb, resources

    def preprocess_cell(self, cell: NotebookNode, resources: Any, index: int) -> tuple[NotebookNode, Any]:
        own = hidden_lines(cell.get("source", "")) if cell.cell_type == "code" else []
        self._secret = own
        self._scrub(cell, own)
        return cell, resources

    def _scrub(self, cell: NotebookNode, own: list[str]) -> None:
        if cell.cell_type != "code":
            return
        kept = []
        for output in cell.get("outputs", []):
            if output.output_type == "error" and own:
                if quotes(output, self._secret):
                    message = "" if any(line in _ANSI.sub("", output.evalue) for line in self._secret) else output.evalue
                    output.evalue = message
                    output.traceback = [f"{output.ename}: {message}".rstrip(": "), "(raised in a hidden test: its code is not shown)"]
                kept.append(output)
            elif own:
                if not any(o.get("text") == HIDDEN_CELL_OUTPUT for o in kept):
                    kept.append(nbformat.v4.new_output("stream", name="stdout", text=HIDDEN_CELL_OUTPUT))
            elif quotes(output, self._secret):
                kept.append(nbformat.v4.new_output("stream", name="stdout", text=REMOVED))
            else:
                kept.append(output)
        cell.outputs = kept


ScrubHiddenTracebacks = ScrubHiddenTests  # its name before issue 18
