"""Samplers against targets with known answers, within Monte Carlo error.

Every statistical check is a z-test, (estimate - exact) / standard error, with the
standard error from the sampler's own theory: the delta method for self-normalised
importance sampling, the integrated autocorrelation time for MCMC.
"""

from __future__ import annotations

import math

import pytest
import torch
from torch import Tensor

from lecturekit.diagnostics import mcse
from lecturekit.estimates import reweighted_expectation
from lecturekit.samplers.importance import ImportanceResult, importance_sample
from lecturekit.samplers.mcmc import (
    ChainResult,
    MALA,
    MCMCState,
    RandomWalkMetropolis,
    metropolis_accept,
    metropolis_update,
    run_chains,
)
from lecturekit.targets.base import Target
from lecturekit.targets.toy import GaussianMixture, MullerBrown

Z_MAX = 4.0  # two-sided; about 6e-5 false alarms per z-score for an exact Gaussian
F64 = torch.float64
INF = math.inf


# --------------------------------------------------------------------------- targets used here


def correlated_gaussian(device: torch.device | str = "cpu") -> GaussianMixture:
    """N(mu, Sigma) with unequal variances and correlation, as a one-component mixture."""
    mean = torch.tensor([[1.0, -0.5]], dtype=F64, device=device)
    covariance = torch.tensor([[[1.0, 0.6], [0.6, 0.8]]], dtype=F64, device=device)
    return GaussianMixture(mean, covariance)


def two_modes() -> GaussianMixture:
    """The lecture's mixture: means +-(1, 1), covariance 0.1 I, weights 0.25 / 0.75."""
    means = torch.tensor([[1.0, 1.0], [-1.0, -1.0]], dtype=F64)
    return GaussianMixture(means, 0.1, torch.tensor([0.25, 0.75], dtype=F64))


class PositiveGamma(Target):
    r"""Independent Gamma(2, 1) coordinates, :math:`\rho(x) \propto \prod_i x_i e^{-x_i}` on :math:`x_i > 0`.

    Outside the support the energy is :math:`+\infty` and the score is NaN on purpose
    (the worst a target may return there). Mean 2 and variance 2 per coordinate.
    """

    def __init__(self, dim: int = 2) -> None:
        self.dim = dim

    def energy(self, x: Tensor) -> Tensor:
        inside = (x > 0).all(-1)
        safe = torch.where(x > 0, x, torch.ones_like(x))
        return torch.where(inside, (safe - torch.log(safe)).sum(-1), math.inf)

    def log_prob_and_score(self, x: Tensor) -> tuple[Tensor, Tensor]:
        inside = (x > 0).all(-1, keepdim=True)
        return self.log_prob(x), torch.where(inside, 1 / x - 1, math.nan)


class CountingGaussian(GaussianMixture):
    """A Gaussian that counts its evaluations."""

    def __init__(self) -> None:
        super().__init__(torch.zeros(1, 2, dtype=F64))
        self.log_prob_calls = 0
        self.log_prob_and_score_calls = 0

    def log_prob(self, x: Tensor) -> Tensor:
        self.log_prob_calls += 1
        return super().log_prob(x)

    def log_prob_and_score(self, x: Tensor) -> tuple[Tensor, Tensor]:
        self.log_prob_and_score_calls += 1
        return super().log_prob_and_score(x)


def chain_z_scores(samples: Tensor, mean: Tensor, covariance: Tensor) -> Tensor:
    """z-scores of the chain estimates of E[x_i] and E[(x_i - mu_i)(x_j - mu_j)], MCSE from tau."""
    centred = samples - mean
    i, j = torch.triu_indices(2, 2)
    products = centred[..., i] * centred[..., j]  # (n_steps, n_chains, 3): the covariance entries
    z_mean = (samples.mean((0, 1)) - mean) / mcse(samples)
    z_cov = (products.mean((0, 1)) - covariance[i, j]) / mcse(products)
    return torch.cat([z_mean, z_cov])


# --------------------------------------------------------------------------- importance sampling


