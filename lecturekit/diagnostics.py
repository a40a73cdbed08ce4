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
Sokal's automatic window (Madras & Sokal 1988; Sokal 1997), as in emcee
(Foreman-Mackey et al. 2013).

*Several chains* can do more: they can disagree. Each chain's autocorrelation above is
measured around that chain's own mean, so four chains stuck in four different modes
look perfectly mixed. The multi-chain diagnostics of Vehtari, Gelman, Simpson,
Carpenter & Bürkner (Bayesian Analysis 16(2), 667, 2021) compare chains with each other:
with :math:`M` chains of :math:`N` steps (each split in two halves, so that a drift
within a chain also shows), chain means :math:`\bar x_m`, within-chain variances
:math:`s_m^2` and

.. math::

    W = \frac1M \sum_m s_m^2, \qquad
    B = \frac{N}{M-1} \sum_m (\bar x_m - \bar x)^2, \qquad
    \widehat{\operatorname{var}}^+ = \frac{N-1}{N} W + \frac1N B,

the potential scale reduction of Gelman & Rubin (1992) is
:math:`\hat R = \sqrt{\widehat{\operatorname{var}}^+ / W}`
(:func:`rhat`; close to 1 when the chains agree, :math:`\hat R > 1.01` is a warning) and
the autocorrelations are measured against the pooled variance,
:math:`\hat\rho_t = 1 - (W - \overline{C_m(t)}) / \widehat{\operatorname{var}}^+`, so that
disagreement between chains lowers the effective sample size (:func:`mcmc_ess`) and
raises the standard error (:func:`mcse`); the autocorrelation sum is truncated by Geyer's
initial positive sequence (Geyer 1992). These are the defaults; the within-chain
versions stay available with ``method="within_chain"``.

*Several modes*: :func:`mode_occupancy` labels each sample by its nearest mode and compares
the fraction of samples in each with the exact weights, as Grenioux et al. (2023) do.

References:
    | Monte Carlo Methods in Statistical Mechanics: Foundations and New Algorithms (Sokal, 1997)
    | https://doi.org/10.1007/978-1-4899-0319-8_6
    | The pivot algorithm: A highly efficient Monte Carlo method for the self-avoiding walk (Madras & Sokal, 1988)
    | https://doi.org/10.1007/BF01022990
    | emcee: The MCMC Hammer (Foreman-Mackey et al., 2013)
    | https://doi.org/10.1086/670067
    | Inference from Iterative Simulation Using Multiple Sequences (Gelman & Rubin, 1992)
    | https://doi.org/10.1214/ss/1177011136
    | Practical Markov Chain Monte Carlo (Geyer, 1992)
    | https://doi.org/10.1214/ss/1177011137
    | Rank-Normalization, Folding, and Localization: An Improved R-hat for Assessing Convergence of MCMC (Vehtari et al., 2021)
    | https://doi.org/10.1214/20-BA1221
    | On Sampling with Approximate Transport Maps (Grenioux et al., 2023)
    | https://arxiv.org/abs/2302.04763
