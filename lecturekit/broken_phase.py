r"""Measurements for a bimodal magnetisation: tunnelling, the weight of each sign, exact small lattices.

In the broken phase of lattice :math:`\phi^4` the magnetisation :math:`M = \sum_x\phi_x` has
two peaks, at :math:`\pm M_*`, of equal weight (the action is even in :math:`\phi`). A local
sampler crosses from one to the other only through configurations with a domain wall, whose
cost grows with the lattice, so its *tunnelling time* grows quickly with :math:`L`; a
global proposal that knows both signs crosses in one step.

* :func:`count_tunnellings` counts the sign changes of :math:`M` along each chain, with a
  hysteresis (a change counts when :math:`M` goes from below :math:`-\theta` to above
  :math:`+\theta` or back), so that fluctuations around :math:`M = 0` are not counted;
* :func:`tunnelling_time` is the mean number of steps between two counted changes,
  :math:`\tau_\mathrm{tunnel} = N_\mathrm{steps} N_\mathrm{chains} / n_\mathrm{tunnel}`,
  with the Poisson error :math:`\tau/\sqrt{n}`, as an :class:`~lecturekit.estimates.Estimate`;
* :func:`sign_weight` is the fraction of states with :math:`M > 0`,
  :math:`\hat w_+ = \frac{1}{N_\mathrm{steps}N_\mathrm{chains}}\sum_{t,c}\mathbb{1}[M^c_t > 0]`
  (exactly 1/2 for the target, by the :math:`\phi\to-\phi` symmetry), with its Monte Carlo
  standard error from the multi-chain ESS, as an :class:`~lecturekit.estimates.Estimate`;
* :func:`small_lattice_moments` gives :math:`\langle|M|\rangle` and :math:`\langle M^2\rangle`
  exactly (by quadrature on a grid) on a lattice of at most four sites, the reference a
  sampler can be checked against where nothing else is exact.

Hackett et al. (2021) build flow samplers for this bimodal, symmetry-broken phase of
two-dimensional :math:`\phi^4`, where local samplers rarely tunnel between the two signs of
:math:`M` and flows trained by reverse KL tend to collapse onto one of them. The grid
quadrature converges as the trapezoidal rule does for smooth, rapidly decaying integrands
(Trefethen & Weideman 2014).

References:
    | Flow-based sampling for multimodal distributions in lattice field theory (Hackett et al., 2021)
    | https://arxiv.org/abs/2107.00734
    | The Exponentially Convergent Trapezoidal Rule (Trefethen & Weideman, 2014)
    | https://doi.org/10.1137/130932132
"""

from __future__ import annotations

import math
from typing import NamedTuple

import torch
from torch import Tensor

from lecturekit.checks import check_finite, check_number, check_positive_int
from lecturekit.diagnostics import ConstantChainError, mcse
from lecturekit.estimates import Estimate

__all__ = [
    "SmallLatticeMoments",
    "count_tunnellings",
    "sign_weight",
    "small_lattice_moments",
    "tunnelling_time",
]


def _check_series(m: object, name: str = "m") -> Tensor:
    if not isinstance(m, Tensor) or not m.is_floating_point():
        raise TypeError(f"{name} must be a floating-point tensor of shape (n_steps, n_chains)")
    if m.dim() != 2 or m.shape[0] < 1 or m.shape[1] < 1:
        raise ValueError(f"{name} must have shape (n_steps, n_chains), got {tuple(m.shape)}")
    return m


def count_tunnellings(m: Tensor, threshold: float) -> Tensor:
    r"""Sign changes of ``m`` (shape ``(n_steps, n_chains)``) along each chain, with hysteresis.

    A chain's side is :math:`+1` once :math:`m > \theta` and :math:`-1` once :math:`m < -\theta`
    (``threshold`` :math:`\theta > 0`), and keeps its side in between; a tunnelling is a
    change of side. The side at the start is the first one reached, so the first crossing of
    :math:`\pm\theta` does not count. Returns a tensor of shape ``(n_chains,)`` (int64).

    >>> m = torch.tensor([[-1.0], [-0.1], [0.2], [1.0], [0.1], [-1.0], [-2.0]])
    >>> count_tunnellings(m, 0.5).tolist()
    [2]
    """
    m = _check_series(m)
    check_finite(m, "m")
    threshold = check_number(threshold, "threshold", positive=True)
    side = torch.zeros(m.shape[1], dtype=torch.int8, device=m.device)
    count = torch.zeros(m.shape[1], dtype=torch.int64, device=m.device)
    for row in m:
        new = torch.where(row > threshold, 1, torch.where(row < -threshold, -1, 0)).to(torch.int8)
        changed = (new != 0) & (side != 0) & (new != side)
        count += changed
        side = torch.where(new != 0, new, side)
    return count