def delta_method_se(f_values: Tensor, log_weights: Tensor) -> Tensor:
    r"""Standard error of the self-normalised estimate: :math:`\sqrt{\sum_i \bar w_i^2 (f_i - \hat\mu)^2}`."""
    weights = torch.softmax(log_weights, 0)
    estimate = weights @ f_values
    return torch.sqrt((weights**2) @ (f_values - estimate) ** 2)


def test_importance_sampling_mixture_mean_and_mode_weight(z_score) -> None:
    target = two_modes()
    proposal = GaussianMixture(torch.zeros(1, 2, dtype=F64), 2.0)
    result = importance_sample(target, proposal, 20_000)
    assert isinstance(result, ImportanceResult)
    assert result.samples.shape == (20_000, 2) and result.log_weights.shape == (20_000,)
    assert 1000 < float(result.ess()) < 20_000  # a usable but imperfect proposal

    estimate = result.expectation(result.samples).value
    z = z_score(estimate, target.mean(), delta_method_se(result.samples, result.log_weights))
    assert torch.all(z.abs() < Z_MAX), z
    # E_rho[responsibility of component k] = w_k exactly, e.g. 0.75 for the heavier mode
    heavy = target.responsibilities(result.samples)[:, 1]
    z = z_score(result.expectation(heavy).value, torch.tensor(0.75), delta_method_se(heavy, result.log_weights))
    assert abs(float(z)) < Z_MAX


def test_delta_method_standard_error_is_calibrated() -> None:
    # the spread of 200 independent estimates (n = 2000 each) matches the delta-method error of one
    target, proposal = two_modes(), GaussianMixture(torch.zeros(1, 2, dtype=F64), 2.0)
    result = importance_sample(target, proposal, 200 * 2000)
    f = result.samples[:, 0].reshape(200, 2000)
    log_weights = result.log_weights.reshape(200, 2000)
    estimates = torch.stack([reweighted_expectation(f[k], log_weights[k]).value for k in range(200)])
    errors = torch.stack([delta_method_se(f[k], log_weights[k]) for k in range(200)])
    assert float(estimates.std()) == pytest.approx(float(errors.mean()), rel=0.2)  # sd of a 200-sample std: 5 %


def test_importance_sampling_is_exact_when_proposal_equals_target() -> None:
    target = correlated_gaussian()
    result = importance_sample(target, target, 500)
    assert torch.allclose(result.log_weights, torch.zeros(500, dtype=F64), atol=1e-12)
    assert float(result.ess()) == pytest.approx(500)
    assert torch.allclose(result.normalized_weights(), torch.full((500,), 1 / 500, dtype=F64))


def test_log_weights_stable_for_very_low_log_prob() -> None:
    class Shifted(GaussianMixture):
        def log_prob(self, x: Tensor) -> Tensor:
            return super().log_prob(x) - 1e4

    means = torch.tensor([[1.0, 1.0], [-1.0, -1.0]], dtype=F64)
    args = (means, 0.1, torch.tensor([0.25, 0.75], dtype=F64))
    proposal = GaussianMixture(torch.zeros(1, 2, dtype=F64), 2.0)
    torch.manual_seed(3)
    plain = importance_sample(GaussianMixture(*args), proposal, 4000)
    torch.manual_seed(3)
    shifted = importance_sample(Shifted(*args), proposal, 4000)
    assert torch.all(shifted.log_weights < -9000)
    assert float(torch.exp(shifted.log_weights).sum()) == 0.0  # naive weights underflow
    assert torch.isfinite(shifted.ess())
    assert float(shifted.ess()) == pytest.approx(float(plain.ess()), rel=1e-9)
    assert torch.allclose(shifted.normalized_weights(), plain.normalized_weights(), rtol=1e-9, atol=1e-15)
    f = shifted.samples[:, 0]
    assert torch.allclose(shifted.expectation(f).value, plain.expectation(f).value, rtol=1e-9)


def test_importance_weights_outside_support_are_zero_not_nan() -> None:
    result = importance_sample(PositiveGamma(), GaussianMixture(torch.full((1, 2), 2.0, dtype=F64), 1.0), 5000)
    outside = (result.samples <= 0).any(-1)
    assert outside.any() and (~outside).any()
    assert torch.all(torch.isneginf(result.log_weights[outside]))
    assert torch.all(torch.isfinite(result.log_weights[~outside]))
    assert float(result.normalized_weights()[outside].sum()) == 0.0
    assert 1 <= float(result.ess()) <= int((~outside).sum())


