"""Diagnostics against exact answers: Kish ESS, and the autocorrelation of AR(1) chains."""

from __future__ import annotations

import math

import pytest
import torch

from lecturekit.diagnostics import (
    ChainTooShortError,
    ConstantChainError,
    acceptance_rate,
    autocorrelation,
    ess_from_log_weights,
    integrated_autocorr_time,
    mcmc_ess,
    mcse,
    nearest_mode,
    normalized_weights,
)

INF = math.inf


def ar1(phi: float | torch.Tensor, n_steps: int, n_chains: int, dim: int | None = None) -> torch.Tensor:
    r"""Stationary AR(1) chains :math:`x_{t+1} = \phi x_t + \epsilon_t`, :math:`\epsilon \sim N(0, 1)`.

    Exact: variance :math:`1/(1-\phi^2)`, ACF :math:`\phi^t`, :math:`\tau = (1+\phi)/(1-\phi)`.
    """
    shape = (n_chains,) if dim is None else (n_chains, dim)
    phi = torch.as_tensor(phi, dtype=torch.float64)
    noise = torch.randn(n_steps, *shape, dtype=torch.float64)
    chain = torch.empty_like(noise)
    x = noise[0] / torch.sqrt(1 - phi**2)
    for t in range(n_steps):
        chain[t] = x
        x = phi * x + noise[t]
    return chain


@pytest.fixture(scope="module")
def ar1_chain() -> torch.Tensor:
    torch.manual_seed(1)
    return ar1(0.9, n_steps=16_000, n_chains=128)


# --------------------------------------------------------------------------- ESS from log-weights


def test_ess_of_equal_weights_is_n() -> None:
    for n in (1, 7, 1000):
        assert float(ess_from_log_weights(torch.full((n,), -3.0, dtype=torch.float64))) == pytest.approx(n, rel=1e-12)


def test_ess_of_one_hot_weights_is_one() -> None:
    log_weights = torch.full((50,), -INF)
    log_weights[17] = 2.5
    assert float(ess_from_log_weights(log_weights)) == pytest.approx(1.0)


def test_ess_of_all_zero_weights_is_zero() -> None:
    assert float(ess_from_log_weights(torch.full((5,), -INF))) == 0.0


def test_ess_matches_kish_formula_and_batches() -> None:
    log_weights = torch.randn(3, 200, dtype=torch.float64)
    w = log_weights.exp()
    kish = w.sum(-1) ** 2 / (w**2).sum(-1)
    assert torch.allclose(ess_from_log_weights(log_weights), kish, rtol=1e-12, atol=0)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_ess_and_weights_are_stable_in_log_space(dtype: torch.dtype) -> None:
    shifted = torch.randn(1000, dtype=dtype) - 1e4
    assert float(torch.exp(shifted).sum()) == 0.0  # the naive computation underflows to 0/0
    # reference: the same (rounded) log-weights, moved back to O(1) in float64
    w = (shifted.double() + 1e4).exp()
    kish = w.sum() ** 2 / (w**2).sum()
    assert float(ess_from_log_weights(shifted)) == pytest.approx(float(kish), rel=1e-5)
    assert torch.allclose(normalized_weights(shifted).double(), w / w.sum(), rtol=1e-4, atol=1e-12)
    assert float(normalized_weights(-shifted).sum()) == pytest.approx(1.0, rel=1e-5)  # and no overflow at +1e4


def test_normalized_weights() -> None:
    weights = normalized_weights(torch.log(torch.tensor([1.0, 3.0, 0.0])))
    assert torch.allclose(weights, torch.tensor([0.25, 0.75, 0.0]))


@pytest.mark.parametrize(
    ("bad", "error"),
    [
        (torch.empty(0), ValueError),
        (torch.tensor(1.0), ValueError),
        (torch.tensor([0.0, float("nan")]), ValueError),
        (torch.tensor([0.0, INF]), ValueError),
        (torch.tensor([1, 2]), TypeError),
        ([0.0, 1.0], TypeError),
    ],
)
def test_weights_reject_bad_input(bad: object, error: type[Exception]) -> None:
    with pytest.raises(error, match="log_weights"):
        ess_from_log_weights(bad)
    with pytest.raises(error, match="log_weights"):
        normalized_weights(bad)


def test_normalized_weights_refuse_all_zero_weights() -> None:
    with pytest.raises(ValueError, match="-inf"):
        normalized_weights(torch.full((3,), -INF))


# --------------------------------------------------------------------------- acceptance


def test_acceptance_rate() -> None:
    assert acceptance_rate(torch.tensor([[True, False], [True, True]])) == 0.75
    with pytest.raises(TypeError, match="accepted"):
        acceptance_rate(torch.tensor([1.0, 0.0]))
    with pytest.raises(ValueError, match="accepted"):
        acceptance_rate(torch.zeros(0, dtype=torch.bool))


# --------------------------------------------------------------------------- autocorrelation


def test_autocorrelation_of_ar1_is_phi_to_the_lag(ar1_chain: torch.Tensor) -> None:
    rho = autocorrelation(ar1_chain).mean(1)
    assert rho.shape == (ar1_chain.shape[0],)
    lags = torch.arange(8, dtype=torch.float64)
    # sd of the averaged ACF at these lags is well below 0.01 for 128 x 16,000 steps
    assert torch.allclose(rho[:8], 0.9**lags, atol=0.01, rtol=0), rho[:8]


