"""Tests for lecturekit.training: maximum likelihood, reverse KL (variational inference),
the Boltzmann-generator mix, and the one training loop they share."""

from __future__ import annotations

import math

import pytest
import torch

import lecturekit.training.loop as training
from lecturekit.device import seed_everything
from lecturekit.diagnostics import ess_from_log_weights
from lecturekit.distributions import DiagonalGaussian, StandardNormal
from lecturekit.flows.core import Flow, Transform, real_nvp
from lecturekit.progress import progress_bar
from lecturekit.targets.base import Target
from lecturekit.targets.toy import GaussianMixture
from lecturekit.training.loop import (
    StepResult,
    TrainingHistory,
    boltzmann_generator_loss,
    forward_kl_loss,
    reverse_kl_loss,
    reverse_kl_terms,
    train_boltzmann_generator,
    train_flow,
    train_max_likelihood,
    train_reverse_kl,
)

Z_MAX = 4.0
F64 = torch.float64


# Measured with seed 0 on the CPU (torch 2.13): held-out gap 0.039 +- 0.005 nats
# (seeds 1 and 2: 0.043, 0.037). The bound leaves a margin of about 2.5x.
MAX_GAP = 0.1


def two_gaussians() -> GaussianMixture:
    """The lecture's 2D mixture: means +-(1, 1), covariance 0.1 I, weights 0.25 / 0.75."""
    return GaussianMixture(torch.tensor([[1.0, 1.0], [-1.0, -1.0]]), 0.1, torch.tensor([0.25, 0.75]))


def test_forward_kl_loss_is_the_negative_mean_log_likelihood():
    flow = real_nvp(2, n_layers=2, hidden=(8,))
    data = torch.randn(16, 2)
    torch.testing.assert_close(forward_kl_loss(flow, data), -flow.log_prob(data).mean())


def test_max_likelihood_reaches_the_true_held_out_likelihood():
    seed_everything(0)
    target = two_gaussians()
    train, held_out = target.sample(4096), target.sample(4096)
    flow = real_nvp(2, n_layers=4, hidden=(32, 32))
    history = train_max_likelihood(flow, train, n_steps=400, batch_size=256, lr=5e-3)
    assert isinstance(history, TrainingHistory) and history.ess == [] and history.extras == {}
    history = history.losses
    assert len(history) == 400 and all(math.isfinite(v) for v in history)
    with torch.no_grad():
        gap = target.log_prob(held_out) - flow.log_prob(held_out)  # estimates KL(target || flow) >= 0
    mean, mcse = float(gap.mean()), float(gap.std()) / math.sqrt(len(gap))
    print(f"held-out gap to the true log-likelihood: {mean:.4f} +- {mcse:.4f} nats")
    assert -4 * mcse < mean < MAX_GAP
    # the loss went down from the base density's (identity flow) value
    assert sum(history[-50:]) / 50 < history[0] - 0.5


def test_training_runs_on_the_flow_device_and_dtype(device):
    seed_everything(1)
    flow = real_nvp(2, n_layers=2, hidden=(8,)).double().to(device)
    data = torch.randn(100, 2) + 3.0  # float32 on the CPU: moved and cast
    history = train_max_likelihood(flow, data, n_steps=30, batch_size=64, lr=1e-2).losses
    assert len(history) == 30 and history[-1] < history[0]
    assert next(flow.parameters()).device.type == device.type


def test_epochs_visit_every_point_once(monkeypatch):
    batches = []
    original = training.forward_kl_loss

    def recording_loss(flow, batch):
        batches.append(batch.clone())
        return original(flow, batch)

    monkeypatch.setattr(training, "forward_kl_loss", recording_loss)
    data = torch.arange(20.0).unsqueeze(1).repeat(1, 2)  # rows (i, i)
    train_max_likelihood(real_nvp(2, n_layers=1, hidden=(4,)), data, n_steps=4, batch_size=10)
    for epoch in (batches[0:2], batches[2:4]):
        assert sorted(torch.cat(epoch)[:, 0].tolist()) == list(range(20))


