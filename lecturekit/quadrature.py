r"""Exact reference answers for 2D targets by quadrature on a grid.

In two dimensions the partition function and any expectation can be computed to high
accuracy by the trapezoid rule on a regular grid of nodes :math:`x_j` that includes the
edges of the box, with cell area :math:`\Delta` and weights :math:`c_j = 1` inside,
:math:`1/2` on an edge and :math:`1/4` at a corner:

.. math::

    Z \approx \Delta \sum_j c_j\, e^{\log\rho(x_j)}, \qquad
    \mathbb{E}_{\rho}[f] \approx \sum_j p_j f(x_j), \quad
    p_j = \operatorname{softmax}_j \big(\log\rho(x_j) + \log c_j\big).

The rule is second order: its error falls as :math:`\Delta` (the square of the grid
spacing) for a smooth density, also when the box cuts off mass; where the box holds
essentially all of the mass it is even more accurate (for a smooth density that decays
fast, faster than any power of the spacing). These numbers serve as the "exact" answers that
samplers are compared with; in high dimension no such check exists, which is why samplers
are needed at all.

References:
    | The Exponentially Convergent Trapezoidal Rule (Trefethen & Weideman, 2014)
    | https://doi.org/10.1137/130932132
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
from torch import Tensor

from lecturekit.checks import check_dtype, check_int, check_limits
from lecturekit.targets.base import Target

__all__ = ["GridQuadrature"]


class GridQuadrature:
    r"""A 2D target tabulated on an ``n_x`` by ``n_y`` grid of nodes over ``xlim`` x ``ylim``, edges included.

    Attributes: ``points`` ``(n_x * n_y, 2)``, ``log_prob`` ``(n_x * n_y,)`` (the
    target's, possibly unnormalised), ``log_weights`` ``(n_x * n_y,)`` (the trapezoid
    weights :math:`\log c_j`), ``cell_widths`` ``(2,)`` and ``cell_area``.
    The grid is built in ``dtype`` (float64 by default) on the CPU unless ``device``
    says otherwise (some GPUs lack float64). ``n_points`` is one int or a pair
    ``(n_x, n_y)``, each at least 2. Raises ``ValueError`` when the target's
    ``log_prob`` is NaN or ``+inf`` on the grid, or ``-inf`` everywhere (the box holds no mass).

    >>> from lecturekit.targets.toy import GaussianMixture
    >>> quad = GridQuadrature(GaussianMixture(torch.zeros(1, 2)), (-8, 8), (-8, 8), 400)
    >>> abs(quad.log_partition()) < 1e-6  # the mixture is normalised: log Z = 0
    True
    """

    def __init__(
        self,
        target: Target,
        xlim: Sequence[float],
        ylim: Sequence[float],
        n_points: int | tuple[int, int] = 1000,
        dtype: torch.dtype = torch.float64,
        device: torch.device | str | None = None,
    ) -> None:
        if not isinstance(target, Target):
            raise TypeError(f"target must be a 2D lecturekit Target, got {type(target).__name__}")
        if target.dim != 2:
            raise ValueError(f"target must be a 2D lecturekit Target, got dim={target.dim}")
        if isinstance(n_points, (tuple, list)):
            if len(n_points) != 2:
                raise ValueError(f"n_points must be an int or a pair (n_x, n_y), got {n_points!r}")
            n_x, n_y = n_points
        else:
            n_x = n_y = n_points
        n_x, n_y = check_int(n_x, "n_points (x)", minimum=2), check_int(n_y, "n_points (y)", minimum=2)
        check_dtype(dtype)
        (x_low, x_high), (y_low, y_high) = check_limits(xlim, "xlim"), check_limits(ylim, "ylim")
        xs = torch.linspace(x_low, x_high, n_x, dtype=dtype, device=device)
        ys = torch.linspace(y_low, y_high, n_y, dtype=dtype, device=device)
        self.points = torch.stack(torch.meshgrid(xs, ys, indexing="xy"), dim=-1).reshape(-1, 2)
        self.cell_widths = torch.stack([xs[1] - xs[0], ys[1] - ys[0]])
        self.cell_area = float(self.cell_widths.prod())
        self.log_weights = torch.log(_trapezoid_weights(n_x, xs) * _trapezoid_weights(n_y, ys).unsqueeze(-1)).reshape(-1)
        self.log_prob = target.log_prob(self.points)
        if bool(torch.isnan(self.log_prob).any() | torch.isposinf(self.log_prob).any()):
            raise ValueError("the target's log_prob is NaN or +inf on the grid: no quadrature is possible")
        if bool(torch.isneginf(self.log_prob).all()):
            raise ValueError(f"the box xlim={tuple(xlim)}, ylim={tuple(ylim)} holds no mass: log_prob is -inf everywhere on it")

    def log_partition(self) -> float:
        r""":math:`\log Z \approx \log\sum_j c_j e^{\log\rho(x_j)} + \log\Delta` (trapezoid rule)."""
        return float(torch.logsumexp(self.log_prob + self.log_weights, 0)) + math.log(self.cell_area)

    def probabilities(self) -> Tensor:
        """Quadrature probability of each node, ``softmax(log_prob + log_weights)``, shape ``(n_x * n_y,)``."""
        return torch.softmax(self.log_prob + self.log_weights, 0)

    def expectation(self, f_values: Tensor) -> Tensor:
        r""":math:`\sum_j p_j f(x_j)` for ``f_values`` of shape ``(n_x * n_y, ...)``."""
        if not isinstance(f_values, Tensor):
            raise TypeError(f"f_values must be a torch.Tensor, got {type(f_values).__name__}")
        if f_values.dim() == 0 or f_values.shape[:1] != self.log_prob.shape:
            raise ValueError(f"f_values must have shape ({self.log_prob.shape[0]}, ...), got {tuple(f_values.shape)}")
        if f_values.device != self.log_prob.device:
            raise ValueError(f"f_values is on {f_values.device} but the grid is on {self.log_prob.device}")
        if not f_values.is_floating_point():
            f_values = f_values.to(self.log_prob.dtype)
        return torch.tensordot(self.probabilities().to(f_values.dtype), f_values, dims=1)


def _trapezoid_weights(n: int, like: Tensor) -> Tensor:
    """``(1/2, 1, ..., 1, 1/2)``, the trapezoid weights of ``n`` equally spaced nodes."""
    weights = torch.ones(n, dtype=like.dtype, device=like.device)
    weights[0] = weights[-1] = 0.5
    return weights