def test_reweighted_expectation_value() -> None:
    f = torch.tensor([[1.0, 10.0], [3.0, 30.0]])
    assert torch.allclose(reweighted_expectation(f, torch.zeros(2)).value, torch.tensor([2.0, 20.0]))
    log_weights = torch.log(torch.tensor([3.0, 1.0]))
    assert float(reweighted_expectation(f[:, 0], log_weights).value) == pytest.approx(1.5)
    assert float(reweighted_expectation(torch.tensor([True, False]), log_weights).value) == pytest.approx(0.75)
    with pytest.raises(ValueError, match="f_values"):
        reweighted_expectation(torch.zeros(3), torch.zeros(2)).value
    with pytest.raises(ValueError, match="log_weights"):
        reweighted_expectation(torch.zeros(2), torch.zeros(2, 2)).value
    with pytest.raises(ValueError, match="log_weights"):
        reweighted_expectation(torch.zeros(0), torch.zeros(0)).value
    with pytest.raises(TypeError, match="f_values"):
        reweighted_expectation([1.0, 2.0], torch.zeros(2)).value


def test_importance_sample_rejects_bad_input() -> None:
    target = correlated_gaussian()
    with pytest.raises(ValueError, match="n must"):
        importance_sample(target, target, 0)
    with pytest.raises(TypeError, match="n must"):
        importance_sample(target, target, 10.0)
    with pytest.raises(ValueError, match="proposal.dim"):
        importance_sample(target, GaussianMixture(torch.zeros(1, 3)), 10)
    with pytest.raises(TypeError, match="proposal"):
        importance_sample(target, object(), 10)
    with pytest.raises(TypeError, match="target"):
        importance_sample(object(), target, 10)


# --------------------------------------------------------------------------- MCMC: exact answers


@pytest.mark.parametrize(("kernel_class", "step_size"), [(RandomWalkMetropolis, 1.2), (MALA, 0.3)])
def test_mcmc_recovers_correlated_gaussian(kernel_class: type, step_size: float) -> None:
    target = correlated_gaussian()
    result = run_chains(kernel_class(target, step_size), target.sample(64), n_steps=1500)
    assert 0.2 < result.acceptance_rate() < 0.95
    z = chain_z_scores(result.samples, target.mean(), target.covariance())
    assert torch.all(z.abs() < Z_MAX), z


@pytest.mark.parametrize("kernel_class", [RandomWalkMetropolis, MALA])
def test_mcmc_from_a_far_start_converges(kernel_class: type) -> None:
    target = correlated_gaussian()
    step_size = 1.2 if kernel_class is RandomWalkMetropolis else 0.3
    start = torch.tensor([[6.0, -6.0]], dtype=F64).repeat(32, 1)
    result = run_chains(kernel_class(target, step_size), start, n_steps=1500)
    kept = result.samples[500:]  # burn-in
    z = chain_z_scores(kept, target.mean(), target.covariance())
    assert torch.all(z.abs() < Z_MAX), z


def test_mcmc_rejects_outside_support_without_nan() -> None:
    target = PositiveGamma()
    for kernel in (RandomWalkMetropolis(target, 1.5), MALA(target, 0.5)):
        state = kernel.init(torch.full((64, 2), 2.0, dtype=F64))
        positions, ratios = [], []
        for _ in range(1500):
            state, info = kernel.step(state)
            positions.append(state.position)
            ratios.append(info.log_acceptance_ratio)
        samples, ratios = torch.stack(positions), torch.stack(ratios)
        assert not torch.isnan(ratios).any()
        assert torch.isneginf(ratios).float().mean() > 0.02  # the test did propose outside the support
        assert torch.all(samples > 0)
        assert torch.all(torch.isfinite(state.log_prob))
        assert state.score is None or torch.all(torch.isfinite(state.score))
        z = (samples[200:].mean((0, 1)) - 2.0) / mcse(samples[200:])  # Gamma(2, 1) has mean 2
        assert torch.all(z.abs() < Z_MAX), (type(kernel).__name__, z)


