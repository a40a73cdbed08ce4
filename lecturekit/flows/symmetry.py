r"""Symmetrised densities: building a known symmetry of the target into a proposal.

If the target is invariant under :math:`x\mapsto -x` (the :math:`\mathbb{Z}_2` symmetry of
:math:`\phi^4` without a tilt), so is every expectation of it; a learned density
:math:`\rho_\theta` usually is not (reverse-KL training may put all its mass in one of the two
mirror modes). Its symmetrisation

.. math::

    \rho_\mathrm{sym}(x) = \tfrac12\big[\rho_\theta(x) + \rho_\theta(-x)\big]

is a normalised density (the map :math:`x\mapsto -x` preserves volume), exactly invariant,
and as easy to use: a draw is a draw of :math:`\rho_\theta` times an independent random sign,
and its log-density costs two evaluations of :math:`\log\rho_\theta`. As an importance or
independent Metropolis-Hastings proposal it gives the two mirror modes equal mass by
construction (the group-averaging of equivariant flows, e.g. Köhler, Klein & Noé, ICML 2020,
and of the cluster updates of Wu, Rossi & Carleo, PRR 2021).

References:
    | Equivariant Flows: Exact Likelihood Generative Learning for Symmetric Densities (Köhler et al., 2020)
    | https://arxiv.org/abs/2006.02425
    | Unbiased Monte Carlo cluster updates with autoregressive neural networks (Wu et al., 2021)
    | https://doi.org/10.1103/PhysRevResearch.3.L042024
"""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn

from lecturekit.checks import check_positive_int
from lecturekit.checks import check_points

__all__ = ["Z2Symmetrized"]

_LOG_2 = math.log(2.0)


class Z2Symmetrized(nn.Module):
    r""":math:`\rho_\mathrm{sym}(x) = \frac12[\rho(x) + \rho(-x)]` for a density ``density`` (a flow, a base).

    ``density`` needs ``dim``, ``sample(n)`` and a *normalised* ``log_prob(x)``; with
    ``sample_and_log_prob(n)`` (flows have it) :meth:`sample_and_log_prob` stays
    differentiable in its parameters, so the symmetrised density can be trained too. It is a
    :class:`~lecturekit.targets.base.Proposal`, usable by
    :class:`~lecturekit.samplers.flow_mcmc.FlowIndependenceMetropolis` and
    :func:`~lecturekit.samplers.importance.importance_sample`.

    >>> from lecturekit.distributions import DiagonalGaussian
    >>> shifted = DiagonalGaussian(torch.tensor([2.0]), torch.tensor([0.5]))
    >>> sym = Z2Symmetrized(shifted)
    >>> bool(torch.allclose(sym.log_prob(torch.tensor([[2.0]])), sym.log_prob(torch.tensor([[-2.0]]))))
    True
    """

    def __init__(self, density: nn.Module) -> None:
        super().__init__()
        if not all(hasattr(density, name) for name in ("dim", "sample", "log_prob")):
            raise TypeError(f"density must have dim, sample(n) and log_prob(x), got {type(density).__name__}")
        self.density = density
        self.dim = int(density.dim)

    def log_prob(self, x: Tensor) -> Tensor:
        r""":math:`\log\rho_\mathrm{sym}(x) = \mathrm{logaddexp}(\log\rho(x), \log\rho(-x)) - \log 2`."""
        check_points(x, self.dim, "x")
        return torch.logaddexp(self.density.log_prob(x), self.density.log_prob(-x)) - _LOG_2

    def _random_signs(self, x: Tensor) -> Tensor:
        return torch.randint(0, 2, x.shape[:-1] + (1,), device=x.device).to(x.dtype) * 2 - 1

    def sample(self, n: int) -> Tensor:
        """``n`` draws: draws of the density, each multiplied by an independent random sign."""
        check_positive_int(n, "n")
        with torch.no_grad():
            x = self.density.sample(n)
            return x * self._random_signs(x)

    def sample_and_log_prob(self, n: int) -> tuple[Tensor, Tensor]:
        r"""``n`` draws and their :math:`\log\rho_\mathrm{sym}`, reusing the density's own
        :math:`\log\rho(y)` of each draw :math:`y` (one extra evaluation, at :math:`-y`)."""
        check_positive_int(n, "n")
        joint = getattr(self.density, "sample_and_log_prob", None)
        if joint is not None:
            y, log_q = joint(n)
        else:
            y = self.density.sample(n)
            log_q = self.density.log_prob(y)
        log_sym = torch.logaddexp(log_q, self.density.log_prob(-y)) - _LOG_2
        return y * self._random_signs(y), log_sym

    def extra_repr(self) -> str:
        return f"dim={self.dim}"
