r"""How many independent samples is a weighted or a correlated sample worth?

Two answers, one for each family of samplers in the course.

*Importance sampling* gives :math:`N` independent samples with weights :math:`w_i`.
Kish's effective sample size (Kish 1965)

.. math::

    \mathrm{ESS} = \frac{\big(\sum_i w_i\big)^2}{\sum_i w_i^2}
                 = \exp\big(2\,\mathrm{LSE}(\log w) - \mathrm{LSE}(2 \log w)\big)

is :math:`N` for equal weights and 1 when a single sample carries all the weight.
It is computed from *log*-weights with ``logsumexp`` (LSE), so that weights like
:math:`e^{-10^4}` neither underflow nor overflow.

*MCMC* gives :math:`N` correlated samples. With the normalised autocorrelation
function :math:`\rho(t)` of a scalar observable, the integrated autocorrelation time

.. math::

    \tau = 1 + 2 \sum_{t=1}^{\infty} \rho(t)

says how many steps one independent sample costs: :math:`\mathrm{ESS} = N / \tau`
and the Monte Carlo standard error of the chain mean is
:math:`\sqrt{\operatorname{Var}(f) / \mathrm{ESS}}`. The sum is truncated with
Sokal's automatic window (Sokal 1997), as in emcee (Foreman-Mackey et al. 2013).
"""

from __future__ import annotations

import math
from typing import NamedTuple

import torch
from torch import Tensor

__all__ = [
    "ChainTooShortError",
    "acceptance_rate",
    "autocorrelation",
    "ess_from_log_weights",
    "integrated_autocorr_time",
    "mcmc_ess",
    "mcse",
    "nearest_mode",
    "normalized_weights",
]


class ChainTooShortError(ValueError):
    """The chain is too short for a trustworthy autocorrelation time.

    The estimate that was refused is kept in :attr:`tau`, for plots and curiosity only.
    """

    def __init__(self, message: str, tau: Tensor | None = None) -> None:
        super().__init__(message)
        self.tau = tau


# --------------------------------------------------------------------------- weights


def _check_log_weights(log_weights: Tensor) -> None:
    if not isinstance(log_weights, Tensor):
        raise TypeError(f"log_weights must be a torch.Tensor, got {type(log_weights).__name__}")
    if not log_weights.is_floating_point():
        raise TypeError(f"log_weights must be a floating-point tensor, got dtype {log_weights.dtype}")
    if log_weights.dim() == 0 or log_weights.shape[-1] == 0:
        raise ValueError(f"log_weights must have shape (..., n) with n >= 1, got {tuple(log_weights.shape)}")
    if bool(torch.isnan(log_weights).any()) or bool(torch.isposinf(log_weights).any()):
        raise ValueError("log_weights must not contain NaN or +inf")


def normalized_weights(log_weights: Tensor) -> Tensor:
    r"""Self-normalised weights :math:`w_i = e^{\log w_i} / \sum_j e^{\log w_j}` (softmax over the last axis).

    >>> normalized_weights(torch.tensor([0.0, 0.0, -float("inf")]))
    tensor([0.5000, 0.5000, 0.0000])
    """
    _check_log_weights(log_weights)
    if bool(torch.isneginf(log_weights).all(-1).any()):
        raise ValueError("log_weights are all -inf (along the last axis): no sample has positive weight")
    return torch.softmax(log_weights, dim=-1)


def ess_from_log_weights(log_weights: Tensor) -> Tensor:
    r"""Kish's effective sample size (Kish 1965) from log-weights, over the last axis.

    .. math::

        \mathrm{ESS} = \exp\big(2\,\mathrm{LSE}(\log w) - \mathrm{LSE}(2 \log w)\big)
        \in [1, N],

    and 0 when every weight is zero. Leading axes are batch axes.

    >>> float(ess_from_log_weights(torch.zeros(10)))
    10.0
    >>> float(ess_from_log_weights(torch.tensor([0.0, -float("inf"), -float("inf")])))
    1.0
    """
    _check_log_weights(log_weights)
    top = log_weights.amax(dim=-1, keepdim=True)  # ESS is scale-free: centre for full precision
    centred = log_weights - torch.where(torch.isfinite(top), top, torch.zeros_like(top))
    log_sum = torch.logsumexp(centred, dim=-1)
    log_sum_sq = torch.logsumexp(2 * centred, dim=-1)
    ess = torch.exp(2 * log_sum - log_sum_sq)
    return torch.where(torch.isneginf(log_sum), torch.zeros_like(ess), ess)


