"""Tests for lecturekit.flows: masks, affine couplings, flows, saving and loading.

Exactness checks run in float64 with non-trivial parameters: the conditioners' last
layers start at zero (identity maps), so :func:`perturb` gives them random values first.
"""

from __future__ import annotations

import math
import os

import pytest
import torch
from torch import nn
from torch.autograd.functional import jacobian

from lecturekit.distributions import DiagonalGaussian, StandardNormal
from lecturekit.flows.core import (
    AffineCoupling,
    Flow,
    Transform,
    alternating_mask,
    checkerboard_mask,
    half_mask,
    real_nvp,
)
from lecturekit.flows.io import load_flow, save_flow


# (mask, description): both the contiguous-block path (views) and the index path (gathers).
MASKS = {
    "half": half_mask(4),
    "half-flipped": half_mask(4, flip=True),
    "alternating-odd-dim": alternating_mask(5),
    "alternating-parity-1": alternating_mask(5, parity=1),
    "alternating-dim-2": alternating_mask(2),
    "checkerboard": checkerboard_mask(4, 4),
    "irregular": torch.tensor([False, True, True, False, True, False]),
}


def perturb(module: nn.Module, std: float = 0.5) -> nn.Module:
    """Give every conditioner's zero-initialised last layer random weights (in place)."""
    with torch.no_grad():
        for layer in module.modules():
            if isinstance(layer, AffineCoupling):
                last = layer.conditioner[-1]
                last.weight.normal_(0.0, std)
                last.bias.normal_(0.0, std)
    return module


def log_abs_det_autograd(fn, points: torch.Tensor) -> torch.Tensor:
    """log|det J| of ``fn`` (batch in, batch out) at each row of ``points``, by autograd."""
    values = []
    for point in points:
        jac = jacobian(lambda v: fn(v.unsqueeze(0))[0].squeeze(0), point)
        values.append(torch.linalg.slogdet(jac).logabsdet)
    return torch.stack(values)


# --------------------------------------------------------------------------- masks


def test_half_mask_values():
    assert half_mask(6).tolist() == [True, True, True, False, False, False]
    assert half_mask(6, flip=True).tolist() == [False, False, False, True, True, True]


def test_alternating_mask_values():
    assert alternating_mask(5).tolist() == [True, False, True, False, True]
    assert alternating_mask(5, parity=1).tolist() == [False, True, False, True, False]


@pytest.mark.parametrize("side", [2, 4, 6])
def test_checkerboard_mask_is_a_two_colouring_of_the_periodic_lattice(side):
    for parity in (0, 1):
        mask = checkerboard_mask(side, side, parity)
        assert mask.shape == (side * side,) and mask.dtype == torch.bool
        grid = mask.reshape(side, side)  # row-major: flat index r * side + c
        rows, cols = torch.meshgrid(torch.arange(side), torch.arange(side), indexing="ij")
        assert torch.equal(grid, (rows + cols) % 2 == parity)
        assert int(mask.sum()) == side * side // 2
        # every nearest neighbour, across the periodic boundary too, has the other colour
        for shift, dim in ((1, 0), (1, 1), (-1, 0), (-1, 1)):
            assert torch.all(grid != torch.roll(grid, shift, dim))
    assert torch.equal(checkerboard_mask(4, 4, 0), ~checkerboard_mask(4, 4, 1))


@pytest.mark.parametrize(
    "call, error, match",
    [
        (lambda: half_mask(5), ValueError, "even"),
        (lambda: half_mask(1), ValueError, "dim"),
        (lambda: half_mask(2.0), TypeError, "dim"),
        (lambda: alternating_mask(1), ValueError, "dim"),
        (lambda: alternating_mask(4, parity=2), ValueError, "parity"),
        (lambda: checkerboard_mask(4, 6), ValueError, "square"),
        (lambda: checkerboard_mask(3, 3), ValueError, "even"),
        (lambda: checkerboard_mask(0, 0), ValueError, "height"),
        (lambda: checkerboard_mask(4, 4, parity=-1), ValueError, "parity"),
    ],
)
def test_masks_reject_bad_input(call, error, match):
    with pytest.raises(error, match=match):
        call()


@pytest.mark.parametrize(
    "mask, expected",
    [("alternating", alternating_mask), ("half", lambda d, p: half_mask(d, flip=bool(p)))],
)
def test_real_nvp_alternates_complementary_masks(mask, expected):
    flow = real_nvp(6, n_layers=4, mask=mask)
    for i, layer in enumerate(flow.transforms):
        assert torch.equal(layer.mask, expected(6, i % 2))


