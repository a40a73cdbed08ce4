"""NeuTra (MCMC on a flow's push-backward) and mode counting (Section 4).

NeuTra is exact for any invertible flow, so its chains are checked against exact answers with
a deliberately bad (random) flow; its log-density against an independent change of variables
(autograd Jacobian, slogdet, float64); its score against finite differences. Mode counting is
checked on hand-made chains, then used on the 4-mode mixture of Grenioux et al. (ICML 2023).
"""

from __future__ import annotations

import math

import pytest
import torch

from lecturekit.diagnostics import ConstantChainError, ModeOccupancy, mcse, mode_fraction_mcse, mode_occupancy
from lecturekit.flows.core import Flow, real_nvp
from lecturekit.samplers.adaptive import global_local_mcmc
from lecturekit.samplers.mcmc import MALA, RandomWalkMetropolis, run_chains
from lecturekit.samplers.neutra import NeuTraTarget
from lecturekit.targets.toy import GaussianMixture, four_mode_mixture
from lecturekit.training.loop import train_max_likelihood

from test_adaptive import HalfPlaneGaussian, z_scores  # N(0, I) on x_0 > 0; (mean - exact) / MCSE

Z_MAX = 4.0


def random_flow(dim: int, n_layers: int = 4, hidden: tuple[int, ...] = (16,), scale: float = 0.1,
                dtype: torch.dtype = torch.float32) -> Flow:
    """A real_nvp far from the identity: every conditioner's last layer gets random weights."""
    flow = real_nvp(dim, n_layers=n_layers, hidden=hidden).to(dtype)
    with torch.no_grad():
        for layer in flow.transforms:
            last = layer.conditioner[-1]
            last.weight.normal_(0.0, scale)
            last.bias.normal_(0.0, scale)
    return flow


def two_modes() -> GaussianMixture:
    """Two overlapping modes (a local kernel mixes between them), unequal weights, exact moments."""
    means = torch.tensor([[0.6, 0.3], [-0.6, -0.3]])
    return GaussianMixture(means, torch.tensor([[0.5, 0.6], [0.6, 0.4]]), torch.tensor([0.3, 0.7]))


# --------------------------------------------------------------------------- the push-backward density


def test_log_prob_is_the_change_of_variables_with_the_autograd_jacobian() -> None:
    """log rho_*(T(z)) + log|det dT/dz| with the Jacobian from torch.autograd.functional.jacobian
    and slogdet, in float64, point by point."""
    mixture = two_modes()
    target = GaussianMixture(mixture.means.double(), mixture.covariances.double(), mixture.weights.double())
    flow = random_flow(2, scale=0.5, dtype=torch.float64)
    latent = NeuTraTarget(target, flow)
    z = torch.randn(6, 2, dtype=torch.float64)
    expected = []
    for point in z:
        jacobian = torch.autograd.functional.jacobian(lambda p: flow(p.unsqueeze(0))[0].squeeze(0), point)
        sign, log_abs_det = torch.linalg.slogdet(jacobian)
        assert float(sign) != 0.0
        x = flow(point.unsqueeze(0))[0].squeeze(0)
        expected.append(target.log_prob(x) + log_abs_det)
    log_prob = latent.log_prob(z)
    assert torch.allclose(log_prob, torch.stack(expected).detach(), rtol=0, atol=1e-10)
    assert torch.allclose(latent.energy(z), -log_prob) and latent.beta == 1.0
    # the flow is far from the identity: it moves the points and changes volumes
    with torch.no_grad():
        x, log_det = flow(z)
    assert float((x - z).abs().max()) > 0.5 and float(log_det.abs().min()) > 0.05


def test_score_matches_central_finite_differences() -> None:
    target = GaussianMixture(two_modes().means.double(), 0.5)
    latent = NeuTraTarget(target, random_flow(2, scale=0.5, dtype=torch.float64))
    z = torch.randn(5, 2, dtype=torch.float64)
    log_prob, score = latent.log_prob_and_score(z)
    eps = 1e-6
    eye = torch.eye(2, dtype=torch.float64)
    finite_differences = torch.stack(
        [(latent.log_prob(z + eps * e) - latent.log_prob(z - eps * e)) / (2 * eps) for e in eye], dim=-1
    )
    assert torch.allclose(score, finite_differences, rtol=0, atol=1e-6)
    assert torch.equal(log_prob, latent.log_prob(z)) and not log_prob.requires_grad and not score.requires_grad
    assert torch.allclose(latent.score(z), score)
    # the score is taken with respect to z only: the flow's parameters collect no gradient
    assert all(p.grad is None for p in latent.flow.parameters())


