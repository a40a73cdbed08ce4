"""Resampling, AIS, SMC and annealed flow transport against exact answers (fixed seeds, z-scores
from Monte Carlo standard errors), plus the tempered path and the bookkeeping."""

from __future__ import annotations

import math

import pytest
import torch
from torch import Tensor

from lecturekit.distributions import StandardNormal
from lecturekit.flows.core import Flow, real_nvp
from lecturekit.estimates import log_partition_estimate
from lecturekit.samplers.mcmc import MALA, RandomWalkMetropolis
from lecturekit.samplers.resampling import multinomial_resample, systematic_resample
from lecturekit.samplers.smc import (
    annealed_importance_sampling,
    conditional_ess,
    flow_transport_smc,
    incremental_log_weights,
    log_partition_from_genealogy,
    next_inverse_temperature,
    sequential_monte_carlo,
    train_craft,
)
from lecturekit.targets.base import Target
from lecturekit.targets.toy import GaussianMixture
from lecturekit.targets.tempering import TemperedPath, check_schedule, geometric_schedule

Z_MAX = 4.0
F64 = {"dtype": torch.float64}


class ShiftedMixture(Target):
    """A Gaussian mixture times e^c: log Z = c exactly."""

    def __init__(self, mixture: GaussianMixture, log_z: float) -> None:
        self.mixture, self.log_z, self.dim = mixture, log_z, mixture.dim

    def energy(self, x: Tensor) -> Tensor:
        return -self.mixture.log_prob(x) - self.log_z


class HalfSpaceGaussian(Target):
    """N(0, I) (normalised) restricted to x_0 > 0 without renormalising: Z = 1/2, log_prob -inf outside."""

    def __init__(self, dim: int) -> None:
        self.dim = dim

    def energy(self, x: Tensor) -> Tensor:
        inside = 0.5 * x.square().sum(-1) + 0.5 * self.dim * math.log(2 * math.pi)
        return torch.where(x[..., 0] > 0, inside, math.inf)


def two_mode_target(dim: int, device: torch.device | str = "cpu", log_z: float = 2.5) -> ShiftedMixture:
    """Two separated modes of unequal weight and width in ``dim`` dimensions, log Z = ``log_z``."""
    ones = torch.ones(dim, **F64, device=device)
    mixture = GaussianMixture(torch.stack([ones, -ones]), torch.tensor([0.3, 0.6], **F64, device=device),
                              torch.tensor([0.3, 0.7], **F64, device=device))
    return ShiftedMixture(mixture, log_z)


def wide_base(dim: int, device: torch.device | str = "cpu") -> GaussianMixture:
    return GaussianMixture(torch.zeros(1, dim, **F64, device=device), 4.0)


def mala(step: float):
    return lambda tempered: MALA(tempered, step_size=step)


# --------------------------------------------------------------------------- resampling


def test_systematic_resampling_copies_each_particle_floor_or_ceil_of_n_w_and_n_w_on_average() -> None:
    """Every draw copies particle i floor(N W_i) or ceil(N W_i) times; over 4000 draws the mean number of
    copies matches N W_i within 4 standard errors, and its variance f(1-f) is at most multinomial's."""
    n, reps = 10, 4000
    log_w = torch.randn(n, **F64) * 1.5
    log_w[3] = -math.inf  # a zero weight is never copied
    expected = n * torch.softmax(log_w, 0)
    counts = torch.stack([torch.bincount(systematic_resample(log_w), minlength=n) for _ in range(reps)]).double()
    assert bool(((counts == expected.floor()) | (counts == expected.ceil())).all())
    assert bool((counts[:, 3] == 0).all())
    fraction = expected - expected.floor()
    exact_variance = fraction * (1 - fraction)
    multinomial_variance = expected * (1 - expected / n)
    assert bool((exact_variance <= multinomial_variance + 1e-12).all())
    standard_error = (exact_variance / reps).sqrt()
    varies = exact_variance > 0
    z = (counts.mean(0) - expected)[varies] / standard_error[varies]
    assert float(z.abs().max()) < Z_MAX, z
    assert bool((counts.mean(0)[~varies] == expected[~varies]).all())  # integer N W_i: always exact
    assert bool((counts.var(0) <= 1.5 * multinomial_variance + 1e-12).all())


