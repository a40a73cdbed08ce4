"""Feedback that gives nothing hidden away: a preprocessor for ``GenerateFeedback``.

nbgrader's ``ClearHiddenTests`` removes the hidden tests from the cells' source, but a failing
hidden test's traceback still quotes the lines around the failure. :class:`ScrubHiddenTracebacks`
runs before it (``nbgrader_config.py``): in a test cell, an error whose traceback quotes a line
of the hidden region keeps only its exception type and message.
"""

from __future__ import annotations

import re
from typing import Any

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


class ScrubHiddenTracebacks(NbGraderPreprocessor):
    """Shorten tracebacks that quote hidden tests to ``ExceptionType: message``."""

    def preprocess_cell(self, cell: NotebookNode, resources: Any, index: int) -> tuple[NotebookNode, Any]:
        secret = hidden_lines(cell.get("source", "")) if cell.cell_type == "code" else []
        if not secret:
            return cell, resources
        for output in cell.get("outputs", []):
            if output.output_type != "error":
                continue
            text = _ANSI.sub("", "\n".join(output.traceback))
            if any(line in text for line in secret):
                output.traceback = [
                    f"{output.ename}: {output.evalue}".rstrip(": "),
                    "(raised in a hidden test: its code is not shown)",
                ]
        return cell, resources