def test_init_outside_support_is_refused() -> None:
    for kernel in (RandomWalkMetropolis(PositiveGamma(), 0.1), MALA(PositiveGamma(), 0.1)):
        with pytest.raises(ValueError, match=r"support.*\[1\]"):
            kernel.init(torch.tensor([[1.0, 1.0], [-1.0, 1.0]], dtype=F64))


def test_per_chain_step_sizes_match_exact_rw_acceptance() -> None:
    # RW on N(0, 1) with proposal N(x, s^2) accepts at rate (2 / pi) arctan(2 / s) at stationarity
    target = GaussianMixture(torch.zeros(1, 1, dtype=F64))
    sizes = torch.tensor([0.5, 1.0, 2.38, 5.0], dtype=F64)
    step_size = sizes.repeat_interleave(256)
    result = run_chains(RandomWalkMetropolis(target, step_size), target.sample(1024), n_steps=300)
    rates = result.accepted.double().reshape(300, 4, 256).mean((0, 2))
    exact = 2 / math.pi * torch.atan(2 / sizes)
    assert torch.allclose(rates, exact, atol=0.015), (rates, exact)  # binomial sd ~ 0.002, correlated x ~3


def test_per_chain_step_sizes_in_mala() -> None:
    target = correlated_gaussian()
    step_size = torch.tensor([1e-4, 0.3], dtype=F64).repeat(16)
    result = run_chains(MALA(target, step_size), target.sample(32), n_steps=200)
    rates = result.accepted.double().mean(0).reshape(16, 2).mean(0)
    assert float(rates[0]) > 0.99 and float(rates[1]) < 0.95
    moves = (result.samples[1:] - result.samples[:-1]).norm(dim=-1).mean(0).reshape(16, 2).mean(0)
    assert float(moves[0]) < 0.05 * float(moves[1])


# --------------------------------------------------------------------------- MALA's ratio and proposal


def _mvn_log_prob(x_to: Tensor, x_from: Tensor, score: Tensor, h: Tensor) -> Tensor:
    covariance = 2 * h.reshape(-1, 1, 1) * torch.eye(x_to.shape[-1], dtype=F64)
    mean = x_from + h.reshape(-1, 1) * score
    return torch.distributions.MultivariateNormal(mean, covariance).log_prob(x_to)


@pytest.mark.parametrize("per_chain", [False, True])
def test_mala_proposal_log_density_is_the_normalised_gaussian(per_chain: bool) -> None:
    target = correlated_gaussian()
    h = torch.tensor([0.05, 0.3, 1.0], dtype=F64) if per_chain else torch.full((3,), 0.3, dtype=F64)
    kernel = MALA(target, h if per_chain else 0.3)
    x_from, x_to = torch.randn(3, 2, dtype=F64), torch.randn(3, 2, dtype=F64)
    score = target.score(x_from)
    expected = _mvn_log_prob(x_to, x_from, score, h)
    assert torch.allclose(kernel.proposal_log_density(x_to, x_from, score), expected, rtol=1e-12, atol=1e-12)


def test_mala_step_ratio_equals_textbook_ratio() -> None:
    target = correlated_gaussian()
    kernel = MALA(target, torch.tensor([0.1, 0.3, 0.6, 1.0], dtype=F64).repeat(64))
    state = kernel.init(target.sample(256))
    new_state, info = kernel.step(state)
    moved = info.accepted
    assert moved.sum() > 100
    # for accepted chains the proposal is the new state: recompute the ratio the long way
    proposal = MCMCState(new_state.position, *target.log_prob_and_score(new_state.position))
    textbook = (
        target.log_prob(proposal.position)
        - target.log_prob(state.position)
        + _mvn_log_prob(state.position, proposal.position, proposal.score, kernel.step_size)
        - _mvn_log_prob(proposal.position, state.position, state.score, kernel.step_size)
    )
    assert torch.allclose(info.log_acceptance_ratio[moved], textbook[moved], rtol=1e-9, atol=1e-9)
    assert torch.allclose(kernel.log_acceptance_ratio(state, proposal)[moved], textbook[moved], rtol=1e-9, atol=1e-9)
    assert torch.all(new_state.position[~moved] == state.position[~moved])