def test_multinomial_resampling_has_mean_n_w_and_the_multinomial_variance_above_systematic() -> None:
    n, reps = 8, 4000
    log_w = torch.randn(n, **F64)
    expected = n * torch.softmax(log_w, 0)
    counts = torch.stack([torch.bincount(multinomial_resample(log_w), minlength=n) for _ in range(reps)]).double()
    variance = expected * (1 - expected / n)
    z = (counts.mean(0) - expected) / (variance / reps).sqrt()
    assert float(z.abs().max()) < Z_MAX
    systematic = torch.stack([torch.bincount(systematic_resample(log_w), minlength=n) for _ in range(reps)]).double()
    assert float(systematic.var(0).sum()) < float(counts.var(0).sum())


def test_resampling_rejects_bad_weights() -> None:
    with pytest.raises(ValueError, match="all -inf"):
        systematic_resample(torch.full((3,), -math.inf))
    with pytest.raises(ValueError, match="NaN"):
        systematic_resample(torch.tensor([0.0, math.nan]))
    with pytest.raises(ValueError, match="n_samples"):
        multinomial_resample(torch.zeros(3), 0)


# --------------------------------------------------------------------------- tempered path


def test_tempered_path_log_prob_and_score_interpolate_and_match_autograd() -> None:
    target = two_mode_target(3)
    base = StandardNormal(3).double()
    x = torch.randn(7, 3, **F64)
    for beta in (0.0, 0.3, 1.0):
        path = TemperedPath(target, base, beta)
        expected = (1 - beta) * base.log_prob(x) + beta * target.log_prob(x)
        log_prob, score = path.log_prob_and_score(x)
        assert torch.allclose(path.log_prob(x), expected) and torch.allclose(log_prob, expected)
        y = x.clone().requires_grad_(True)
        (grad,) = torch.autograd.grad(((1 - beta) * base.log_prob(y) + beta * target.log_prob(y)).sum(), y)
        assert torch.allclose(score, grad)
    powered = TemperedPath(target, None, 0.25)
    assert torch.allclose(powered.log_prob(x), 0.25 * target.log_prob(x))
    assert torch.allclose(powered.score(x), 0.25 * target.score(x))


def test_tempered_path_treats_zero_times_minus_infinity_as_zero() -> None:
    target = HalfSpaceGaussian(2)
    base = StandardNormal(2).double()
    outside = torch.tensor([[-1.0, 0.0]], **F64)
    assert torch.allclose(TemperedPath(target, base, 0.0).log_prob(outside), base.log_prob(outside))
    assert bool(torch.isneginf(TemperedPath(target, base, 0.5).log_prob(outside)).all())
    assert bool(torch.isneginf(incremental_log_weights(TemperedPath(target, base, 0.0), outside, 0.0, 0.1)).all())


def test_schedules_and_path_reject_bad_input() -> None:
    assert geometric_schedule(3, 0.01) == pytest.approx([0.01, 0.1, 1.0])
    for bad, match in (([0.5, 0.4, 1.0], "increasing"), ([0.5, 0.9], "end at 1"), ([], "empty"), ([0.0, 1.0], r"\(0, 1\]")):
        with pytest.raises(ValueError, match=match):
            check_schedule(bad)
    with pytest.raises(ValueError, match="beta"):
        TemperedPath(HalfSpaceGaussian(2), None, 0.0)
    with pytest.raises(ValueError, match="base.dim"):
        TemperedPath(HalfSpaceGaussian(2), StandardNormal(3), 0.5)
    with pytest.raises(TypeError, match="target"):
        TemperedPath("not a target", None, 0.5)  # type: ignore[arg-type]


# --------------------------------------------------------------------------- the building blocks


