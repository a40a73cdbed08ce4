r"""Self-normalised importance sampling.

Draw :math:`x_i \sim \rho_p` from a proposal whose normalised density we can evaluate,
and weight each sample by how much more likely it is under the target
:math:`\rho_* \propto e^{-\beta U}`:

.. math::

    \log w_i = \log\rho_*(x_i) - \log\rho_p(x_i), \qquad
    \mathbb{E}_{\rho_*}[f] \approx \sum_{i=1}^{N} \frac{w_i}{\sum_j w_j} f(x_i).

The unknown normalising constant of :math:`\rho_*` cancels in the ratio, so an
unnormalised ``log_prob`` is enough. The estimator is consistent as
:math:`N \to \infty` but works only when the proposal covers the target well, which
Kish's effective sample size (:func:`lecturekit.diagnostics.ess_from_log_weights`)
reveals. Everything stays in log space.

With a *normalised* proposal (a flow) the mean weight estimates the target's normalising
constant, :math:`\hat Z = \frac1N\sum_i w_i`, and reweighting a flow's samples towards a
Boltzmann distribution is how Boltzmann generators turn approximate samples into
consistent estimates.

References:
    | Methods of Reducing Sample Size in Monte Carlo Computations (Kahn & Marshall, 1953)
    | https://doi.org/10.1287/opre.1.5.263
    | The Sample Size Required in Importance Sampling (Chatterjee & Diaconis, 2018)
    | https://doi.org/10.1214/17-AAP1326
    | Boltzmann generators: Sampling equilibrium states of many-body systems with deep learning (Noé et al., 2019)
    | https://doi.org/10.1126/science.aaw1147
"""

from __future__ import annotations

import math
from typing import NamedTuple

import torch
from torch import Tensor

from lecturekit.checks import check_finite, check_positive_int, check_same_device
from lecturekit.diagnostics import ess_from_log_weights, normalized_weights
from lecturekit.checks import check_points
from lecturekit.estimates import Estimate, log_partition_estimate, reweighted_expectation
from lecturekit.targets.base import Proposal, Target, check_target_and_proposal
from lecturekit.samplers.mcmc import check_target_device

__all__ = [
    "ImportanceResult",
    "importance_sample",
]


class ImportanceResult(NamedTuple):
    """Samples from the proposal and their unnormalised log-weights."""

    samples: Tensor  #: ``(n, dim)``
    log_weights: Tensor  #: ``(n,)``, :math:`\log\rho_*(x_i) - \log\rho_p(x_i)`

    def normalized_weights(self) -> Tensor:
        """Self-normalised weights, summing to one, shape ``(n,)``."""
        return normalized_weights(self.log_weights)

    def ess(self) -> Tensor:
        """Kish's effective sample size (a scalar tensor between 1 and n)."""
        return ess_from_log_weights(self.log_weights)

    def expectation(self, f_values: Tensor) -> Estimate:
        """Self-normalised estimate of :math:`\\mathbb{E}_{\\rho_*}[f]` from ``f(samples)``, with its
        standard error (:func:`~lecturekit.estimates.reweighted_expectation`)."""
        return reweighted_expectation(f_values, self.log_weights)

    def log_partition(self) -> Estimate:
        """:math:`\\log Z` of the target's ``log_prob`` and its standard error (:func:`log_partition_estimate`).

        Needs a proposal with a *normalised* ``log_prob``, such as a flow.
        """
        return log_partition_estimate(self.log_weights)


def importance_sample(target: Target, proposal: Proposal, n: int) -> ImportanceResult:
    r"""Draw ``n`` samples from ``proposal`` and weight them towards ``target``.

    .. math::

        x_i \sim \rho_p, \qquad \log w_i = \log\rho_*(x_i) - \log\rho_p(x_i), \qquad i = 1, \dots, n.

    ``target`` may be unnormalised; ``proposal`` must be samplable and have a normalised
    ``log_prob`` for :meth:`ImportanceResult.log_partition` to estimate :math:`\log Z`
    (self-normalised averages, :meth:`ImportanceResult.expectation`, need no normalisation).
    Samples where the target's ``log_prob`` is :math:`-\infty` get log-weight
    :math:`-\infty` (weight zero). The result carries no autograd graph.

    Example:
        >>> from lecturekit.targets.toy import GaussianMixture
        >>> _ = torch.manual_seed(0)
        >>> target = GaussianMixture(torch.zeros(1, 2), 0.5)  # N(0, I / 2), normalised
        >>> result = importance_sample(target, GaussianMixture(torch.zeros(1, 2), 1.0), 1000)
        >>> result.samples.shape, result.log_weights.shape
        (torch.Size([1000, 2]), torch.Size([1000]))
        >>> abs(result.log_partition().value.item()) < 0.1  # log Z = 0
        True
        >>> second_moment = result.expectation(result.samples.square().sum(-1))
        >>> abs(second_moment.value.item() - 1.0) < 0.1  # E|x|^2 = 2 * 0.5
        True

    References:
        | Methods of Reducing Sample Size in Monte Carlo Computations (Kahn & Marshall, 1953)
        | https://doi.org/10.1287/opre.1.5.263
        | Boltzmann generators: Sampling equilibrium states of many-body systems with deep learning (Noé et al., 2019)
        | https://doi.org/10.1126/science.aaw1147
    """
    check_target_and_proposal(target, proposal)
    check_positive_int(n, "n")
    with torch.no_grad():
        samples = proposal.sample(n)
        check_points(samples, target.dim, "proposal.sample(n)")
        if samples.shape != (n, target.dim):
            raise ValueError(f"proposal.sample(n) must have shape ({n}, {target.dim}), got {tuple(samples.shape)}")
        check_target_device(target, samples, name="samples")
        log_target = target.log_prob(samples)
        log_weights = log_target - proposal.log_prob(samples)
        log_weights = torch.where(torch.isneginf(log_target), -math.inf, log_weights)
    return ImportanceResult(samples, log_weights)
