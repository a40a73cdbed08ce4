"""Conditional (block) flow proposals: the flow's densities, the local action, and exactness of the sampler."""

import math

import pytest
import torch

from lecturekit.diagnostics import mcse
from lecturekit.targets.phi4_lattice import Phi4Lattice, magnetization
from lecturekit.samplers.conditional import (
    BlockConditionalFlow,
    BlockFlowSampler,
    block_boundaries,
    local_action,
    train_block_flow,
)


def _rough_flow(block: int = 2, n_layers: int = 4, seed: int = 0, scale: float = 0.3) -> BlockConditionalFlow:
    """A flow with random, non-zero output layers (the default init is the identity)."""
    torch.manual_seed(seed)
    flow = BlockConditionalFlow(block, n_layers=n_layers, hidden=16).double()
    with torch.no_grad():
        for p in flow.parameters():
            p.add_(scale * torch.randn_like(p))
    return flow


def test_log_det_matches_autograd_jacobian():
    flow = _rough_flow()
    torch.manual_seed(1)
    boundary = torch.randn(8, dtype=torch.float64)
    for _ in range(3):
        z = torch.randn(4, dtype=torch.float64)
        y, log_det = flow.forward_with_log_det(z, boundary)
        jac = torch.autograd.functional.jacobian(lambda v: flow.forward_with_log_det(v, boundary)[0], z)
        assert float(log_det.detach()) == pytest.approx(float(torch.linalg.slogdet(jac).logabsdet), abs=1e-10)
        z_back, inv_log_det = flow.inverse_with_log_det(y, boundary)
        torch.testing.assert_close(z_back, z, atol=1e-10, rtol=0)
        assert float(inv_log_det.detach()) == pytest.approx(-float(log_det.detach()), abs=1e-10)


def test_log_prob_of_samples_and_normalisation():
    flow = _rough_flow(seed=2)
    torch.manual_seed(3)
    boundary = torch.randn(5, 8, dtype=torch.float64).repeat_interleave(4000, 0)  # 5 boundaries
    y, log_q = flow.sample_and_log_prob(boundary)
    torch.testing.assert_close(flow.log_prob(y, boundary), log_q, atol=1e-10, rtol=0)
    # int q = 1 for each boundary: E_q[p / q] = 1 for a normalised p. p is a Gaussian fitted to
    # an independent batch of flow samples, widened by 1.5 so that p / q has a finite variance.
    ratios = []
    for row in boundary.reshape(5, 4000, 8)[:, :1]:
        with torch.no_grad():
            fit, _ = flow.sample_and_log_prob(row.expand(4000, 8))
            y_b, log_q_b = flow.sample_and_log_prob(row.expand(4000, 8))
        p = torch.distributions.MultivariateNormal(fit.mean(0), 2.25 * torch.cov(fit.T))
        ratios.append((p.log_prob(y_b) - log_q_b).exp())
    ratio = torch.stack(ratios)
    z = (ratio.mean(1) - 1) / (ratio.std(1) / math.sqrt(4000))
    assert bool((ratio.std(1) > 0.05).all())  # the flow is not the Gaussian itself: the test can fail


@pytest.mark.parametrize("L,block", [(4, 2), (6, 3), (8, 2)])
def test_local_action_gives_the_action_difference(L, block):
    torch.manual_seed(4)
    target = Phi4Lattice.from_del_debbio(L, 0.5, 0.5)
    x = torch.randn(3, L, L, dtype=torch.float64)
    boundary = block_boundaries(x, block)
    I, J = 1, 0
    rows, cols = slice(I * block, (I + 1) * block), slice(J * block, (J + 1) * block)
    # the boundary is what explicit periodic indexing gives
    top = x[:, (I * block - 1) % L, cols]
    right = x[:, rows, ((J + 1) * block) % L]
    torch.testing.assert_close(boundary[:, I, J, 0], top)
    torch.testing.assert_close(boundary[:, I, J, 3], right)
    x_new = x.clone()
    x_new[:, rows, cols] = torch.randn(3, block, block, dtype=torch.float64)
    full = target.energy(x_new.flatten(-2)) - target.energy(x.flatten(-2))
    local = local_action(target, x_new[:, rows, cols], boundary[:, I, J]) - local_action(
        target, x[:, rows, cols], boundary[:, I, J]
    )
    torch.testing.assert_close(local, full, atol=1e-10, rtol=0)