def test_mala_ratio_is_antisymmetric_and_satisfies_detailed_balance() -> None:
    target = two_modes()
    kernel = MALA(target, 0.05)
    x, y = 0.7 * torch.randn(500, 2, dtype=F64), 0.7 * torch.randn(500, 2, dtype=F64)
    state_x = MCMCState(x, *target.log_prob_and_score(x))
    state_y = MCMCState(y, *target.log_prob_and_score(y))
    forward = kernel.log_acceptance_ratio(state_x, state_y)
    backward = kernel.log_acceptance_ratio(state_y, state_x)
    assert torch.allclose(forward, -backward, rtol=1e-12, atol=1e-9)
    # rho(x) q(y|x) alpha(x->y) = rho(y) q(x|y) alpha(y->x), in log space with alpha = min(1, r)
    flux_xy = state_x.log_prob + kernel.proposal_log_density(y, x, state_x.score) + forward.clamp(max=0)
    flux_yx = state_y.log_prob + kernel.proposal_log_density(x, y, state_y.score) + backward.clamp(max=0)
    assert torch.allclose(flux_xy, flux_yx, rtol=1e-12, atol=1e-9)


# --------------------------------------------------------------------------- the shared accept/reject


def test_metropolis_accept_probability(z_score) -> None:
    n = 200_000
    accepted = metropolis_accept(torch.full((n,), math.log(0.3), dtype=F64))
    z = z_score(accepted.double().mean(), torch.tensor(0.3), torch.tensor(math.sqrt(0.3 * 0.7 / n)))
    assert abs(float(z)) < Z_MAX
    assert metropolis_accept(torch.full((1000,), 1.0)).all()
    assert not metropolis_accept(torch.tensor([-INF, math.nan] * 500)).any()


def test_metropolis_update_never_keeps_nan() -> None:
    state = MCMCState(torch.zeros(4, 2), torch.zeros(4), torch.zeros(4, 2))
    proposal = MCMCState(torch.ones(4, 2), torch.tensor([0.0, -INF, math.nan, INF]), torch.full((4, 2), math.nan))
    new_state, info = metropolis_update(state, proposal, torch.tensor([math.nan, -INF, math.nan, INF]))
    assert not info.accepted.any()
    assert torch.all(torch.isneginf(info.log_acceptance_ratio))
    assert torch.equal(new_state.position, state.position) and torch.equal(new_state.score, state.score)
    new_state, info = metropolis_update(state, MCMCState(torch.ones(4, 2), torch.ones(4), torch.ones(4, 2)), torch.full((4,), 50.0))
    assert info.accepted.all() and torch.equal(new_state.position, torch.ones(4, 2))
    assert torch.equal(new_state.score, torch.ones(4, 2)) and torch.equal(new_state.log_prob, torch.ones(4))
    with pytest.raises(ValueError, match="score"):
        metropolis_update(state, MCMCState(torch.ones(4, 2), torch.ones(4)), torch.zeros(4))


# --------------------------------------------------------------------------- API, shapes, cost


def test_one_step_advances_all_chains_with_one_target_call() -> None:
    target = CountingGaussian()
    kernel = MALA(target, 0.5)
    state = kernel.init(torch.randn(1000, 2, dtype=F64))
    assert target.log_prob_and_score_calls == 1
    for _ in range(10):
        state, info = kernel.step(state)
    assert target.log_prob_and_score_calls == 11  # one evaluation per step, for all 1000 chains
    assert state.position.shape == (1000, 2) and info.accepted.shape == (1000,)
    assert info.accepted.dtype == torch.bool and info.log_acceptance_ratio.shape == (1000,)
    # the cached log_prob and score are those of the current position
    log_prob, score = GaussianMixture(torch.zeros(1, 2, dtype=F64)).log_prob_and_score(state.position)
    assert torch.allclose(state.log_prob, log_prob) and torch.allclose(state.score, score)

    rw_target = CountingGaussian()
    rw_state = RandomWalkMetropolis(rw_target, 0.5).init(torch.randn(1000, 2, dtype=F64))
    rw_state, _ = RandomWalkMetropolis(rw_target, 0.5).step(rw_state)
    assert rw_target.log_prob_calls == 2 and rw_state.score is None