def test_conditional_ess_and_the_bisection_hit_the_target_cess() -> None:
    log_w = torch.randn(500, **F64)
    log_ratio = 5.0 * torch.randn(500, **F64)
    assert float(conditional_ess(torch.zeros(500, **F64), log_ratio)) == pytest.approx(
        float(torch.exp(2 * torch.logsumexp(log_ratio, 0) - torch.logsumexp(2 * log_ratio, 0))) / 500
    )
    beta = next_inverse_temperature(log_w, log_ratio, 0.1, target_cess=0.8)
    assert 0.1 < beta < 1.0
    assert float(conditional_ess(log_w, (beta - 0.1) * log_ratio)) == pytest.approx(0.8, abs=1e-6)
    assert next_inverse_temperature(log_w, 1e-3 * log_ratio, 0.1, target_cess=0.8) == 1.0


def test_genealogy_error_without_resampling_is_the_importance_sampling_error() -> None:
    log_w = torch.randn(300, **F64)
    mine = log_partition_from_genealogy(torch.zeros((), **F64), log_w, torch.arange(300), 0)
    reference = log_partition_estimate(log_w)
    assert torch.allclose(mine.value, reference.value) and torch.allclose(mine.stderr, reference.stderr)


# --------------------------------------------------------------------------- AIS and SMC against exact log Z


def test_ais_weights_estimate_z_without_bias() -> None:
    """Each AIS weight is an unbiased estimate of Z: their mean over 4096 particles matches the exact Z
    within 4 standard errors (of the mean of the weights)."""
    target = two_mode_target(2, log_z=1.0)
    result = annealed_importance_sampling(target, wide_base(2), 4096, geometric_schedule(12, 0.01), mala(0.05), 2)
    weights = result.log_weights.exp()
    z = (weights.mean() - math.e) / (weights.std() / math.sqrt(weights.numel()))
    assert abs(float(z)) < Z_MAX
    assert result.resampled == [False] * 12 and result.n_target_evaluations == 4096 * 12 * 4


@pytest.mark.parametrize("method", ["ais", "smc", "smc-multinomial", "smc-fixed-multinomial"])
def test_log_z_is_within_four_standard_errors_of_exact_over_repetitions(method: str, device) -> None:
    """20 independent runs on a two-mode mixture in 4 dimensions (log Z = 2.5): every run's log Z is within
    4 of its own standard errors of the exact value; the runs' mean of Z / Z_exact is 1 within 4 standard
    errors (Z is unbiased; log Z is only low by about se^2 / 2); and the reported errors are of the size of
    the runs' spread."""
    dim, reps, n = 4, 20, 256
    target, base = two_mode_target(dim, device), wide_base(dim, device)
    values, errors = [], []
    for _ in range(reps):
        if method == "ais":
            run = annealed_importance_sampling(target, base, n, geometric_schedule(20, 0.01), mala(0.1), 2)
        elif method == "smc-fixed-multinomial":  # systematic resampling would underestimate the error here
            run = sequential_monte_carlo(target, base, n, geometric_schedule(20, 0.01), mala(0.1), 2,
                                         resampling="multinomial")
        else:
            resampling = "multinomial" if method == "smc-multinomial" else "systematic"
            run = sequential_monte_carlo(target, base, n, None, mala(0.1), 2, resampling=resampling)
        assert run.particles.device.type == torch.device(device).type
        values.append(float(run.log_partition.value))
        errors.append(float(run.log_partition.stderr))
    values_t, errors_t = torch.tensor(values, **F64), torch.tensor(errors, **F64)
    assert float(((values_t - 2.5) / errors_t).abs().max()) < Z_MAX
    ratio = (values_t - 2.5).exp()
    assert abs(float((ratio.mean() - 1) / (ratio.std() / math.sqrt(reps)))) < Z_MAX
    spread = float(values_t.std())
    assert 0.4 < float(errors_t.mean()) / spread < 3.0, (float(errors_t.mean()), spread)


def test_adaptive_smc_keeps_the_conditional_ess_at_its_target_and_counts_its_evaluations() -> None:
    target, base = two_mode_target(3), wide_base(3)
    run = sequential_monte_carlo(target, base, 400, None, mala(0.1), 3, target_cess=0.7)
    assert run.betas[0] == 0.0 and run.betas[-1] == 1.0
    assert all(b > a for a, b in zip(run.betas, run.betas[1:]))
    n_steps = len(run.betas) - 1
    assert run.n_target_evaluations == 400 * n_steps * (1 + 1 + 3)  # reweight, kernel init, 3 MALA steps
    assert any(run.resampled) and len(run.ess) == n_steps
    assert all(0.0 < a <= 1.0 for a in run.acceptance)


