"""Tests for lecturekit.flows.lattice: every log-det against the autograd Jacobian in float64,
invertibility, periodicity of the conditioner, and argument checks."""

from __future__ import annotations

import pytest
import torch
from torch import nn
from torch.nn import functional as F

from lecturekit.distributions import DiagonalGaussian
from lecturekit.flows.core import Flow, Transform, checkerboard_mask
from lecturekit.flows.io import load_flow, save_flow
from lecturekit.flows.lattice import ConvAffineCoupling, PeriodicConvNet, lattice_flow
from test_flows import log_abs_det_autograd

F64 = torch.float64


def perturb(module: nn.Module, std: float = 0.3) -> nn.Module:
    """Random parameters everywhere (a fresh coupling is the identity)."""
    with torch.no_grad():
        for parameter in module.parameters():
            parameter.add_(std * torch.randn_like(parameter))
    return module


@pytest.mark.parametrize("parity", [0, 1])
@pytest.mark.parametrize("L", [4, 6])
def test_coupling_log_det_matches_autograd_jacobian(L: int, parity: int) -> None:
    layer = perturb(ConvAffineCoupling(L, parity).to(F64))
    z = torch.randn(3, L * L, dtype=F64)
    x, log_det = layer(z)
    torch.testing.assert_close(log_det, log_abs_det_autograd(layer, z), rtol=1e-10, atol=1e-10)
    z_back, inverse_log_det = layer.inverse(x)
    torch.testing.assert_close(z_back, z, rtol=1e-10, atol=1e-10)
    torch.testing.assert_close(inverse_log_det, -log_det)
    torch.testing.assert_close(inverse_log_det, log_abs_det_autograd(layer.inverse, x), rtol=1e-10, atol=1e-10)


def test_coupling_keeps_one_colour_and_moves_the_other() -> None:
    L = 4
    layer = perturb(ConvAffineCoupling(L, parity=1).to(F64))
    z = torch.randn(5, L * L, dtype=F64)
    x, _ = layer(z)
    kept = checkerboard_mask(L, L, parity=1)
    torch.testing.assert_close(x[:, kept], z[:, kept], rtol=0, atol=0)
    assert bool((x[:, ~kept] != z[:, ~kept]).all())


def test_flow_log_prob_matches_autograd_change_of_variables() -> None:
    L = 4
    base = DiagonalGaussian(0.1 * torch.randn(L * L), 0.5 + torch.rand(L * L), trainable=True)
    flow = perturb(lattice_flow(L, n_layers=4, base=base).to(F64), std=0.2)
    z = torch.randn(3, L * L, dtype=F64)
    x, log_det = flow(z)
    torch.testing.assert_close(log_det, log_abs_det_autograd(flow, z), rtol=1e-10, atol=1e-9)
    expected = flow.base.log_prob(z) - log_abs_det_autograd(flow, z)
    torch.testing.assert_close(flow.log_prob(x), expected, rtol=1e-10, atol=1e-9)
    samples, log_q = flow.sample_and_log_prob(6)
    torch.testing.assert_close(log_q, flow.log_prob(samples), rtol=1e-10, atol=1e-9)


def test_fresh_flow_is_the_identity_and_gradients_reach_every_layer() -> None:
    flow = lattice_flow(4, n_layers=4)
    z = torch.randn(7, 16)
    x, log_det = flow(z)
    assert torch.equal(x, z) and torch.equal(log_det, torch.zeros(7))
    x, log_q = flow.sample_and_log_prob(32)
    (x.square().sum() + log_q.sum()).backward()
    for layer in flow.transforms:
        assert layer.conditioner.layers[-1].weight.grad.abs().sum() > 0


def test_periodic_net_equals_per_layer_circular_padding() -> None:
    net = perturb(PeriodicConvNet(1, 2, hidden=(5, 4), kernel_size=3).to(F64))
    x = torch.randn(3, 1, 6, 6, dtype=F64)
    h = x
    for module in net.layers:
        if isinstance(module, nn.Conv2d):
            h = F.conv2d(F.pad(h, (1, 1, 1, 1), mode="circular"), module.weight, module.bias)
        else:
            h = module(h)
    torch.testing.assert_close(net(x), h, rtol=1e-12, atol=1e-12)


def test_coupling_commutes_with_translations_that_keep_the_checkerboard() -> None:
    # Shifting the field by (1, 1) or (2, 0) sites maps each colour onto itself.
    L = 6
    layer = perturb(ConvAffineCoupling(L, parity=0).to(F64))
    z = torch.randn(4, L * L, dtype=F64)

    def shift(v: torch.Tensor, rows: int, cols: int) -> torch.Tensor:
        return v.reshape(-1, L, L).roll((rows, cols), (-2, -1)).reshape(v.shape)

    x, log_det = layer(z)
    for rows, cols in ((1, 1), (2, 0), (0, 4)):
        x_shifted, log_det_shifted = layer(shift(z, rows, cols))
        torch.testing.assert_close(x_shifted, shift(x, rows, cols), rtol=1e-12, atol=1e-12)
        torch.testing.assert_close(log_det_shifted, log_det, rtol=1e-12, atol=1e-12)


def test_coupling_is_a_transform_with_batch_axes() -> None:
    layer = perturb(ConvAffineCoupling(4, 0))
    assert isinstance(layer, Transform) and isinstance(lattice_flow(4, n_layers=2), Flow)
    z = torch.randn(2, 3, 16)
    x, log_det = layer(z)
    assert x.shape == (2, 3, 16) and log_det.shape == (2, 3)
    torch.testing.assert_close(layer(z.reshape(6, 16))[0].reshape(2, 3, 16), x)


def test_save_and_load_round_trip(tmp_path) -> None:
    base = DiagonalGaussian(torch.zeros(16), torch.ones(16), trainable=True)
    flow = perturb(lattice_flow(4, n_layers=3, hidden=(4, 3), kernel_size=3, base=base, scale_bound=1.5).to(F64))
    path = tmp_path / "lattice.pt"
    save_flow(flow, path)
    loaded = load_flow(path)
    x = torch.randn(5, 16, dtype=F64)
    torch.testing.assert_close(loaded.log_prob(x), flow.log_prob(x), rtol=0, atol=0)
    assert loaded.settings == flow.settings and loaded.transforms[2].scale_bound == 1.5


@pytest.mark.parametrize(
    ("call", "error", "match"),
    [
        (lambda: ConvAffineCoupling(5, 0), ValueError, "even"),
        (lambda: ConvAffineCoupling(4, 2), ValueError, "parity"),
        (lambda: ConvAffineCoupling(4, 0, kernel_size=4), ValueError, "odd"),
        (lambda: ConvAffineCoupling(4, 0, hidden=8), TypeError, "hidden"),
        (lambda: lattice_flow(4, n_layers=0), ValueError, "n_layers"),
        (lambda: lattice_flow(4, base=DiagonalGaussian(torch.zeros(9), torch.ones(9))), ValueError, "base"),
        (lambda: ConvAffineCoupling(4, 0)(torch.zeros(3, 15)), ValueError, r"\(\.\.\., 16\)"),
        (lambda: ConvAffineCoupling(2, 0)(torch.zeros(3, 4)), ValueError, "receptive field"),
    ],
)
def test_bad_arguments_are_named(call, error: type[Exception], match: str) -> None:
    with pytest.raises(error, match=match):
        call()
