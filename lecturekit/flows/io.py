"""Store a flow (builder settings plus state dict) and rebuild it: :func:`save_flow`, :func:`load_flow`.

Flows made by :func:`lecturekit.flows.core.real_nvp` and :func:`lecturekit.flows.lattice.lattice_flow`
are stored the same way; this module sits above both, so neither imports the other late.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from pathlib import Path
from typing import Any

import torch
from torch import nn

from lecturekit import distributions
from lecturekit.flows.core import _FORMAT, _FORMAT_VERSION, Flow, real_nvp
from lecturekit.flows.lattice import lattice_flow

__all__ = ["load_flow", "save_flow"]


def _base_spec(base: nn.Module) -> dict[str, Any]:
    name = type(base).__name__
    if getattr(distributions, name, None) is not type(base) or not hasattr(base, "config"):
        raise TypeError(f"save_flow can only store bases from lecturekit.distributions, got {name}")
    return {"class": name, "config": base.config()}


def _flow_dtype(flow: Flow) -> torch.dtype:
    for tensor in flow.parameters():
        return tensor.dtype
    return torch.get_default_dtype()


def save_flow(flow: Flow, path: str | os.PathLike[str]) -> None:
    """Write a flow made by :func:`real_nvp` to ``path``: builder settings plus state dict.

    Flows made by :func:`~lecturekit.flows.lattice.lattice_flow` are stored the same way.

    The file is written to a temporary file in the same folder, flushed to disk and
    then renamed over ``path`` (``os.replace`` is atomic), so ``path`` never holds a
    half-written flow. Tensors are stored on the CPU; :func:`load_flow` rebuilds the flow.
    """
    if not isinstance(flow, Flow):
        raise TypeError(f"flow must be a lecturekit Flow, got {type(flow).__name__}")
    if flow.settings is None:
        raise ValueError("save_flow needs a flow built by real_nvp (it stores the builder settings)")
    activation = flow.settings["activation"]
    if getattr(nn, activation, None) is None:
        raise TypeError(f"save_flow can only store activations from torch.nn, got {activation}")
    payload = {
        "format": _FORMAT,
        "version": _FORMAT_VERSION,
        "settings": dict(flow.settings),
        "base": _base_spec(flow.base),
        "dtype": str(_flow_dtype(flow)).removeprefix("torch."),
        "state_dict": {k: v.detach().cpu() for k, v in flow.state_dict().items()},
    }
    path = Path(path)
    fd, tmp_name = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as file:
            torch.save(payload, file)
            file.flush()
            os.fsync(file.fileno())
        os.replace(tmp_name, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp_name)
        raise


def load_flow(path: str | os.PathLike[str], map_location: torch.device | str | None = None) -> Flow:
    """Rebuild a flow written by :func:`save_flow`, on ``map_location`` (default: the CPU).

    The file is read with ``torch.load(..., weights_only=True)``: it may hold only tensors
    and plain values, so loading an untrusted file cannot run code. A file that is empty,
    truncated, not a torch file, or whose contents were edited into something
    :func:`real_nvp` cannot rebuild raises ``ValueError`` naming the file (a missing file,
    ``FileNotFoundError``).
    """
    if not isinstance(path, (str, os.PathLike)):
        raise TypeError(f"path must be a str or os.PathLike, got {type(path).__name__}")
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"path {str(path)!r} is not a file")
    try:
        payload = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as error:  # EOFError, UnpicklingError, zip reader errors, ...
        # `from None`: torch's own text suggests weights_only=False, unsafe for an untrusted file
        raise _not_a_flow_file(path, f"torch.load(weights_only=True) cannot read it ({type(error).__name__})") from None
    if not isinstance(payload, dict) or payload.get("format") != _FORMAT:
        raise _not_a_flow_file(path, "it has no lecturekit flow format marker")
    if payload.get("version") != _FORMAT_VERSION:
        raise _not_a_flow_file(path, f"it has format version {payload.get('version')!r}, expected {_FORMAT_VERSION}")
    try:
        settings = dict(payload["settings"])
        base_name, base_config = payload["base"]["class"], dict(payload["base"]["config"])
        base_cls = getattr(distributions, base_name, None) if base_name in distributions.__all__ else None
        if not (isinstance(base_cls, type) and issubclass(base_cls, nn.Module)):
            raise ValueError(f"unknown base distribution {base_name!r}")
        settings["base"] = base_cls.from_config(**base_config)
        activation = getattr(nn, str(settings["activation"]), None)
        if not (isinstance(activation, type) and issubclass(activation, nn.Module)):
            raise ValueError(f"unknown activation {settings['activation']!r}")
        settings["activation"] = activation
        dtype = getattr(torch, str(payload["dtype"]), None)
        if not (isinstance(dtype, torch.dtype) and dtype.is_floating_point):
            raise ValueError(f"unknown dtype {payload['dtype']!r}")
        builder = settings.pop("builder", "real_nvp")
        if builder == "lattice_flow":
            build = lattice_flow
        elif builder == "real_nvp":
            build = real_nvp
        else:
            raise ValueError(f"unknown flow builder {builder!r}")
        flow = build(**settings).to(dtype)
        flow.load_state_dict(payload["state_dict"])
        _check_loaded_state(flow)
    except Exception as error:  # KeyError, TypeError, ValueError, RuntimeError from edited contents
        raise _not_a_flow_file(path, f"its contents do not rebuild a flow ({type(error).__name__}: {error})") from error
    if map_location is not None:
        flow = flow.to(map_location)
    return flow


def _check_loaded_state(flow: Flow) -> None:
    """Refuse weights that would give NaN densities: non-finite entries, a non-positive Cholesky diagonal."""
    for name, tensor in flow.state_dict().items():
        if tensor.is_floating_point() and not bool(torch.isfinite(tensor).all()):
            raise ValueError(f"{name} holds NaN or inf")
        if name.endswith("cholesky_diagonal") and not bool((tensor > 0).all()):
            raise ValueError(f"{name} must be positive (a Cholesky factor's diagonal)")


def _not_a_flow_file(path: Path, reason: str) -> ValueError:
    return ValueError(f"{str(path)!r} is not a valid lecturekit flow file (loaded with weights_only=True): {reason}")
