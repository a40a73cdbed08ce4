r"""Estimates with a standard error, and the self-normalised weighted estimators.

Draw :math:`x_1,\dots,x_n` from a normalised proposal :math:`\rho_p` and weight them towards an
unnormalised target :math:`\tilde\rho_* = Z\rho_*`, :math:`w_i = \tilde\rho_*(x_i)/\rho_p(x_i)`.
With :math:`\bar w = \operatorname{softmax}(\log w)` the normalised weights,

.. math::

    \widehat{\log Z} = \log\frac1n\sum_{i=1}^n w_i, \qquad
    \hat\mu = \sum_{i=1}^n \bar w_i f(x_i) \approx \mathbb{E}_{\rho_*}[f],

the importance-sampling estimate of the normalising constant (:func:`log_partition_estimate`)
and the self-normalised estimate of an expectation (:func:`reweighted_expectation`; Owen,
*Monte Carlo theory, methods and examples*, 2013, ch. 9), each with a delta-method standard
error. Both need a number of samples of the order of :math:`\exp\mathrm{KL}(\rho_*\,\|\,\rho_p)`
(Chatterjee & Diaconis, 2018).

References:
    | Monte Carlo theory, methods and examples (Owen, 2013)
    | https://artowen.su.domains/mc/
    | The sample size required in importance sampling (Chatterjee & Diaconis, 2018)
    | https://doi.org/10.1214/17-AAP1326
"""

from __future__ import annotations

import math
from typing import NamedTuple

import torch
from torch import Tensor

from lecturekit.checks import check_finite, check_same_device, check_tensor
from lecturekit.diagnostics import mcse, normalized_weights

__all__ = ["Estimate", "log_partition_estimate", "mode_weights", "reweighted_expectation"]


def _self_normalized_mean(f_values: Tensor, log_weights: Tensor) -> Tensor:
    r""":math:`\sum_i \bar w_i f(x_i)` with :math:`\bar w = \operatorname{softmax}(\log w)`.

    ``f_values`` has shape ``(n,)`` (returns a scalar) or ``(n, k)`` (returns ``(k,)``);
    ``log_weights`` has shape ``(n,)``. ``f_values`` must be finite (a ``ValueError``
    otherwise: one NaN would silently spoil the whole average).

    The value of :func:`reweighted_expectation` (the one public form of this estimator).
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
    """A Monte Carlo estimate, its standard error, and optional extras (of the same shape).

    Every estimate with an error in lecturekit is one. Read it by name (``estimate.value``,
    ``estimate.stderr``); unpacking takes all three fields. The fields are tensors, except for
    the scalar summaries of :mod:`lecturekit.broken_phase`, which are Python floats.
    """

    value: Tensor | float
    stderr: Tensor | float
    #: the integrated autocorrelation time (in steps) of the chain the estimate averages, when it
    #: comes from a Markov chain and the estimator reports it; ``None`` otherwise
    tau: Tensor | float | None = None


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
    misses a mode (the mode collapse of reverse-KL training) gives a confident, wrong answer.

    ``log_weights`` has shape ``(n,)`` with ``n >= 2``; ``-inf`` entries are zero weights.

    >>> estimate = log_partition_estimate(torch.log(torch.tensor([1.0, 3.0])))
    >>> round(float(estimate.value.exp()), 4), round(float(estimate.stderr), 4), estimate.tau
    (2.0, 0.5, None)
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
    value = _self_normalized_mean(f_values, log_weights)
    weights = normalized_weights(log_weights).to(value.dtype)
    f_values = f_values.to(value.dtype)
    residual = f_values - value
    squared = weights.square() @ residual.square()
    return Estimate(value, torch.sqrt(squared))


def mode_weights(membership: Tensor, log_weights: Tensor | None = None, chain_error: str = "walkers") -> Estimate:
    r"""The weight of each of ``k`` modes, with its standard error, from the samples' mode membership.

    ``membership[..., j]`` is how much a sample belongs to mode :math:`j`, in :math:`[0, 1]`: an
    indicator (:func:`~lecturekit.diagnostics.interval_membership`, or a stack of boolean masks) or
    a soft assignment (a mixture's responsibilities). The weight of mode :math:`j` is the
    expectation of its membership :math:`m_j`, estimated by

    - **independent samples**, ``membership`` ``(n, k)``: the mean, with the error
      :math:`\hat\sigma_{m_j}/\sqrt n`; with importance ``log_weights`` ``(n,)``, the self-normalised
      mean and its delta-method error (:func:`reweighted_expectation`, column by column);
    - **parallel chains**, ``membership`` ``(n_steps, n_walkers, k)`` (no ``log_weights``): the mean
      :math:`\bar m^c_j` of each walker over its steps, then their mean over the walkers, with the
      standard error :math:`\operatorname{sd}_c(\bar m^c_j)/\sqrt{n_\text{walkers}}`, exact for
      independent walkers whatever the autocorrelation within a chain, and honest only when
      every walker runs long enough to visit the modes in proportion (walkers stuck in their
      starting modes make it small and wrong). With ``chain_error="ess"`` the error is instead
      :func:`~lecturekit.diagnostics.mcse` of each membership, from the multi-chain ESS
      (Vehtari et al. 2021), which sees walkers that disagree (walkers stuck in different
      modes get a large error); it raises :class:`~lecturekit.diagnostics.ConstantChainError`
      when a membership takes one value at every step of every walker (no error bar exists).

    Returns an :class:`Estimate` with ``value`` and ``stderr`` of shape ``(k,)``.

    >>> x = torch.tensor([0.2, 0.7, 0.9, 0.4])
    >>> estimate = mode_weights(torch.stack([x < 0.5, x >= 0.5], -1).double())
    >>> estimate.value.tolist(), [round(s, 4) for s in estimate.stderr.tolist()]
    ([0.5, 0.5], [0.25, 0.25])
    """
    check_tensor(membership, "membership")
    if membership.dim() not in (2, 3) or 0 in membership.shape:
        raise ValueError(
            "membership must have shape (n, k) for independent samples or (n_steps, n_walkers, k) for chains, "
            f"got {tuple(membership.shape)}"
        )
    check_finite(membership, "membership")
    if chain_error not in ("walkers", "ess"):
        raise ValueError(f"chain_error must be 'walkers' or 'ess', got {chain_error!r}")
    if bool(((membership < 0) | (membership > 1)).any()):
        raise ValueError("membership must lie in [0, 1] (an indicator or a soft assignment to each mode)")
    if membership.dim() == 3:
        if log_weights is not None:
            raise ValueError("log_weights weigh independent samples: pass membership of shape (n, k) with them")
        if membership.shape[1] < 2:
            raise ValueError(f"chains need at least 2 walkers for an error bar, got membership of shape {tuple(membership.shape)}")
        if chain_error == "ess":
            return Estimate(membership.mean((0, 1)), mcse(membership))
        per_walker = membership.mean(0)  # (n_walkers, k)
        return Estimate(per_walker.mean(0), per_walker.std(0) / math.sqrt(per_walker.shape[0]))
    if log_weights is None:
        n = membership.shape[0]
        value = membership.mean(0)
        return Estimate(value, torch.sqrt((membership - value).square().sum(0)) / n)
    check_tensor(log_weights, "log_weights")
    if log_weights.shape != membership.shape[:1]:
        raise ValueError(f"log_weights must have shape ({membership.shape[0]},), one per sample, got {tuple(log_weights.shape)}")
    estimates = [reweighted_expectation(membership[:, j], log_weights) for j in range(membership.shape[1])]
    return Estimate(torch.stack([e.value for e in estimates]), torch.stack([e.stderr for e in estimates]))
