"""Flow-corrected sampling against exact answers: flow importance sampling (log Z and
reweighted expectations with their errors) and independent Metropolis-Hastings with a flow
proposal. Every statistical check is a z-test with a fixed seed."""

from __future__ import annotations

import math

import pytest
import torch
from torch import Tensor

from lecturekit.diagnostics import mcse
from lecturekit.distributions import DiagonalGaussian, StandardNormal
from lecturekit.flows.core import Flow, real_nvp
from lecturekit.estimates import log_partition_estimate, reweighted_expectation
from lecturekit.samplers.flow_mcmc import (
    FlowIndependenceMetropolis,
    independence_log_acceptance_ratio,
    lognormal_independence_acceptance,
)
from lecturekit.samplers.importance import importance_sample
from lecturekit.samplers.mcmc import MALA, MCMCState, metropolis_update, run_chains
from lecturekit.targets.base import Target
from lecturekit.targets.toy import GaussianMixture

Z_MAX = 4.0
F64 = torch.float64
INF = math.inf


def two_modes() -> GaussianMixture:
    """The lecture's mixture: means +-(1, 1), covariance 0.1 I, weights 0.25 / 0.75."""
    means = torch.tensor([[1.0, 1.0], [-1.0, -1.0]], dtype=F64)
    return GaussianMixture(means, 0.1, torch.tensor([0.25, 0.75], dtype=F64))


class ScaledMixture(Target):
    """The lecture's mixture times e^c, i.e. unnormalised with log Z = c exactly."""

    def __init__(self, log_z: float) -> None:
        self.mixture = two_modes()
        self.dim = 2
        self.log_z = log_z

    def energy(self, x: Tensor) -> Tensor:
        return -(self.mixture.log_prob(x) + self.log_z)


class HalfPlaneGaussian(Target):
    """N(0, I) restricted to x_0 > 0: E[x_0] = sqrt(2 / pi), E[x_1] = 0; energy +inf outside."""

    dim = 2

    def energy(self, x: Tensor) -> Tensor:
        return torch.where(x[..., 0] > 0, 0.5 * x.square().sum(-1), INF)


def poor_flow(seed: int = 3) -> Flow:
    """A deliberately poor but covering proposal: a broad, off-centre Gaussian bent by two random couplings."""
    torch.manual_seed(seed)
    base = DiagonalGaussian(torch.tensor([0.6, -0.4]), torch.tensor([1.4, 1.8]))
    flow = real_nvp(2, n_layers=2, hidden=(16,), base=base, scale_bound=0.5)
    with torch.no_grad():
        for p in flow.parameters():
            p.add_(0.3 * torch.randn_like(p))
    return flow.double()


# --------------------------------------------------------------------------- flow importance sampling


def test_flow_log_partition_estimate_matches_the_exact_log_z(z_score) -> None:
    target = ScaledMixture(log_z=3.7)
    result = importance_sample(target, poor_flow(), 20_000)
    estimate = result.log_partition()
    assert 0 < float(estimate.stderr) < 0.1  # a real, finite error bar
    z = z_score(estimate.value, torch.tensor(3.7), estimate.stderr)
    assert abs(float(z)) < Z_MAX, (float(estimate.value), float(estimate.stderr))


def test_log_z_and_expectation_errors_are_calibrated() -> None:
    # the spread of 200 independent estimates (n = 1000 each) matches the error bar of one
    target = ScaledMixture(log_z=-1.0)
    result = importance_sample(target, poor_flow(), 200 * 1000)
    log_weights = result.log_weights.reshape(200, 1000)
    f = result.samples[:, 0].reshape(200, 1000)
    log_z = [log_partition_estimate(log_weights[k]) for k in range(200)]
    means = [reweighted_expectation(f[k], log_weights[k]) for k in range(200)]
    for estimates in (log_z, means):
        values = torch.stack([e.value for e in estimates])
        errors = torch.stack([e.stderr for e in estimates])
        assert float(values.std()) == pytest.approx(float(errors.mean()), rel=0.2)
    # and the pooled estimates are right: E[x_0] = 0.25 - 0.75 = -0.5, log Z = -1
    pooled_mean = reweighted_expectation(result.samples[:, 0], result.log_weights)
    assert abs(float(pooled_mean.value) + 0.5) < Z_MAX * float(pooled_mean.stderr)
    pooled_log_z = result.log_partition()
    assert abs(float(pooled_log_z.value) + 1.0) < Z_MAX * float(pooled_log_z.stderr)