def test_real_nvp_checkerboard_masks():
    flow = real_nvp(16, n_layers=3, mask="checkerboard", lattice_shape=(4, 4))
    for i, layer in enumerate(flow.transforms):
        assert torch.equal(layer.mask, checkerboard_mask(4, 4, i % 2))


# --------------------------------------------------------------------------- coupling layers


@pytest.mark.parametrize("name", MASKS)
def test_coupling_is_invertible_and_log_dets_are_opposite(name):
    torch.manual_seed(0)
    mask = MASKS[name]
    layer = perturb(AffineCoupling(mask, hidden=(16, 16)).double())
    z = torch.randn(32, mask.numel(), dtype=torch.float64)
    x, log_det = layer(z)
    z_back, log_det_inverse = layer.inverse(x)
    assert not torch.allclose(x, z)  # the perturbed layer is not the identity
    torch.testing.assert_close(z_back, z, rtol=0, atol=1e-12)
    torch.testing.assert_close(log_det_inverse, -log_det, rtol=0, atol=1e-12)
    # the kept coordinates pass through untouched
    assert torch.equal(x[:, mask], z[:, mask])


@pytest.mark.parametrize("name", MASKS)
def test_coupling_log_det_matches_autograd_jacobian(name):
    torch.manual_seed(1)
    mask = MASKS[name]
    layer = perturb(AffineCoupling(mask, hidden=(16, 16), activation=nn.Tanh).double())
    z = torch.randn(6, mask.numel(), dtype=torch.float64)
    x, log_det = layer(z)
    assert log_det.abs().min() > 1e-3  # non-trivial volume change
    torch.testing.assert_close(log_det, log_abs_det_autograd(layer, z), rtol=0, atol=1e-10)
    _, log_det_inverse = layer.inverse(x)
    torch.testing.assert_close(log_det_inverse, log_abs_det_autograd(layer.inverse, x), rtol=0, atol=1e-10)


@pytest.mark.parametrize("flip", [False, True])
def test_block_masks_take_the_same_values_as_the_index_path(flip):
    """Half masks split into views; the general gather / scatter path must agree with them."""
    torch.manual_seed(4)
    layer = perturb(AffineCoupling(half_mask(6, flip=flip), hidden=(8,)).double())
    assert layer._blocks is not None
    z = torch.randn(10, 6, dtype=torch.float64)
    x, log_det = layer(z)
    layer._blocks = None  # force the index path
    x_index, log_det_index = layer(z)
    assert torch.equal(x, x_index) and torch.equal(log_det, log_det_index)
    torch.testing.assert_close(layer.inverse(x)[0], z, rtol=0, atol=1e-12)


def test_fresh_coupling_is_the_identity():
    layer = AffineCoupling(alternating_mask(5))
    z = torch.randn(10, 5)
    x, log_det = layer(z)
    assert torch.equal(x, z) and torch.equal(log_det, torch.zeros(10))


def test_log_scale_is_bounded():
    torch.manual_seed(2)
    mask = alternating_mask(6)
    layer = perturb(AffineCoupling(mask, hidden=(8,), scale_bound=1.5), std=100.0)
    _, log_det = layer(10 * torch.randn(256, 6))
    n_transformed = int((~mask).sum())
    assert log_det.abs().max() <= 1.5 * n_transformed + 1e-5
    assert log_det.abs().max() > 1.4 * n_transformed  # the bound is reached, not vacuous


def test_coupling_accepts_leading_batch_dimensions():
    torch.manual_seed(3)
    layer = perturb(AffineCoupling(alternating_mask(5), hidden=(8,)).double())
    z = torch.randn(3, 4, 5, dtype=torch.float64)
    x, log_det = layer(z)
    x_flat, log_det_flat = layer(z.reshape(12, 5))
    assert x.shape == (3, 4, 5) and log_det.shape == (3, 4)
    torch.testing.assert_close(x.reshape(12, 5), x_flat)
    torch.testing.assert_close(log_det.reshape(12), log_det_flat)


@pytest.mark.parametrize(
    "kwargs, error, match",
    [
        ({"mask": torch.tensor([1, 0, 1])}, TypeError, "mask"),
        ({"mask": torch.ones(4, dtype=torch.bool)}, ValueError, "mask"),
        ({"mask": torch.zeros(4, dtype=torch.bool)}, ValueError, "mask"),
        ({"mask": half_mask(4), "hidden": 64}, TypeError, "hidden"),
        ({"mask": half_mask(4), "hidden": (64, 0)}, ValueError, "hidden"),
        ({"mask": half_mask(4), "scale_bound": 0.0}, ValueError, "scale_bound"),
        ({"mask": half_mask(4), "activation": torch.relu}, TypeError, "activation"),
    ],
)
def test_coupling_rejects_bad_arguments(kwargs, error, match):
    with pytest.raises(error, match=match):
        AffineCoupling(**kwargs)


