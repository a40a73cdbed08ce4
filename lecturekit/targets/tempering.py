r"""The tempered (geometric) path from a base density to the target.

Between a normalised base :math:`\rho_B` (which we can sample) and an unnormalised target
:math:`\gamma_* = Z\rho_*`, the *geometric* path

.. math::

    \log\gamma_\beta(x) = (1-\beta)\log\rho_B(x) + \beta\log\gamma_*(x),
    \qquad 0 = \beta_0 < \beta_1 < \dots < \beta_K = 1,

goes from :math:`\gamma_0 = \rho_B` (:math:`Z_0 = 1`) to :math:`\gamma_1 = \gamma_*`
(:math:`Z_1 = Z`), the path of annealed importance sampling (Neal 2001) and of path sampling
(Gelman & Meng 1998). Without a base it is :math:`\gamma_\beta = e^{-\beta U}`, the target at
inverse temperature :math:`\beta` (power tempering), whose modes widen and barriers drop as
:math:`\beta` falls. :class:`TemperedPath` is one point of that path, a
:class:`~lecturekit.targets.base.Target` that every kernel accepts, with the convention
:math:`0\cdot(-\infty) = 0` (at :math:`\beta = 0` a point outside the target's support still
has the base's density). :func:`geometric_schedule` spaces the :math:`\beta_k` evenly in
:math:`\log\beta`.

References:
    | Annealed importance sampling (Neal, 2001)
    | https://doi.org/10.1023/A:1008923215028
    | Simulating Normalizing Constants: From Importance Sampling to Bridge Sampling to Path Sampling (Gelman & Meng, 1998)
    | https://doi.org/10.1214/ss/1028905934
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import TYPE_CHECKING

import torch
from torch import Tensor

from lecturekit.checks import check_fraction, check_positive_int
from lecturekit.targets.base import Target, log_prob_and_score_by_autograd

if TYPE_CHECKING:
    from lecturekit.targets.base import Proposal

__all__ = ["TemperedPath", "check_schedule", "geometric_schedule"]


def check_schedule(betas: Sequence[float], name: str = "betas", start: float | None = None) -> list[float]:
    """``betas`` as a list of floats in ``(0, 1]``, strictly increasing (above ``start`` if given), ending at 1."""
    if isinstance(betas, (str, bytes)) or not isinstance(betas, (Sequence, Tensor)):
        raise TypeError(f"{name} must be a sequence of inverse temperatures, got {type(betas).__name__}")
    values = [float(b) for b in (betas.tolist() if isinstance(betas, Tensor) else betas)]
    if not values:
        raise ValueError(f"{name} must not be empty")
    for b in values:
        if not (math.isfinite(b) and 0.0 < b <= 1.0):
            raise ValueError(f"{name} must lie in (0, 1], got {b!r}")
    sequence = ([start] if start is not None else []) + values
    if any(b <= a for a, b in zip(sequence, sequence[1:])):
        raise ValueError(f"{name} must be strictly increasing" + (f" from {start}" if start is not None else ""))
    if values[-1] != 1.0:
        raise ValueError(f"{name} must end at 1.0 (the target), got {values[-1]!r}")
    return values


def geometric_schedule(n_steps: int, beta_min: float = 1e-3) -> list[float]:
    r"""``n_steps`` inverse temperatures :math:`\beta_k = \beta_\mathrm{min}^{1 - k/(K-1)}`, from ``beta_min`` to 1.

    Evenly spaced in :math:`\log\beta`: the usual choice when the early steps matter most.

    >>> [round(b, 3) for b in geometric_schedule(4, 0.001)]
    [0.001, 0.01, 0.1, 1.0]
    """
    check_positive_int(n_steps, "n_steps")
    beta_min = check_fraction(beta_min, "beta_min")
    if beta_min == 0.0:
        raise ValueError("beta_min must be positive for a geometric schedule")
    if n_steps > 1 and beta_min == 1.0:
        raise ValueError(f"beta_min must be below 1 for a schedule of {n_steps} steps, got 1.0 (every step at beta = 1)")
    if n_steps == 1:
        return [1.0]
    return [beta_min ** (1.0 - k / (n_steps - 1)) for k in range(n_steps - 1)] + [1.0]


class TemperedPath(Target):
    r"""One point :math:`\gamma_\beta` of the geometric path from ``base`` to ``target``.

    .. math::

        \log\gamma_\beta(x) = (1-\beta)\log\rho_B(x) + \beta\log\gamma_*(x),
        \qquad \nabla\log\gamma_\beta = (1-\beta)\nabla\log\rho_B + \beta\nabla\log\gamma_*,

    with :math:`0\cdot(-\infty) = 0`. ``base=None`` drops the first term: :math:`\gamma_\beta =
    \gamma_*^\beta = e^{-\beta U}` (the target at inverse temperature :math:`\beta`).

    Note that ``beta`` here is the position on the path and :meth:`energy` is
    :math:`-\log\gamma_\beta` (``log_prob`` is *not* ``-beta * energy`` as for other targets).

    ``target`` is the :class:`~lecturekit.targets.base.Target` at the end of the path;
    ``base`` is a normalised density with ``dim`` and ``log_prob`` (a flow's base, a
    :class:`~lecturekit.targets.toy.GaussianMixture`, ...) of the same dimension, or ``None``;
    ``beta`` is the position on the path, in :math:`[0, 1]` (in :math:`(0, 1]` without a base).

    >>> from lecturekit.distributions import StandardNormal
    >>> from lecturekit.targets.toy import GaussianMixture
    >>> target = GaussianMixture(torch.ones(1, 2), 0.5)
    >>> path = TemperedPath(target, StandardNormal(2), 0.25)
    >>> x = torch.randn(3, 2)
    >>> bool(torch.allclose(path.log_prob(x), 0.75 * StandardNormal(2).log_prob(x) + 0.25 * target.log_prob(x)))
    True
    >>> path.at(1.0).log_prob(x).shape
    torch.Size([3])
    """

    def __init__(self, target: Target, base: Proposal | None, beta: float) -> None:
        if not isinstance(target, Target):
            raise TypeError(f"target must be a lecturekit.targets.base.Target, got {type(target).__name__}")
        if base is not None:
            if not (hasattr(base, "dim") and callable(getattr(base, "log_prob", None))):
                raise TypeError(f"base must have dim and log_prob(x) (or be None), got {type(base).__name__}")
            if base.dim != target.dim:
                raise ValueError(f"base.dim={base.dim} does not match target.dim={target.dim}")
        beta = check_fraction(beta, "beta")
        if base is None and beta == 0.0:
            raise ValueError("beta must be positive without a base (e^{-0 U} is not a density)")
        self.base = base
        self.target = target
        self.dim = int(target.dim)
        self.beta = beta

    def at(self, beta: float) -> TemperedPath:
        """The same path at another ``beta``."""
        return TemperedPath(self.target, self.base, beta)

    def energy(self, x: Tensor) -> Tensor:
        return -self.log_prob(x)

    def log_base_and_target(self, x: Tensor) -> tuple[Tensor, Tensor]:
        r""":math:`(\log\rho_B(x), \log\gamma_*(x))`; the first is zeros without a base."""
        log_target = self.target.log_prob(x)
        log_base = log_target.new_zeros(()).expand_as(log_target) if self.base is None else self.base.log_prob(x)
        return log_base, log_target

    def combine(self, log_base: Tensor, log_target: Tensor) -> Tensor:
        r""":math:`(1-\beta)\log\rho_B + \beta\log\gamma_*` with :math:`0\cdot(-\infty) = 0`."""
        if self.beta == 1.0:
            return log_target
        if self.beta == 0.0:
            return log_base
        return (1.0 - self.beta) * log_base + self.beta * log_target

    def log_prob(self, x: Tensor) -> Tensor:
        return self.combine(*self.log_base_and_target(x))

    def log_prob_and_score(self, x: Tensor) -> tuple[Tensor, Tensor]:
        """Both terms' log-densities and scores (the target's own ``log_prob_and_score``, autograd for the base)."""
        log_target, score_target = self.target.log_prob_and_score(x)
        if self.base is None:
            return self.beta * log_target, self.beta * score_target
        if self.beta == 1.0:  # the base's score would be thrown away
            return log_target, score_target
        base_score_fn = getattr(self.base, "log_prob_and_score", None)
        if callable(base_score_fn):
            log_base, score_base = base_score_fn(x)
        else:
            log_base, score_base = log_prob_and_score_by_autograd(self.base.log_prob, x)
        if self.beta == 0.0:
            return log_base, score_base
        score = (1.0 - self.beta) * score_base + self.beta * score_target
        return self.combine(log_base, log_target), score

    def __repr__(self) -> str:
        base = "None" if self.base is None else type(self.base).__name__
        return f"TemperedPath(target={type(self.target).__name__}, base={base}, beta={self.beta:.4g})"
