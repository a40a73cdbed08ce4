"""Tests for lecturekit.targets.phi4_lattice: the action by hand, the score, the two parameterisations,
the observables, and the free field's exact propagator."""

from __future__ import annotations

import math

import pytest
import torch

from lecturekit.targets.phi4_lattice import (
    Phi4Lattice,
    albergo_from_del_debbio,
    del_debbio_from_albergo,
    ising_energy,
    magnetization,
    site_correlator,
    susceptibility,
    susceptibility_along_chain,
    two_point_function,
)
from lecturekit.diagnostics import integrated_autocorr_time, mcse
from lecturekit.estimates import Estimate
from lecturekit.targets.base import Target

F64 = torch.float64


# --------------------------------------------------------------------------- the action by hand


def test_albergo_action_on_2x2_by_hand() -> None:
    # phi = [[1, 2], [3, 4]], m2 = 1, lam = 0.5. On a 2x2 torus x + mu and x - mu are the same
    # site, so sum_x sum_mu (2 phi_x^2 - phi_x phi_{x+mu} - phi_x phi_{x-mu})
    #   = 4 sum phi^2 - 2 * 2 * (1*2 + 1*3 + 2*4 + 3*4) = 120 - 100 = 20;
    # m2 sum phi^2 = 30; lam sum phi^4 = 0.5 * (1 + 16 + 81 + 256) = 177. Total 227.
    target = Phi4Lattice(2, m2=1.0, lam=0.5)
    assert float(target.energy(torch.tensor([1.0, 2.0, 3.0, 4.0], dtype=F64))) == pytest.approx(227.0, abs=1e-12)


def test_albergo_action_on_3x3_by_hand() -> None:
    # phi = [[1, 2, 3], [4, 5, 6], [7, 8, 9]], m2 = -3, lam = 0.5.
    # Horizontal neighbour products (periodic): 11 + 74 + 191 = 276; vertical: 39 + 66 + 99 = 204;
    # sum_x sum_mu phi_x phi_{x+mu} = 480. sum phi^2 = 285, sum phi^4 = 15333.
    # Kinetic 4 * 285 - 2 * 480 = 180; m2 term -855; quartic 7666.5. Total 6991.5.
    target = Phi4Lattice(3, m2=-3.0, lam=0.5)
    phi = torch.arange(1.0, 10.0, dtype=F64)
    assert float(target.energy(phi)) == pytest.approx(6991.5, abs=1e-9)


def test_del_debbio_action_by_hand() -> None:
    # U = sum_x [-beta sum_mu phi_x phi_{x+mu} + phi_x^2 + lam (phi_x^2 - 1)^2].
    # 2x2, phi = (1, 2, 3, 4), beta = 0.3, lam = 0.2: -0.3 * 50 + 30 + 0.2 * (0 + 9 + 64 + 225) = 74.6.
    target = Phi4Lattice.from_del_debbio(2, beta=0.3, lam=0.2)
    assert float(target.energy(torch.tensor([1.0, 2.0, 3.0, 4.0], dtype=F64))) == pytest.approx(74.6, abs=1e-12)
    # 3x3, phi = 1..9, beta = 0.5, lam = 0.5: sum (phi^2 - 1)^2 = 15333 - 570 + 9 = 14772,
    # so U = -0.5 * 480 + 285 + 0.5 * 14772 = 7431.
    target = Phi4Lattice.from_del_debbio(3, beta=0.5, lam=0.5)
    assert float(target.energy(torch.arange(1.0, 10.0, dtype=F64))) == pytest.approx(7431.0, abs=1e-9)


def _action_by_loops(phi: list[float], L: int, m2: float, lam: float) -> float:
    """The Albergo et al. action written literally, with both neighbours x +- mu."""
    site = lambda r, c: phi[(r % L) * L + (c % L)]  # noqa: E731
    total = 0.0
    for r in range(L):
        for c in range(L):
            p = site(r, c)
            total += m2 * p**2 + lam * p**4
            for dr, dc in ((1, 0), (0, 1)):
                total += 2 * p**2 - p * site(r + dr, c + dc) - p * site(r - dr, c - dc)
    return total


@pytest.mark.parametrize("L", [2, 3, 4, 5])
def test_action_matches_the_literal_formula(L: int) -> None:
    target = Phi4Lattice(L, m2=-4.0, lam=8.0)
    phi = torch.randn(5, L * L, dtype=F64)
    expected = torch.tensor([_action_by_loops(row.tolist(), L, -4.0, 8.0) for row in phi], dtype=F64)
    torch.testing.assert_close(target.energy(phi), expected, rtol=1e-12, atol=1e-12)
    assert target.energy(phi.reshape(5, 1, L * L)).shape == (5, 1)


