"""The suspicious-submission report: code that may be cheating, for a person to read.

Nothing here changes a grade. :func:`scan` reads every code cell a student could write (all but
the locked cells, which grading restores) and flags:

- assignments, ``del`` and ``setattr`` on attributes of modules (``torch.allclose = ...``,
  ``torch.Tensor.__eq__ = ...``, ``np.isclose = ...``, ``builtins.print = ...``);
- code that reaches into the interpreter or IPython: ``sys.modules``, ``builtins``,
  ``__builtins__``, ``get_ipython``, transformers, ``sys.settrace``, ``gc``, ``ctypes``,
  ``exec``/``eval``/``compile``, ``importlib``, and ``gradekit`` (the tests' own checks);
- ``lecturekit`` in a solution cell (the exercises ask students to write what it implements),
  and, in a solution cell, names that the notebook imported from ``lecturekit``, unless the
  release offers them as tools: the release's version of that cell already uses them (a type
  annotation, a base given by the scaffold) or its instructions (markdown) name them.
"""

from __future__ import annotations

import ast
import re
from dataclasses import dataclass

from nbformat import NotebookNode

_WELL_KNOWN_MODULES = {"torch", "np", "numpy", "math", "builtins", "sys", "nn", "F", "IPython", "lecturekit"}
_REACHING_NAMES = {
    "__builtins__": "touches __builtins__",
    "builtins": "touches builtins",
    "get_ipython": "uses get_ipython (IPython internals)",
    "ast_transformers": "touches IPython's AST transformers",
    "input_transformers_post": "touches IPython's input transformers",
    "input_transformers_cleanup": "touches IPython's input transformers",
    "input_transformer_manager": "touches IPython's input transformers",
    "settrace": "sets a trace function",
    "setprofile": "sets a profile function",
    "ctypes": "uses ctypes",
    "gc": "uses the garbage collector",
    "importlib": "uses importlib",
    "gradekit": "touches gradekit (the tests' checks)",
    "exec": "runs code from a string (exec)",
    "eval": "runs code from a string (eval)",
    "compile": "compiles code from a string",
    "__import__": "imports through __import__",
    "_ALLCLOSE": "touches gradekit's saved functions",
}

# flagged as bare names only: torch.compile and model.eval() are fine
_BARE_ONLY = {"exec", "eval", "compile", "__import__"}


@dataclass(frozen=True)
class Flag:
    cell: str  # grade_id, or "cell <index>"
    line: int
    reason: str
    code: str

    def __str__(self) -> str:
        return f"{self.cell}, line {self.line}: {self.reason}: `{self.code}`"


def scan(notebook: NotebookNode, release: NotebookNode | None = None) -> list[Flag]:
    """Flags for every student-writable code cell of ``notebook`` (locked cells are skipped).

    ``release``, the student version the submission came from, exempts the ``lecturekit`` names
    that a solution cell's scaffold already uses there, and those its instructions name.
    """
    lecturekit_names = _lecturekit_imports(notebook)
    scaffold_names = _names_by_cell(release) if release is not None else {}
    instructions = " ".join(c.source for c in release.cells if c.cell_type == "markdown") if release else ""
    offered = {name for name in lecturekit_names if re.search(rf"\b{re.escape(name)}\b", instructions)}
    flags: list[Flag] = []
    for index, cell in enumerate(notebook.cells):
        meta = cell.get("metadata", {}).get("nbgrader", {})
        if cell.cell_type != "code" or (meta.get("locked") and not meta.get("solution")):
            continue
        label = meta.get("grade_id") or f"cell {index}"
        try:
            tree = ast.parse(_without_magics(cell.source))
        except SyntaxError:
            continue  # it fails to run, which grading shows
        lines = cell.source.splitlines()
        modules = _WELL_KNOWN_MODULES | _module_aliases(tree)

        def flag(node: ast.AST, reason: str) -> None:
            line = getattr(node, "lineno", 1)
            code = lines[line - 1].strip() if 0 < line <= len(lines) else ""
            flags.append(Flag(label, line, reason, code[:100]))

        for node in ast.walk(tree):
            if isinstance(node, (ast.Assign, ast.AugAssign, ast.AnnAssign, ast.Delete)):
                targets = node.targets if isinstance(node, (ast.Assign, ast.Delete)) else [node.target]
                for target in targets:
                    root = _root_name(target)
                    if isinstance(target, ast.Attribute) and root in modules:
                        flag(node, f"replaces {ast.unparse(target)}")
            elif isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id in {"setattr", "delattr"}:
                if node.args and _root_name(node.args[0]) in modules:
                    flag(node, f"{node.func.id} on {ast.unparse(node.args[0])}")
            elif isinstance(node, (ast.Import, ast.ImportFrom)):
                names = [node.module or ""] if isinstance(node, ast.ImportFrom) else [a.name for a in node.names]
                if meta.get("solution") and any(n.split(".")[0] == "lecturekit" for n in names):
                    flag(node, "imports lecturekit in a solution cell")
                for n in names:
                    if n.split(".")[0] in _REACHING_NAMES:
                        flag(node, _REACHING_NAMES[n.split(".")[0]])
            elif isinstance(node, ast.Name) and node.id in _REACHING_NAMES:
                flag(node, _REACHING_NAMES[node.id])
            elif isinstance(node, ast.Attribute) and node.attr in _REACHING_NAMES and node.attr not in _BARE_ONLY:
                flag(node, _REACHING_NAMES[node.attr])
            elif isinstance(node, ast.Attribute) and node.attr == "modules" and _root_name(node) == "sys":
                flag(node, "touches sys.modules")
            if (
                meta.get("solution")
                and isinstance(node, ast.Name)
                and node.id in lecturekit_names
                and node.id not in scaffold_names.get(label, set()) | offered
            ):
                flag(node, f"uses {node.id} from lecturekit in a solution cell")
    return sorted(set(flags), key=lambda f: (f.cell, f.line, f.reason))


def _without_magics(source: str) -> str:
    return "\n".join("pass" if line.lstrip().startswith(("%", "!")) else line for line in source.splitlines())


def _root_name(node: ast.AST) -> str | None:
    while isinstance(node, (ast.Attribute, ast.Subscript)):
        node = node.value
    return node.id if isinstance(node, ast.Name) else None


def _module_aliases(tree: ast.AST) -> set[str]:
    aliases = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            aliases |= {a.asname or a.name.split(".")[0] for a in node.names}
    return aliases


def _names_by_cell(notebook: NotebookNode) -> dict[str, set[str]]:
    """The names each graded cell of ``notebook`` uses, by ``grade_id``."""
    names: dict[str, set[str]] = {}
    for cell in notebook.cells:
        grade_id = cell.get("metadata", {}).get("nbgrader", {}).get("grade_id")
        if cell.cell_type != "code" or not grade_id:
            continue
        try:
            tree = ast.parse(_without_magics(cell.source))
        except SyntaxError:
            continue
        names[grade_id] = {node.id for node in ast.walk(tree) if isinstance(node, ast.Name)}
    return names


def _lecturekit_imports(notebook: NotebookNode) -> set[str]:
    """Names that the notebook's locked cells import from lecturekit (``MALA``, ``run_chains``, ...)."""
    names: set[str] = set()
    for cell in notebook.cells:
        meta = cell.get("metadata", {}).get("nbgrader", {})
        if cell.cell_type != "code" or not meta.get("locked"):
            continue
        try:
            tree = ast.parse(_without_magics(cell.source))
        except SyntaxError:
            continue
        for node in ast.walk(tree):
            if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("lecturekit"):
                names |= {a.asname or a.name for a in node.names}
    return names
