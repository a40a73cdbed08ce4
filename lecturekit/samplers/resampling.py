r"""Resampling a weighted particle system (the selection step of sequential Monte Carlo).

Given particles :math:`x_i` with normalised weights :math:`W_i`, resampling draws ancestor
indices :math:`a_1,\dots,a_M` such that each particle is copied :math:`N_i` times with

.. math::

    \mathbb{E}[N_i] = M\,W_i ,

after which all copies carry equal weight. Expectations of any function are unchanged,
but particles of small weight die and particles of large weight multiply.

- **Multinomial** (the bootstrap filter of Gordon, Salmond & Smith 1993): :math:`a_j` i.i.d.
  from :math:`W`, so :math:`N \sim \mathrm{Multinomial}(M, W)`,
  :math:`\mathrm{Var}\,N_i = M W_i (1 - W_i)`.
- **Systematic** (Kitagawa 1996; Carpenter, Clifford & Fearnhead 1999): one uniform
  :math:`u\sim U[0,1)` and the :math:`M` evenly spaced points :math:`(u + j)/M`; particle
  :math:`i` is copied once for every point falling in
  :math:`[\sum_{l<i} W_l, \sum_{l\le i} W_l)`. Then :math:`N_i \in \{\lfloor M W_i\rfloor,
  \lceil M W_i\rceil\}`, so :math:`\mathrm{Var}\,N_i = f(1-f) \le M W_i(1-W_i)` with
  :math:`f` the fractional part of :math:`M W_i`: never noisier than multinomial, one random
  number for the whole population (Douc, Cappé & Moulines 2005).

Both take *log*-weights (``-inf`` is a zero weight) and return indices on their device.

References:
    | Novel approach to nonlinear/non-Gaussian Bayesian state estimation (Gordon et al., 1993)
    | https://doi.org/10.1049/ip-f-2.1993.0015
    | Monte Carlo Filter and Smoother for Non-Gaussian Nonlinear State Space Models (Kitagawa, 1996)
    | https://doi.org/10.1080/10618600.1996.10474692
    | Comparison of Resampling Schemes for Particle Filtering (Douc et al., 2005)
    | https://arxiv.org/abs/cs/0507025
"""

from __future__ import annotations

import torch
from torch import Tensor

from lecturekit.checks import check_positive_int

from lecturekit.diagnostics import normalized_weights

__all__ = ["multinomial_resample", "systematic_resample"]


def _weights_and_count(log_weights: Tensor, n_samples: int | None) -> tuple[Tensor, int]:
    weights = normalized_weights(log_weights)
    if log_weights.dim() != 1:
        raise ValueError(f"log_weights must have shape (n,), got {tuple(log_weights.shape)}")
    if n_samples is None:
        n_samples = log_weights.shape[0]
    n_samples = check_positive_int(n_samples, "n_samples")
    return weights, n_samples


def systematic_resample(log_weights: Tensor, n_samples: int | None = None) -> Tensor:
    r"""Ancestor indices by systematic resampling, shape ``(n_samples,)`` (default ``n``), sorted.

    The points :math:`(u + j)/M`, :math:`j = 0..M-1`, :math:`u \sim U[0, 1)`, are located in
    the cumulative weights with ``searchsorted``: ancestor :math:`a_j = i` when

    .. math::

        \sum_{l<i} W_l \le \frac{u + j}{M} < \sum_{l\le i} W_l ,

    so each index appears :math:`\lfloor M W_i\rfloor` or :math:`\lceil M W_i\rceil` times,
    :math:`M W_i` on average.

    Example:
        >>> _ = torch.manual_seed(0)
        >>> systematic_resample(torch.log(torch.tensor([0.5, 0.25, 0.25, 0.0])))
        tensor([0, 0, 1, 2])
        >>> torch.bincount(systematic_resample(torch.log(torch.tensor([0.3, 0.7])), 10))  # M W = (3, 7)
        tensor([3, 7])
        >>> counts = torch.bincount(systematic_resample(torch.log(torch.tensor([0.35, 0.65])), 10))
        >>> int(counts[0]) in (3, 4)  # floor or ceil of M W_0 = 3.5
        True

    References:
        | Monte Carlo Filter and Smoother for Non-Gaussian Nonlinear State Space Models (Kitagawa, 1996)
        | https://doi.org/10.1080/10618600.1996.10474692
        | Comparison of Resampling Schemes for Particle Filtering (Douc et al., 2005)
        | https://arxiv.org/abs/cs/0507025
    """
    weights, n_samples = _weights_and_count(log_weights, n_samples)
    cumulative = torch.cumsum(weights, 0)
    u = torch.rand((), dtype=weights.dtype, device=weights.device)
    points = (u + torch.arange(n_samples, dtype=weights.dtype, device=weights.device)) / n_samples
    indices = torch.searchsorted(cumulative, points, right=True)
    # the last cumulative weight may round below 1: points beyond it belong to the last particle of positive weight
    last = torch.nonzero(weights > 0).max()
    return torch.minimum(indices, last)


def multinomial_resample(log_weights: Tensor, n_samples: int | None = None) -> Tensor:
    r"""Ancestor indices drawn i.i.d. from the normalised weights, shape ``(n_samples,)`` (default ``n``).

    .. math::

        a_j \overset{\text{i.i.d.}}{\sim} \mathrm{Categorical}(W_1, \dots, W_n), \qquad
        N_i = \#\{j : a_j = i\} \sim \mathrm{Binomial}(M, W_i).

    Example:
        >>> _ = torch.manual_seed(0)
        >>> multinomial_resample(torch.tensor([0.0, -float("inf")]), 3)
        tensor([0, 0, 0])
        >>> weights = torch.tensor([0.5, 0.3, 0.2])
        >>> frequencies = torch.bincount(multinomial_resample(weights.log(), 10000)) / 10000
        >>> bool((frequencies - weights).abs().max() < 0.02)  # E[N_i] / M = W_i
        True

    References:
        | Novel approach to nonlinear/non-Gaussian Bayesian state estimation (Gordon et al., 1993)
        | https://doi.org/10.1049/ip-f-2.1993.0015
        | Comparison of Resampling Schemes for Particle Filtering (Douc et al., 2005)
        | https://arxiv.org/abs/cs/0507025
    """
    weights, n_samples = _weights_and_count(log_weights, n_samples)
    return torch.multinomial(weights, n_samples, replacement=True)
