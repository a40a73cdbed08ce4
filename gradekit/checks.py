"""Checks for the test cells of the graded exercises: they cannot be switched off from a notebook.

A test cell starts with ``intact()`` and compares the student's tensors with ``assert_close``
or ``assert_equal``; every tensor a test builds names its dtype and device (``**F64``,
``**F32``). See ``solutions/README.md`` for the style, with an example.

What ``intact()`` guards. On import, this module saves the public functions of ``torch``,
``torch.Tensor``, ``torch.nn.functional``, ``math``, ``numpy`` and ``builtins``, and the
IPython input and AST transformers of the running shell. ``intact()`` raises
:class:`IntegrityError` when any of them has been replaced since (a notebook that redefines
``torch.allclose`` or strips ``assert`` statements with an AST transformer fails every test cell
that follows). The grading command imports this module in each kernel before the notebook's
first cell, so the snapshot predates the student's code; in JupyterLab the first test cell
takes it.

No check that runs inside the student's kernel can be airtight (nbgrader says so too): a
notebook can still patch this module, the import system or the interpreter. The grading
command's suspicious-submission report (``gradekit.scan``) flags such code for a person to read.
"""

from __future__ import annotations

import builtins
import math
import os
import sys
import types
from typing import Any

import torch

__all__ = ["F32", "F64", "IntegrityError", "assert_close", "assert_equal", "assert_tensor", "intact"]

#: Keyword arguments for a test input in double or single precision on the CPU: ``torch.randn(5, **F64)``.
#: Tests name both, so that ``torch.set_default_dtype`` or ``torch.set_default_device`` in a
#: student's notebook changes nothing. Modules too: ``layer.to(**F64)``.
F64: dict[str, Any] = {"dtype": torch.float64, "device": torch.device("cpu")}
F32: dict[str, Any] = {"dtype": torch.float32, "device": torch.device("cpu")}

# ipykernel swaps these per cell to forward stdin: not a sign of tampering.
_CHANGED_BY_THE_KERNEL = {"input", "raw_input", "getpass"}


class IntegrityError(AssertionError):
    """The notebook changed a function or an IPython transformer that the tests rely on."""


def _watched_namespaces() -> dict[str, Any]:
    namespaces: dict[str, Any] = {
        "torch": torch,
        "torch.Tensor": torch.Tensor,
        "torch.nn.functional": torch.nn.functional,
        "torch.linalg": torch.linalg,
        "math": math,
        "builtins": builtins,
        "gradekit.checks": sys.modules[__name__],
    }
    if "numpy" in sys.modules:
        namespaces["numpy"] = sys.modules["numpy"]
    return namespaces


def _public_callables(namespace: Any) -> dict[str, Any]:
    try:
        items = vars(namespace).items()
    except TypeError:
        return {}
    return {
        name: value
        for name, value in list(items)
        if not name.startswith("_") or name in _DUNDERS
        if callable(value) and name not in _CHANGED_BY_THE_KERNEL
    }


# Comparison and conversion dunders of Tensor, which asserts use implicitly.
_DUNDERS = {
    "__eq__", "__ne__", "__lt__", "__le__", "__gt__", "__ge__", "__bool__", "__float__", "__int__",
    "__abs__", "__sub__", "__add__", "__mul__", "__truediv__", "__neg__", "__len__", "__getitem__",
    "__import__", "__build_class__", "__torch_function__",
}


def _ipython_transformers() -> dict[str, list[int]]:
    """Identities of the running IPython shell's input and AST transformers (empty outside IPython)."""
    get_ipython = getattr(builtins, "get_ipython", None)
    shell = get_ipython() if get_ipython is not None else None
    if shell is None:
        return {}
    manager = getattr(shell, "input_transformer_manager", None)
    lists = {
        "ast_transformers": getattr(shell, "ast_transformers", []),
        "input_transformers_post": getattr(shell, "input_transformers_post", []),
        "input_transformers_cleanup": getattr(manager, "cleanup_transforms", []),
        "line_transforms": getattr(manager, "line_transforms", []),
        "token_transformers": getattr(manager, "token_transformers", []),
    }
    return {name: [id(item) for item in items] for name, items in lists.items()}


def _snapshot() -> tuple[dict[str, dict[str, Any]], dict[str, list[int]]]:
    return {name: _public_callables(ns) for name, ns in _watched_namespaces().items()}, _ipython_transformers()


def _same(original: Any, now: Any) -> bool:
    """``now`` is ``original``, or torch's own wrapper of it (torch wraps ``torch.manual_seed``
    lazily, when ``torch._dynamo`` is first imported). A wrapper defined anywhere else is a change."""
    for _ in range(5):
        if now is original:
            return True
        code = getattr(now, "__code__", None)
        if code is None or not code.co_filename.startswith(_TORCH_DIR):
            return False
        now = getattr(now, "__wrapped__", None)
    return False


def _changes() -> list[str]:
    functions_now, transformers_now = _snapshot()
    changed = [
        f"{namespace}.{name}"
        for namespace, saved in _FUNCTIONS.items()
        for name, original in saved.items()
        if not _same(original, functions_now.get(namespace, {}).get(name))
    ]
    changed += [f"IPython {name}" for name, ids in _TRANSFORMERS.items() if transformers_now.get(name) != ids]
    return changed


