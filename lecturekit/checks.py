"""Argument checks shared by every module: one home, one convention.

Every public function checks its arguments at the boundary and raises an error whose
message *names the argument* and says what was expected. The convention:

- :class:`TypeError` when the argument has the wrong *kind*: not a tensor, not an
  ``int`` where a count is expected (``2.5``, ``2.0``, ``True`` and ``"2"`` are not
  counts; ``numpy`` integers are), not a real number where a number is expected
  (``True`` is not one), or a tensor of the wrong dtype (an integer tensor where
  floating-point values are expected, or ``float64`` points given to a ``float32``
  module).
- :class:`ValueError` when the kind is right but the value is not: a count below its
  minimum, a number out of range or not finite, a tensor of the wrong shape, with NaN
  or inf entries where they are refused, or on another device than the module or
  tensors it meets (including torch's ``meta`` device, which holds no values).

Functions whose *obvious intent* is a conversion say so in their docstring instead
(e.g. the diagnostics compute in at least ``float32``, so ``float16`` chains are
upcast).

>>> check_positive_int(3, "n_steps")
3
>>> check_positive_int(2.5, "n_steps")
Traceback (most recent call last):
    ...
TypeError: n_steps must be a positive int, got float 2.5
"""

from __future__ import annotations

import itertools
import math
import numbers
from collections.abc import Sequence

import torch
from torch import Tensor

__all__ = [
    "check_dtype",
    "check_finite",
    "check_int",
    "check_limits",
    "check_number",
    "check_points",
    "check_positive_int",
    "check_same_device",
    "check_same_floating_dtype",
    "check_tensor",
    "check_matches_module",
    "check_module_class",
    "check_widths",
    "fill_at_infinity",
]


# --------------------------------------------------------------------------- plain values


def check_int(value: object, name: str, minimum: int | None = None) -> int:
    """Return ``value`` as an ``int`` if it is an integer (not a bool) ``>= minimum``, else raise naming ``name``."""
    expected = "an int" if minimum is None else f"an int >= {minimum}"
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise TypeError(f"{name} must be {expected}, got {type(value).__name__} {value!r}")
    if minimum is not None and value < minimum:
        raise ValueError(f"{name} must be {expected}, got {value!r}")
    return int(value)


def check_positive_int(value: object, name: str) -> int:
    """Return ``value`` if it is a positive integer (not a bool), else raise naming ``name``."""
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise TypeError(f"{name} must be a positive int, got {type(value).__name__} {value!r}")
    if value < 1:
        raise ValueError(f"{name} must be a positive int, got {value!r}")
    return int(value)


def check_number(
    value: object,
    name: str,
    *,
    positive: bool = False,
    non_negative: bool = False,
    finite: bool = True,
) -> float:
    """Return ``value`` as a ``float`` if it is a real number (not a bool) in range, else raise naming ``name``.

    >>> check_number(0.5, "lr", positive=True)
    0.5
    """
    qualifiers = [q for q, on in (("positive", positive), ("non-negative", non_negative), ("finite", finite)) if on]
    expected = f"a {' '.join(qualifiers)} number" if qualifiers else "a number"
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise TypeError(f"{name} must be {expected}, got {type(value).__name__} {value!r}")
    number = float(value)
    if (
        math.isnan(number)
        or (finite and math.isinf(number))
        or (positive and not number > 0)
        or (non_negative and not number >= 0)
    ):
        raise ValueError(f"{name} must be {expected}, got {value!r}")
    return number


def check_fraction(value: object, name: str) -> float:
    """Return ``value`` as a ``float`` if it is a number (not a bool) in ``[0, 1]``, else raise naming ``name``.

    >>> check_fraction(0.5, "resample_threshold")
    0.5
    """
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise TypeError(f"{name} must be a number in [0, 1], got {type(value).__name__} {value!r}")
    if not 0.0 <= value <= 1.0:
        raise ValueError(f"{name} must be in [0, 1], got {value!r}")
    return float(value)


def check_limits(lim: Sequence[float], name: str) -> tuple[float, float]:
    """Return ``lim`` as a pair of floats ``low < high``, or raise naming ``name``."""
    try:
        low, high = (float(v) for v in lim)
    except (TypeError, ValueError) as error:
        raise ValueError(f"{name} must be a pair of numbers (low, high), got {lim!r}") from error
    if not (math.isfinite(low) and math.isfinite(high) and low < high):
        raise ValueError(f"{name} must be finite with low < high, got {lim!r}")
    return low, high


def check_widths(hidden: object, name: str = "hidden") -> tuple[int, ...]:
    """Return ``hidden`` as a tuple of positive ints (the hidden-layer widths of a network)."""
    if isinstance(hidden, (int, str)) or not isinstance(hidden, Sequence):
        raise TypeError(f"{name} must be a sequence of positive ints such as (64, 64), got {hidden!r}")
    return tuple(check_positive_int(width, f"{name} widths") for width in hidden)


def check_module_class(cls: object, name: str = "activation") -> type[torch.nn.Module]:
    """Return ``cls`` if it is an ``nn.Module`` subclass (e.g. ``nn.ReLU``), else raise a ``TypeError`` naming ``name``."""
    if not (isinstance(cls, type) and issubclass(cls, torch.nn.Module)):
        raise TypeError(f"{name} must be an nn.Module class such as nn.ReLU, got {cls!r}")
    return cls