def test_progress_bar_follows_the_flag_and_the_environment(monkeypatch, capsys):
    monkeypatch.delenv("TQDM_DISABLE", raising=False)
    assert progress_bar(3, enabled=False).disable
    shown = progress_bar(3, enabled=True)
    assert not shown.disable
    shown.close()
    monkeypatch.setenv("TQDM_DISABLE", "1")
    assert progress_bar(3, enabled=True).disable
    capsys.readouterr()
    flow = real_nvp(2, n_layers=1, hidden=(4,))
    train_max_likelihood(flow, torch.randn(32, 2), n_steps=3, progress=True)
    assert capsys.readouterr().err == ""


def test_diverging_training_raises():
    seed_everything(2)
    flow = real_nvp(2, n_layers=2, hidden=(8,))
    with pytest.raises(FloatingPointError, match="at step"):
        train_max_likelihood(flow, torch.randn(100, 2), n_steps=20, lr=1e30)


@pytest.mark.parametrize(
    "kwargs, error, match",
    [
        ({"data": torch.randn(10, 3)}, ValueError, "data must have shape"),
        ({"data": torch.randn(10)}, ValueError, "data must have shape"),
        ({"data": torch.randn(2, 5, 2)}, ValueError, "data must have shape"),
        ({"data": torch.randn(0, 2)}, ValueError, "data must have shape"),
        ({"data": torch.tensor([[0.0, math.nan]])}, ValueError, "data must be finite"),
        ({"data": [[0.0, 1.0]]}, TypeError, "data must be a torch.Tensor"),
        ({"n_steps": 0}, ValueError, "n_steps"),
        ({"batch_size": 0}, ValueError, "batch_size"),
        ({"batch_size": 2.5}, TypeError, "batch_size"),
        ({"lr": -1e-3}, ValueError, "lr"),
        ({"weight_decay": -1.0}, ValueError, "weight_decay"),
        ({"flow": torch.nn.Linear(2, 2)}, TypeError, "flow"),
    ],
)
def test_bad_input_is_rejected(kwargs, error, match):
    arguments = {"flow": real_nvp(2, n_layers=1, hidden=(4,)), "data": torch.randn(10, 2), "n_steps": 2}
    arguments.update(kwargs)
    with pytest.raises(error, match=match):
        train_max_likelihood(**arguments)


def test_forward_kl_loss_rejects_bad_input():
    with pytest.raises(ValueError, match="data must have shape"):
        forward_kl_loss(real_nvp(2, n_layers=1, hidden=(4,)), torch.randn(5, 3))
    with pytest.raises(TypeError, match="flow"):
        forward_kl_loss(torch.nn.Linear(2, 2), torch.randn(5, 2))


# --------------------------------------------------------------------------- reverse KL: exact answers


class ElementwiseAffine(Transform):
    """x = mu + exp(log_sigma) * z: with a standard normal base, the flow is N(mu, diag sigma^2)."""

    def __init__(self, mu: torch.Tensor, log_sigma: torch.Tensor) -> None:
        super().__init__()
        self.dim = mu.numel()
        self.mu = torch.nn.Parameter(mu.clone())
        self.log_sigma = torch.nn.Parameter(log_sigma.clone())

    def forward(self, z):
        return self.mu + self.log_sigma.exp() * z, self.log_sigma.sum().expand(z.shape[:-1])

    def inverse(self, x):
        return (x - self.mu) * (-self.log_sigma).exp(), (-self.log_sigma.sum()).expand(x.shape[:-1])


def gaussian_flow() -> Flow:
    mu, log_sigma = torch.tensor([0.3, -0.5, 1.0], dtype=F64), torch.tensor([0.1, -0.3, 0.2], dtype=F64)
    return Flow(StandardNormal(3).double(), [ElementwiseAffine(mu, log_sigma)])


TARGET_MEAN = torch.tensor([1.0, 0.0, -1.0], dtype=F64)
TARGET_VAR = torch.tensor([0.5, 2.0, 1.0], dtype=F64)


def exact_loss(flow: Flow, beta: float) -> torch.Tensor:
    r"""KL(N(mu, sigma^2) || N(m, s^2 / beta)) - log Z_beta, Z_beta = int N(x; m, s^2)^beta dx, per coordinate."""
    layer = flow.transforms[0]
    var = (2 * layer.log_sigma).exp()
    target_var = TARGET_VAR / beta
    kl = 0.5 * (torch.log(target_var / var) + (var + (layer.mu - TARGET_MEAN) ** 2) / target_var - 1)
    log_z = 0.5 * ((1 - beta) * torch.log(2 * math.pi * TARGET_VAR) - math.log(beta))
    return (kl - log_z).sum()