def intact() -> None:
    """Raise :class:`IntegrityError` if the notebook replaced a watched function or IPython transformer.

    The first call of a kernel that imported this module outside IPython (pytest) takes the
    IPython snapshot then.
    """
    global _TRANSFORMERS
    if not _TRANSFORMERS:
        _TRANSFORMERS = _ipython_transformers()
    changed = _changes()
    if changed:
        raise IntegrityError(
            "the notebook changed what the tests rely on, so this cell cannot be graded: "
            + ", ".join(changed[:8])
            + (" ..." if len(changed) > 8 else "")
        )


def _as_plain_tensor(value: Any, what: str) -> torch.Tensor:
    # a Tensor subclass can override every comparison through __torch_function__: refuse it
    if type(value) is not torch.Tensor:
        raise AssertionError(f"{what}: expected a torch.Tensor, got {type(value).__name__}")
    return value


def assert_tensor(actual: Any, *, shape: tuple[int, ...], dtype: torch.dtype, device: Any, what: str = "result") -> None:
    """Raise ``AssertionError`` unless ``actual`` is a plain tensor of this shape, dtype and device.

    With the keyword dicts: ``assert_tensor(w, shape=(300,), **F32, what="weights")``.
    """
    actual = _as_plain_tensor(actual, what)
    if tuple(_SHAPE(actual)) != tuple(shape) or _DTYPE(actual) != dtype or _DEVICE(actual) != torch.device(device):
        raise AssertionError(
            f"{what}: expected a {dtype} tensor of shape {tuple(shape)} on {torch.device(device)}, "
            f"got {_DTYPE(actual)} of shape {tuple(_SHAPE(actual))} on {_DEVICE(actual)}"
        )


def assert_close(
    actual: Any,
    expected: Any,
    *,
    rtol: float,
    atol: float,
    what: str = "result",
    equal_nan: bool = False,
    check_dtype: bool = True,
) -> None:
    """Raise ``AssertionError`` unless ``actual`` is a plain tensor of ``expected``'s shape, device
    and (with ``check_dtype``) dtype, with ``|actual - expected| <= atol + rtol |expected|`` elementwise.

    The comparison runs with the functions saved at import, not the ones a notebook sees now.
    """
    actual = _as_plain_tensor(actual, what)
    expected = _as_plain_tensor(expected, f"{what} (expected value)")
    if _SHAPE(actual) != _SHAPE(expected):
        raise AssertionError(f"{what}: expected shape {tuple(_SHAPE(expected))}, got {tuple(_SHAPE(actual))}")
    if _DEVICE(actual) != _DEVICE(expected):
        raise AssertionError(f"{what}: expected device {_DEVICE(expected)}, got {_DEVICE(actual)}")
    if check_dtype and _DTYPE(actual) != _DTYPE(expected):
        raise AssertionError(f"{what}: expected dtype {_DTYPE(expected)}, got {_DTYPE(actual)}")
    a = _DETACH(actual).to(torch.float64)
    e = _DETACH(expected).to(torch.float64)
    if not _ALLCLOSE(a, e, rtol=rtol, atol=atol, equal_nan=equal_nan):
        worst = float(_MAX(_ABS(_SUB(a, e)).nan_to_num(nan=math.inf)))
        raise AssertionError(f"{what}: not within rtol={rtol}, atol={atol} of the expected value (largest difference {worst:.3g})")


def assert_equal(actual: Any, expected: Any, *, what: str = "result") -> None:
    """Raise ``AssertionError`` unless ``actual`` is a plain tensor equal to ``expected``: shape, dtype, device, values."""
    actual = _as_plain_tensor(actual, what)
    expected = _as_plain_tensor(expected, f"{what} (expected value)")
    same_kind = _SHAPE(actual) == _SHAPE(expected) and _DTYPE(actual) == _DTYPE(expected)
    if not (same_kind and _DEVICE(actual) == _DEVICE(expected) and _EQUAL(_DETACH(actual), _DETACH(expected))):
        raise AssertionError(
            f"{what}: expected {_DTYPE(expected)} tensor of shape {tuple(_SHAPE(expected))} on {_DEVICE(expected)} "
            f"equal to the reference, got {_DTYPE(actual)} of shape {tuple(_SHAPE(actual))} on {_DEVICE(actual)}"
        )


# The originals, bound once: the checks above call these, never the names a notebook can rebind.
_ALLCLOSE, _EQUAL, _MAX, _ABS, _SUB = torch.allclose, torch.equal, torch.max, torch.abs, torch.sub
_DETACH = torch.Tensor.detach
_SHAPE = torch.Tensor.size
_DTYPE = torch.Tensor.dtype.__get__  # type: ignore[attr-defined]
_DEVICE = torch.Tensor.device.__get__  # type: ignore[attr-defined]
_TORCH_DIR = os.path.dirname(torch.__file__) + os.sep
_FUNCTIONS, _TRANSFORMERS = _snapshot()