def test_autocorrelation_keeps_shape_and_handles_a_stuck_chain() -> None:
    chain = torch.randn(100, 3, 2)
    chain[:, 1, 0] = 4.2  # never moves
    rho = autocorrelation(chain)
    assert rho.shape == chain.shape
    assert torch.all(rho[:, 1, 0] == 1)
    assert float(rho[0, 0, 0]) == pytest.approx(1.0)


def test_integrated_autocorr_time_of_ar1(ar1_chain: torch.Tensor) -> None:
    tau = integrated_autocorr_time(ar1_chain)
    exact = (1 + 0.9) / (1 - 0.9)  # 19
    # Sokal: var(tau_hat) ~ 2 (2M + 1) / N tau^2 with M ~ 5 tau, N = 128 * 16,000, so sd ~ 1.4 %
    assert tau.shape == ()
    assert float(tau) == pytest.approx(exact, rel=0.05)


def test_integrated_autocorr_time_per_coordinate() -> None:
    phis = torch.tensor([0.0, 0.5, 0.8], dtype=torch.float64)
    chain = ar1(phis, n_steps=5000, n_chains=64, dim=3)
    tau = integrated_autocorr_time(chain)
    assert tau.shape == (3,)
    assert torch.allclose(tau, (1 + phis) / (1 - phis), rtol=0.06, atol=0), tau


def test_chain_too_short_is_refused() -> None:
    chain = ar1(0.9, n_steps=300, n_chains=16)  # needs about 50 * 19 = 950 steps
    with pytest.raises(ChainTooShortError, match="n_steps=300") as info:
        integrated_autocorr_time(chain)
    assert isinstance(info.value, ValueError)
    assert info.value.tau is not None and float(info.value.tau) > 300 / 50
    # with a laxer rule the same chain passes
    assert float(integrated_autocorr_time(chain, min_length_factor=5)) > 1


def test_a_stuck_chain_has_no_autocorrelation_time() -> None:
    # tau is 0/0 for a chain that never moves: a clear error, not "run longer" (which cannot help)
    with pytest.raises(ConstantChainError, match="never moves.*undefined") as info:
        integrated_autocorr_time(torch.ones(1000, 4))
    assert not isinstance(info.value, ChainTooShortError)
    # one stuck chain among moving ones is merely very slow: its ACF is 1 at every lag
    chain = torch.randn(1000, 4)
    chain[:, 0] = 3.0
    with pytest.raises(ChainTooShortError):
        integrated_autocorr_time(chain)


def test_mcmc_ess_and_mcse_of_ar1(ar1_chain: torch.Tensor) -> None:
    n_steps, n_chains = ar1_chain.shape
    tau = (1 + 0.9) / (1 - 0.9)
    variance = 1 / (1 - 0.9**2)
    assert float(mcmc_ess(ar1_chain)) == pytest.approx(n_steps * n_chains / tau, rel=0.05)
    # the standard error of the mean of a stationary AR(1) chain, for large n: sqrt(variance * tau / n)
    assert float(mcse(ar1_chain)) == pytest.approx(math.sqrt(variance * tau / (n_steps * n_chains)), rel=0.05)


def test_mcse_is_calibrated_against_independent_chains(ar1_chain: torch.Tensor) -> None:
    # one mcse per chain against the spread of the 128 independent chain means (relative sd of a
    # 128-sample standard deviation is about 6 %; the tolerance is 3 sd)
    spread = ar1_chain.mean(0).std()
    per_chain = torch.stack([mcse(ar1_chain[:, i]) for i in range(0, 128, 16)])
    assert float(per_chain.mean()) == pytest.approx(float(spread), rel=0.2)


def test_mcse_per_coordinate_shape() -> None:
    chain = torch.randn(2000, 8, 3, dtype=torch.float64)
    error = mcse(chain)
    assert error.shape == (3,)
    assert torch.allclose(error, torch.full((3,), 1 / math.sqrt(16000), dtype=torch.float64), rtol=0.1, atol=0), error


@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        ({"chain": torch.randn(2, 2, 2, 2)}, ValueError, "chain"),
        ({"chain": torch.randn(1, 4)}, ValueError, "chain"),
        ({"chain": torch.arange(10)}, TypeError, "chain"),
        ({"chain": torch.tensor([0.0, float("nan"), 1.0])}, ValueError, "chain"),
        ({"chain": [0.0, 1.0]}, TypeError, "chain"),
        ({"chain": torch.randn(100), "c": 0.0}, ValueError, "c must"),
        ({"chain": torch.randn(100), "min_length_factor": -1.0}, ValueError, "min_length_factor"),
    ],
)
def test_autocorr_rejects_bad_input(kwargs: dict, error: type[Exception], match: str) -> None:
    with pytest.raises(error, match=match):
        integrated_autocorr_time(**kwargs)


def test_nearest_mode_assigns_each_point_to_its_closest_mode() -> None:
    modes = torch.tensor([[0.0, 0.0], [3.0, 0.0], [0.0, 3.0]])
    x = modes[torch.tensor([2, 0, 1, 1])] + 0.4 * torch.rand(4, 2)
    assert torch.equal(nearest_mode(x, modes), torch.tensor([2, 0, 1, 1]))
    assert nearest_mode(x.reshape(2, 2, 2), modes).shape == (2, 2)
    with pytest.raises(ValueError, match="modes"):
        nearest_mode(x, torch.zeros(3, 3))