def check_dtype(dtype: object, name: str = "dtype") -> torch.dtype:
    """Return ``dtype`` if it is a floating-point ``torch.dtype``, else raise a ``TypeError`` naming ``name``."""
    if not isinstance(dtype, torch.dtype) or not dtype.is_floating_point:
        raise TypeError(f"{name} must be a floating-point torch.dtype such as torch.float64, got {dtype!r}")
    return dtype


# --------------------------------------------------------------------------- tensors


def check_tensor(x: object, name: str, floating: bool = True) -> Tensor:
    """Return ``x`` if it is a tensor with values (not on the ``meta`` device), floating-point when asked.

    >>> check_tensor(torch.tensor([1, 2]), "chain")
    Traceback (most recent call last):
        ...
    TypeError: chain must have a floating-point dtype, got dtype torch.int64
    """
    if not isinstance(x, Tensor):
        raise TypeError(f"{name} must be a torch.Tensor, got {type(x).__name__}")
    if floating and not x.is_floating_point():
        raise TypeError(f"{name} must have a floating-point dtype, got dtype {x.dtype}")
    if x.device.type == "meta":
        raise ValueError(f"{name} is on the meta device, which holds no values; move it to a real device")
    return x


def check_points(x: Tensor, dim: int, name: str = "x") -> None:
    """Raise a clear error unless ``x`` is a floating tensor of shape ``(..., dim)`` with values."""
    check_tensor(x, name)
    if x.dim() == 0 or x.shape[-1] != dim:
        raise ValueError(f"{name} must have shape (..., {dim}), got {tuple(x.shape)}")


def check_finite(x: Tensor, name: str) -> Tensor:
    """Raise a ``ValueError`` naming ``name`` if ``x`` holds NaN or inf (one device sync)."""
    if not bool(torch.isfinite(x).all()):
        raise ValueError(f"{name} must be finite, but it contains NaN or inf")
    return x


def check_same_device(**tensors: Tensor) -> torch.device:
    """Return the common device of the named tensors, or raise naming the odd one out.

    >>> check_same_device(x=torch.zeros(1), y=torch.ones(1)).type
    'cpu'
    """
    devices = {name: t.device for name, t in tensors.items()}
    first_name, first = next(iter(devices.items()))
    for name, device in devices.items():
        if device != first:
            raise ValueError(f"{name} is on {device} but {first_name} is on {first}; move them to one device")
    return first


def check_same_floating_dtype(**tensors: Tensor) -> torch.dtype | None:
    """Return the common dtype of the named floating-point tensors, or raise a ``TypeError`` naming the odd one out.

    Non-floating tensors (counts, indices, masks) are ignored; ``None`` if there is no
    floating-point tensor.

    >>> check_same_floating_dtype(x=torch.zeros(1), mask=torch.ones(1, dtype=torch.bool))
    torch.float32
    >>> check_same_floating_dtype(x=torch.zeros(1, dtype=torch.float64), mean=torch.zeros(1))
    Traceback (most recent call last):
        ...
    TypeError: x has dtype torch.float64 but mean has dtype torch.float32; convert one of them (e.g. x.to(torch.float32))
    """
    floating = [(name, t.dtype) for name, t in tensors.items() if t.is_floating_point()]
    if not floating:
        return None
    first_name, first = floating[0]
    for name, dtype in floating[1:]:
        if dtype != first:
            raise TypeError(
                f"{first_name} has dtype {first} but {name} has dtype {dtype}; "
                f"convert one of them (e.g. {first_name}.to({dtype}))"
            )
    return first


def check_matches_module(x: Tensor, module: torch.nn.Module, name: str, what: str = "the module") -> None:
    """Raise naming ``name`` if ``x`` is on another device, or has another floating dtype, than ``module``'s parameters.

    A ``float64`` batch is not silently rounded into a ``float32`` network (nor the
    reverse): convert one of them explicitly.
    """
    for reference in itertools.chain(module.parameters(), module.buffers()):
        if not reference.is_floating_point():
            continue
        if x.device != reference.device:
            raise ValueError(f"{name} is on {x.device} but {what} is on {reference.device}; move one of them")
        if x.dtype != reference.dtype:
            raise TypeError(
                f"{name} has dtype {x.dtype} but {what} has dtype {reference.dtype}; "
                f"convert one of them (e.g. {name}.to({reference.dtype}))"
            )
        return


# --------------------------------------------------------------------------- non-finite points


def fill_at_infinity(values: Tensor, x: Tensor, fill: float) -> Tensor:
    """``values`` (shape ``x.shape[:-1]``) with ``fill`` at the points of ``x`` that lie at infinity.

    The policy of the library's densities for non-finite *points* (no device sync, so it
    costs nothing in a sampler's inner loop): a point with an infinite coordinate and no
    NaN is infinitely far out, where a density vanishes (``log_prob = -inf``, energy
    ``+inf``); a point with a NaN coordinate gives NaN, as torch's elementwise functions
    do. Samplers reject both.

    >>> x = torch.tensor([[0.0, 1.0], [float("inf"), 0.0], [float("nan"), 0.0]])
    >>> fill_at_infinity(-x.square().sum(-1), x, -float("inf"))
    tensor([-1., -inf, nan])
    """
    far = torch.isinf(x).any(-1) & ~torch.isnan(x).any(-1)
    return values.masked_fill(far, fill)