# --------------------------------------------------------------------------- chains


def acceptance_rate(accepted: Tensor) -> float:
    """Fraction of accepted Metropolis-Hastings proposals in a boolean tensor of any shape.

    >>> acceptance_rate(torch.tensor([True, False, True, True]))
    0.75
    """
    if not isinstance(accepted, Tensor) or accepted.dtype != torch.bool:
        raise TypeError(f"accepted must be a bool tensor, got {getattr(accepted, 'dtype', type(accepted).__name__)}")
    if accepted.numel() == 0:
        raise ValueError("accepted is empty")
    return float(accepted.float().mean())


def _check_chain(chain: Tensor) -> Tensor:
    """Validate ``chain`` and return it as ``(n_steps, n_chains, k)``."""
    if not isinstance(chain, Tensor):
        raise TypeError(f"chain must be a torch.Tensor, got {type(chain).__name__}")
    if not chain.is_floating_point():
        raise TypeError(f"chain must be a floating-point tensor, got dtype {chain.dtype}")
    if chain.dim() not in (1, 2, 3):
        raise ValueError(
            f"chain must have shape (n_steps,), (n_steps, n_chains) or (n_steps, n_chains, dim); got {tuple(chain.shape)}"
        )
    if chain.shape[0] < 2 or chain.numel() == 0:
        raise ValueError(f"chain needs at least 2 steps and 1 chain, got shape {tuple(chain.shape)}")
    if not bool(torch.isfinite(chain).all()):
        raise ValueError("chain contains NaN or inf")
    n_steps = chain.shape[0]
    n_chains = chain.shape[1] if chain.dim() >= 2 else 1
    return chain.reshape(n_steps, n_chains, -1)


def autocorrelation(chain: Tensor) -> Tensor:
    r"""Normalised autocorrelation function along axis 0, computed with the FFT.

    .. math::

        \rho(t) = \frac{C(t)}{C(0)}, \qquad
        C(t) = \frac{1}{N} \sum_{s=0}^{N-1-t} (x_s - \bar x)(x_{s+t} - \bar x).

    ``chain`` has shape ``(n_steps,)``, ``(n_steps, n_chains)`` or
    ``(n_steps, n_chains, dim)``; the result has the same shape (one ACF per chain and
    coordinate). A chain that never moves gets :math:`\rho \equiv 1`.

    >>> rho = autocorrelation(torch.randn(1000))
    >>> float(rho[0])
    1.0
    """
    x = _check_chain(chain)
    n = x.shape[0]
    stuck = (x == x[:1]).all(0, keepdim=True)  # exactly constant: rounding would fake a variance
    x = x - x.mean(0)
    n_fft = 2 ** math.ceil(math.log2(2 * n))  # zero-padding: no wrap-around
    spectrum = torch.fft.rfft(x, n=n_fft, dim=0)
    autocov = torch.fft.irfft(spectrum.abs().square(), n=n_fft, dim=0)[:n]
    rho = torch.where(stuck, torch.ones_like(autocov), autocov / autocov[:1])
    return rho.reshape(chain.shape)


