"""Tests for the 1D phi^4 chain, its transfer-matrix reference, the informed base and Z2 symmetrisation."""

from __future__ import annotations

import math

import pytest
import torch
from torch.distributions import MultivariateNormal

from lecturekit.diagnostics import mcse
from lecturekit.estimates import mode_weights
from lecturekit.distributions import DiagonalGaussian, TridiagonalGaussian
from lecturekit.flows.core import real_nvp
from lecturekit.flows.io import load_flow, save_flow
from lecturekit.targets.phi4_chain import (
    Phi4Chain,
    field_mean,
    site_value,
    transfer_matrix_reference,
)
from lecturekit.samplers.mcmc import MALA, run_chains
from lecturekit.flows.symmetry import Z2Symmetrized

F64 = {"dtype": torch.float64}


# --------------------------------------------------------------------------- the target


def _energy_by_loops(target: Phi4Chain, phi: list[float]) -> float:
    """U written out term by term, as in flonaco's PhiFour (with the slide's constraint)."""
    n, c = len(phi), target.a * len(phi)
    padded = [0.0, *phi, 0.0]
    gradient = sum((padded[i + 1] - padded[i]) ** 2 for i in range(n + 1)) * c / 2
    potential = sum((1 - p * p) ** 2 / 4 + target.tilt * p for p in phi) / c
    return gradient + potential + target.constraint * (sum(phi) / n - target.phi_bar) ** 2


@pytest.mark.parametrize("settings", [{}, {"tilt": 0.3}, {"tilt": -0.1, "constraint": 5.0, "phi_bar": 0.7}])
def test_energy_matches_the_formula_and_score_matches_autograd(settings):
    target = Phi4Chain(n_sites=7, a=0.3, beta=2.0, **settings)
    x = torch.randn(5, 7, **F64)
    expected = torch.tensor([_energy_by_loops(target, row.tolist()) for row in x], **F64)
    torch.testing.assert_close(target.energy(x), expected, rtol=1e-12, atol=1e-12)
    with torch.enable_grad():
        xg = x.clone().requires_grad_(True)
        (autograd_score,) = torch.autograd.grad(target.log_prob(xg).sum(), xg)
    log_prob, score = target.log_prob_and_score(x)
    torch.testing.assert_close(score, autograd_score, rtol=1e-10, atol=1e-10)
    torch.testing.assert_close(log_prob, -target.beta * expected)


def test_observables_and_bad_input():
    x = torch.tensor([[1.0, 0.9, 0.8], [-1.0, -1.0, 0.5]], **F64)
    torch.testing.assert_close(field_mean(x), torch.tensor([0.9, -0.5], **F64))
    torch.testing.assert_close(site_value(x), torch.tensor([0.9, -1.0], **F64))
    positive = field_mean(x) > 0
    membership = torch.stack([positive, ~positive], -1).double()
    torch.testing.assert_close(mode_weights(membership).value, torch.tensor([0.5, 0.5], **F64))
    weighted = mode_weights(membership, torch.tensor([0.0, math.log(3.0)], **F64))
    torch.testing.assert_close(weighted.value, torch.tensor([0.25, 0.75], **F64))
    with pytest.raises(ValueError, match="site"):
        site_value(x, site=3)
    with pytest.raises(ValueError, match="n_sites"):
        Phi4Chain(n_sites=0)
    with pytest.raises(ValueError, match="constraint"):
        Phi4Chain(constraint=-1.0)
    with pytest.raises(ValueError, match="beta"):  # the right kind (a number), a bad value
        Phi4Chain(beta=float("nan"))
    with pytest.raises(TypeError, match="beta"):
        Phi4Chain(beta="20")
    with pytest.raises(ValueError, match="constraint"):
        transfer_matrix_reference(Phi4Chain(constraint=1.0))
    with pytest.raises(ValueError, match="half_width"):
        transfer_matrix_reference(Phi4Chain(n_sites=3, a=0.5, beta=0.05), half_width=1.0)


# --------------------------------------------------------------------------- transfer matrix


def _brute_force_log_z(target: Phi4Chain, spacing: float, half_width: float = 3.0) -> float:
    """log Z by the rectangle rule on the full N-dimensional grid, with the target's own energy."""
    n_cells = int(round(2 * half_width / spacing))
    axis = (torch.arange(n_cells, **F64) + 0.5) * spacing - half_width
    rest = torch.cartesian_prod(*[axis] * (target.dim - 1)).reshape(-1, target.dim - 1)
    totals = []
    for first in axis:  # one slab of the grid at a time
        points = torch.cat([first.expand(rest.shape[0], 1), rest], dim=-1)
        totals.append(torch.logsumexp(target.log_prob(points), 0))
    return float(torch.logsumexp(torch.stack(totals), 0)) + target.dim * math.log(spacing)


