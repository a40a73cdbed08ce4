"""Tests for lecturekit.distributions: exact log-densities, sample moments, devices, bad input."""

from __future__ import annotations

import math

import pytest
import torch
from torch.distributions import Independent, Normal

from lecturekit.checks import check_positive_int
from lecturekit.distributions import DiagonalGaussian, StandardNormal

LOC = torch.tensor([0.5, -2.0, 3.0], dtype=torch.float64)
SCALE = torch.tensor([0.3, 1.0, 2.5], dtype=torch.float64)


def assert_moments(samples: torch.Tensor, mean: torch.Tensor, std: torch.Tensor, z_max: float = 4.5) -> None:
    """Sample mean and variance against exact values, within z_max Monte Carlo standard errors."""
    n = samples.shape[0]
    z_mean = (samples.mean(0) - mean) / (std / math.sqrt(n))
    # Var of the sample variance of a Gaussian: 2 sigma^4 / (n - 1)
    z_var = (samples.var(0) - std**2) / (std**2 * math.sqrt(2 / (n - 1)))
    assert z_mean.abs().max() < z_max, z_mean
    assert z_var.abs().max() < z_max, z_var


def test_standard_normal_log_prob_is_exact():
    base = StandardNormal(3).double()
    z = 2 * torch.randn(10, 3, dtype=torch.float64)
    expected = Normal(0.0, 1.0).log_prob(z).sum(-1)
    torch.testing.assert_close(base.log_prob(z), expected, rtol=0, atol=1e-12)
    # leading batch dimensions
    assert base.log_prob(torch.zeros(4, 5, 3, dtype=torch.float64)).shape == (4, 5)


def test_standard_normal_samples_have_the_right_moments():
    torch.manual_seed(0)
    samples = StandardNormal(4).double().sample(20_000)
    assert samples.shape == (20_000, 4)
    assert_moments(samples, torch.zeros(4, dtype=torch.float64), torch.ones(4, dtype=torch.float64))


def test_standard_normal_has_no_state_to_save():
    assert list(StandardNormal(2).state_dict()) == [] and list(StandardNormal(2).parameters()) == []


@pytest.mark.parametrize("trainable", [False, True])
def test_diagonal_gaussian_log_prob_is_exact(trainable):
    base = DiagonalGaussian(LOC, SCALE, trainable=trainable)
    z = 3 * torch.randn(10, 3, dtype=torch.float64)
    expected = Independent(Normal(LOC, SCALE), 1).log_prob(z)
    torch.testing.assert_close(base.log_prob(z), expected, rtol=0, atol=1e-12)
    torch.testing.assert_close(base.scale, SCALE)


def test_diagonal_gaussian_samples_have_the_right_moments():
    torch.manual_seed(1)
    samples = DiagonalGaussian(LOC, SCALE).sample(20_000)
    assert samples.dtype == torch.float64
    assert_moments(samples, LOC, SCALE)


def test_trainable_diagonal_gaussian_is_reparametrised():
    base = DiagonalGaussian(LOC, SCALE, trainable=True)
    assert {name for name, _ in base.named_parameters()} == {"loc", "log_scale"}
    torch.manual_seed(2)
    samples = base.sample(5)
    torch.manual_seed(2)
    eps = torch.randn(5, 3, dtype=torch.float64)
    samples.sum().backward()
    # z = loc + exp(log_scale) * eps: dz/dloc = 1, dz/dlog_scale = scale * eps
    torch.testing.assert_close(base.loc.grad, torch.full((3,), 5.0, dtype=torch.float64))
    torch.testing.assert_close(base.log_scale.grad, (SCALE * eps).sum(0))


def test_fixed_diagonal_gaussian_keeps_buffers():
    base = DiagonalGaussian(LOC, SCALE)
    assert list(base.parameters()) == []
    assert set(base.state_dict()) == {"loc", "log_scale"}
    assert base.float().sample(2).dtype == torch.float32


def test_config_rebuilds_the_same_layout():
    for base in (StandardNormal(3), DiagonalGaussian(LOC, SCALE, trainable=True)):
        rebuilt = type(base).from_config(**base.config())
        assert rebuilt.dim == base.dim
        assert {k: v.shape for k, v in rebuilt.state_dict().items()} == {
            k: v.shape for k, v in base.state_dict().items()
        }
        rebuilt.load_state_dict(base.state_dict())  # values come from the state dict


def test_bases_follow_their_device(device):
    for base in (StandardNormal(2), DiagonalGaussian(torch.zeros(2), torch.ones(2), trainable=True)):
        moved = base.to(device)
        z = moved.sample(6)
        assert z.device.type == device.type and moved.log_prob(z).device.type == device.type


@pytest.mark.parametrize(
    "call, error, match",
    [
        (lambda: StandardNormal(0), ValueError, "dim"),
        (lambda: StandardNormal(2.0), TypeError, "dim"),
        (lambda: StandardNormal(2).sample(0), ValueError, "n must be a positive int"),
        (lambda: StandardNormal(2).sample(True), TypeError, "n must be a positive int"),
        (lambda: StandardNormal(2).log_prob(torch.zeros(3)), ValueError, "z must have shape"),
        (lambda: StandardNormal(2).log_prob([0.0, 0.0]), TypeError, "z must be a torch.Tensor"),
        (lambda: DiagonalGaussian(torch.zeros(2, 2), torch.ones(2, 2)), ValueError, "loc"),
        (lambda: DiagonalGaussian(torch.zeros(2), torch.ones(3)), ValueError, "scale"),
        (lambda: DiagonalGaussian(torch.zeros(2), torch.tensor([1.0, 0.0])), ValueError, "scale"),
        (lambda: DiagonalGaussian(torch.tensor([0.0, math.nan]), torch.ones(2)), ValueError, "loc"),
        (lambda: DiagonalGaussian(torch.zeros(2), torch.ones(2), trainable=1), TypeError, "trainable"),
        (lambda: DiagonalGaussian(torch.zeros(2), torch.ones(2)).sample(-1), ValueError, "n"),
        (lambda: DiagonalGaussian(torch.zeros(2), torch.ones(2)).log_prob(torch.zeros(4, 3)), ValueError, "z"),
    ],
)
def test_bad_input_is_rejected(call, error, match):
    with pytest.raises(error, match=match):
        call()


def test_check_positive_int():
    assert check_positive_int(3, "k") == 3
    with pytest.raises(ValueError, match="k must be a positive int"):
        check_positive_int(0, "k")
    with pytest.raises(TypeError, match="k must be a positive int"):
        check_positive_int(1.0, "k")