@pytest.mark.parametrize("beta", [1.0, 0.5])
def test_reverse_kl_loss_and_gradient_are_unbiased(beta: float, z_score) -> None:
    target = GaussianMixture(TARGET_MEAN.unsqueeze(0), TARGET_VAR.unsqueeze(0))
    flow = gaussian_flow()
    parameters = list(flow.parameters())
    exact = exact_loss(flow, beta)
    exact_grad = torch.cat([g.flatten() for g in torch.autograd.grad(exact, parameters)])
    losses, grads = [], []
    for _ in range(64):  # 64 independent estimates of 2,000 samples each
        loss = reverse_kl_loss(flow, target, 2_000, beta=beta)
        grads.append(torch.cat([g.flatten() for g in torch.autograd.grad(loss, parameters)]))
        losses.append(loss.detach())
    losses, grads = torch.stack(losses), torch.stack(grads)
    z_loss = z_score(losses.mean(), exact, losses.std() / 8)
    z_grad = z_score(grads.mean(0), exact_grad, grads.std(0) / 8)
    assert abs(float(z_loss)) < Z_MAX and torch.all(z_grad.abs() < Z_MAX), (z_loss, z_grad)
    assert float(grads.std(0).max()) < 0.5 * float(exact_grad.abs().max())  # the test has power


def test_reverse_kl_at_the_target_is_minus_log_z_with_zero_variance() -> None:
    # a flow equal to the (normalised) target: every term is log q - log p = 0, and the ESS is perfect
    flow = Flow(StandardNormal(3).double(), [ElementwiseAffine(TARGET_MEAN, 0.5 * TARGET_VAR.log())])
    target = GaussianMixture(TARGET_MEAN.unsqueeze(0), TARGET_VAR.unsqueeze(0))
    terms = reverse_kl_terms(flow, target, 500)
    torch.testing.assert_close(terms, torch.zeros(500, dtype=F64), atol=1e-10, rtol=0)
    assert float(ess_from_log_weights(-terms.detach())) == pytest.approx(500)


def test_boltzmann_generator_loss_is_the_weighted_sum() -> None:
    flow = gaussian_flow()
    target = GaussianMixture(TARGET_MEAN.unsqueeze(0), TARGET_VAR.unsqueeze(0))
    data = torch.randn(50, 3, dtype=F64)
    seed_everything(5)
    combined = boltzmann_generator_loss(flow, target, data, 100, ml_weight=0.3, beta=0.7)
    seed_everything(5)
    separate = reverse_kl_loss(flow, target, 100, beta=0.7) + 0.3 * forward_kl_loss(flow, data)
    torch.testing.assert_close(combined, separate)


def test_reverse_kl_training_finds_a_correlated_gaussian() -> None:
    target = GaussianMixture(torch.tensor([[1.0, -0.5]]), torch.tensor([[[1.0, 0.6], [0.6, 0.8]]]))
    flow = real_nvp(2, n_layers=4, hidden=(32,))
    history = train_reverse_kl(flow, target, n_steps=400, batch_size=256, lr=5e-3, max_grad_norm=10.0)
    assert isinstance(history, TrainingHistory) and len(history.losses) == len(history.ess) == 400
    assert all(0 < e <= 1 for e in history.ess)
    # the loss estimates KL(flow || target) >= 0 (the target is normalised): near zero at the end
    final = sum(history.losses[-50:]) / 50
    print(f"final reverse KL {final:.4f}, ESS fraction {sum(history.ess[-50:]) / 50:.3f}")
    assert -0.01 < final < 0.05 and history.losses[0] > 0.5
    assert sum(history.ess[-50:]) / 50 > 0.9


def test_history_ess_is_kish_over_the_batch() -> None:
    target = GaussianMixture(torch.tensor([[1.0, -0.5]]), 0.5)
    seed_everything(7)
    history = train_reverse_kl(real_nvp(2, n_layers=2, hidden=(8,)), target, n_steps=1, batch_size=100)
    seed_everything(7)
    terms = reverse_kl_terms(real_nvp(2, n_layers=2, hidden=(8,)), target, 100)
    assert history.ess[0] == pytest.approx(float(ess_from_log_weights(-terms.detach())) / 100, rel=1e-5)
    assert history.losses[0] == pytest.approx(float(terms.detach().mean()), rel=1e-5)