@pytest.mark.parametrize("n_sites, spacing", [(2, 0.02), (3, 0.05)])
@pytest.mark.parametrize("tilt", [0.0, 0.4])
def test_transfer_matrix_log_z_equals_brute_force_integration(n_sites, spacing, tilt):
    target = Phi4Chain(n_sites=n_sites, a=0.5, beta=2.0, tilt=tilt)
    exact = transfer_matrix_reference(target, grid_spacing=0.01, half_width=4.0)
    brute = _brute_force_log_z(target, spacing, half_width=4.0)
    assert abs(exact.log_z - brute) < 1e-8, (exact.log_z, brute)


def test_transfer_matrix_is_converged_at_the_published_settings():
    """Halving the grid spacing changes log Z by less than 1e-4 (N = 100, a = 0.1, beta = 20)."""
    for tilt in (0.0, 0.005):
        target = Phi4Chain(tilt=tilt)
        coarse = transfer_matrix_reference(target, grid_spacing=0.02)
        fine = transfer_matrix_reference(target, grid_spacing=0.01)
        assert abs(coarse.log_z - fine.log_z) < 1e-4, (coarse.log_z, fine.log_z)
        assert abs(coarse.prob_positive() - fine.prob_positive()) < 1e-6
    untilted = transfer_matrix_reference(Phi4Chain(), grid_spacing=0.02)
    assert abs(untilted.prob_positive() - 0.5) < 1e-12  # symmetric grid, symmetric target
    torch.testing.assert_close(untilted.marginals.sum(-1), torch.ones(100, **F64))
    assert transfer_matrix_reference(Phi4Chain(tilt=0.005), grid_spacing=0.02).prob_positive() < 0.5


def test_transfer_matrix_site_marginal_agrees_with_long_mcmc():
    """E[phi_i] and E[phi_i^2] at three sites of a small tilted chain against MALA, within 4 MCSE."""
    target = Phi4Chain(n_sites=10, a=0.1, beta=3.0, tilt=0.3)
    exact = transfer_matrix_reference(target, grid_spacing=0.01, half_width=4.0)
    chains = run_chains(MALA(target, step_size=0.02), torch.zeros(200, 10, **F64), n_steps=6000)
    kept = chains.samples[1000:]  # burn-in
    for site in (1, 5, 8):
        for power, exact_moments in ((1, exact.site_means()), (2, exact.site_second_moments())):
            values = kept[:, :, site] ** power
            z = (values.mean() - exact_moments[site]) / mcse(values)
            assert abs(float(z)) < 4, (site, power, float(values.mean()), float(exact_moments[site]))


# --------------------------------------------------------------------------- informed base


def test_coupled_base_log_prob_equals_dense_multivariate_normal():
    target = Phi4Chain(n_sites=12, a=0.1, beta=20.0)
    base = target.coupled_base(sigma=0.8, dtype=torch.float64)
    c = target.coupling
    dense_precision = 20.0 * (
        torch.diag(torch.full((12,), 2 * c + 1 / (c * 0.64), **F64))
        - c * (torch.diag(torch.ones(11, **F64), 1) + torch.diag(torch.ones(11, **F64), -1))
    )
    torch.testing.assert_close(base.precision_matrix(), dense_precision, rtol=1e-12, atol=1e-10)
    reference = MultivariateNormal(torch.zeros(12, **F64), covariance_matrix=torch.linalg.inv(dense_precision))
    z = 0.3 * torch.randn(50, 12, **F64)
    torch.testing.assert_close(base.log_prob(z), reference.log_prob(z), rtol=1e-10, atol=1e-9)
    torch.testing.assert_close(base.log_det_precision(), torch.logdet(dense_precision))
    assert base.log_prob(torch.zeros(3, 4, 12, **F64)).shape == (3, 4)


def test_coupled_base_samples_have_the_inverse_precision_as_covariance():
    base = Phi4Chain(n_sites=8, a=0.1, beta=20.0).coupled_base(dtype=torch.float64)
    n = 40_000
    samples = base.sample(n)
    assert samples.shape == (n, 8) and samples.dtype == torch.float64
    covariance = base.covariance_matrix()
    torch.testing.assert_close(covariance, torch.linalg.inv(base.precision_matrix()))
    empirical = samples.T @ samples / n  # the mean is known to be zero
    variances = torch.diagonal(covariance)
    stderr = torch.sqrt((covariance.square() + variances[:, None] * variances[None, :]) / n)
    z = (empirical - covariance) / stderr
    assert float(z.abs().max()) < 4.5, z
    z_mean = samples.mean(0) / torch.sqrt(variances / n)
    assert float(z_mean.abs().max()) < 4.5


