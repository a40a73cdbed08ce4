"""Hamiltonian Monte Carlo against targets with known answers (z-tests with the MCSE from tau)."""

from __future__ import annotations

import pytest
import torch
from torch import Tensor

from lecturekit.diagnostics import mcse
from lecturekit.targets.phi4_lattice import Phi4Lattice, magnetization, site_correlator
from lecturekit.samplers.hmc import HMC
from lecturekit.samplers.mcmc import MCMCState, run_chains
from lecturekit.targets.toy import GaussianMixture
from test_samplers import PositiveGamma, chain_z_scores, correlated_gaussian

Z_MAX = 4.0
F64 = torch.float64


def test_hmc_recovers_a_correlated_gaussian() -> None:
    target = correlated_gaussian()
    result = run_chains(HMC(target, step_size=0.4, n_leapfrog=4, jitter=0.3), target.sample(64), n_steps=800)
    assert 0.5 < result.acceptance_rate() < 0.99
    z = chain_z_scores(result.samples, target.mean(), target.covariance())
    assert torch.all(z.abs() < Z_MAX), z


def test_hmc_on_the_free_field_matches_the_exact_propagator() -> None:
    # Free lattice field (lam = 0), L = 4, m2 = 1: G(y) for every separation and chi_2 = 1 / (2 m2).
    L, m2 = 4, 1.0
    target = Phi4Lattice(L, m2=m2, lam=0.0)
    result = run_chains(HMC(target, 0.25, n_leapfrog=4, jitter=0.5), torch.zeros(128, L * L, dtype=F64), 700)
    samples = result.samples[100:]
    correlator = site_correlator(samples).flatten(-2)  # (steps, chains, V); <phi> = 0 exactly here
    z_G = (correlator.mean((0, 1)) - target.free_two_point().flatten()) / mcse(correlator)
    assert torch.all(z_G.abs() < Z_MAX), z_G
    m_squared = magnetization(samples) ** 2 / (L * L)
    z_chi = (m_squared.mean() - 1 / (2 * m2)) / mcse(m_squared)
    assert abs(float(z_chi)) < Z_MAX


def test_per_chain_step_sizes_set_per_chain_acceptance() -> None:
    # For a standard normal, the leapfrog energy error grows with h: smaller steps accept more.
    target = GaussianMixture(torch.zeros(1, 3, dtype=F64))
    step_size = torch.tensor([0.25, 1.5], dtype=F64).repeat_interleave(128)
    result = run_chains(HMC(target, step_size, n_leapfrog=4, jitter=0.2), target.sample(256), n_steps=400)
    rates = result.accepted.double().reshape(400, 2, 128).mean((0, 2))
    assert rates[0] > 0.98 and rates[1] < 0.9, rates
    for samples in result.samples.reshape(400, 2, 128, 3).unbind(1):  # each group samples N(0, I)
        assert torch.all((samples.mean((0, 1)) / mcse(samples)).abs() < Z_MAX)


def test_one_step_costs_n_leapfrog_score_calls() -> None:
    class Counting(GaussianMixture):
        calls = 0

        def log_prob_and_score(self, x: Tensor) -> tuple[Tensor, Tensor]:
            Counting.calls += 1
            return super().log_prob_and_score(x)

    target = Counting(torch.zeros(1, 2, dtype=F64))
    kernel = HMC(target, 0.1, n_leapfrog=7)
    state = kernel.init(torch.zeros(5, 2, dtype=F64))
    Counting.calls = 0
    kernel.step(state)
    assert Counting.calls == 7


def test_leapfrog_is_reversible_and_nearly_conserves_energy() -> None:
    target = correlated_gaussian()
    kernel = HMC(target, 0.05, n_leapfrog=20)
    x = target.sample(16)
    p = torch.randn_like(x)
    _, score = target.log_prob_and_score(x)
    x1, p1, log_prob1, score1 = kernel.leapfrog(x, p, score, 0.05)
    x2, p2, _, _ = kernel.leapfrog(x1, -p1, score1, 0.05)
    torch.testing.assert_close(x2, x, rtol=1e-10, atol=1e-10)
    torch.testing.assert_close(-p2, p, rtol=1e-10, atol=1e-10)
    energy_change = -log_prob1 + 0.5 * p1.square().sum(-1) + target.log_prob(x) - 0.5 * p.square().sum(-1)
    assert float(energy_change.abs().max()) < 1e-2


def test_hmc_rejects_trajectories_that_leave_the_support_without_nan() -> None:
    target = PositiveGamma()
    kernel = HMC(target, 0.6, n_leapfrog=5, jitter=0.2)
    state = kernel.init(torch.full((128, 2), 2.0, dtype=F64))
    positions, ratios = [], []
    for _ in range(800):
        state, info = kernel.step(state)
        positions.append(state.position)
        ratios.append(info.log_acceptance_ratio)
    samples, ratios = torch.stack(positions), torch.stack(ratios)
    assert not torch.isnan(ratios).any()
    assert torch.isneginf(ratios).float().mean() > 0.01  # some trajectories did leave the support
    assert torch.all(samples > 0) and torch.all(torch.isfinite(state.score))
    z = (samples[100:].mean((0, 1)) - 2.0) / mcse(samples[100:])  # Gamma(2, 1) has mean 2
    assert torch.all(z.abs() < Z_MAX), z


def test_hmc_state_caches_log_prob_and_score() -> None:
    target = correlated_gaussian()
    kernel = HMC(target, 0.3, n_leapfrog=3)
    state, _ = kernel.step(kernel.init(target.sample(10)))
    assert isinstance(state, MCMCState)
    log_prob, score = target.log_prob_and_score(state.position)
    torch.testing.assert_close(state.log_prob, log_prob)
    torch.testing.assert_close(state.score, score)


@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        ({"n_leapfrog": 0}, ValueError, "n_leapfrog"),
        ({"n_leapfrog": 2.0}, TypeError, "n_leapfrog"),
        ({"jitter": 1.0}, ValueError, "jitter"),
        ({"jitter": -0.1}, ValueError, "jitter"),
        ({"step_size": -0.1}, ValueError, "step_size"),
    ],
)
def test_bad_arguments_are_named(kwargs: dict, error: type[Exception], match: str) -> None:
    arguments = {"step_size": 0.1, **kwargs}
    with pytest.raises(error, match=match):
        HMC(correlated_gaussian(), **arguments)


def test_init_outside_the_support_is_refused() -> None:
    with pytest.raises(ValueError, match="support"):
        HMC(PositiveGamma(), 0.1).init(torch.tensor([[1.0, 1.0], [-1.0, 1.0]], dtype=F64))