def test_boltzmann_generator_data_pulls_the_flow_to_a_missed_mode() -> None:
    # reverse KL alone from a start near the heavy mode never finds the light one; data from it do
    means = torch.tensor([[1.0, 1.0], [-1.0, -1.0]])
    target = GaussianMixture(means, 0.1, torch.tensor([0.25, 0.75]))
    fractions = {}
    for ml_weight in (0.0, 1.0):
        seed_everything(11)
        base = DiagonalGaussian(torch.tensor([-1.0, -1.0]), torch.tensor([0.3, 0.3]))
        flow = real_nvp(2, n_layers=6, hidden=(32, 32), base=base)
        data = target.sample(200)
        train_boltzmann_generator(flow, target, data, n_steps=300, batch_size=256, ml_weight=ml_weight, lr=3e-3)
        fractions[ml_weight] = float((flow.sample(4000).sum(-1) > 0).float().mean())
    print(fractions)
    assert fractions[0.0] < 0.02 and fractions[1.0] > 0.1


# --------------------------------------------------------------------------- the shared loop: errors and restore


class NaNAfter(Target):
    """A Gaussian whose log-density turns NaN from its ``n_good``-th evaluation on."""

    dim = 2

    def __init__(self, n_good: int) -> None:
        self.calls = 0
        self.n_good = n_good

    def energy(self, x):
        self.calls += 1
        energy = 0.5 * x.square().sum(-1)
        return energy if self.calls <= self.n_good else energy * math.nan


def test_non_finite_reverse_kl_names_the_step_and_restores_the_flow() -> None:
    seed_everything(4)
    reference = real_nvp(2, n_layers=2, hidden=(8,))
    train_reverse_kl(reference, NaNAfter(n_good=62), n_steps=50, batch_size=32, lr=1e-2)
    seed_everything(4)
    flow = real_nvp(2, n_layers=2, hidden=(8,))
    with pytest.raises(FloatingPointError, match="at step 62"):
        train_reverse_kl(flow, NaNAfter(n_good=62), n_steps=200, batch_size=32, lr=1e-2)
    # put back to its parameters after step 49 (the last check, all finite), not left NaN
    for p, q in zip(flow.parameters(), reference.parameters()):
        torch.testing.assert_close(p, q)
    assert any(bool((p != 0).any()) for p in flow.transforms[0].conditioner[-1].parameters())


def test_infinite_energy_everywhere_fails_at_step_zero() -> None:
    class Nowhere(Target):
        dim = 2

        def energy(self, x):
            return torch.full(x.shape[:-1], math.inf)

    with pytest.raises(FloatingPointError, match="at step 0"):
        train_reverse_kl(real_nvp(2, n_layers=1, hidden=(4,)), Nowhere(), n_steps=5)


def test_train_flow_runs_a_custom_loss_with_cosine_schedule_and_clipping() -> None:
    flow = real_nvp(2, n_layers=1, hidden=(4,))
    data = torch.randn(64, 2) + 2.0

    def step_loss(step):
        return StepResult(forward_kl_loss(flow, data))

    history = train_flow(flow, step_loss, n_steps=30, lr=1e-2, max_grad_norm=1.0, lr_schedule="cosine")
    assert len(history.losses) == 30 and history.ess == [] and history.losses[-1] < history.losses[0]
    with pytest.raises(TypeError, match="StepResult"):
        train_flow(flow, lambda step: forward_kl_loss(flow, data), n_steps=2)


@pytest.mark.parametrize(
    "kwargs, error, match",
    [
        ({"flow": torch.nn.Linear(2, 2)}, TypeError, "flow"),
        ({"target": object()}, TypeError, "target"),
        ({"target": GaussianMixture(torch.zeros(1, 3))}, ValueError, "target.dim"),
        ({"n_steps": 0}, ValueError, "n_steps"),
        ({"batch_size": 0}, ValueError, "batch_size"),
        ({"batch_size": 8.0}, TypeError, "batch_size"),
        ({"beta": 0.0}, ValueError, "beta"),
        ({"beta": math.nan}, ValueError, "beta"),
        ({"beta": "1"}, TypeError, "beta"),
        ({"lr": 0.0}, ValueError, "lr"),
        ({"max_grad_norm": -1.0}, ValueError, "max_grad_norm"),
        ({"weight_decay": math.inf}, ValueError, "weight_decay"),
        ({"lr_schedule": "linear"}, ValueError, "lr_schedule"),
    ],
)
def test_reverse_kl_bad_input_is_rejected(kwargs, error, match):
    arguments = {"flow": real_nvp(2, n_layers=1, hidden=(4,)), "target": GaussianMixture(torch.zeros(1, 2)), "n_steps": 2}
    arguments.update(kwargs)
    with pytest.raises(error, match=match):
        train_reverse_kl(**arguments)


