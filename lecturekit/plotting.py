r"""Figures for two-dimensional targets: energy contours, samples, traces, densities.

Every function draws on a matplotlib ``Axes`` (a new one when ``ax`` is ``None``) and
returns it, so panels compose::

    ax = plot_energy_contours(MullerBrown())
    plot_samples(samples, ax=ax)

Tensors may live on any device and need not be detached: they are copied to the CPU
as NumPy arrays before plotting. Grids are evaluated without gradients on the device
(and in the floating dtype) of the target's own tensors, or on the CPU when it has none.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import Any

import matplotlib.pyplot as plt
import numpy as np
import torch
from matplotlib.axes import Axes
from matplotlib.colors import to_rgb
from torch import Tensor

from lecturekit.checks import check_int, check_limits, check_number
from lecturekit.targets.base import Target

__all__ = [
    "MULLER_BROWN_XLIM",
    "MULLER_BROWN_YLIM",
    "plot_density",
    "plot_energy_contours",
    "plot_samples",
    "plot_traces",
    "plot_trajectory",
]

MULLER_BROWN_XLIM: tuple[float, float] = (-1.8, 1.2)
MULLER_BROWN_YLIM: tuple[float, float] = (-0.4, 2.1)


def _to_numpy(x: Tensor, name: str) -> np.ndarray:
    if not isinstance(x, Tensor):
        raise TypeError(f"{name} must be a torch.Tensor, got {type(x).__name__}")
    return x.detach().cpu().to(torch.float64).numpy()  # MPS has no float64: move first


def _check_grid_size(grid_size: int) -> None:
    check_int(grid_size, "grid_size", minimum=2)


def _infer_placement(obj: object) -> tuple[torch.device, torch.dtype]:
    """Device and floating dtype of the first floating tensor ``obj`` holds; CPU otherwise.

    Looks at a module's parameters and buffers (e.g. a flow and its base distribution),
    then at tensor and module attributes (e.g. a :class:`~lecturekit.targets.toy.GaussianMixture`).
    """
    modules = [obj] if isinstance(obj, torch.nn.Module) else []
    candidates: list[Tensor] = []
    for value in getattr(obj, "__dict__", {}).values():
        if isinstance(value, Tensor):
            candidates.append(value)
        elif isinstance(value, torch.nn.Module):
            modules.append(value)
    for module in modules:
        candidates += [*module.parameters(), *module.buffers()]
    for tensor in candidates:
        if tensor.is_floating_point():
            return tensor.device, tensor.dtype
    return torch.device("cpu"), torch.get_default_dtype()


def _grid(
    xlim: tuple[float, float], ylim: tuple[float, float], grid_size: int, device: torch.device, dtype: torch.dtype
) -> tuple[Tensor, Tensor, Tensor]:
    """Return ``X, Y`` of shape ``(grid_size, grid_size)`` and the points ``(grid_size, grid_size, 2)``."""
    xs = torch.linspace(*xlim, grid_size, device=device, dtype=dtype)
    ys = torch.linspace(*ylim, grid_size, device=device, dtype=dtype)
    X, Y = torch.meshgrid(xs, ys, indexing="xy")
    return X, Y, torch.stack([X, Y], dim=-1)


def plot_energy_contours(
    target: Target,
    xlim: Sequence[float] = MULLER_BROWN_XLIM,
    ylim: Sequence[float] = MULLER_BROWN_YLIM,
    ax: Axes | None = None,
    levels: int | Sequence[float] = 30,
    grid_size: int = 200,
    cmap: str = "viridis",
    max_energy: float | None = None,
    filled: bool = True,
) -> Axes:
    r"""Contours of the energy :math:`U(x)` of a two-dimensional target.

    ``target`` is a :class:`~lecturekit.targets.base.Target` with ``dim == 2``; its energy is
    evaluated on a ``grid_size`` by ``grid_size`` grid over the box ``xlim`` x ``ylim``, each
    a pair ``(low, high)``. Energies are clipped at ``max_energy`` so the basins, not the
    steep walls, get the contour levels; by default the clip is the 75th percentile of
    :math:`U` on the grid. Energies of ``+inf`` (outside a support) are left blank.
    ``levels`` is the number of contour levels, evenly spaced from the minimum energy on the
    grid to the clip, or their explicit increasing values; ``filled`` draws filled contours
    (``contourf``) when true and line contours otherwise, in the colour map ``cmap``. The
    default box frames the Müller-Brown potential (Müller & Brown, 1979).
    """
    if not isinstance(target, Target):
        raise TypeError(f"target must be a lecturekit Target, got {type(target).__name__}")
    if target.dim != 2:
        raise ValueError(f"target must be two-dimensional to plot contours, got dim={target.dim}")
    xlim, ylim = check_limits(xlim, "xlim"), check_limits(ylim, "ylim")
    _check_grid_size(grid_size)
    if isinstance(levels, int) and not isinstance(levels, bool):
        check_int(levels, "levels", minimum=2)
    elif not isinstance(levels, Sequence) or isinstance(levels, str):
        raise TypeError(f"levels must be an int >= 2 or a sequence of at least two values, got {levels!r}")
    elif len(levels) < 2:
        raise ValueError(f"levels must be an int >= 2 or a sequence of at least two values, got {levels!r}")
    if max_energy is not None:
        check_number(max_energy, "max_energy")

    device, dtype = _infer_placement(target)
    X, Y, points = _grid(xlim, ylim, grid_size, device, dtype)
    with torch.no_grad():
        energy = _to_numpy(target.energy(points), "energy")
    finite = np.isfinite(energy)
    if not finite.any():
        raise ValueError("the target's energy is not finite anywhere in the plotting box")
    if max_energy is None:
        max_energy = float(np.quantile(energy[finite], 0.75))
    elif not math.isfinite(max_energy) or max_energy <= energy[finite].min():
        raise ValueError(f"max_energy must be finite and above the minimum energy on the grid, got {max_energy!r}")
    energy = np.where(finite, np.minimum(energy, max_energy), np.nan)
    if isinstance(levels, int):
        levels = np.linspace(np.nanmin(energy), max_energy, levels)

    if ax is None:
        _, ax = plt.subplots()
    contour = ax.contourf if filled else ax.contour
    contour(_to_numpy(X, "X"), _to_numpy(Y, "Y"), energy, levels=levels, cmap=cmap)
    ax.set_xlim(xlim)
    ax.set_ylim(ylim)
    ax.set_xlabel("$x$")
    ax.set_ylabel("$y$")
    return ax


def plot_samples(samples: Tensor, ax: Axes | None = None, weights: Tensor | None = None, **scatter_kw: Any) -> Axes:
    """Scatter two-dimensional samples of shape ``(..., 2)``.

    With ``weights`` (non-negative, one per sample, e.g. normalised importance weights),
    each marker's area and opacity grow with ``weights / weights.max()``: samples that
    carry no weight fade out, which shows at a glance how few samples an importance
    sampling estimate rests on.
    ``color`` sets the marker colour (default white, to stand out on
    :func:`plot_energy_contours`); other keyword arguments go to
    :meth:`~matplotlib.axes.Axes.scatter` and override the defaults.
    """
    points = _to_numpy(samples, "samples")
    if points.ndim < 2 or points.shape[-1] != 2:
        raise ValueError(f"samples must have shape (..., 2), got {tuple(points.shape)}")
    points = points.reshape(-1, 2)
    colour = scatter_kw.pop("color", "white")
    style: dict[str, Any] = {"s": 6, "color": colour, "edgecolors": "none", "alpha": 0.7}
    if weights is not None:
        w = _to_numpy(weights, "weights").reshape(-1)
        if w.shape[0] != points.shape[0]:
            raise ValueError(f"weights must hold one value per sample ({points.shape[0]}), got {w.shape[0]}")
        if not np.all(np.isfinite(w)) or np.any(w < 0) or not w.max() > 0:
            raise ValueError("weights must be finite, non-negative and not all zero")
        relative = w / w.max()
        order = np.argsort(relative)  # heaviest drawn last, on top
        points, relative = points[order], relative[order]
        rgb = np.tile(to_rgb(colour), (len(relative), 1))
        style.update({"s": 4 + 80 * relative, "color": np.column_stack([rgb, 0.15 + 0.85 * relative])})
        style.pop("alpha")
    style.update(scatter_kw)
    if ax is None:
        _, ax = plt.subplots()
    ax.scatter(points[:, 0], points[:, 1], **style)
    return ax


def _as_chains(samples: Tensor, name: str = "samples") -> np.ndarray:
    """Return a ``(n_steps, n_chains, dim)`` array from ``(n_steps, dim)`` or ``(n_steps, n_chains, dim)``."""
    array = _to_numpy(samples, name)
    if array.ndim == 2:
        array = array[:, None, :]
    if array.ndim != 3 or array.shape[0] == 0 or array.shape[1] == 0 or array.shape[2] == 0:
        raise ValueError(f"{name} must have shape (n_steps, dim) or (n_steps, n_chains, dim), got {tuple(samples.shape)}")
    return array


def _check_max_chains(max_chains: int) -> None:
    check_int(max_chains, "max_chains", minimum=1)


def plot_traces(
    samples: Tensor,
    ax: Axes | None = None,
    labels: Sequence[str] | None = None,
    max_chains: int = 4,
) -> Axes:
    """Trace plot: each coordinate against the step, for the first ``max_chains`` chains.

    ``samples`` has shape ``(n_steps, n_chains, dim)`` (as in
    :class:`~lecturekit.samplers.mcmc.ChainResult`) or ``(n_steps, dim)``. Each coordinate gets
    one colour, labelled by ``labels`` (default ``x_0, x_1, ...``); the chains of a
    coordinate share it. Draws ``min(max_chains, n_chains) * dim`` lines.
    """
    chains = _as_chains(samples)
    _check_max_chains(max_chains)
    n_steps, n_chains, dim = chains.shape
    if labels is None:
        labels = [f"$x_{i}$" for i in range(dim)]
    elif isinstance(labels, str) or len(labels) != dim:
        raise ValueError(f"labels must be a sequence of {dim} strings (one per coordinate), got {labels!r}")
    if ax is None:
        _, ax = plt.subplots()
    steps = np.arange(n_steps)
    shown = min(max_chains, n_chains)
    for i in range(dim):
        colour = f"C{i}"
        for c in range(shown):
            ax.plot(steps, chains[:, c, i], color=colour, lw=0.8, alpha=0.8, label=labels[i] if c == 0 else None)
    ax.set_xlabel("step")
    ax.legend(loc="upper right", fontsize="small")
    return ax


def plot_trajectory(samples: Tensor, ax: Axes | None = None, max_chains: int = 4, **plot_kw: Any) -> Axes:
    """Draw the path of two-dimensional chains, e.g. over :func:`plot_energy_contours`.

    ``samples`` has shape ``(n_steps, n_chains, 2)`` or ``(n_steps, 2)``; the first
    ``max_chains`` chains are drawn as lines with markers, starting points as black stars.
    Keyword arguments go to :meth:`~matplotlib.axes.Axes.plot`.
    """
    chains = _as_chains(samples)
    _check_max_chains(max_chains)
    if chains.shape[2] != 2:
        raise ValueError(f"samples must be two-dimensional (last axis 2), got {tuple(samples.shape)}")
    style: dict[str, Any] = {"lw": 0.8, "marker": ".", "ms": 3, "alpha": 0.8}
    style.update(plot_kw)
    if ax is None:
        _, ax = plt.subplots()
    shown = min(max_chains, chains.shape[1])
    for c in range(shown):
        ax.plot(chains[:, c, 0], chains[:, c, 1], **({"color": f"C{c + 1}"} | style))
    ax.plot(chains[0, :shown, 0], chains[0, :shown, 1], "k*", ms=10, label="start")
    return ax


def plot_density(
    log_prob_fn: Callable[[Tensor], Tensor],
    xlim: Sequence[float],
    ylim: Sequence[float],
    ax: Axes | None = None,
    grid_size: int = 200,
    device: torch.device | str | None = None,
    cmap: str = "magma",
) -> Axes:
    r"""Heatmap of a two-dimensional density given its log-density.

    Shows :math:`\exp(\log\rho(x) - \max_{\text{grid}}\log\rho)`, i.e. the density relative
    to its maximum in the box, so unnormalised targets and normalised models (flows)
    are drawn alike. ``log_prob_fn`` maps points ``(n, 2)`` to ``(n,)``; it is evaluated
    without gradients on ``device`` (default: the device of the parameters or tensors
    of the object a bound method belongs to, e.g. a flow or a target; else the CPU).
    """
    if not callable(log_prob_fn):
        raise TypeError(f"log_prob_fn must be callable, got {type(log_prob_fn).__name__}")
    xlim, ylim = check_limits(xlim, "xlim"), check_limits(ylim, "ylim")
    _check_grid_size(grid_size)
    owner_device, dtype = _infer_placement(getattr(log_prob_fn, "__self__", None))
    device = torch.device(device) if device is not None else owner_device
    X, Y, points = _grid(xlim, ylim, grid_size, device, dtype)
    with torch.no_grad():
        log_prob = log_prob_fn(points.reshape(-1, 2))
    if not isinstance(log_prob, Tensor) or log_prob.shape != (grid_size * grid_size,):
        shape = tuple(log_prob.shape) if isinstance(log_prob, Tensor) else type(log_prob).__name__
        raise ValueError(f"log_prob_fn must map points of shape (n, 2) to shape (n,), got {shape}")
    values = _to_numpy(log_prob, "log_prob").reshape(grid_size, grid_size)
    if np.any(np.isnan(values)) or np.any(values == np.inf) or not np.any(np.isfinite(values)):
        raise ValueError("log_prob_fn returned NaN or +inf, or no finite value, on the grid")
    density = np.exp(values - values[np.isfinite(values)].max())
    if ax is None:
        _, ax = plt.subplots()
    ax.imshow(density, origin="lower", extent=(*xlim, *ylim), cmap=cmap, aspect="auto", interpolation="nearest")
    ax.set_xlabel("$x$")
    ax.set_ylabel("$y$")
    return ax