def tunnelling_time(m: Tensor, threshold: float) -> Estimate:
    r""":math:`\tau_\mathrm{tunnel} = N_\mathrm{steps}N_\mathrm{chains}/n` from :func:`count_tunnellings`.

    The tunnellings of a long chain are close to a Poisson process of rate :math:`1/\tau`, so
    the count :math:`n` has variance :math:`n` and :math:`\tau` a relative error
    :math:`1/\sqrt{n}`. With no tunnelling the value is ``inf``: the run only says that
    :math:`\tau` is longer than about the total number of chain-steps. Returns an
    :class:`~lecturekit.estimates.Estimate` of floats (``value``, ``stderr``; no ``tau``); the
    count itself is ``count_tunnellings(m, threshold).sum()``.

    >>> tunnelling_time(torch.tensor([[-1.0, 1.0], [1.0, 1.0]]), 0.5)
    Estimate(value=4.0, stderr=4.0, tau=None)
    """
    count = int(count_tunnellings(m, threshold).sum())
    if count == 0:
        return Estimate(math.inf, math.inf)
    value = m.shape[0] * m.shape[1] / count
    return Estimate(value, value / math.sqrt(count))


def sign_weight(m: Tensor) -> Estimate:
    r"""The fraction of ``m`` (``(n_steps, n_chains)``) above zero, with its MCSE.

    The error is :func:`~lecturekit.diagnostics.mcse` of the indicator :math:`[m > 0]`, whose
    multi-chain ESS sees chains stuck on different signs. When every state has the same sign
    the indicator is constant and the error is reported as 0: the chains never saw the
    other sign, and no error bar can say how much it weighs. Returns an
    :class:`~lecturekit.estimates.Estimate` of floats (``value``, ``stderr``; no ``tau``).

    >>> sign_weight(torch.ones(10, 2))
    Estimate(value=1.0, stderr=0.0, tau=None)
    """
    m = _check_series(m)
    positive = (m > 0).double()
    value = float(positive.mean())
    if value in (0.0, 1.0):
        return Estimate(value, 0.0)
    try:
        return Estimate(value, float(mcse(positive)))
    except ConstantChainError:  # every chain constant, not all on the same side
        return Estimate(value, float(positive.mean(0).std() / math.sqrt(m.shape[1])))


class SmallLatticeMoments(NamedTuple):
    r"""Exact moments of the magnetisation on a lattice of at most four sites."""

    abs_m: float  #: :math:`\langle|M|\rangle`
    m2: float  #: :math:`\langle M^2\rangle` (:math:`\chi_2 = \langle M^2\rangle / V`, since :math:`\langle M\rangle = 0`)
    m: float  #: :math:`\langle M\rangle`, zero up to rounding for an even action


def small_lattice_moments(target: object, n_nodes: int = 64, half_width: float = 3.0) -> SmallLatticeMoments:
    r"""Moments of :math:`M = \sum_x\phi_x` under ``target`` by quadrature, for ``target.dim <= 4``.

    The density :math:`e^{\log\rho(\phi)}` is tabulated on the grid of ``n_nodes`` equally
    spaced nodes per site over :math:`[-h, h]` (``half_width``), ``n_nodes ** dim`` points
    in float64, and every moment is a ratio of sums over the grid, so the spacing cancels.
    For a smooth density that is negligible at the edges of the box this rule converges
    faster than any power of the spacing (the trapezoid rule for a rapidly decaying
    integrand); :math:`|M|` has a kink at 0, where the rule is only second order. Compare
    two ``n_nodes`` to see the error. ``target`` needs ``dim`` and
    ``log_prob``. Beyond four sites the grid has too many points, which is why samplers are
    needed at all.

    >>> from lecturekit.targets.phi4_lattice import Phi4Lattice
    >>> free = Phi4Lattice(2, m2=1.0, lam=0.0)
    >>> exact = small_lattice_moments(free, n_nodes=48, half_width=6.0)
    >>> round(exact.m2, 6) == round(free.free_magnetization_variance(), 6)
    True
    """
    dim = getattr(target, "dim", None)
    if not isinstance(dim, int) or not 1 <= dim <= 4:
        raise ValueError(f"target must have dim between 1 and 4 for a grid, got dim={dim!r}")
    check_positive_int(n_nodes, "n_nodes")
    half_width = check_number(half_width, "half_width", positive=True)
    nodes = torch.linspace(-half_width, half_width, n_nodes, dtype=torch.float64)
    rest = torch.cartesian_prod(*[nodes] * (dim - 1)).reshape(-1, dim - 1) if dim > 1 else None
    log_probs, magnetisations = [], []
    for first in nodes:  # one slice of the grid at a time keeps the memory at n_nodes ** (dim - 1)
        column = first.expand(1 if rest is None else rest.shape[0], 1)
        points = column if rest is None else torch.cat([column, rest], dim=1)
        with torch.no_grad():
            log_probs.append(target.log_prob(points).double())
        magnetisations.append(points.sum(-1))
    log_prob = torch.cat(log_probs)
    m = torch.cat(magnetisations)
    p = torch.softmax(log_prob, 0)
    return SmallLatticeMoments(float((p * m.abs()).sum()), float((p * m.square()).sum()), float((p * m).sum()))
