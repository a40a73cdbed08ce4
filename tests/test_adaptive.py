"""Adaptive flow-MCMC and the global-local sampler against exact answers (z-tests on the MCSE,
fixed seeds), plus their bookkeeping, support handling and input checks."""

from __future__ import annotations

import math

import pytest
import torch
from torch import Tensor

from lecturekit.diagnostics import mcse
from lecturekit.flows.core import real_nvp
from lecturekit.samplers.adaptive import GlobalLocalKernel, adaptive_flow_mcmc, global_local_mcmc
from lecturekit.samplers.mcmc import MALA, RandomWalkMetropolis, run_chains
from lecturekit.targets.base import Target
from lecturekit.targets.toy import GaussianMixture

Z_MAX = 4.0


def two_modes(device: torch.device | str = "cpu") -> GaussianMixture:
    """The lecture's mixture: means +-(1, 1), covariance 0.1 I, weights 0.25 / 0.75."""
    means = torch.tensor([[1.0, 1.0], [-1.0, -1.0]], device=device)
    return GaussianMixture(means, 0.1, torch.tensor([0.25, 0.75], device=device))


class HalfPlaneGaussian(Target):
    """N(0, I) restricted to x_0 > 0: energy +inf (log_prob -inf) for x_0 <= 0."""

    dim = 2

    def energy(self, x: Tensor) -> Tensor:
        return torch.where(x[..., 0] > 0, 0.5 * x.square().sum(-1), math.inf)


def z_scores(chains: Tensor, exact: Tensor) -> Tensor:
    """(chain mean - exact) / MCSE per coordinate, chains of shape (n_steps, n_chains, k)."""
    chains = chains.double().cpu()
    return (chains.mean((0, 1)) - exact.double().cpu()) / mcse(chains)


def test_production_samples_the_two_gaussian_mixture_with_the_right_weights_and_moments(device) -> None:
    """Walkers start half in each mode (weights 0.5 / 0.5, not 0.25 / 0.75): the global step must move
    mass between the modes. The production chains' mode weight, mean and second moments match the
    exact ones within 4 MCSE."""
    target = two_modes(device)
    flow = real_nvp(2, n_layers=4, hidden=(32, 32)).to(device)
    start = torch.cat([target.means[0] + 0.3 * torch.randn(32, 2, device=device),
                       target.means[1] + 0.3 * torch.randn(32, 2, device=device)])
    result = adaptive_flow_mcmc(target, flow, start, 250, 400, n_local_steps=3,
                                make_local_kernel=lambda t: MALA(t, 0.03), lr=3e-3)
    x = result.samples
    assert x.shape == (400, 64, 2) and bool(torch.isfinite(x).all())
    in_first_mode = (target.responsibilities(x)[..., 0] > 0.5).double()
    observables = torch.cat([in_first_mode.unsqueeze(-1), x, x.square()], dim=-1)
    exact = torch.cat([target.weights[:1], target.mean(), torch.diagonal(target.covariance()) + target.mean().square()])
    z = z_scores(observables, exact)
    assert bool((z.abs() < Z_MAX).all()), f"z-scores (weight, mean, second moments): {z.tolist()}"
    # the flow learned something: the global step is accepted often in production
    production_acceptance = sum(result.history.global_acceptance[250:]) / 400
    assert production_acceptance > 0.5, production_acceptance


def test_global_local_with_a_frozen_poor_flow_is_exact() -> None:
    """No training: an untrained flow (a standard normal) still gives exact samples, via local steps
    and rare global jumps; checked on the mean and the mode weight within 4 MCSE."""
    target = two_modes()
    flow = real_nvp(2, n_layers=2, hidden=(8,))
    start = target.sample(64)  # stationary start: any bias would come from the kernel
    result = global_local_mcmc(target, flow, start, 600, n_local_steps=2, make_local_kernel=lambda t: MALA(t, 0.03))
    assert result.training_samples.shape == (0, 64, 2) and result.history.losses == []
    assert len(result.history.global_acceptance) == 600 and result.history.n_training == 0
    x = result.samples
    observables = torch.cat([(target.responsibilities(x)[..., :1] > 0.5).double(), x], dim=-1)
    z = z_scores(observables, torch.cat([target.weights[:1], target.mean()]))
    assert bool((z.abs() < Z_MAX).all()), z.tolist()


def test_global_step_moves_walkers_between_modes_that_local_steps_cannot_cross() -> None:
    """A test that fails if the global step is switched off: from one mode, MALA alone never reaches
    the other (barrier of ~20 units of log-density), global-local does."""
    target = two_modes()
    flow = real_nvp(2, n_layers=2, hidden=(8,))
    start = target.means[1] + 0.1 * torch.randn(32, 2)
    local = run_chains(MALA(target, 0.03), start, 200)
    assert float((target.responsibilities(local.samples)[..., 0] > 0.5).double().mean()) == 0.0
    both = global_local_mcmc(target, flow, start, 200, n_local_steps=1, make_local_kernel=lambda t: MALA(t, 0.03))
    assert float((target.responsibilities(both.samples)[..., 0] > 0.5).double().mean()) > 0.05


