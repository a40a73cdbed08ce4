"""Tests for lecturekit.flows.equivariant and lecturekit.broken_phase: equivariance f(-z) = -f(z),
even log-det, log-det against the autograd Jacobian (float64), an invariant density; tunnelling
counts, sign weights and the exact small-lattice moments against the free field."""

from __future__ import annotations

import math

import pytest
import torch

from lecturekit.broken_phase import (
    count_tunnellings,
    sign_weight,
    small_lattice_moments,
    tunnelling_time,
)
from lecturekit.estimates import Estimate
from lecturekit.flows.equivariant import Z2EquivariantConvCoupling, z2_lattice_flow
from lecturekit.flows.lattice import ConvAffineCoupling
from lecturekit.targets.phi4_lattice import Phi4Lattice
from test_flows import log_abs_det_autograd
from test_lattice_flows import perturb

F64 = torch.float64


@pytest.mark.parametrize("parity", [0, 1])
@pytest.mark.parametrize("L", [4, 6])
def test_coupling_is_odd_with_even_log_det_matching_autograd(L: int, parity: int) -> None:
    torch.manual_seed(L + parity)
    layer = perturb(Z2EquivariantConvCoupling(L, parity).to(F64))
    z = torch.randn(3, L * L, dtype=F64)
    x, log_det = layer(z)
    x_flip, log_det_flip = layer(-z)
    torch.testing.assert_close(x_flip, -x, rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(log_det_flip, log_det, rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(log_det, log_abs_det_autograd(layer, z), rtol=1e-10, atol=1e-10)
    z_back, inverse_log_det = layer.inverse(x)
    torch.testing.assert_close(z_back, z, rtol=1e-10, atol=1e-10)
    torch.testing.assert_close(inverse_log_det, -log_det)
    assert bool((x != z).any()), "the perturbed layer should move the field"


def test_plain_coupling_is_not_odd() -> None:
    # the check above can fail: a perturbed ConvAffineCoupling is not equivariant
    torch.manual_seed(0)
    layer = perturb(ConvAffineCoupling(4, 0).to(F64))
    z = torch.randn(3, 16, dtype=F64)
    assert not torch.allclose(layer(-z)[0], -layer(z)[0], atol=1e-6)


def test_flow_is_equivariant_and_its_density_invariant() -> None:
    torch.manual_seed(1)
    flow = perturb(z2_lattice_flow(4, n_layers=4).to(F64), std=0.2)
    with torch.no_grad():
        flow.base.log_scale.add_(0.3 * torch.randn(16, dtype=F64))
        flow.base.loc.zero_()  # perturb moved the (frozen) mean too; a nonzero mean breaks the symmetry
    z = torch.randn(5, 16, dtype=F64)
    x, log_det = flow(z)
    torch.testing.assert_close(flow(-z)[0], -x, rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(log_det, log_abs_det_autograd(flow, z), rtol=1e-10, atol=1e-9)
    torch.testing.assert_close(flow.log_prob(-x), flow.log_prob(x), rtol=1e-12, atol=1e-10)
    samples, log_q = flow.sample_and_log_prob(6)
    torch.testing.assert_close(log_q, flow.log_prob(samples), rtol=1e-10, atol=1e-9)
    trainable = {name for name, p in flow.named_parameters() if p.requires_grad}
    assert "base.loc" not in trainable and "base.log_scale" in trainable


def test_flow_rejects_bad_arguments() -> None:
    with pytest.raises(ValueError, match="base_scale"):
        z2_lattice_flow(4, base_scale=0.0)
    with pytest.raises((ValueError, TypeError), match="n_layers"):
        z2_lattice_flow(4, n_layers=0)


def test_count_tunnellings_uses_hysteresis() -> None:
    m = torch.tensor([[-1.0, 0.1], [0.4, -0.1], [-0.4, 0.2], [0.6, 0.0], [-0.6, 3.0], [0.7, -3.0]])
    assert count_tunnellings(m, 0.5).tolist() == [3, 1]
    assert tunnelling_time(m, 0.5) == Estimate(12 / 4, 3 / 2)  # 4 tunnellings in 12 chain-steps
    none = tunnelling_time(torch.ones(5, 3), 0.5)
    assert math.isinf(none.value) and math.isinf(none.stderr) and none.tau is None
    with pytest.raises(ValueError, match="threshold"):
        count_tunnellings(m, -1.0)
    with pytest.raises(ValueError, match="m must have shape"):
        count_tunnellings(torch.ones(5), 0.5)


def test_tunnelling_time_of_a_two_state_markov_chain() -> None:
    # sign flips with probability p per step: exact tau = 1 / p, within 4 Poisson errors
    torch.manual_seed(2)
    p, n_steps, n_chains = 0.02, 2_000, 50
    flips = torch.rand(n_steps, n_chains) < p
    sides = torch.where(flips.cumsum(0) % 2 == 0, 1.0, -1.0)
    estimate = tunnelling_time(sides, 0.5)
    assert abs(estimate.value - 1 / p) < 4 * estimate.stderr, estimate


def test_sign_weight() -> None:
    torch.manual_seed(3)
    m = torch.randn(4_000, 8)
    weight = sign_weight(m)
    assert abs(weight.value - 0.5) < 4 * weight.stderr and 0 < weight.stderr < 0.01
    assert sign_weight(-torch.ones(3, 2)) == Estimate(0.0, 0.0)
    assert isinstance(weight, Estimate) and isinstance(weight.value, float)


def test_small_lattice_moments_match_the_free_field_and_the_symmetry() -> None:
    free = Phi4Lattice(2, m2=0.7, lam=0.0)
    exact = small_lattice_moments(free, n_nodes=64, half_width=6.0)
    variance = free.free_magnetization_variance()
    assert exact.m2 == pytest.approx(variance, rel=1e-8)
    assert exact.abs_m == pytest.approx(math.sqrt(2 * variance / math.pi), rel=2e-3)  # half-normal; the kink
    # of |M| at 0 makes the rule second order (measured error 0.1% here)
    broken = small_lattice_moments(Phi4Lattice(2, m2=-4.0, lam=3.0), n_nodes=32, half_width=2.5)
    assert abs(broken.m) < 1e-10  # <M> = 0 by the Z2 symmetry
    assert broken.abs_m**2 > 0.85 * broken.m2  # bimodal: |M| concentrated away from 0
    with pytest.raises(ValueError, match="dim"):
        small_lattice_moments(Phi4Lattice(3, m2=1.0, lam=0.0))


def test_a_nonzero_base_mean_breaks_the_invariance() -> None:
    flow = z2_lattice_flow(4, n_layers=2).to(F64)
    with torch.no_grad():
        flow.base.loc.fill_(0.5)
    x = torch.randn(3, 16, dtype=F64)
    assert not torch.allclose(flow.log_prob(-x), flow.log_prob(x))