@pytest.mark.parametrize("kernel_class", [RandomWalkMetropolis, MALA])
def test_run_chains_shapes_thinning_and_dtype(kernel_class: type) -> None:
    target = GaussianMixture(torch.zeros(1, 3))  # float32
    result = run_chains(kernel_class(target, 0.5), torch.randn(5, 3), n_steps=10, thin=3, progress=True)
    assert isinstance(result, ChainResult)
    assert result.samples.shape == (3, 5, 3) and result.samples.dtype == torch.float32
    assert result.accepted.shape == (10, 5)
    assert 0.0 <= result.acceptance_rate() <= 1.0
    result = run_chains(kernel_class(target, 0.5), torch.randn(5, 3), n_steps=9, thin=3)
    assert torch.equal(result.samples[-1], result.final_state.position)


def test_samplers_follow_the_device(device: torch.device) -> None:
    target = GaussianMixture(torch.zeros(1, 2, device=device))
    for kernel in (RandomWalkMetropolis(target, 0.5), MALA(target, torch.full((8,), 0.1, device=device))):
        result = run_chains(kernel, torch.randn(8, 2, device=device), n_steps=5)
        assert result.samples.device.type == device.type and result.accepted.device.type == device.type
    assert importance_sample(target, target, 10).log_weights.device.type == device.type


@pytest.mark.parametrize(
    ("step_size", "error"),
    [(0.0, ValueError), (-1.0, ValueError), (math.nan, ValueError), (math.inf, ValueError), (True, TypeError),
     ("0.1", TypeError), (torch.tensor([1, 2]), TypeError), (torch.ones(2, 2), ValueError),
     (torch.tensor([0.1, -0.1]), ValueError)],
)
def test_bad_step_size(step_size: object, error: type[Exception]) -> None:
    with pytest.raises(error, match="step_size"):
        MALA(correlated_gaussian(), step_size)


def test_bad_positions_and_targets() -> None:
    target = correlated_gaussian()
    kernel = RandomWalkMetropolis(target, 0.1)
    with pytest.raises(ValueError, match="position"):
        kernel.init(torch.zeros(4, 3, dtype=F64))
    with pytest.raises(ValueError, match="position"):
        kernel.init(torch.zeros(2, dtype=F64))
    with pytest.raises(TypeError, match="position"):
        kernel.init(torch.zeros(4, 2, dtype=torch.long))
    with pytest.raises(ValueError, match="step_size"):
        MALA(target, torch.full((3,), 0.1)).init(torch.zeros(4, 2, dtype=F64))
    with pytest.raises(TypeError, match="target"):
        MALA(lambda x: x, 0.1)
    for bad in ({"n_steps": 0}, {"n_steps": 5, "thin": 0}, {"n_steps": 2, "thin": 3}):
        with pytest.raises(ValueError, match="n_steps|thin"):
            run_chains(kernel, torch.zeros(4, 2, dtype=F64), **bad)
    with pytest.raises(TypeError, match="n_steps"):
        run_chains(kernel, torch.zeros(4, 2, dtype=F64), n_steps=2.0)


def test_device_mismatch_is_named() -> None:
    # the 'meta' device stands in for a GPU: a target on it and positions on the CPU
    class MetaShift(Target):
        dim = 2

        def __init__(self) -> None:
            self.shift = torch.zeros(2, device="meta")

        def energy(self, x: Tensor) -> Tensor:
            return ((x - self.shift) ** 2).sum(-1)

    with pytest.raises(ValueError, match="target.shift"):
        RandomWalkMetropolis(MetaShift(), 0.1).init(torch.zeros(4, 2))
    with pytest.raises(ValueError, match="step_size"):
        MALA(MullerBrown(), torch.full((4,), 0.1, device="meta"))
    with pytest.raises(ValueError, match="position"):
        MALA(MullerBrown(), torch.full((4,), 0.1)).init(torch.zeros(4, 2, device="meta"))
    with pytest.raises(ValueError, match="target.shift"):
        importance_sample(MetaShift(), GaussianMixture(torch.zeros(1, 2)), 10)