def test_coupling_rejects_points_of_the_wrong_dimension():
    layer = AffineCoupling(half_mask(4))
    with pytest.raises(ValueError, match="z must have shape"):
        layer(torch.randn(3, 5))
    with pytest.raises(ValueError, match="x must have shape"):
        layer.inverse(torch.randn(3, 3))
    with pytest.raises(TypeError, match="floating"):
        layer(torch.ones(3, 4, dtype=torch.long))


# --------------------------------------------------------------------------- whole flows


FLOWS = {
    "alternating": lambda: real_nvp(3, n_layers=4, hidden=(16, 16), activation=nn.Tanh),
    "half": lambda: real_nvp(4, n_layers=4, hidden=(16, 16), mask="half", activation=nn.SiLU),
    "checkerboard": lambda: real_nvp(16, n_layers=4, hidden=(16,), mask="checkerboard", lattice_shape=(4, 4)),
    "diagonal-base": lambda: real_nvp(
        2,
        n_layers=3,
        hidden=(16,),
        base=DiagonalGaussian(torch.tensor([0.5, -1.0]), torch.tensor([2.0, 0.5]), trainable=True),
    ),
}


def make_flow(name: str, seed: int = 0) -> Flow:
    torch.manual_seed(seed)
    return perturb(FLOWS[name]().double(), std=0.3)


@pytest.mark.parametrize("name", FLOWS)
def test_flow_is_invertible(name):
    flow = make_flow(name)
    z = torch.randn(64, flow.dim, dtype=torch.float64)
    x, log_det = flow(z)
    z_back, log_det_inverse = flow.inverse(x)
    assert not torch.allclose(x, z)
    torch.testing.assert_close(z_back, z, rtol=0, atol=1e-10)
    torch.testing.assert_close(log_det_inverse, -log_det, rtol=0, atol=1e-10)


@pytest.mark.parametrize("name", FLOWS)
def test_flow_log_det_and_log_prob_match_autograd(name):
    flow = make_flow(name, seed=1)
    x = 1.5 * torch.randn(5, flow.dim, dtype=torch.float64)
    z, log_det = flow.inverse(x)
    torch.testing.assert_close(log_det, log_abs_det_autograd(flow.inverse, x), rtol=0, atol=1e-9)
    _, log_det_forward = flow(z)
    torch.testing.assert_close(log_det_forward, log_abs_det_autograd(flow, z), rtol=0, atol=1e-9)
    # change of variables, with the Jacobian from autograd
    expected = flow.base.log_prob(z) + log_abs_det_autograd(flow.inverse, x)
    torch.testing.assert_close(flow.log_prob(x), expected, rtol=0, atol=1e-9)


@pytest.mark.parametrize("name", FLOWS)
def test_sample_and_log_prob_agrees_with_log_prob(name):
    flow = make_flow(name, seed=2)
    x, log_q = flow.sample_and_log_prob(100)
    assert x.shape == (100, flow.dim) and log_q.shape == (100,) and x.dtype == torch.float64
    torch.testing.assert_close(log_q, flow.log_prob(x), rtol=0, atol=1e-9)


@pytest.mark.parametrize(
    "base, std, seed",
    [("standard", 0.2, 4), ("diagonal", 0.2, 6), ("diagonal", 0.3, 5)],
)
def test_two_dimensional_density_integrates_to_one(base, std, seed):
    """Riemann sum of exp(log_prob) over a box against the flow's own probability of that box.

    The last case is wide enough that about 1% of the mass lies outside the box: the
    integral must then match the fraction of exact flow samples inside the box.
    """
    torch.manual_seed(seed)
    base_module = None if base == "standard" else DiagonalGaussian(torch.tensor([0.5, -0.5]), torch.tensor([1.5, 0.7]))
    flow = perturb(real_nvp(2, n_layers=4, hidden=(16, 16), base=base_module).double(), std=std)
    half_width, n_grid, n_samples = 12.0, 801, 100_000
    grid = torch.linspace(-half_width, half_width, n_grid, dtype=torch.float64)
    points = torch.cartesian_prod(grid, grid)
    with torch.no_grad():
        density = flow.log_prob(points).exp()
        inside = float((flow.sample(n_samples).abs() < half_width).all(-1).double().mean())
    mass = float(density.sum() * (grid[1] - grid[0]) ** 2)
    # the perturbation really reshaped the density (it is not the base density)
    assert float((density - flow.base.log_prob(points).exp()).abs().max()) > 0.05
    mcse = math.sqrt(inside * (1 - inside) / n_samples)
    quadrature = 3e-4  # grid spacing 0.03; halving it changes the sum by ~1e-5
    assert abs(mass - inside) <= 4 * mcse + quadrature, (mass, inside, mcse)
    if inside > 0.9999:
        assert abs(mass - 1.0) < 1e-3, mass