def integrated_autocorr_time(chain: Tensor, c: float = 5.0, min_length_factor: float = 50.0) -> Tensor:
    r"""Integrated autocorrelation time with Sokal's automatic window (Sokal 1997).

    .. math::

        \hat\tau(M) = 1 + 2 \sum_{t=1}^{M} \hat\rho(t), \qquad
        M = \min\{M : M \ge c\, \hat\tau(M)\}.

    With several chains, the ACF is averaged over chains before summing (as emcee
    does). ``chain`` has shape ``(n_steps,)``, ``(n_steps, n_chains)`` (both give a
    scalar) or ``(n_steps, n_chains, dim)`` (one :math:`\tau` per coordinate).

    Raises :class:`ChainTooShortError` when ``n_steps < min_length_factor * tau``: the
    estimate is then biased low and should not be reported (emcee's rule, factor 50).

    For an AR(1) chain :math:`x_{t+1} = \phi x_t + \epsilon_t`,
    :math:`\tau = (1 + \phi) / (1 - \phi)`.
    """
    if not (isinstance(c, (int, float)) and c > 0):
        raise ValueError(f"c must be a positive number, got {c!r}")
    if not (isinstance(min_length_factor, (int, float)) and min_length_factor >= 0):
        raise ValueError(f"min_length_factor must be a non-negative number, got {min_length_factor!r}")
    rho = autocorrelation(chain)
    n = rho.shape[0]
    rho = rho.reshape(n, chain.shape[1] if chain.dim() >= 2 else 1, -1).mean(1)  # (n, k)
    taus = 2 * torch.cumsum(rho, dim=0) - 1  # taus[M] = tau(M)
    lags = torch.arange(n, dtype=rho.dtype, device=rho.device).unsqueeze(-1)
    window_ok = lags >= c * taus
    window = torch.where(window_ok.any(0), window_ok.int().argmax(0), n - 1)  # first M that passes
    tau = taus.gather(0, window.unsqueeze(0)).squeeze(0)
    tau = tau.reshape(chain.shape[2:]) if chain.dim() == 3 else tau.squeeze(0)
    if n < min_length_factor * float(tau.max()):
        raise ChainTooShortError(
            f"chain has n_steps={n} but needs at least {min_length_factor:g} * tau = "
            f"{min_length_factor * float(tau.max()):.0f} steps for a reliable estimate (tau ~ {tau.tolist()}); "
            "run it longer",
            tau=tau,
        )
    return tau


def mcmc_ess(chain: Tensor, **kwargs: float) -> Tensor:
    r"""Effective sample size of a set of chains, :math:`N_\text{steps} N_\text{chains} / \tau`.

    Keyword arguments go to :func:`integrated_autocorr_time`.
    """
    tau = integrated_autocorr_time(chain, **kwargs)
    n_samples = chain.shape[0] * (chain.shape[1] if chain.dim() >= 2 else 1)
    return n_samples / tau


def mcse(chain: Tensor, **kwargs: float) -> Tensor:
    r"""Monte Carlo standard error of the mean of ``chain`` over steps and chains.

    .. math::

        \mathrm{MCSE} = \sqrt{\widehat{\operatorname{Var}}(x) \,/\, \mathrm{ESS}},
        \qquad \mathrm{ESS} = N_\text{steps} N_\text{chains} / \tau.

    A scalar for ``(n_steps,)`` or ``(n_steps, n_chains)``; shape ``(dim,)`` for
    ``(n_steps, n_chains, dim)``. Keyword arguments go to :func:`integrated_autocorr_time`.
    """
    ess = mcmc_ess(chain, **kwargs)
    flat = chain.reshape(-1, *chain.shape[2:]) if chain.dim() >= 2 else chain
    return torch.sqrt(flat.var(0) / ess)


# --------------------------------------------------------------------------- modes


def nearest_mode(x: Tensor, modes: Tensor) -> Tensor:
    """Index of the nearest of ``modes`` (shape ``(K, dim)``) for each point of ``x`` (``(..., dim)``).

    A crude but transparent way to tell which basin a sample sits in, for mode
    occupancy plots: returns integers of shape ``x.shape[:-1]``.

    >>> nearest_mode(torch.tensor([[0.9, 1.2], [-2.0, -0.5]]), torch.tensor([[1.0, 1.0], [-1.0, -1.0]]))
    tensor([0, 1])
    """
    if not isinstance(x, Tensor) or not isinstance(modes, Tensor):
        raise TypeError("x and modes must be torch.Tensors")
    if modes.dim() != 2 or modes.shape[0] == 0 or x.dim() == 0 or x.shape[-1] != modes.shape[-1]:
        raise ValueError(f"modes must have shape (K, dim) and x shape (..., dim); got {tuple(modes.shape)} and {tuple(x.shape)}")
    flat = x.reshape(-1, x.shape[-1])
    return torch.cdist(flat, modes.to(flat)).argmin(-1).reshape(x.shape[:-1])


__all__ += ["ModeOccupancy", "mode_occupancy"]