@pytest.mark.parametrize(
    "target",
    [Phi4Lattice(2, -4.0, 8.0), Phi4Lattice(3, 0.5, 1.3), Phi4Lattice(6, -4.0, 8.0), Phi4Lattice.from_del_debbio(4, 0.7, 0.3)],
    ids=repr,
)
def test_score_matches_autograd(target: Phi4Lattice) -> None:
    phi = torch.randn(4, 3, target.dim, dtype=F64)
    log_prob, score = target.log_prob_and_score(phi)
    log_prob_autograd, score_autograd = Target.log_prob_and_score(target, phi)
    torch.testing.assert_close(log_prob, log_prob_autograd, rtol=1e-13, atol=1e-12)
    torch.testing.assert_close(score, score_autograd, rtol=1e-12, atol=1e-12)
    assert not log_prob.requires_grad and not score.requires_grad


# --------------------------------------------------------------------------- the two parameterisations


def test_parameterisation_mapping_of_the_tutorial_point() -> None:
    assert albergo_from_del_debbio(0.5, 0.5) == pytest.approx((-4.0, 8.0))
    assert del_debbio_from_albergo(-4.0, 8.0) == pytest.approx((0.5, 0.5))


@pytest.mark.parametrize(("beta", "lam"), [(0.5, 0.5), (0.3, 0.02), (1.7, 1.2), (0.25, 0.0), (0.9, 2.0)])
def test_mapping_rescales_the_field_and_shifts_the_action_by_a_constant(beta: float, lam: float) -> None:
    # U_DD(phi) = S_A(sqrt(beta / 2) phi) + lam V for every phi: the same density after rescaling.
    L = 4
    m2, lam_a = albergo_from_del_debbio(beta, lam)
    del_debbio = Phi4Lattice.from_del_debbio(L, beta, lam)
    albergo = Phi4Lattice(L, m2, lam_a)
    phi = 2 * torch.randn(20, L * L, dtype=F64)
    scale = math.sqrt(beta / 2)
    assert del_debbio.field_scale == pytest.approx(scale)
    assert (del_debbio.m2, del_debbio.lam) == pytest.approx((m2, lam_a))
    torch.testing.assert_close(del_debbio.energy(phi), albergo.energy(scale * phi) + lam * L * L, rtol=1e-12, atol=1e-9)
    assert del_debbio_from_albergo(m2, lam_a) == pytest.approx((beta, lam), rel=1e-12, abs=1e-15)


@pytest.mark.parametrize(("m2", "lam"), [(-4.0, 8.0), (-4.0, 6.975), (1.0, 0.0), (3.0, 1e-9), (-10.0, 0.1), (50.0, 2.0)])
def test_mapping_round_trip_from_albergo(m2: float, lam: float) -> None:
    beta, lam_dd = del_debbio_from_albergo(m2, lam)
    assert beta > 0 and lam_dd >= 0
    assert albergo_from_del_debbio(beta, lam_dd) == pytest.approx((m2, lam), rel=1e-9, abs=1e-12)


def test_bad_parameters_are_named() -> None:
    with pytest.raises(ValueError, match="lam"):
        Phi4Lattice(4, -4.0, -1.0)
    with pytest.raises(TypeError, match="m2"):
        Phi4Lattice(4, "a", 1.0)
    with pytest.raises(TypeError, match="L"):
        Phi4Lattice(4.0, 1.0, 1.0)
    with pytest.raises(ValueError, match="beta"):
        albergo_from_del_debbio(0.0, 0.5)
    with pytest.raises(ValueError, match="m2 > -4"):
        del_debbio_from_albergo(-5.0, 0.0)
    with pytest.raises(ValueError, match=r"\(\.\.\., 16\)"):
        Phi4Lattice(4, 1.0, 1.0).energy(torch.zeros(3, 15))
    with pytest.raises(ValueError, match="lam = 0"):
        Phi4Lattice(4, 1.0, 1.0).free_covariance()
    with pytest.raises(ValueError, match="m2 > 0"):
        Phi4Lattice(4, -1.0, 0.0).free_covariance()


# --------------------------------------------------------------------------- observables


def test_site_correlator_against_a_double_loop() -> None:
    L = 3
    phi = torch.randn(2, L * L, dtype=F64)
    expected = torch.zeros(2, L, L, dtype=F64)
    for n in range(2):
        grid = phi[n].reshape(L, L)
        for dr in range(L):
            for dc in range(L):
                expected[n, dr, dc] = sum(
                    grid[r, c] * grid[(r + dr) % L, (c + dc) % L] for r in range(L) for c in range(L)
                ) / (L * L)
    torch.testing.assert_close(site_correlator(phi), expected, rtol=1e-12, atol=1e-12)