"""

from __future__ import annotations

import math
from typing import NamedTuple

import torch
from torch import Tensor

from lecturekit.checks import check_number, check_tensor

__all__ = [
    "ChainTooShortError",
    "ConstantChainError",
    "acceptance_rate",
    "autocorrelation",
    "ess_from_log_weights",
    "integrated_autocorr_time",
    "mcmc_ess",
    "mcse",
    "nearest_mode",
    "normalized_weights",
    "rhat",
]

ESS_METHODS = ("bulk", "mean", "within_chain")
MCSE_METHODS = ("mean", "within_chain")


class ChainTooShortError(ValueError):
    """The chain is too short for a trustworthy autocorrelation time.

    The estimate that was refused is kept in :attr:`tau`, for plots and curiosity only.
    """

    def __init__(self, message: str, tau: Tensor | None = None) -> None:
        super().__init__(message)
        self.tau = tau


class ConstantChainError(ValueError):
    """The chains never move: an autocorrelation time (0/0) or an R-hat is undefined.

    Unlike :class:`ChainTooShortError`, running longer cannot help: the sampler is stuck
    (e.g. a step size so large that every proposal is rejected).
    """


# --------------------------------------------------------------------------- weights


def _check_log_weights(log_weights: Tensor) -> None:
    check_tensor(log_weights, "log_weights")
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
    return _kish_ess(log_weights)


def _kish_ess(log_weights: Tensor) -> Tensor:
    """:func:`ess_from_log_weights` without its checks, so without a device sync (the training
    loop calls it every step); NaN log-weights count as zero weights."""
    log_weights = torch.where(torch.isnan(log_weights), -math.inf, log_weights)
    top = log_weights.amax(dim=-1, keepdim=True)  # ESS is scale-free: centre for full precision
    centred = log_weights - torch.where(torch.isfinite(top), top, torch.zeros_like(top))
    log_sum = torch.logsumexp(centred, dim=-1)
    log_sum_sq = torch.logsumexp(2 * centred, dim=-1)
    ess = torch.exp(2 * log_sum - log_sum_sq)
    return torch.where(torch.isneginf(log_sum), torch.zeros_like(ess), ess).nan_to_num(0.0)  # +inf weights: 0


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


def _check_chain(chain: Tensor, min_steps: int = 2) -> Tensor:
    """Validate ``chain`` and return it as ``(n_steps, n_chains, k)``, in at least ``float32``.

    Half-precision chains (``float16``, ``bfloat16``) are upcast: their autocorrelation
    would lose all precision, and torch's FFT refuses them on the CPU.
    """
    check_tensor(chain, "chain")
    if chain.dim() not in (1, 2, 3):
        raise ValueError(
            f"chain must have shape (n_steps,), (n_steps, n_chains) or (n_steps, n_chains, dim); got {tuple(chain.shape)}"
        )
    if chain.shape[0] < min_steps or chain.numel() == 0:
        raise ValueError(f"chain needs at least {min_steps} steps and 1 chain, got shape {tuple(chain.shape)}")
    if not bool(torch.isfinite(chain).all()):
        raise ValueError("chain contains NaN or inf")
    n_steps = chain.shape[0]
    n_chains = chain.shape[1] if chain.dim() >= 2 else 1
    if chain.dtype.itemsize < 4:
        chain = chain.float()
    return chain.reshape(n_steps, n_chains, -1)


def _autocovariance(x: Tensor) -> Tensor:
    r"""Biased autocovariance :math:`C(t) = \frac1N \sum_{s<N-t} (x_s - \bar x)(x_{s+t} - \bar x)` along axis 0 (FFT)."""
    n = x.shape[0]
    x = x - x.mean(0)
    n_fft = 2 ** math.ceil(math.log2(2 * n))  # zero-padding: no wrap-around
    spectrum = torch.fft.rfft(x, n=n_fft, dim=0)
    return torch.fft.irfft(spectrum.abs().square(), n=n_fft, dim=0)[:n] / n


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
    stuck = (x == x[:1]).all(0, keepdim=True)  # exactly constant: rounding would fake a variance
    autocov = _autocovariance(x)
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
    Raises :class:`ConstantChainError` (a ``ValueError``) when every chain is constant in a
    coordinate: :math:`\tau` is then undefined (0/0), and no number of steps would help.

    This is a *within-chain* quantity: each chain's autocorrelation is measured around
    its own mean, so chains stuck in different modes are not noticed (use :func:`rhat`).

    For an AR(1) chain :math:`x_{t+1} = \phi x_t + \epsilon_t`,
    :math:`\tau = (1 + \phi) / (1 - \phi)`.
    """
    c = check_number(c, "c", positive=True)
    min_length_factor = check_number(min_length_factor, "min_length_factor", non_negative=True)
    x = _check_chain(chain)
    constant = (x == x[:1]).all(0).all(0)  # (k,): every chain of this coordinate is constant
    if bool(constant.any()):
        raise ConstantChainError(
            f"chain never moves: every chain is constant in coordinates {torch.nonzero(constant).flatten().tolist()}, so "
            "its autocorrelation time is undefined and running longer cannot help; check that the sampler moves"
        )
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


def _split_chains(x: Tensor) -> Tensor:
    """``(n, m, k) -> (n // 2, 2 m, k)``: each chain cut in two halves (the middle step dropped when ``n`` is odd)."""
    half = x.shape[0] // 2
    return torch.cat([x[:half], x[x.shape[0] - half :]], dim=1)