@pytest.mark.parametrize("name", FLOWS)
def test_gradients_reach_every_parameter(name):
    flow = make_flow(name, seed=5)
    params = dict(flow.named_parameters())
    # maximum likelihood: through log_prob
    flow.log_prob(torch.randn(32, flow.dim, dtype=torch.float64)).mean().backward()
    missing = [k for k, p in params.items() if p.grad is None or not torch.any(p.grad != 0)]
    assert not missing, missing
    flow.zero_grad(set_to_none=True)
    # reverse KL: through the reparametrised samples and their log-density
    x, log_q = flow.sample_and_log_prob(32)
    (log_q + 0.5 * x.square().sum(-1)).mean().backward()
    missing = [k for k, p in params.items() if p.grad is None or not torch.any(p.grad != 0)]
    assert not missing, missing


def test_identity_initialisation_does_not_block_training():
    """At the identity only the last layers get gradients; one step later all do."""
    torch.manual_seed(6)
    flow = real_nvp(2, n_layers=2, hidden=(8,))
    data = torch.randn(64, 2) + 1.0
    optimizer = torch.optim.Adam(flow.parameters(), lr=1e-2)
    (-flow.log_prob(data).mean()).backward()
    optimizer.step()
    flow.zero_grad(set_to_none=True)
    (-flow.log_prob(data).mean()).backward()
    assert all(p.grad is not None and torch.any(p.grad != 0) for p in flow.parameters())


def test_same_results_on_every_device(device):
    flow = make_flow("checkerboard", seed=7)
    z = torch.randn(20, flow.dim, dtype=torch.float64)
    x, log_det = flow(z)
    log_prob = flow.log_prob(x)
    moved = flow.to(device)
    x_dev, log_det_dev = moved(z.to(device))
    assert x_dev.device.type == device.type
    torch.testing.assert_close(x_dev.cpu(), x, rtol=0, atol=1e-10)
    torch.testing.assert_close(log_det_dev.cpu(), log_det, rtol=0, atol=1e-10)
    torch.testing.assert_close(moved.log_prob(x.to(device)).cpu(), log_prob, rtol=0, atol=1e-10)
    samples, log_q = moved.sample_and_log_prob(8)
    assert samples.device.type == device.type and log_q.device.type == device.type
    assert moved.sample(3).device.type == device.type


def test_flow_follows_dtype():
    flow = real_nvp(4, n_layers=2, hidden=(8,))
    assert flow.sample(3).dtype == torch.float32
    assert flow.double().sample(3).dtype == torch.float64


def test_flow_without_transforms_is_the_base():
    flow = Flow(StandardNormal(3), [])
    x = torch.randn(5, 3)
    torch.testing.assert_close(flow.log_prob(x), flow.base.log_prob(x))


@pytest.mark.parametrize(
    "call, error, match",
    [
        (lambda: real_nvp(1), ValueError, "dim"),
        (lambda: real_nvp(5, mask="half"), ValueError, "even"),
        (lambda: real_nvp(4, mask="diagonal"), ValueError, "mask"),
        (lambda: real_nvp(4, mask=2), TypeError, "mask"),
        (lambda: real_nvp(4, n_layers=0), ValueError, "n_layers"),
        (lambda: real_nvp(4, hidden=(32, -1)), ValueError, "hidden"),
        (lambda: real_nvp(4, scale_bound=-1.0), ValueError, "scale_bound"),
        (lambda: real_nvp(16, mask="checkerboard"), ValueError, "lattice_shape"),
        (lambda: real_nvp(16, mask="checkerboard", lattice_shape=(4, 5)), ValueError, "lattice_shape"),
        (lambda: real_nvp(12, mask="checkerboard", lattice_shape=(3, 4)), ValueError, "square"),
        (lambda: real_nvp(9, mask="checkerboard", lattice_shape=(3, 3)), ValueError, "even"),
        (lambda: real_nvp(4, lattice_shape=(2, 2)), ValueError, "lattice_shape"),
        (lambda: real_nvp(4, base=StandardNormal(3)), ValueError, "base"),
        (lambda: Flow(StandardNormal(3), [AffineCoupling(half_mask(4))]), ValueError, "dim"),
        (lambda: Flow(StandardNormal(3), [nn.Linear(3, 3)]), TypeError, "Transform"),
        (lambda: Flow(object(), []), TypeError, "base"),
    ],
)
def test_builders_reject_bad_input(call, error, match):
    with pytest.raises(error, match=match):
        call()