def test_estimates_by_hand() -> None:
    # weights 1 and 3: log Z = log 2; relative sd of the weights sqrt(0.5), so se = sqrt(0.5 / 2) = 0.5
    value, stderr, tau = log_partition_estimate(torch.log(torch.tensor([1.0, 3.0], dtype=F64)))
    assert tau is None
    assert float(value) == pytest.approx(math.log(2)) and float(stderr) == pytest.approx(0.5)
    # equal weights: the plain mean and sqrt(sum (f - mean)^2) / n; vector-valued f works column by column
    f = torch.tensor([[1.0, 0.0], [2.0, 0.0], [6.0, 3.0]], dtype=F64)
    estimate = reweighted_expectation(f, torch.zeros(3, dtype=F64))
    torch.testing.assert_close(estimate.value, torch.tensor([3.0, 1.0], dtype=F64))
    torch.testing.assert_close(estimate.stderr, torch.tensor([math.sqrt(14) / 3, math.sqrt(6) / 3], dtype=F64))
    # zero weights (-inf) drop out
    estimate = reweighted_expectation(torch.tensor([5.0, 1.0, 3.0]), torch.tensor([-INF, 0.0, 0.0]))
    assert float(estimate.value) == pytest.approx(2.0) and float(estimate.stderr) == pytest.approx(math.sqrt(0.5))


def test_estimates_reject_bad_input() -> None:
    with pytest.raises(ValueError, match="n >= 2"):
        log_partition_estimate(torch.zeros(1))
    with pytest.raises(ValueError, match="log_weights"):
        log_partition_estimate(torch.tensor([0.0, math.nan]))
    with pytest.raises(ValueError, match="all -inf"):
        log_partition_estimate(torch.full((3,), -INF))
    with pytest.raises(ValueError, match="f_values"):
        reweighted_expectation(torch.zeros(4), torch.zeros(3))
    with pytest.raises(TypeError, match="f_values"):
        reweighted_expectation([1.0, 2.0], torch.zeros(2))


# --------------------------------------------------------------------------- flow independent Metropolis-Hastings


def test_independence_ratio_by_hand_and_never_nan() -> None:
    current_p = torch.tensor([0.0, 0.0, -INF, -INF, 0.0, 0.0, math.nan], dtype=F64)
    current_q = torch.tensor([-1.0, 0.0, 0.0, 0.0, 0.0, -2.0, 0.0], dtype=F64)
    proposed_p = torch.tensor([1.0, -INF, 0.0, -INF, math.nan, 0.5, 0.0], dtype=F64)
    proposed_q = torch.tensor([0.5, 0.0, 0.0, 0.0, 0.0, -INF, 0.0], dtype=F64)
    ratio = independence_log_acceptance_ratio(current_p, current_q, proposed_p, proposed_q)
    # (1 - 0.5) - (0 + 1); outside the support; from an impossible state; both impossible;
    # NaN target; a proposal the flow gives zero density (weight +inf); NaN current state
    expected = torch.tensor([-0.5, -INF, INF, -INF, -INF, INF, -INF], dtype=F64)
    torch.testing.assert_close(ratio, expected)
    assert not bool(torch.isnan(ratio).any())


