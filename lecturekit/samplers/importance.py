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

__all__ = ["ImportanceResult", "Proposal", "importance_sample", "self_normalized_expectation"]


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
    if not isinstance(target, Target):
        raise TypeError(f"target must be a lecturekit.targets.Target, got {type(target).__name__}")
    if not isinstance(proposal, Proposal):
        raise TypeError(f"proposal must have dim, sample(n) and log_prob(x), got {type(proposal).__name__}")
    if proposal.dim != target.dim:
        raise ValueError(f"proposal.dim={proposal.dim} does not match target.dim={target.dim}")
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