def test_flow_rejects_bad_points_and_sizes():
    flow = real_nvp(3, n_layers=2, hidden=(8,))
    with pytest.raises(ValueError, match="x must have shape"):
        flow.log_prob(torch.randn(4, 2))
    with pytest.raises(ValueError, match="z must have shape"):
        flow(torch.randn(4))
    with pytest.raises(TypeError, match="x must be a torch.Tensor"):
        flow.log_prob([[0.0, 0.0, 0.0]])
    for bad in (0, -3):
        with pytest.raises(ValueError, match="n must be a positive int"):
            flow.sample(bad)
        with pytest.raises(ValueError, match="n must be a positive int"):
            flow.sample_and_log_prob(bad)
    with pytest.raises(TypeError, match="n must be a positive int"):
        flow.sample(2.0)


def test_transform_is_the_common_base_class():
    assert isinstance(AffineCoupling(half_mask(2)), Transform)


# --------------------------------------------------------------------------- saving and loading


@pytest.mark.parametrize("name", FLOWS)
def test_save_load_round_trip(tmp_path, name):
    flow = make_flow(name, seed=8)
    path = tmp_path / "flow.pt"
    save_flow(flow, path)
    loaded = load_flow(path)
    assert loaded.settings == flow.settings
    assert type(loaded.base) is type(flow.base)
    x = torch.randn(50, flow.dim, dtype=torch.float64)
    assert torch.equal(loaded.log_prob(x), flow.log_prob(x))
    assert next(loaded.parameters()).dtype == torch.float64
    assert os.listdir(tmp_path) == ["flow.pt"]  # no temporary files left behind


def test_save_load_keeps_a_trainable_base_and_maps_location(tmp_path):
    torch.manual_seed(9)
    base = DiagonalGaussian(torch.tensor([1.0, 2.0]), torch.tensor([0.5, 3.0]), trainable=True)
    flow = real_nvp(2, n_layers=2, hidden=(8,), base=base, activation=nn.SiLU, scale_bound=1.0)
    with torch.no_grad():
        base.loc.add_(0.25)
    save_flow(flow, tmp_path / "f.pt")
    loaded = load_flow(str(tmp_path / "f.pt"), map_location="cpu")
    assert loaded.base.trainable and torch.equal(loaded.base.loc, base.loc)
    assert isinstance(loaded.transforms[0].conditioner[1], nn.SiLU)
    assert loaded.transforms[0].scale_bound == 1.0
    x = torch.randn(7, 2)
    assert torch.equal(loaded.log_prob(x), flow.log_prob(x))


def test_save_is_atomic(tmp_path, monkeypatch):
    flow = real_nvp(2, n_layers=2, hidden=(8,))
    path = tmp_path / "flow.pt"
    save_flow(flow, path)
    before = path.read_bytes()

    def broken_save(obj, file):
        file.write(b"half a flow")
        raise OSError("disk full")

    monkeypatch.setattr(torch, "save", broken_save)
    with pytest.raises(OSError, match="disk full"):
        save_flow(perturb(real_nvp(2, n_layers=2, hidden=(8,))), path)
    assert path.read_bytes() == before  # the old file is intact
    assert os.listdir(tmp_path) == ["flow.pt"]  # and the temporary file is gone


def test_save_and_load_reject_what_they_cannot_handle(tmp_path):
    with pytest.raises(ValueError, match="real_nvp"):
        save_flow(Flow(StandardNormal(2), [AffineCoupling(half_mask(2))]), tmp_path / "a.pt")
    with pytest.raises(TypeError, match="flow"):
        save_flow(nn.Linear(2, 2), tmp_path / "b.pt")
    torch.save({"weights": torch.zeros(2)}, tmp_path / "c.pt")
    with pytest.raises(ValueError, match="c.pt.* is not a valid lecturekit flow file"):
        load_flow(tmp_path / "c.pt")


def test_log_prob_of_the_standard_normal_base_is_normalised():
    flow = real_nvp(2, n_layers=2)
    with torch.no_grad():
        value = float(flow.log_prob(torch.zeros(1, 2)))
    assert math.isclose(value, -math.log(2 * math.pi), rel_tol=1e-6)