def _rank_normalize(x: Tensor) -> Tensor:
    r"""Rank-normalised draws :math:`z = \Phi^{-1}\big((r - 3/8) / (S + 1/4)\big)` per coordinate.

    :math:`r` is the rank of a draw among all :math:`S` draws of all chains (ties get their
    average rank), as in Vehtari et al. (2021), eq. 14. ``x`` has shape ``(n, m, k)``.
    """
    n, m, k = x.shape
    flat = x.reshape(n * m, k)
    ranks = torch.empty_like(flat)
    for j in range(k):
        values, order = torch.sort(flat[:, j])
        _, group, counts = torch.unique_consecutive(values, return_inverse=True, return_counts=True)
        first = torch.cumsum(counts, 0) - counts  # 0-based position of each group of ties
        average_rank = first.to(flat.dtype) + (counts.to(flat.dtype) + 1) / 2
        ranks[order, j] = average_rank[group]
    return torch.special.ndtri((ranks - 0.375) / (n * m + 0.25)).reshape(n, m, k)


def _rhat_raw(x: Tensor) -> Tensor:
    r""":math:`\sqrt{\widehat{\operatorname{var}}^+ / W}` of ``(n, m, k)`` chains, shape ``(k,)``."""
    n = x.shape[0]
    between = n * x.mean(0).var(0, correction=1)
    within = x.var(0, correction=1).mean(0)
    return torch.sqrt((between / within + n - 1) / n)


def _ess_raw(x: Tensor) -> Tensor:
    r"""Multi-chain effective sample size of ``(n, m, k)`` chains, shape ``(k,)`` (Vehtari et al. 2021, sec. 3.2).

    .. math::

        \hat\rho_t = 1 - \frac{W - \frac1M\sum_m C_m(t)}{\widehat{\operatorname{var}}^+},
        \qquad \mathrm{ESS} = \frac{NM}{\hat\tau}, \quad
        \hat\tau = -1 + 2 \sum_{t=0}^{2K+1} \hat\rho_t + \hat\rho_{2K+2},

    where the sum runs over the pairs :math:`P_j = \hat\rho_{2j} + \hat\rho_{2j+1}` of
    Geyer's initial positive sequence (up to the first non-positive pair), made monotone
    (Geyer 1992); :math:`\hat\tau` is at least :math:`1 / \log_{10}(NM)`. This follows
    the reference implementation of ArviZ and Stan step by step.
    """
    n, m, _ = x.shape
    autocov = _autocovariance(x)  # (n, m, k)
    mean_autocov = autocov.mean(1)  # (n, k)
    within = mean_autocov[0] * n / (n - 1)
    var_plus = within * (n - 1) / n
    if m > 1:
        var_plus = var_plus + x.mean(0).var(0, correction=1)
    rho = 1 - (within - mean_autocov) / var_plus  # (n, k)
    rho[0] = 1  # by definition (the formula gives 1 - W / (N var+), not quite 1)
    n_pairs = n // 2
    pairs = rho[0 : 2 * n_pairs : 2] + rho[1 : 2 * n_pairs : 2]  # (n_pairs, k)
    j = torch.arange(n_pairs, device=x.device).unsqueeze(-1)
    computed = (j == 0) | (2 * j - 1 < n - 3)  # pairs the reference implementation looks at
    negative = pairs <= 0
    stop = torch.cat([~computed | negative, torch.ones_like(negative[:1])])  # a last row where every column stops
    first_stop = stop.int().argmax(0)  # (k,), n_pairs where every pair was looked at and positive
    at = first_stop.clamp(max=n_pairs - 1).unsqueeze(0)
    stopped_by_sign = (first_stop < n_pairs) & (negative & computed).gather(0, at).squeeze(0)
    # n_kept: how many leading pairs enter the sum; the even element of the pair after them is added on its own
    n_kept = torch.where(stopped_by_sign, first_stop, first_stop - 1)
    n_kept = torch.clamp(n_kept, min=0)
    monotone = torch.cummin(pairs, dim=0).values
    kept = j < n_kept.unsqueeze(0)
    tau = -1 + 2 * torch.where(kept, monotone, torch.zeros_like(monotone)).sum(0)
    next_even = rho.gather(0, (2 * n_kept).clamp(max=n - 1).unsqueeze(0)).squeeze(0)
    next_pair = pairs.gather(0, n_kept.unsqueeze(0)).squeeze(0)
    add_even = (next_even > 0) | (next_pair >= 0) | (n_kept == 0)
    tau = tau + torch.where(add_even, next_even, torch.zeros_like(next_even))
    tau = torch.clamp(tau, min=1 / math.log10(n * m))
    return n * m / tau


