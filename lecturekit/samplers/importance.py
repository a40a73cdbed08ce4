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
"""

from __future__ import annotations

import math
from typing import NamedTuple, Protocol, runtime_checkable

import torch
from torch import Tensor

from ..checks import check_finite, check_positive_int, check_same_device
from ..diagnostics import ess_from_log_weights, normalized_weights
from ..targets import Target, check_points
from .mcmc import check_target_device

__all__ = [
    "Estimate",
    "ImportanceResult",
    "Proposal",
    "importance_sample",
    "log_partition_estimate",
    "reweighted_expectation",
    "self_normalized_expectation",
]


@runtime_checkable
class Proposal(Protocol):
    """A distribution we can sample and whose *normalised* log-density we know.

    :class:`lecturekit.targets.GaussianMixture` qualifies, and so do normalizing flows.
    """

    dim: int

    def sample(self, n: int) -> Tensor:
        """``n`` samples, shape ``(n, dim)``."""
        ...

    def log_prob(self, x: Tensor) -> Tensor:
        """Normalised log-density, shape ``(n,)``."""
        ...


def check_target_and_proposal(target: object, proposal: object, name: str = "proposal") -> None:
    """Raise unless ``target`` is a :class:`~lecturekit.targets.Target` and ``proposal`` (called
    ``name`` in the message) a :class:`Proposal` of the same dimension."""
    if not isinstance(target, Target):
        raise TypeError(f"target must be a lecturekit.targets.Target, got {type(target).__name__}")
    if not isinstance(proposal, Proposal):
        raise TypeError(f"{name} must have dim, sample(n) and a normalised log_prob(x), got {type(proposal).__name__}")
    if proposal.dim != target.dim:
        raise ValueError(f"{name}.dim={proposal.dim} does not match target.dim={target.dim}")


def self_normalized_expectation(f_values: Tensor, log_weights: Tensor) -> Tensor:
    r""":math:`\sum_i \bar w_i f(x_i)` with :math:`\bar w = \operatorname{softmax}(\log w)`.

    ``f_values`` has shape ``(n,)`` (returns a scalar) or ``(n, k)`` (returns ``(k,)``);
    ``log_weights`` has shape ``(n,)``. ``f_values`` must be finite (a ``ValueError``
    otherwise: one NaN would silently spoil the whole average).

    >>> self_normalized_expectation(torch.tensor([1.0, 3.0]), torch.tensor([0.0, 0.0]))
    tensor(2.)
    """
    weights = normalized_weights(log_weights)
    if log_weights.dim() != 1:
        raise ValueError(f"log_weights must have shape (n,), got {tuple(log_weights.shape)}")
    if not isinstance(f_values, Tensor):
        raise TypeError(f"f_values must be a torch.Tensor, got {type(f_values).__name__}")
    if f_values.dim() not in (1, 2) or f_values.shape[0] != log_weights.shape[0]:
        raise ValueError(
            f"f_values must have shape ({log_weights.shape[0]},) or ({log_weights.shape[0]}, k), "
            f"got {tuple(f_values.shape)}"
        )
    check_same_device(f_values=f_values, log_weights=log_weights)
    check_finite(f_values, "f_values")
    if not f_values.is_floating_point():
        f_values = f_values.to(weights.dtype)
    return weights.to(f_values.dtype) @ f_values


class Estimate(NamedTuple):
    """A Monte Carlo estimate and its standard error (tensors of the same shape)."""

    value: Tensor
    stderr: Tensor


def log_partition_estimate(log_weights: Tensor) -> Estimate:
    r"""Estimate of :math:`\log Z` from importance log-weights, with its delta-method standard error.

    With a *normalised* proposal :math:`\rho_p` and an unnormalised target
    :math:`\tilde\rho_* = Z\rho_*`, the weights :math:`w_i = \tilde\rho_*(x_i)/\rho_p(x_i)` have
    mean :math:`Z`, so

    .. math::

        \widehat{\log Z} = \log\frac1N\sum_{i=1}^N w_i,
        \qquad
        \operatorname{se}\big(\widehat{\log Z}\big) \approx \frac{\hat\sigma_w}{\sqrt N\,\bar w}
        \approx \sqrt{\frac{1}{\mathrm{ESS}} - \frac1N},

    the delta method on :math:`\log\bar w` (:math:`\hat\sigma_w` the sample standard
    deviation of the weights, ESS Kish's). :math:`\widehat{\log Z}` is biased low by about
    :math:`\operatorname{se}^2/2` (Jensen), which is small when the standard error is.
    Both numbers are only as good as the weights' variance estimate: a proposal that
    misses a mode gives a confident, wrong answer (Section 3.1).

    ``log_weights`` has shape ``(n,)`` with ``n >= 2``; ``-inf`` entries are zero weights.

    >>> value, stderr = log_partition_estimate(torch.log(torch.tensor([1.0, 3.0])))
    >>> round(float(value.exp()), 4), round(float(stderr), 4)
    (2.0, 0.5)
    """
    weights = normalized_weights(log_weights)
    if log_weights.dim() != 1 or log_weights.shape[0] < 2:
        raise ValueError(f"log_weights must have shape (n,) with n >= 2, got {tuple(log_weights.shape)}")
    n = log_weights.shape[0]
    value = torch.logsumexp(log_weights, 0) - math.log(n)
    # w_i / w_bar = n * normalised weight; its sample variance / n is the relative variance of w_bar
    relative = n * weights
    stderr = torch.sqrt(relative.var() / n)
    return Estimate(value, stderr)


def reweighted_expectation(f_values: Tensor, log_weights: Tensor) -> Estimate:
    r"""Self-normalised estimate of :math:`\mathbb{E}_{\rho_*}[f]` with its delta-method standard error.

    .. math::

        \hat\mu = \sum_i \bar w_i f(x_i), \qquad
        \operatorname{se}(\hat\mu) \approx \Big(\sum_i \bar w_i^2 \big(f(x_i) - \hat\mu\big)^2\Big)^{1/2},

    with :math:`\bar w = \operatorname{softmax}(\log w)` (Owen, *Monte Carlo theory, methods
    and examples*, 2013, ch. 9). ``f_values`` has shape ``(n,)`` or ``(n, k)``;
    ``log_weights`` shape ``(n,)``. With equal weights the error is the usual
    :math:`\hat\sigma_f/\sqrt n` (up to a factor :math:`\sqrt{(n-1)/n}`).

    >>> estimate = reweighted_expectation(torch.tensor([1.0, 3.0]), torch.zeros(2))
    >>> float(estimate.value), round(float(estimate.stderr), 4)
    (2.0, 0.7071)
    """
    value = self_normalized_expectation(f_values, log_weights)
    weights = normalized_weights(log_weights).to(value.dtype)
    f_values = f_values.to(value.dtype)
    residual = f_values - value
    squared = weights.square() @ residual.square()
    return Estimate(value, torch.sqrt(squared))


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

    def expectation(self, f_values: Tensor) -> Tensor:
        """Self-normalised estimate of :math:`\\mathbb{E}_{\\rho_*}[f]` from ``f(samples)``."""
        return self_normalized_expectation(f_values, self.log_weights)

    def expectation_with_error(self, f_values: Tensor) -> Estimate:
        """:meth:`expectation` and its standard error (:func:`reweighted_expectation`)."""
        return reweighted_expectation(f_values, self.log_weights)

    def log_partition(self) -> Estimate:
        """:math:`\\log Z` of the target's ``log_prob`` and its standard error (:func:`log_partition_estimate`).

        Needs a proposal with a *normalised* ``log_prob``, such as a flow.
        """
        return log_partition_estimate(self.log_weights)


def importance_sample(target: Target, proposal: Proposal, n: int) -> ImportanceResult:
    r"""Draw ``n`` samples from ``proposal`` and weight them towards ``target``.

    Samples where the target's ``log_prob`` is :math:`-\infty` get log-weight
    :math:`-\infty` (weight zero). The result carries no autograd graph.

    >>> from lecturekit.targets import GaussianMixture
    >>> target = GaussianMixture(torch.zeros(1, 2), 0.5)
    >>> result = importance_sample(target, GaussianMixture(torch.zeros(1, 2), 1.0), 1000)
    >>> result.samples.shape, result.log_weights.shape
    (torch.Size([1000, 2]), torch.Size([1000]))
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
