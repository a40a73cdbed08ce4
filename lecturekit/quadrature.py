r"""Exact reference answers for 2D targets by quadrature on a grid.

In two dimensions the partition function and any expectation can be computed to high
accuracy by a Riemann sum over a fine grid of cell centres :math:`x_j` with cell area
:math:`\Delta`,

.. math::

    Z \approx \Delta \sum_j e^{\log\rho(x_j)}, \qquad
    \mathbb{E}_{\rho}[f] \approx \sum_j p_j f(x_j), \quad
    p_j = \operatorname{softmax}_j \log\rho(x_j),

provided the box holds essentially all of the mass. The book uses these numbers as the
"exact" answers that samplers are compared with; in high dimension no such check exists,
which is the whole point of the course.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
from torch import Tensor

from .targets import Target

__all__ = ["GridQuadrature", "check_limits"]


def check_limits(lim: Sequence[float], name: str) -> tuple[float, float]:
    """Return ``lim`` as a pair of floats ``low < high``, or raise naming ``name``."""
    try:
        low, high = (float(v) for v in lim)
    except (TypeError, ValueError) as error:
        raise ValueError(f"{name} must be a pair of numbers (low, high), got {lim!r}") from error
    if not (math.isfinite(low) and math.isfinite(high) and low < high):
        raise ValueError(f"{name} must be finite with low < high, got {lim!r}")
    return low, high


class GridQuadrature:
    r"""A 2D target tabulated on an ``n_x`` by ``n_y`` grid over ``xlim`` x ``ylim``.

    Attributes: ``points`` ``(n_x * n_y, 2)``, ``log_prob`` ``(n_x * n_y,)`` (the
    target's, possibly unnormalised), ``cell_widths`` ``(2,)`` and ``cell_area``.
    The grid is built in ``dtype`` (float64 by default) on the CPU unless ``device``
    says otherwise (some GPUs lack float64).

    >>> from lecturekit.targets import GaussianMixture
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
        if not isinstance(target, Target) or target.dim != 2:
            raise ValueError(f"target must be a 2D lecturekit Target, got {target!r}")
        n_x, n_y = (n_points, n_points) if isinstance(n_points, int) else n_points
        for name, n in (("n_points (x)", n_x), ("n_points (y)", n_y)):
            if not isinstance(n, int) or isinstance(n, bool) or n < 2:
                raise ValueError(f"{name} must be an int >= 2, got {n!r}")
        (x_low, x_high), (y_low, y_high) = check_limits(xlim, "xlim"), check_limits(ylim, "ylim")
        xs = torch.linspace(x_low, x_high, n_x, dtype=dtype, device=device)
        ys = torch.linspace(y_low, y_high, n_y, dtype=dtype, device=device)
        self.points = torch.stack(torch.meshgrid(xs, ys, indexing="xy"), dim=-1).reshape(-1, 2)
        self.cell_widths = torch.stack([xs[1] - xs[0], ys[1] - ys[0]])
        self.cell_area = float(self.cell_widths.prod())
        self.log_prob = target.log_prob(self.points)

    def log_partition(self) -> float:
        r""":math:`\log Z \approx \log\sum_j e^{\log\rho(x_j)} + \log\Delta`."""
        return float(torch.logsumexp(self.log_prob, 0)) + math.log(self.cell_area)

    def probabilities(self) -> Tensor:
        """Probability of each grid cell, ``softmax(log_prob)``, shape ``(n_x * n_y,)``."""
        return torch.softmax(self.log_prob, 0)

    def expectation(self, f_values: Tensor) -> Tensor:
        r""":math:`\sum_j p_j f(x_j)` for ``f_values`` of shape ``(n_x * n_y, ...)``."""
        if f_values.shape[:1] != self.log_prob.shape:
            raise ValueError(f"f_values must have shape ({self.log_prob.shape[0]}, ...), got {tuple(f_values.shape)}")
        return torch.tensordot(self.probabilities().to(f_values.dtype), f_values, dims=1)