def test_smc_handles_a_target_with_a_support_without_nan() -> None:
    """Half of the base's particles land where log_prob = -inf: they get weight zero, nothing is NaN,
    and log Z = log(1/2) within 4 standard errors."""
    target, base = HalfSpaceGaussian(2), GaussianMixture(torch.zeros(1, 2, **F64), 1.5)
    for run in (
        sequential_monte_carlo(target, base, 1000, None, lambda t: RandomWalkMetropolis(t, 0.3), 2),
        annealed_importance_sampling(target, base, 1000, [0.5, 1.0], lambda t: RandomWalkMetropolis(t, 0.3), 2),
    ):
        assert not bool(torch.isnan(run.log_weights).any()) and bool(torch.isfinite(run.particles).all())
        live = ~torch.isneginf(run.log_weights)
        assert bool((run.particles[live, 0] > 0).all())
        value, stderr = run.log_partition.value, run.log_partition.stderr
        assert abs(float(value) - math.log(0.5)) < Z_MAX * float(stderr)


# --------------------------------------------------------------------------- flow transport


def test_flow_transport_with_identity_flows_is_smc_sample_for_sample() -> None:
    target, base = two_mode_target(3), wide_base(3)
    betas = geometric_schedule(8, 0.02)
    torch.manual_seed(5)
    smc = sequential_monte_carlo(target, base, 300, betas, mala(0.1), 2)
    identity = [Flow(StandardNormal(3).double(), []) for _ in betas]
    torch.manual_seed(5)
    aft = flow_transport_smc(target, base, 300, betas, identity, mala(0.1), 2)
    fresh_flows = [real_nvp(3, n_layers=2).double() for _ in betas]  # built before seeding: init uses the RNG
    torch.manual_seed(5)  # a fresh Real NVP is the identity too, and with n_train_steps=0 it stays so
    fresh = flow_transport_smc(target, base, 300, betas, fresh_flows, mala(0.1), 2)
    for other in (aft, fresh):
        assert torch.equal(other.particles, smc.particles)
        assert torch.equal(other.log_weights, smc.log_weights)
        assert torch.equal(other.log_partition.value, smc.log_partition.value)
        assert other.resampled == smc.resampled and other.n_target_evaluations == smc.n_target_evaluations


def test_craft_trained_flows_raise_the_ess_and_keep_log_z_exact() -> None:
    """A Gaussian target far from the base, three temperatures: CRAFT-trained affine-coupling flows carry the
    particles so that the ESS after each step is far above SMC's, and the frozen-flow run's log Z is within
    4 standard errors of exact."""
    mixture = GaussianMixture(torch.tensor([[2.0, -1.0]], **F64), torch.tensor([[0.3, 0.6]], **F64))
    target, base = ShiftedMixture(mixture, -1.0), GaussianMixture(torch.zeros(1, 2, **F64), 1.0)
    betas = [0.3, 0.6, 1.0]
    flows = [real_nvp(2, n_layers=2, hidden=(16,)).double() for _ in betas]
    history = train_craft(target, base, 256, betas, flows, n_steps=40, n_train_steps=5, lr=1e-2,
                          make_local_kernel=mala(0.05))
    assert history.extras["n_training_evaluations"] > 0 and len(history.extras["log_partition"]) == 40
    assert len(history.losses) == 40 and history.ess == [] and all(len(last) == 3 for last in history.extras["flow_losses"])
    assert history.losses[-1] == pytest.approx(sum(history.extras["flow_losses"][-1]))
    run = flow_transport_smc(target, base, 512, betas, flows, mala(0.05), 1)
    plain = sequential_monte_carlo(target, base, 512, betas, mala(0.05), 1)
    assert min(run.ess) > 0.8 and min(run.ess) > min(plain.ess) + 0.2, (run.ess, plain.ess)
    assert abs(float(run.log_partition.value) + 1.0) < Z_MAX * float(run.log_partition.stderr)