def test_outside_the_support_log_prob_is_minus_inf_and_the_score_zero_never_nan() -> None:
    latent = NeuTraTarget(HalfPlaneGaussian(), random_flow(2))
    z = torch.randn(400, 2)
    inside = latent.to_target(z)[:, 0] > 0
    assert 0 < int(inside.sum()) < 400  # both cases occur
    log_prob, score = latent.log_prob_and_score(z)
    assert bool(torch.isneginf(log_prob[~inside]).all()) and bool(torch.isfinite(log_prob[inside]).all())
    assert bool((score[~inside] == 0).all()) and bool(torch.isfinite(score).all())
    assert not bool(torch.isnan(latent.log_prob(z)).any())


# --------------------------------------------------------------------------- chains in latent space


def test_neutra_mala_with_a_random_flow_samples_the_target_exactly(device) -> None:
    """MALA on the push-backward through a random (untrained) flow, mapped back through T: the
    mean and second moments of a two-mode mixture within 4 MCSE. Chains start from exact samples
    mapped into latent space, so any bias would come from the kernel: with the log-det left out,
    the same run gives z-scores of 10 to 22 on three of the five observables."""
    target = two_modes().to(device)
    latent = NeuTraTarget(target, random_flow(2).to(device))
    start = latent.to_latent(target.sample(64))
    result = run_chains(MALA(latent, step_size=0.4), start, 800)
    assert 0.3 < result.acceptance_rate() < 0.95
    x = latent.to_target(result.samples)
    assert x.shape == (800, 64, 2) and bool(torch.isfinite(x).all())
    observables = torch.cat([x, x.square(), x[..., :1] * x[..., 1:]], dim=-1)
    mean, covariance = target.mean(), target.covariance()
    second = covariance + torch.outer(mean, mean)
    exact = torch.cat([mean, torch.diagonal(second), second[0, 1:2]])
    z = z_scores(observables, exact)
    assert bool((z.abs() < Z_MAX).all()), f"z-scores (mean, second moments, cross moment): {z.tolist()}"


def test_random_walk_on_the_push_backward_never_leaves_the_support() -> None:
    latent = NeuTraTarget(HalfPlaneGaussian(), random_flow(2))
    start = latent.to_latent(torch.rand(16, 2) + torch.tensor([0.1, -0.5]))
    result = run_chains(RandomWalkMetropolis(latent, step_size=1.0), start, 50)
    x = latent.to_target(result.samples)
    assert bool((x[..., 0] > 0).all()) and 0 < result.acceptance_rate() < 1


def test_maps_between_spaces_are_inverse_batched_and_keep_the_shape() -> None:
    latent = NeuTraTarget(two_modes(), random_flow(2))
    z = torch.randn(7, 3, 2, requires_grad=True)
    x = latent.to_target(z, batch_size=4)
    assert x.shape == z.shape and not x.requires_grad
    assert torch.allclose(x, latent.flow(z.detach())[0])
    assert torch.allclose(latent.to_latent(x, batch_size=5), z.detach(), atol=1e-5)


def test_bad_input_gets_clear_errors() -> None:
    flow = random_flow(2)
    with pytest.raises(TypeError, match="target"):
        NeuTraTarget(flow, flow)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="flow"):
        NeuTraTarget(two_modes(), two_modes())  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="flow.dim"):
        NeuTraTarget(GaussianMixture(torch.zeros(1, 3)), flow)
    latent = NeuTraTarget(two_modes(), flow)
    with pytest.raises(ValueError, match="z must have shape"):
        latent.log_prob(torch.zeros(4, 3))
    with pytest.raises(TypeError, match="z has dtype torch.float64"):
        latent.log_prob_and_score(torch.zeros(4, 2, dtype=torch.float64))
    with pytest.raises(TypeError, match="x must have a floating-point dtype"):
        latent.to_latent(torch.zeros(4, 2, dtype=torch.long))
    with pytest.raises(ValueError, match="batch_size"):
        latent.to_target(torch.zeros(4, 2), batch_size=0)


# --------------------------------------------------------------------------- mode counting


def test_mode_occupancy_on_hand_made_chains() -> None:
    modes = torch.tensor([[0.0, 0.0], [10.0, 0.0], [0.0, 10.0]])
    # 4 steps, 2 chains: chain 0 sits in mode 0 then jumps to mode 1; chain 1 stays in mode 2
    chains = torch.tensor([
        [[0.1, -0.2], [0.3, 9.0]],
        [[-0.5, 0.4], [-1.0, 11.0]],
        [[9.0, 1.0], [0.2, 10.5]],
        [[10.5, -0.3], [0.0, 8.7]],
    ])
    occupancy = mode_occupancy(chains, modes, exact_weights=torch.tensor([0.5, 0.25, 0.25]))
    assert isinstance(occupancy, ModeOccupancy)
    assert torch.equal(occupancy.visited, torch.tensor([[True, True, False], [False, False, True]]))
    assert torch.equal(occupancy.modes_found, torch.tensor([True, True, True]))
    assert torch.allclose(occupancy.fractions, torch.tensor([0.25, 0.25, 0.5]))
    assert torch.allclose(occupancy.weight_error, torch.tensor([0.25, 0.0, 0.25]))
    assert mode_occupancy(chains, modes).weight_error is None
    only_first = mode_occupancy(chains[:2, :1], modes)
    assert torch.equal(only_first.modes_found, torch.tensor([True, False, False]))
    assert torch.allclose(only_first.fractions, torch.tensor([1.0, 0.0, 0.0]))