def test_walkers_never_leave_the_support_and_nothing_is_nan() -> None:
    target = HalfPlaneGaussian()
    flow = real_nvp(2, n_layers=2, hidden=(8,))  # proposes x_0 <= 0 half of the time
    start = torch.rand(64, 2) + 0.1
    result = adaptive_flow_mcmc(target, flow, start, 20, 40, make_local_kernel=lambda t: RandomWalkMetropolis(t, 1.0),
                                n_local_steps=2)
    for samples in (result.samples, result.training_samples):
        assert bool(torch.isfinite(samples).all()) and bool((samples[..., 0] > 0).all())
    history = result.history
    assert all(math.isfinite(a) for a in history.global_acceptance + history.local_acceptance + history.losses)
    assert 0 < sum(history.global_acceptance) / 60 < 1


def test_history_lengths_thinning_and_acceptances_in_range() -> None:
    target = two_modes()
    result = adaptive_flow_mcmc(target, real_nvp(2, n_layers=2, hidden=(8,)), target.sample(8), 6, 9, thin=3)
    assert result.samples.shape == (3, 8, 2) and result.training_samples.shape == (2, 8, 2)
    history = result.history
    assert len(history.global_acceptance) == len(history.local_acceptance) == 15 and len(history.losses) == 6
    assert all(0 <= a <= 1 for a in history.global_acceptance + history.local_acceptance)
    assert torch.equal(result.samples[-1], result.final_state.position)
    assert result.acceptance_rate() == pytest.approx(sum(history.global_acceptance[6:]) / 9)  # production only
    training_only = adaptive_flow_mcmc(target, real_nvp(2, n_layers=2, hidden=(8,)), target.sample(8), 3, 0)
    with pytest.raises(ValueError, match="no production iterations"):
        training_only.acceptance_rate()


def test_no_local_steps_is_flow_imh_alone_and_runs_under_run_chains() -> None:
    target = two_modes()
    flow = real_nvp(2, n_layers=2, hidden=(8,))
    kernel = GlobalLocalKernel(target, flow, MALA(target, 0.03), n_local_steps=0)
    chains = run_chains(kernel, target.sample(8), 5)
    assert chains.samples.shape == (5, 8, 2) and chains.accepted.shape == (5, 8)
    result = global_local_mcmc(target, flow, target.sample(8), 4, n_local_steps=0)
    assert all(math.isnan(a) for a in result.history.local_acceptance)


def test_only_the_training_phase_changes_the_flow() -> None:
    target = two_modes()
    flow = real_nvp(2, n_layers=2, hidden=(8,))
    before = [p.detach().clone() for p in flow.parameters()]
    global_local_mcmc(target, flow, target.sample(8), 5)
    assert all(torch.equal(p, q) for p, q in zip(flow.parameters(), before))
    adaptive_flow_mcmc(target, flow, target.sample(8), 3, 0)
    assert not all(torch.equal(p, q) for p, q in zip(flow.parameters(), before))


@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        ({"n_training": -1}, ValueError, "n_training"),
        ({"n_production": 1.5}, TypeError, "n_production"),  # checks.py: a wrong kind is a TypeError
        ({"n_training": 0, "n_production": 0}, ValueError, "at least 1"),
        ({"thin": 0}, ValueError, "thin"),
        ({"n_local_steps": -2}, ValueError, "n_local_steps"),
    ],
)
def test_bad_arguments_raise_clear_errors(kwargs: dict, error: type[Exception], match: str) -> None:
    target = two_modes()
    arguments = {"n_training": 2, "n_production": 2} | kwargs
    with pytest.raises(error, match=match):
        adaptive_flow_mcmc(target, real_nvp(2, n_layers=2, hidden=(8,)), target.sample(4), **arguments)


def test_bad_flow_kernel_or_start_raise_clear_errors() -> None:
    target = two_modes()
    flow = real_nvp(2, n_layers=2, hidden=(8,))
    with pytest.raises(TypeError, match="flow"):
        adaptive_flow_mcmc(target, object(), target.sample(4), 1, 1)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="make_local_kernel must be a callable"):
        adaptive_flow_mcmc(target, flow, target.sample(4), 1, 1, make_local_kernel=object())  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="make_local_kernel must return an MCMC kernel"):
        adaptive_flow_mcmc(target, flow, target.sample(4), 1, 1, make_local_kernel=lambda t: None)
    with pytest.raises(ValueError, match="support"):
        adaptive_flow_mcmc(HalfPlaneGaussian(), flow, -torch.ones(4, 2), 1, 1)