def test_tridiagonal_gaussian_rejects_bad_precisions():
    with pytest.raises(ValueError, match="positive definite"):
        TridiagonalGaussian(torch.tensor([1.0, 1.0]), torch.tensor([2.0]))
    with pytest.raises(ValueError, match="precision_off_diagonal"):
        TridiagonalGaussian(torch.ones(3), torch.zeros(3))
    with pytest.raises(ValueError, match="finite"):
        TridiagonalGaussian(torch.tensor([1.0, float("nan")]), torch.zeros(1))


def test_uncoupled_base_is_the_diagonal_gaussian_of_the_mass_term():
    target = Phi4Chain()
    base = target.uncoupled_base(sigma=1.0)
    assert isinstance(base, DiagonalGaussian)
    torch.testing.assert_close(base.scale, torch.full((100,), math.sqrt(target.coupling / target.beta)))


@pytest.mark.parametrize("which", ["coupled", "uncoupled"])
def test_flow_with_either_base_survives_save_and_load(tmp_path, which):
    target = Phi4Chain(n_sites=10, a=0.1, beta=20.0)
    base = target.coupled_base() if which == "coupled" else target.uncoupled_base(sigma=0.5)
    flow = real_nvp(10, n_layers=2, hidden=(8,), base=base)
    with torch.no_grad():
        for p in flow.parameters():
            p.add_(0.05 * torch.randn_like(p))
    path = tmp_path / "flow.pt"
    save_flow(flow, path)
    loaded = load_flow(path)
    assert type(loaded.base) is type(base)
    for key, value in flow.state_dict().items():
        torch.testing.assert_close(loaded.state_dict()[key], value, rtol=0, atol=0)
    x = flow.sample(20)
    torch.testing.assert_close(loaded.log_prob(x), flow.log_prob(x), rtol=0, atol=0)


# --------------------------------------------------------------------------- Z2 symmetrisation


def _skewed_flow(dim: int) -> torch.nn.Module:
    flow = real_nvp(dim, n_layers=4, hidden=(16,), base=DiagonalGaussian(torch.full((dim,), 0.7), torch.ones(dim)))
    with torch.no_grad():
        for p in flow.parameters():
            p.add_(0.1 * torch.randn_like(p))
    return flow.double()


def test_symmetrised_density_is_normalised_and_invariant():
    sym = Z2Symmetrized(_skewed_flow(2))
    step = 0.02
    axis = (torch.arange(800, **F64) + 0.5) * step - 8.0
    grid = torch.cartesian_prod(axis, axis)
    with torch.no_grad():
        mass = float(torch.logsumexp(sym.log_prob(grid), 0).exp()) * step**2
        flow_mass = float(torch.logsumexp(sym.density.log_prob(grid), 0).exp()) * step**2
    # on a symmetric box the two masses are equal exactly; both are 1 up to the box's tails
    assert abs(mass - flow_mass) < 1e-10 and abs(mass - 1.0) < 2e-3, (mass, flow_mass)
    with torch.no_grad():
        x = 2 * torch.randn(100, 2, **F64)
        torch.testing.assert_close(sym.log_prob(x), sym.log_prob(-x), rtol=0, atol=1e-12)
        plain = sym.density.log_prob(x)
        assert float((plain - sym.density.log_prob(-x)).abs().max()) > 0.1  # the flow itself is not symmetric


def test_symmetrised_sampling_flips_signs_and_reports_its_log_density():
    sym = Z2Symmetrized(_skewed_flow(3))
    x, log_q = sym.sample_and_log_prob(4000)
    with torch.no_grad():
        torch.testing.assert_close(log_q, sym.log_prob(x), rtol=1e-9, atol=1e-9)
    positive = (x.mean(-1) > 0).double().mean()
    assert abs(float(positive) - 0.5) < 4 * 0.5 / math.sqrt(4000)  # the flow alone sits at +0.7
    assert abs(float(sym.density.sample(4000).mean())) > 0.3
    assert sym.sample(5).shape == (5, 3)


def test_tilted_start_breaks_the_symmetry_towards_the_chosen_mode():
    from lecturekit.training.tilt_start import train_reverse_kl_with_tilt_start

    target = Phi4Chain(n_sites=10, a=0.1, beta=20.0)
    flow = real_nvp(10, n_layers=2, hidden=(16,), base=target.coupled_base())
    history = train_reverse_kl_with_tilt_start(flow, target, 30, n_tilted_steps=30, start_tilt=-0.5, batch_size=64)
    assert len(history.losses) == len(history.ess) == 60
    assert float(field_mean(flow.sample(500)).mean()) > 0.3  # the negative tilt favoured phi > 0
    with pytest.raises(ValueError, match="n_tilted_steps"):
        train_reverse_kl_with_tilt_start(flow, target, 1, n_tilted_steps=-1)
    with pytest.raises(TypeError, match="Phi4Chain"):
        train_reverse_kl_with_tilt_start(flow, object(), 1)
