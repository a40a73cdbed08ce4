"""Devices, seeding and timing.

Everything in :mod:`lecturekit` either takes a ``device`` argument or follows the
device of its input tensors; this module only decides the *default* one.

The default is CUDA if available, then Apple's MPS, then the CPU. The environment
variable ``LECTUREKIT_DEVICE`` (e.g. ``cpu``, ``cuda``, ``cuda:1``, ``mps``)
overrides the choice, which is how a notebook written for a laptop runs on a GPU
unchanged.
"""

from __future__ import annotations

import os
import random
import time
from dataclasses import dataclass, field

import numpy as np
import torch

from lecturekit.checks import check_int

ENV_VARIABLE = "LECTUREKIT_DEVICE"
SEED_OFFSET_VARIABLE = "LECTUREKIT_SEED_OFFSET"

__all__ = [
    "ENV_VARIABLE",
    "SEED_OFFSET_VARIABLE",
    "Timer",
    "default_device",
    "seed_everything",
    "synchronize",
]


def default_device() -> torch.device:
    """Return the device new tensors should live on.

    ``$LECTUREKIT_DEVICE`` wins when set; otherwise CUDA, then MPS, then CPU.

    >>> default_device().type in {"cpu", "cuda", "mps"}
    True
    """
    requested = os.environ.get(ENV_VARIABLE, "").strip()
    if requested:
        try:
            device = torch.device(requested)
        except RuntimeError as error:
            raise ValueError(
                f"{ENV_VARIABLE}={requested!r} is not a torch device; expected e.g. 'cpu', 'cuda', 'cuda:0' or 'mps'"
            ) from error
        if device.type == "cuda" and not torch.cuda.is_available():
            raise ValueError(f"{ENV_VARIABLE}={requested!r} but CUDA is not available on this machine")
        if device.type == "mps" and not torch.backends.mps.is_available():
            raise ValueError(f"{ENV_VARIABLE}={requested!r} but MPS is not available on this machine")
        return device
    if torch.cuda.is_available():
        return torch.device("cuda")
    if torch.backends.mps.is_available():
        return torch.device("mps")
    return torch.device("cpu")


def seed_offset() -> int:
    """The offset added to every seed, from ``$LECTUREKIT_SEED_OFFSET`` (0 when unset).

    ``make claims`` re-executes the book with other offsets: a chapter whose claims hold
    only for the seeds it was written with fails there.
    """
    text = os.environ.get(SEED_OFFSET_VARIABLE, "").strip()
    if not text:
        return 0
    try:
        offset = int(text)
    except ValueError:
        raise ValueError(f"{SEED_OFFSET_VARIABLE}={text!r} is not an integer") from None
    if offset < 0:
        raise ValueError(f"{SEED_OFFSET_VARIABLE}={text!r} must be >= 0")
    return offset


def seed_everything(seed: int) -> None:
    """Seed Python's, NumPy's and torch's (CPU and all CUDA devices) generators.

    The generators get ``seed + seed_offset()``, so the same call draws other numbers
    when ``$LECTUREKIT_SEED_OFFSET`` is set (distinct seeds stay distinct).

    >>> seed_everything(0); a = torch.rand(2)
    >>> seed_everything(0); bool(torch.equal(a, torch.rand(2)))
    True
    """
    seed = check_int(seed, "seed", minimum=0) + 1_000_003 * seed_offset()
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)  # also seeds every CUDA device


def synchronize(device: torch.device | str | None = None) -> None:
    """Wait for queued GPU work on ``device`` (a no-op on the CPU)."""
    device = torch.device(device) if device is not None else default_device()
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    elif device.type == "mps":
        torch.mps.synchronize()


@dataclass
class Timer:
    """Wall-clock timer that synchronises the device before reading the clock.

    GPU kernels run asynchronously, so timing without a synchronisation measures
    only the launch. Use as a context manager::

        with Timer(device) as t:
            step()
        print(t.elapsed)
    """

    device: torch.device | str | None = None
    elapsed: float = field(default=0.0, init=False)
    _start: float = field(default=0.0, init=False, repr=False)

    def __enter__(self) -> "Timer":
        synchronize(self.device)
        self._start = time.perf_counter()
        return self

    def __exit__(self, *exc_info: object) -> None:
        synchronize(self.device)
        self.elapsed = time.perf_counter() - self._start