def _multi_chain_input(chain: Tensor) -> tuple[Tensor, torch.dtype]:
    """``chain`` as split ``(n // 2, 2 m, k)`` chains in float64 (float32 on MPS), and the dtype to return."""
    x = _check_chain(chain, min_steps=4)
    out_dtype = x.dtype
    work = torch.float32 if x.device.type == "mps" else torch.float64
    x = _split_chains(x.to(work))
    total_constant = (x == x[:1, :1]).all(0).all(0)
    if bool(total_constant.any()):
        raise ConstantChainError(
            f"chain takes a single value in coordinates {torch.nonzero(total_constant).flatten().tolist()}: "
            "R-hat and the effective sample size are undefined there (0/0); check that the sampler moves"
        )
    return x, out_dtype


def _shape_result(values: Tensor, chain: Tensor, dtype: torch.dtype) -> Tensor:
    """``(k,)`` -> a scalar for ``(n,)`` or ``(n, m)`` chains, ``(dim,)`` for ``(n, m, dim)``."""
    values = values.to(dtype)
    return values.reshape(chain.shape[2:]) if chain.dim() == 3 else values.squeeze(0)


def _median(flat: Tensor) -> Tensor:
    """Median over axis 0, the mean of the two middle values for an even count (as NumPy's)."""
    ordered = flat.sort(0).values
    n = ordered.shape[0]
    return (ordered[(n - 1) // 2] + ordered[n // 2]) / 2


def rhat(chain: Tensor) -> Tensor:
    r"""Rank-normalised split :math:`\hat R` (Vehtari, Gelman, Simpson, Carpenter & Bürkner 2021).

    The chains are split in halves, rank-normalised (:math:`z = \Phi^{-1}` of the scaled
    pooled ranks, so heavy tails do no harm), and

    .. math::

        \hat R = \max\big(\hat R_\text{bulk}, \hat R_\text{tail}\big), \qquad
        \hat R_\cdot = \sqrt{\frac{\frac{N-1}{N} W + \frac1N B}{W}},

    with :math:`W` and :math:`B` the within- and between-chain variances of the
    normalised draws (bulk) and of the normalised folded draws :math:`|x - \operatorname{median}(x)|`
    (tail). Values near 1 mean the chains agree; Vehtari et al. recommend using the
    samples only when :math:`\hat R < 1.01`. Chains stuck in different modes give
    :math:`\hat R \gg 1`. Chains that are each constant but disagree give
    :math:`+\infty`; a coordinate that never takes more than one value raises
    :class:`ConstantChainError`. When the folded draws are all equal (a two-valued
    quantity split half and half), the tail :math:`\hat R` is undefined and the bulk
    one is returned, as ArviZ does; the result is never NaN.

    ``chain`` has shape ``(n_steps,)``, ``(n_steps, n_chains)`` (a scalar) or
    ``(n_steps, n_chains, dim)`` (one :math:`\hat R` per coordinate), ``n_steps >= 4``.

    >>> chains = torch.randn(1000, 4, generator=torch.Generator().manual_seed(0))
    >>> float(rhat(chains)) < 1.01
    True
    >>> float(rhat(chains + torch.tensor([0.0, 0.0, 5.0, 5.0]))) > 1.5  # two chains elsewhere
    True
    """
    x, dtype = _multi_chain_input(chain)
    bulk = _rhat_raw(_rank_normalize(x))
    folded = (x - _median(x.reshape(-1, x.shape[-1]))).abs()
    tail = _rhat_raw(_rank_normalize(folded))
    # Folded draws that are all equal (two values split half and half around the median)
    # carry no tail information: their R-hat is 0/0. ArviZ then keeps the bulk value, and
    # so does fmax; torch.maximum would pass the NaN on, and NaN > 1.01 reads as "converged".
    return _shape_result(torch.fmax(bulk, tail), chain, dtype)


def _check_method(method: object, allowed: tuple[str, ...]) -> str:
    if not isinstance(method, str):
        raise TypeError(f"method must be one of {allowed}, got {method!r}")
    if method not in allowed:
        raise ValueError(f"method must be one of {allowed}, got {method!r}")
    return method


def _check_within_chain_kwargs(method: str, kwargs: dict[str, float]) -> None:
    unknown = set(kwargs) - {"c", "min_length_factor"}
    if unknown:
        raise TypeError(f"unexpected keyword arguments {sorted(unknown)}; only c and min_length_factor are accepted")
    if kwargs and method != "within_chain":
        raise ValueError(f"{sorted(kwargs)} only apply to method='within_chain' (Sokal's window), not method={method!r}")


def mcmc_ess(chain: Tensor, method: str = "bulk", **kwargs: float) -> Tensor:
    r"""Effective sample size of a set of chains.

    - ``method="bulk"`` (default): the rank-normalised split multi-chain ESS of
      Vehtari et al. (2021), their "bulk-ESS". Chains that disagree lower it.
    - ``method="mean"``: the same without rank normalisation, the ESS for the mean of
      :math:`x` itself (what :func:`mcse` uses).
    - ``method="within_chain"``: :math:`N_\text{steps} N_\text{chains} / \tau` with
      Sokal's :math:`\tau` of :func:`integrated_autocorr_time`, each chain measured around
      its own mean (blind to chains that disagree; refuses chains shorter than
      :math:`50\tau`). Keyword arguments ``c`` and ``min_length_factor`` go to
      :func:`integrated_autocorr_time` and apply only here.

    A scalar for ``(n_steps,)`` or ``(n_steps, n_chains)``; shape ``(dim,)`` for
    ``(n_steps, n_chains, dim)``. The multi-chain versions need ``n_steps >= 4`` and do
    not refuse short chains: Vehtari et al. recommend relying on the samples only when
    the bulk-ESS exceeds about 400 (100 per chain for four chains) and :func:`rhat` < 1.01.
    """
    method = _check_method(method, ESS_METHODS)
    _check_within_chain_kwargs(method, kwargs)
    if method == "within_chain":
        tau = integrated_autocorr_time(chain, **kwargs)
        n_samples = chain.shape[0] * (chain.shape[1] if chain.dim() >= 2 else 1)
        return n_samples / tau
    x, dtype = _multi_chain_input(chain)
    return _shape_result(_ess_raw(_rank_normalize(x) if method == "bulk" else x), chain, dtype)


def mcse(chain: Tensor, method: str = "mean", **kwargs: float) -> Tensor:
    r"""Monte Carlo standard error of the mean of ``chain`` over steps and chains.

    .. math::

        \mathrm{MCSE} = \sqrt{\widehat{\operatorname{Var}}(x) \,/\, \mathrm{ESS}},

    with :math:`\widehat{\operatorname{Var}}` the variance of all draws pooled and

    - ``method="mean"`` (default): the multi-chain ESS for the mean
      (:func:`mcmc_ess` with ``method="mean"``, Vehtari et al. 2021), which sees the
      between-chain variance: chains stuck in different modes give a large error;
    - ``method="within_chain"``: :math:`\mathrm{ESS} = N_\text{steps} N_\text{chains} / \tau`
      from Sokal's window (``c`` and ``min_length_factor`` go to
      :func:`integrated_autocorr_time`); each chain's autocorrelation is measured around
      its own mean, so disagreement between chains is invisible.

    A scalar for ``(n_steps,)`` or ``(n_steps, n_chains)``; shape ``(dim,)`` for
    ``(n_steps, n_chains, dim)``.

    >>> chains = torch.randn(20_000, 4, generator=torch.Generator().manual_seed(0))
    >>> round(float(mcse(chains)), 3)  # 1 / sqrt(80,000)
    0.004
    >>> round(float(mcse(chains + torch.tensor([0.0, 0.0, 5.0, 5.0]))), 1)  # chains that disagree
    1.3
    """
    method = _check_method(method, MCSE_METHODS)
    _check_within_chain_kwargs(method, kwargs)
    ess = mcmc_ess(chain, method, **kwargs)
    x = _check_chain(chain)
    variance = x.reshape(-1, x.shape[-1]).var(0)
    return torch.sqrt(_shape_result(variance, chain, x.dtype) / ess)


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


def interval_membership(values: Tensor, edges: Tensor) -> Tensor:
    r"""One-hot membership ``(..., M)`` of each of ``values`` (any shape) in the ``M`` intervals between ``edges``.

    ``edges`` ``(M + 1,)`` is finite and strictly increasing; value :math:`v` belongs to interval
    :math:`m` when :math:`e_m < v \le e_{m+1}`, and values beyond the outer edges to the first or
    last interval. The two may live on any devices: the counting runs on the CPU, in float64, and
    the result is there. Pass it to :func:`lecturekit.estimates.mode_weights`.

    >>> interval_membership(torch.tensor([0.1, 0.2, 0.9]), torch.tensor([0.0, 0.5, 1.0]))
    tensor([[1., 0.],
            [1., 0.],
            [0., 1.]], dtype=torch.float64)
    """
    check_tensor(edges, "edges")
    if edges.dim() != 1 or edges.numel() < 2:
        raise ValueError(f"edges must be a 1D tensor of at least 2 increasing values, got shape {tuple(edges.shape)}")
    if not bool(torch.isfinite(edges).all()) or not bool((edges[1:] > edges[:-1]).all()):
        raise ValueError(f"edges must be finite and strictly increasing, got {edges.tolist()}")
    check_tensor(values, "values")
    flat = values.detach().to(torch.float64).cpu().contiguous()  # a strided view warns in bucketize
    if not bool(torch.isfinite(flat).all()):
        raise ValueError("values must be finite, but they contain NaN or inf")
    index = torch.bucketize(flat, edges.detach()[1:-1].to(torch.float64).cpu().contiguous())
    return torch.nn.functional.one_hot(index, edges.numel() - 1).to(torch.float64)


__all__ += ["ModeOccupancy", "interval_membership", "mode_fraction_mcse", "mode_occupancy"]


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


def _mode_labels(chains: Tensor, modes: Tensor) -> Tensor:
    """Checked ``chains`` ``(n_steps, n_chains, dim)`` and ``modes`` ``(K, dim)``; the nearest mode of each sample."""
    if not isinstance(chains, Tensor) or not chains.is_floating_point():
        raise TypeError(f"chains must be a floating-point torch.Tensor, got {getattr(chains, 'dtype', type(chains).__name__)}")
    if not isinstance(modes, Tensor) or not modes.is_floating_point():
        raise TypeError(f"modes must be a floating-point torch.Tensor, got {getattr(modes, 'dtype', type(modes).__name__)}")
    if modes.dim() != 2 or modes.shape[0] == 0:
        raise ValueError(f"modes must have shape (K, dim) with K >= 1, got {tuple(modes.shape)}")
    dim = modes.shape[1]
    if chains.dim() != 3 or chains.shape[0] == 0 or chains.shape[1] == 0 or chains.shape[2] != dim:
        raise ValueError(f"chains must have shape (n_steps, n_chains, {dim}) with n_steps, n_chains >= 1, got {tuple(chains.shape)}")
    if not bool(torch.isfinite(chains).all()):
        raise ValueError("chains contain NaN or inf")
    if not bool(torch.isfinite(modes).all()):
        raise ValueError("modes contain NaN or inf")
    return nearest_mode(chains.detach(), modes.to(chains.device))  # (n_steps, n_chains)


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
    labels = _mode_labels(chains, modes)
    n_modes = modes.shape[0]
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


def mode_fraction_mcse(chains: Tensor, modes: Tensor) -> Tensor:
    r"""Monte Carlo standard error of each fraction :math:`\hat w_k` of :func:`mode_occupancy`.

    :math:`\hat w_k` is the mean of the indicator :math:`\mathbb{1}[\operatorname{nearest}(x^c_t) = k]`
    over steps and chains, so its error is :func:`mcse` of that indicator (multi-chain ESS of
    Vehtari et al. 2021): chains that sit in different modes and never switch get a large
    error, as they should. ``chains`` has shape ``(n_steps, n_chains, dim)`` with
    ``n_steps >= 4``, ``modes`` ``(K, dim)``; returns shape ``(K,)``.

    Raises :class:`ConstantChainError` when the label of some mode never changes in any
    chain (the mode is never visited, or every sample is in it): the error is then
    undefined (0/0), however long the chains.

    >>> steps = torch.randn(400, 4, 1, generator=torch.Generator().manual_seed(0))
    >>> chains = steps + torch.tensor([0.0, 0.0, 6.0, 6.0]).reshape(1, 4, 1)  # two chains per mode
    >>> [round(e, 2) for e in mode_fraction_mcse(chains, torch.tensor([[0.0], [6.0]])).tolist()]  # stuck: large
    [0.25, 0.25]
    """
    labels = _mode_labels(chains, modes)
    indicators = torch.nn.functional.one_hot(labels, modes.shape[0]).double()  # (n_steps, n_chains, K)
    constant = (indicators == indicators[:1, :1]).all(0).all(0)
    if bool(constant.any()):
        raise ConstantChainError(
            f"the label of modes {torch.nonzero(constant).flatten().tolist()} never changes in any chain (never "
            "visited, or every sample is there): the standard error of their fraction is undefined"
        )
    return mcse(indicators).to(chains.dtype)