def test_samplers_reject_bad_input() -> None:
    target, base = two_mode_target(2), wide_base(2)
    with pytest.raises(ValueError, match="n_particles"):
        sequential_monte_carlo(target, base, 1)
    with pytest.raises(ValueError, match="resampling"):
        sequential_monte_carlo(target, base, 10, resampling="stratified")
    with pytest.raises(ValueError, match="resample_threshold"):
        sequential_monte_carlo(target, base, 10, resample_threshold=1.5)
    with pytest.raises(ValueError, match="target_cess"):
        sequential_monte_carlo(target, base, 10, target_cess=1.0)
    with pytest.raises(ValueError, match="base.dim"):
        sequential_monte_carlo(target, wide_base(3), 10)
    with pytest.raises(ValueError, match="one flow per temperature"):
        flow_transport_smc(target, base, 10, [0.5, 1.0], [real_nvp(2, n_layers=2)])
    with pytest.raises(ValueError, match="betas"):
        annealed_importance_sampling(target, base, 10, [0.5, 0.7])


def test_in_run_flow_training_weighs_the_particles_it_was_fitted_to_and_overestimates_z() -> None:
    """``flow_transport_smc(n_train_steps > 0)`` fits each flow to the very particles it then weighs (AFT's
    in-run training). With 16 particles and one flow from N(0, I) to a normalised Gaussian (Z = 1), the flow
    learns to put those 16 points where the target is high, so Z-hat is biased upwards: over 20 runs the
    mean of log Z-hat is many standard errors above log Z = 0, which an unbiased Z-hat cannot do (Jensen:
    E log Z-hat <= log E Z-hat). The same flows, frozen and run on fresh particles, give Z-hat within 4
    standard errors of 1: the bias comes from reusing the particles, which is why train_craft evaluates with
    frozen flows. The training's own target evaluations are counted apart from the run's."""
    target = GaussianMixture(torch.tensor([[1.5, -1.0]], **F64), 0.5)
    base = GaussianMixture(torch.zeros(1, 2, **F64), 1.0)
    torch.manual_seed(0)
    in_run, frozen = [], []
    for _ in range(20):
        flow = real_nvp(2, n_layers=2, hidden=(8,)).double()
        before = [p.detach().clone() for p in flow.parameters()]
        run = flow_transport_smc(target, base, 16, [1.0], [flow], mala(0.05), 0, n_train_steps=20, lr=0.05)
        assert any(not torch.equal(a, b) for a, b in zip(before, flow.parameters()))  # the flow was trained
        assert len(run.transport_losses) == 1 and len(run.transport_losses[0]) == 20
        assert run.n_training_evaluations == 16 * 20 and run.n_target_evaluations == 16  # one reweighting
        in_run.append(float(run.log_partition.value))
        flow.requires_grad_(False)
        fresh = flow_transport_smc(target, base, 16, [1.0], [flow], mala(0.05), 0)
        assert fresh.transport_losses == [[]] and fresh.n_training_evaluations == 0
        frozen.append(float(fresh.log_partition.value))
    log_z_hat = torch.tensor(in_run, **F64)
    z_in_run = float(log_z_hat.mean() / (log_z_hat.std() / math.sqrt(len(in_run))))
    assert z_in_run > Z_MAX, z_in_run
    z_hat = torch.tensor(frozen, **F64).exp()
    z_frozen = float((z_hat.mean() - 1.0) / (z_hat.std() / math.sqrt(len(frozen))))
    assert abs(z_frozen) < Z_MAX, z_frozen


def test_step_counts_must_be_ints() -> None:
    target, base = two_mode_target(2), wide_base(2)
    with pytest.raises(TypeError, match="n_local_steps must be an int >= 0"):
        sequential_monte_carlo(target, base, 10, None, mala(0.1), 2.0)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="n_local_steps must be an int >= 0"):
        sequential_monte_carlo(target, base, 10, None, mala(0.1), -1)
    flows = [real_nvp(2, n_layers=2).double()]
    with pytest.raises(TypeError, match="n_train_steps must be an int >= 0"):
        flow_transport_smc(target, base, 10, [1.0], flows, n_train_steps=1.5)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="n_train_steps must be an int >= 0"):
        flow_transport_smc(target, base, 10, [1.0], flows, n_train_steps=-1)