def test_independence_ratio_rejects_bad_input() -> None:
    good = torch.zeros(4)
    with pytest.raises(ValueError, match="log_proposal_proposed has shape"):
        independence_log_acceptance_ratio(good, good, good, torch.zeros(3))
    with pytest.raises(TypeError, match="log_target_proposed"):
        independence_log_acceptance_ratio(good, good, torch.zeros(4, dtype=torch.long), good)
    with pytest.raises(TypeError, match="log_proposal_current"):
        independence_log_acceptance_ratio(good, [0.0] * 4, good, good)


def test_flow_imh_with_a_poor_proposal_samples_the_mixture(z_score) -> None:
    target, flow = two_modes(), poor_flow()
    kernel = FlowIndependenceMetropolis(target, flow)
    result = run_chains(kernel, flow.sample(128), n_steps=4000)
    acceptance = result.acceptance_rate()
    assert 0.02 < acceptance < 0.2, acceptance  # poor indeed (about 0.06), yet ...
    kept = result.samples[500:]  # burn-in from the flow's (wrong) distribution
    mean = torch.tensor([-0.5, -0.5], dtype=F64)
    variance = torch.tensor([0.85, 0.85], dtype=F64)  # 0.1 + 1 - 0.5^2 per coordinate
    z_mean = z_score(kept.mean((0, 1)), mean, mcse(kept))
    squares = (kept - mean).square()
    z_var = z_score(squares.mean((0, 1)), variance, mcse(squares))
    assert torch.all(torch.cat([z_mean, z_var]).abs() < Z_MAX), (z_mean, z_var)
    heavy = target.responsibilities(kept)[..., 1]  # E[responsibility] = 0.75 exactly
    assert abs(float(z_score(heavy.mean(), torch.tensor(0.75), mcse(heavy)))) < Z_MAX


def test_flow_imh_respects_the_support_without_nan(z_score) -> None:
    target = HalfPlaneGaussian()
    flow = real_nvp(2, n_layers=2, hidden=(8,)).double()  # the identity: N(0, I), half its draws fall outside
    start = torch.randn(64, 2, dtype=F64).abs()
    result = run_chains(FlowIndependenceMetropolis(target, flow), start, n_steps=800)
    assert bool((result.samples[..., 0] > 0).all()) and bool(torch.isfinite(result.samples).all())
    assert 0.4 < result.acceptance_rate() < 0.6  # exactly: 1/2 of the proposals lie outside, the rest accepted
    z = z_score(result.samples.mean((0, 1)), torch.tensor([math.sqrt(2 / math.pi), 0.0]), mcse(result.samples))
    assert torch.all(z.abs() < Z_MAX), z
    state = result.final_state
    assert bool(torch.isfinite(state.log_prob).all()) and bool(torch.isfinite(state.proposal_log_prob).all())


class CountingFlow(Flow):
    """A flow that counts its forward (sampling) and inverse (density) passes."""

    def __init__(self) -> None:
        super().__init__(StandardNormal(2), real_nvp(2, n_layers=2, hidden=(8,)).transforms)
        self.forward_calls = 0
        self.inverse_calls = 0

    def forward(self, z: Tensor) -> tuple[Tensor, Tensor]:
        self.forward_calls += 1
        return super().forward(z)

    def inverse(self, x: Tensor) -> tuple[Tensor, Tensor]:
        self.inverse_calls += 1
        return super().inverse(x)