class ModeOccupancy(NamedTuple):
    """Output of :func:`mode_occupancy`."""

    visited: Tensor  #: ``(n_chains, K)`` bool: some sample of the chain is nearest to mode ``k``
    fractions: Tensor  #: ``(K,)``: fraction of all samples (steps and chains) nearest to each mode
    #: ``(K,)``: ``|fractions - exact_weights|``, or ``None`` when no exact weights were given
    weight_error: Tensor | None

    @property
    def modes_found(self) -> Tensor:
        """``(K,)`` bool: the modes that at least one chain visited."""
        return self.visited.any(0)


def mode_occupancy(chains: Tensor, modes: Tensor, exact_weights: Tensor | None = None) -> ModeOccupancy:
    r"""Which modes each chain visited, and the fraction of samples in each mode.

    Each sample of ``chains`` (shape ``(n_steps, n_chains, dim)``) is assigned to its
    nearest centre in ``modes`` (``(K, dim)``) with :func:`nearest_mode`. Chain :math:`c`
    *visited* mode :math:`k` if at least one of its samples is assigned to :math:`k`, and the
    estimated weight of mode :math:`k` is

    .. math::

        \hat w_k = \frac{1}{N_\text{steps} N_\text{chains}} \sum_{t, c}
            \mathbb{1}\big[\operatorname{nearest}(x^c_t) = k\big],

    to compare with the exact weights :math:`w_k` (``exact_weights``, shape ``(K,)``) through
    :math:`|\hat w_k - w_k|` (as in Grenioux, Durmus, Moulines & Gabrié, ICML 2023). The
    nearest centre is a fair basin label only for well-separated, similar modes.

    >>> chains = torch.tensor([[[0.1], [2.1]], [[1.9], [2.0]]])  # 2 steps, 2 chains, dim 1
    >>> occupancy = mode_occupancy(chains, torch.tensor([[0.0], [2.0]]), torch.tensor([0.5, 0.5]))
    >>> occupancy.visited
    tensor([[ True,  True],
            [False,  True]])
    >>> occupancy.fractions, occupancy.weight_error
    (tensor([0.2500, 0.7500]), tensor([0.2500, 0.2500]))
    """
    if not isinstance(chains, Tensor) or not chains.is_floating_point():
        raise TypeError(f"chains must be a floating-point torch.Tensor, got {getattr(chains, 'dtype', type(chains).__name__)}")
    if not isinstance(modes, Tensor) or not modes.is_floating_point():
        raise TypeError(f"modes must be a floating-point torch.Tensor, got {getattr(modes, 'dtype', type(modes).__name__)}")
    if modes.dim() != 2 or modes.shape[0] == 0:
        raise ValueError(f"modes must have shape (K, dim) with K >= 1, got {tuple(modes.shape)}")
    n_modes, dim = modes.shape
    if chains.dim() != 3 or chains.shape[0] == 0 or chains.shape[1] == 0 or chains.shape[2] != dim:
        raise ValueError(f"chains must have shape (n_steps, n_chains, {dim}) with n_steps, n_chains >= 1, got {tuple(chains.shape)}")
    if not bool(torch.isfinite(chains).all()):
        raise ValueError("chains contain NaN or inf")
    if not bool(torch.isfinite(modes).all()):
        raise ValueError("modes contain NaN or inf")
    labels = nearest_mode(chains.detach(), modes.to(chains.device))  # (n_steps, n_chains)
    one_hot = torch.nn.functional.one_hot(labels, n_modes)  # (n_steps, n_chains, K)
    visited = one_hot.any(0)
    fractions = one_hot.sum((0, 1)).to(chains.dtype) / labels.numel()
    weight_error = None
    if exact_weights is not None:
        if not isinstance(exact_weights, Tensor) or not exact_weights.is_floating_point():
            raise TypeError(f"exact_weights must be a floating-point torch.Tensor, got {type(exact_weights).__name__}")
        if exact_weights.shape != (n_modes,):
            raise ValueError(f"exact_weights must have shape ({n_modes},), got {tuple(exact_weights.shape)}")
        if not bool(torch.isfinite(exact_weights).all()) or bool((exact_weights < 0).any()):
            raise ValueError("exact_weights must be finite and non-negative")
        weight_error = (fractions - exact_weights.to(fractions)).abs()
    return ModeOccupancy(visited, fractions, weight_error)