def test_observables_of_a_small_set_by_hand() -> None:
    # Two 2x2 configurations: all +1, and [[1, -1], [-1, 1]] (the staggered one).
    phi = torch.tensor([[1.0, 1.0, 1.0, 1.0], [1.0, -1.0, -1.0, 1.0]], dtype=F64)
    assert magnetization(phi).tolist() == [4.0, 0.0]
    # Mean field (1, 0, 0, 1); disconnected G(y): mean of C_1 = 1 and C_2 = [[1, -1], [-1, 1]], i.e. [[1, 0], [0, 1]];
    # the mean field's own correlator is [[1/2, 0], [0, 1/2]]. Connected: [[1/2, 0], [0, 1/2]].
    G = two_point_function(phi)
    torch.testing.assert_close(G, torch.tensor([[0.5, 0.0], [0.0, 0.5]], dtype=F64))
    assert float(susceptibility(phi)) == pytest.approx(1.0)  # (mean M^2 - mean(M)^2) / V = (8 - 4) / 4
    assert float(ising_energy(phi)) == pytest.approx(0.0)
    # Leading axes are all samples: (steps, chains, V) gives the same as the flattened set.
    torch.testing.assert_close(two_point_function(phi.reshape(2, 1, 4)), G)


def test_observables_reject_non_square_fields() -> None:
    with pytest.raises(ValueError, match="square"):
        two_point_function(torch.zeros(3, 10))
    with pytest.raises(TypeError, match="phi"):
        magnetization(torch.zeros(3, 4, dtype=torch.int64))


# --------------------------------------------------------------------------- the free field


def _momentum_space_propagator(L: int, m2: float) -> torch.Tensor:
    """G(y) = 1 / (2V) sum_p cos(p.y) / (m2 + sum_mu 4 sin^2(p_mu / 2)), p = 2 pi k / L."""
    G = torch.zeros(L, L, dtype=F64)
    for k1 in range(L):
        for k2 in range(L):
            p1, p2 = 2 * math.pi * k1 / L, 2 * math.pi * k2 / L
            denominator = m2 + 4 * math.sin(p1 / 2) ** 2 + 4 * math.sin(p2 / 2) ** 2
            for y1 in range(L):
                for y2 in range(L):
                    G[y1, y2] += math.cos(p1 * y1 + p2 * y2) / denominator
    return G / (2 * L * L)


@pytest.mark.parametrize(("L", "m2"), [(2, 0.7), (4, 0.5), (5, 2.0), (8, 0.25)])
def test_free_covariance_is_the_lattice_propagator(L: int, m2: float) -> None:
    target = Phi4Lattice(L, m2=m2, lam=0.0)
    torch.testing.assert_close(target.free_two_point(), _momentum_space_propagator(L, m2), rtol=1e-10, atol=1e-12)
    assert float(target.free_two_point().sum()) == pytest.approx(1 / (2 * m2), rel=1e-10)  # chi_2 = 1 / (2 m2)
    assert target.free_magnetization_variance() / (L * L) == pytest.approx(1 / (2 * m2), rel=1e-10)


def test_free_covariance_of_the_del_debbio_form_is_the_rescaled_one() -> None:
    beta = 0.4  # lam = 0: U = sum [-beta sum_mu phi phi' + phi^2], Gaussian for beta < 1/2
    del_debbio = Phi4Lattice.from_del_debbio(4, beta, 0.0)
    albergo = Phi4Lattice(4, del_debbio.m2, 0.0)
    torch.testing.assert_close(del_debbio.free_covariance() * (beta / 2), albergo.free_covariance())


def test_estimators_on_exact_free_field_samples(z_score) -> None:
    # Exact Gaussian samples: G(y) and chi_2 from the estimators agree with the propagator within 4 sigma.
    L, m2, n = 4, 0.5, 20_000
    target = Phi4Lattice(L, m2=m2, lam=0.0)
    cholesky = torch.linalg.cholesky(target.free_covariance())
    phi = torch.randn(n, L * L, dtype=F64) @ cholesky.T
    per_sample = site_correlator(phi).flatten(-2)  # (n, V): independent samples, so the MCSE is std / sqrt(n)
    z = z_score(two_point_function(phi).flatten(), target.free_two_point().flatten(), per_sample.std(0) / math.sqrt(n))
    assert torch.all(z.abs() < 4), z
    m_squared = magnetization(phi) ** 2 / (L * L)
    z_chi = z_score(susceptibility(phi), torch.tensor(1 / (2 * m2)), m_squared.std() / math.sqrt(n))
    assert abs(float(z_chi)) < 4


def test_susceptibility_along_chain_is_susceptibility_with_the_mcse_of_m_squared() -> None:
    torch.manual_seed(0)
    chain = torch.randn(400, 6, 16, dtype=torch.float64) + 0.3
    estimate = susceptibility_along_chain(chain)
    assert isinstance(estimate, Estimate) and all(t.shape == () for t in estimate)
    m_squared = magnetization(chain) ** 2 / 16
    assert estimate.value == pytest.approx(float(susceptibility(chain)), rel=1e-12)
    assert estimate.stderr == pytest.approx(float(mcse(m_squared)), rel=1e-12)
    assert estimate.tau == pytest.approx(float(integrated_autocorr_time(m_squared)), rel=1e-12)
    with pytest.raises(ValueError, match="chain must have shape"):
        susceptibility_along_chain(chain[0])