def test_mode_occupancy_rejects_bad_input() -> None:
    modes = torch.zeros(3, 2)
    with pytest.raises(ValueError, match="chains must have shape"):
        mode_occupancy(torch.zeros(5, 2), modes)
    with pytest.raises(ValueError, match="chains must have shape"):
        mode_occupancy(torch.zeros(5, 4, 3), modes)
    with pytest.raises(ValueError, match="modes must have shape"):
        mode_occupancy(torch.zeros(5, 4, 2), torch.zeros(2))
    with pytest.raises(TypeError, match="chains"):
        mode_occupancy(torch.zeros(5, 4, 2, dtype=torch.long), modes)
    with pytest.raises(ValueError, match="chains contain NaN"):
        mode_occupancy(torch.full((5, 4, 2), math.nan), modes)
    with pytest.raises(ValueError, match="exact_weights must have shape"):
        mode_occupancy(torch.zeros(5, 4, 2), modes, torch.ones(2) / 2)
    with pytest.raises(ValueError, match="exact_weights must be finite"):
        mode_occupancy(torch.zeros(5, 4, 2), modes, torch.tensor([0.5, 0.6, -0.1]))


def test_mode_fraction_mcse_is_the_mcse_of_the_mode_indicator() -> None:
    """Independent draws: the error of each fraction is sqrt(w (1 - w) / N) (within 10 %), and it is
    exactly mcse() of the indicator of the nearest mode. Chains stuck in different modes get an
    error as large as the spread of the starting fractions; a label that never changes raises."""
    generator = torch.Generator().manual_seed(3)
    modes = torch.tensor([[0.0, 0.0], [10.0, 0.0], [0.0, 10.0]])
    weights = torch.tensor([0.2, 0.3, 0.5])
    n_steps, n_chains = 2000, 8
    labels = torch.multinomial(weights, n_steps * n_chains, replacement=True, generator=generator)
    chains = (modes[labels] + torch.randn(n_steps * n_chains, 2, generator=generator)).reshape(n_steps, n_chains, 2)
    errors = mode_fraction_mcse(chains, modes)
    assert errors.shape == (3,) and errors.dtype == chains.dtype
    expected = torch.sqrt(weights * (1 - weights) / (n_steps * n_chains))
    assert torch.allclose(errors, expected, rtol=0.1), (errors.tolist(), expected.tolist())
    indicator = (labels.reshape(n_steps, n_chains) == 1).double()
    assert torch.isclose(errors[1].double(), mcse(indicator), rtol=1e-6)

    stuck = torch.randn(400, 4, 2, generator=generator) + modes[torch.tensor([0, 0, 1, 1])]
    stuck_errors = mode_fraction_mcse(stuck, modes[:2])
    assert bool((stuck_errors > 0.2).all()), stuck_errors.tolist()  # independent draws would give ~0.0125
    with pytest.raises(ConstantChainError, match=r"modes \[2\] never changes"):
        mode_fraction_mcse(stuck, modes)  # mode 2 is never visited
    with pytest.raises(ValueError, match="chains must have shape"):
        mode_fraction_mcse(stuck[0], modes)


def test_global_local_finds_all_four_modes_in_dimension_16_and_local_mala_alone_does_not() -> None:
    """All 32 walkers start in one mode of the 4-mode mixture in d = 16. With a flow trained briefly
    by maximum likelihood on exact samples, the global-local sampler (one flow-IMH step and 2 MALA
    steps per iteration, flow frozen) visits all four modes with weights within 0.05 of the exact
    1/4; MALA alone, with more steps, stays where it started (the barriers are several nats high)."""
    dim = 16
    target = four_mode_mixture(dim)
    flow = real_nvp(dim, n_layers=6, hidden=(64, 64))
    train_max_likelihood(flow, target.sample(4096), 300, batch_size=256, lr=3e-3)
    start = target.means[0] + torch.randn(32, dim)
    result = global_local_mcmc(target, flow, start, 300, n_local_steps=2, make_local_kernel=lambda t: MALA(t, 0.3))
    assert sum(result.history.global_acceptance) / 300 > 0.1
    occupancy = mode_occupancy(result.samples[50:], target.means, target.weights)  # 50 iterations of burn-in
    assert bool(occupancy.modes_found.all()), occupancy.fractions.tolist()
    assert float(occupancy.weight_error.max()) < 0.05, occupancy.fractions.tolist()

    local_only = run_chains(MALA(target, step_size=0.3), start, 900)
    occupancy = mode_occupancy(local_only.samples, target.means, target.weights)
    assert int(occupancy.modes_found.sum()) < 4, occupancy.fractions.tolist()
    assert float(occupancy.weight_error.max()) > 0.05, occupancy.fractions.tolist()