@pytest.mark.parametrize("trained", [False, True])
def test_sampler_is_exact_on_the_free_field(trained):
    # Free field (lam = 0): <phi_x^2> and <M^2> are known exactly from the covariance.
    L, block = 4, 2
    target = Phi4Lattice(L, m2=1.0, lam=0.0)
    torch.manual_seed(5)
    flow = BlockConditionalFlow(block, n_layers=2, hidden=16).double()
    if trained:
        train_block_flow(flow, target, 60, n_chains=16)
    else:
        with torch.no_grad():  # a crude proposal that ignores the boundary: N(0, 0.5^2) on each site
            flow.base_net[-1].bias[4:] = math.log(0.5)
    sampler = BlockFlowSampler(target, flow)
    torch.manual_seed(6)
    result = sampler.run(torch.zeros(32, L * L, dtype=torch.float64), 1000)
    acceptance = result.acceptance_rate()
    assert 0.05 < acceptance < 1.0, acceptance
    chain = result.samples[200:]
    cov = target.free_covariance()
    for observable, exact in (
        (chain.square().mean(-1), float(cov.diagonal().mean())),
        (magnetization(chain).square(), float(cov.sum())),
    ):
        estimate, error = float(observable.mean()), float(mcse(observable))
        assert abs(estimate - exact) < 4 * error, f"{estimate:.4f} +- {error:.4f} vs exact {exact:.4f}"
        assert error < 0.05 * exact  # precise enough that a wrong answer would show


def test_training_raises_the_acceptance():
    target = Phi4Lattice.from_del_debbio(4, 0.5, 0.5)
    torch.manual_seed(7)
    flow = BlockConditionalFlow(2)
    x0 = torch.zeros(32, 16)
    before = BlockFlowSampler(target, flow).run(x0, 50).acceptance_rate()
    losses = train_block_flow(flow, target, 150, n_chains=32).losses
    after = BlockFlowSampler(target, flow).run(x0, 50).acceptance_rate()
    assert after > before + 0.2, (before, after)
    assert sum(losses[-20:]) < sum(losses[:20])


def test_bad_inputs():
    flow = BlockConditionalFlow(2)
    with pytest.raises(ValueError, match="block"):
        BlockFlowSampler(Phi4Lattice(6, 1.0, 0.0), BlockConditionalFlow(4))  # does not divide
    with pytest.raises(ValueError, match="even"):
        BlockFlowSampler(Phi4Lattice(6, 1.0, 0.0), flow)  # 3 blocks a side
    with pytest.raises(ValueError, match="block"):
        BlockConditionalFlow(0)
    with pytest.raises(TypeError, match="target"):
        BlockFlowSampler("phi4", flow)
    with pytest.raises(TypeError, match="flow"):
        BlockFlowSampler(Phi4Lattice(4, 1.0, 0.0), torch.nn.Linear(2, 2))
    sampler = BlockFlowSampler(Phi4Lattice(4, 1.0, 0.0), flow)
    with pytest.raises(ValueError, match="x0"):
        sampler.run(torch.zeros(3, 15), 2)
    with pytest.raises(TypeError, match="x"):
        sampler.sweep(torch.zeros(3, 16, dtype=torch.long))
    with pytest.raises(ValueError, match="n_sweeps"):
        sampler.run(torch.zeros(3, 16), 0)
    with pytest.raises(ValueError, match="boundary"):
        flow.log_prob(torch.zeros(4), torch.zeros(7))
    with pytest.raises(ValueError, match="y"):
        flow.log_prob(torch.zeros(5), torch.zeros(8))
    with pytest.raises(TypeError, match="boundary"):
        flow.sample_and_log_prob(torch.zeros(8, dtype=torch.long))