def test_one_flow_pass_per_step_and_the_cache_is_right() -> None:
    target = GaussianMixture(torch.tensor([[0.5, -0.5]]), 0.7)
    flow = CountingFlow()
    kernel = FlowIndependenceMetropolis(target, flow)
    state = kernel.init(torch.randn(16, 2))
    assert (flow.forward_calls, flow.inverse_calls) == (0, 1)
    for _ in range(5):
        state, info = kernel.step(state)
    assert (flow.forward_calls, flow.inverse_calls) == (5, 1)  # one sampling pass per step, no density pass
    with torch.no_grad():
        torch.testing.assert_close(state.proposal_log_prob, flow.log_prob(state.position), atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(state.log_prob, target.log_prob(state.position))
    assert not state.log_prob.requires_grad and not state.proposal_log_prob.requires_grad


def test_metropolis_update_carries_the_proposal_density_and_keeps_rw_mala_states() -> None:
    state = MCMCState(torch.zeros(4, 2), torch.zeros(4), None, torch.zeros(4))
    proposal = MCMCState(torch.ones(4, 2), torch.ones(4), None, torch.full((4,), 7.0))
    new_state, info = metropolis_update(state, proposal, torch.tensor([50.0, -INF, 50.0, -INF]))
    torch.testing.assert_close(new_state.proposal_log_prob, torch.tensor([7.0, 0.0, 7.0, 0.0]))
    with pytest.raises(ValueError, match="proposal_log_prob"):
        metropolis_update(state, MCMCState(torch.ones(4, 2), torch.ones(4)), torch.zeros(4))
    mala_state = MALA(two_modes(), 0.1).init(torch.zeros(3, 2, dtype=F64))
    assert mala_state.proposal_log_prob is None


def test_flow_imh_rejects_bad_input() -> None:
    target, flow = two_modes(), poor_flow()
    with pytest.raises(TypeError, match="target"):
        FlowIndependenceMetropolis(object(), flow)
    with pytest.raises(TypeError, match="proposal"):
        FlowIndependenceMetropolis(target, object())
    with pytest.raises(ValueError, match="proposal.dim"):
        FlowIndependenceMetropolis(target, real_nvp(3, n_layers=1).double())
    kernel = FlowIndependenceMetropolis(target, flow)
    with pytest.raises(ValueError, match="position"):
        kernel.init(torch.zeros(4, 3, dtype=F64))
    with pytest.raises(ValueError, match=r"shape \(n_chains, 2\)"):
        kernel.init(torch.zeros(2, 4, 2, dtype=F64))
    with pytest.raises(ValueError, match="support"):
        FlowIndependenceMetropolis(HalfPlaneGaussian(), flow).init(-torch.ones(3, 2, dtype=F64))
    with pytest.raises(ValueError, match="FlowIndependenceMetropolis.init"):
        kernel.step(MCMCState(torch.zeros(3, 2, dtype=F64), torch.zeros(3, dtype=F64)))


@pytest.mark.parametrize("shift", [0.5, 1.5, 3.0])
def test_lognormal_acceptance_matches_independence_chains_with_gaussian_log_weights(shift, z_score) -> None:
    # Proposal N(0, 1), target N(shift, 1): log w = shift * x - shift^2 / 2 is exactly Gaussian
    # with sigma = shift under the proposal. The chains start at stationarity (target draws).
    torch.manual_seed(3)
    proposal = GaussianMixture(torch.zeros(1, 1, dtype=F64), 1.0)
    target = GaussianMixture(torch.full((1, 1), shift, dtype=F64), 1.0)
    result = run_chains(FlowIndependenceMetropolis(target, proposal), target.sample(256), n_steps=1000)
    accepted = result.accepted.double()
    exact = lognormal_independence_acceptance(shift)
    assert abs(float(z_score(accepted.mean(), torch.tensor(exact), mcse(accepted)))) < Z_MAX, (
        result.acceptance_rate(), exact
    )


def test_lognormal_acceptance_limits_and_bad_input() -> None:
    assert lognormal_independence_acceptance(0.0) == 1.0  # a perfect proposal is always accepted
    values = [lognormal_independence_acceptance(s) for s in (0.5, 1.0, 2.0, 4.0, 8.0)]
    assert all(a > b for a, b in zip(values, values[1:]))
    sigma = 8.0  # the large-sigma tail: 2 exp(-sigma^2 / 4) / (sigma sqrt(pi)), to a few percent
    assert values[-1] == pytest.approx(2 * math.exp(-sigma**2 / 4) / (sigma * math.sqrt(math.pi)), rel=0.05)
    with pytest.raises(ValueError, match="sigma"):
        lognormal_independence_acceptance(-1.0)
    with pytest.raises(TypeError, match="sigma"):
        lognormal_independence_acceptance("1")


def test_mode_weights_for_independent_weighted_and_chain_samples() -> None:
    """One function for every mode count: iid means, self-normalised means, and walker means over chains."""
    from lecturekit.diagnostics import interval_membership
    from lecturekit.estimates import mode_weights

    torch.manual_seed(0)
    membership = interval_membership(torch.randn(500, dtype=F64), torch.tensor([-5.0, -0.5, 0.5, 5.0], dtype=F64))
    assert membership.shape == (500, 3) and bool((membership.sum(-1) == 1).all())
    # independent samples: the mean and the equal-weights delta-method error
    plain = mode_weights(membership)
    equal = reweighted_expectation(membership, torch.zeros(500, dtype=F64))
    torch.testing.assert_close(plain.value, equal.value)
    torch.testing.assert_close(plain.stderr, equal.stderr)
    assert plain.tau is None and float(plain.value.sum()) == pytest.approx(1.0)
    # weighted: reweighted_expectation column by column
    log_w = torch.randn(500, dtype=F64)
    weighted = mode_weights(membership, log_w)
    for j in range(3):
        column = reweighted_expectation(membership[:, j], log_w)
        assert torch.equal(weighted.value[j], column.value) and torch.equal(weighted.stderr[j], column.stderr)
    # chains (n_steps, n_walkers, k): walker means, their mean and spread
    chains = membership.reshape(50, 10, 3)
    per_walker = chains.mean(0)
    estimate = mode_weights(chains)
    torch.testing.assert_close(estimate.value, per_walker.mean(0))
    torch.testing.assert_close(estimate.stderr, per_walker.std(0) / math.sqrt(10))
    # soft membership (responsibilities) works the same way
    soft = torch.softmax(torch.randn(200, 2, dtype=F64), -1)
    torch.testing.assert_close(mode_weights(soft).value, soft.mean(0))


def test_mode_weights_with_the_multi_chain_ess_error() -> None:
    """chain_error="ess": the same weights, the error of diagnostics.mcse, which covers the truth."""
    from lecturekit.diagnostics import ConstantChainError, mcse
    from lecturekit.estimates import mode_weights

    # 64 walkers of a two-state chain that leaves state 0 with p01 = 0.05 and state 1 with
    # p10 = 0.15: stationary weight of state 0 is p10 / (p01 + p10) = 0.75
    torch.manual_seed(4)
    n_steps, n_walkers = 2_000, 64
    state = (torch.rand(n_walkers) < 0.25).long()
    path = torch.empty(n_steps, n_walkers, dtype=torch.long)
    for t in range(n_steps):
        leave = torch.rand(n_walkers) < torch.where(state == 0, 0.05, 0.15)
        state = torch.where(leave, 1 - state, state)
        path[t] = state
    membership = torch.stack([path == 0, path == 1], -1).to(F64)
    estimate = mode_weights(membership, chain_error="ess")
    torch.testing.assert_close(estimate.value, membership.mean((0, 1)))
    torch.testing.assert_close(estimate.stderr, mcse(membership))
    z = (estimate.value - torch.tensor([0.75, 0.25], dtype=F64)) / estimate.stderr
    assert bool((z.abs() < 4).all()), z
    # walkers stuck in their starting modes: the walker-spread error is small and wrong, the
    # multi-chain ESS sees the disagreement and gives an error as large as the weights' range
    stuck = torch.zeros(100, 4, 2, dtype=F64)
    stuck[:, :2, 0] = 1.0
    stuck[:, 2:, 1] = 1.0
    assert bool((mode_weights(stuck, chain_error="ess").stderr > 0.2).all())
    # every walker always in one mode: no error bar exists, said loudly
    with pytest.raises(ConstantChainError):
        mode_weights(torch.stack([torch.ones(100, 4), torch.zeros(100, 4)], -1).to(F64), chain_error="ess")
    with pytest.raises(ValueError, match="chain_error"):
        mode_weights(membership, chain_error="walker")