@pytest.mark.parametrize(
    "kwargs, error, match",
    [
        ({"data": torch.randn(10, 3)}, ValueError, "data must have shape"),
        ({"data": torch.tensor([[0.0, math.inf]])}, ValueError, "data must be finite"),
        ({"ml_weight": -1.0}, ValueError, "ml_weight"),
        ({"data_batch_size": 0}, ValueError, "data_batch_size"),
    ],
)
def test_boltzmann_generator_bad_input_is_rejected(kwargs, error, match):
    arguments = {
        "flow": real_nvp(2, n_layers=1, hidden=(4,)),
        "target": GaussianMixture(torch.zeros(1, 2)),
        "data": torch.randn(10, 2),
        "n_steps": 2,
    }
    arguments.update(kwargs)
    with pytest.raises(error, match=match):
        train_boltzmann_generator(**arguments)


def test_every_trainer_returns_one_training_history() -> None:
    """One history type for every trainer: ``losses`` one per step, ``ess`` and ``extras`` as documented."""
    from lecturekit.samplers.annealing import annealed_data_sets, annealed_reverse_kl
    from lecturekit.samplers.conditional import BlockConditionalFlow, train_block_flow
    from lecturekit.samplers.mcmc import RandomWalkMetropolis
    from lecturekit.samplers.smc import train_craft
    from lecturekit.targets.phi4_chain import Phi4Chain
    from lecturekit.targets.phi4_lattice import Phi4Lattice
    from lecturekit.training.tilt_start import train_reverse_kl_with_tilt_start
    from lecturekit.training.vae import VAE, train_vae

    seed_everything(0)
    target, data = two_gaussians(), torch.randn(64, 2)
    flow = real_nvp(2, n_layers=1, hidden=(4,))
    runs = {
        "train_max_likelihood": (train_max_likelihood(flow, data, 3, batch_size=16), 3, False),
        "train_reverse_kl": (train_reverse_kl(flow, target, 3, batch_size=16), 3, True),
        "train_boltzmann_generator": (train_boltzmann_generator(flow, target, data, 3, batch_size=16), 3, True),
        "train_vae": (train_vae(VAE(2, 1), data, 3, batch_size=16), 3, False),
        "train_block_flow": (train_block_flow(BlockConditionalFlow(2), Phi4Lattice(4, 1.0, 1.0), 2, n_chains=2), 2, False),
        "train_reverse_kl_with_tilt_start": (
            train_reverse_kl_with_tilt_start(real_nvp(4, n_layers=1, hidden=(4,)), Phi4Chain(4), 2, n_tilted_steps=1,
                                             batch_size=8), 3, True),
        "annealed_reverse_kl": (annealed_reverse_kl(flow, target, [0.5, 1.0], [2, 1], batch_size=16), 3, True),
        "annealed_data_sets": (
            annealed_data_sets(flow, target, [0.5, 1.0], torch.randn(8, 2), n_steps=2, n_train_steps=2,
                               make_local_kernel=lambda t: RandomWalkMetropolis(t, 0.1), batch_size=8), 4, False),
        "train_craft": (train_craft(target, GaussianMixture(torch.zeros(1, 2), 4.0), 32, [0.5, 1.0], [flow, flow],
                                    n_steps=2), 2, False),
    }
    for name, (history, n_steps, has_ess) in runs.items():
        assert type(history) is TrainingHistory, name
        assert len(history.losses) == n_steps and all(isinstance(v, float) for v in history.losses), name
        assert len(history.ess) == (n_steps if has_ess else 0), name
        assert isinstance(history.extras, dict), name
    assert set(runs["annealed_data_sets"][0].extras) == {"betas", "n_steps", "samples", "global_acceptance", "flow_states"}
    assert set(runs["train_craft"][0].extras) == {"flow_losses", "log_partition", "n_training_evaluations"}
