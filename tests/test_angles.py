"""An angle sampled as a 2-vector (lecturekit.targets.angles): the log-density by hand, the score against
autograd and finite differences, the origin and the cut, the normalisation on a grid, and MALA on
the wrapped target against a known angle distribution (within 4 MCSE, fixed seeds)."""

from __future__ import annotations

import math

import pytest
import torch
from torch import Tensor

from lecturekit.targets.angles import AngleAsVector, angle_of
from lecturekit.diagnostics import mcse
from lecturekit.targets.radial_velocity import RadialVelocityPosterior, simulate_observations
from lecturekit.samplers.mcmc import MALA, run_chains
from lecturekit.targets.base import Target
from lecturekit.targets.toy import GaussianMixture

F64 = torch.float64
TWO_PI = 2 * math.pi


class VonMises(Target):
    """The normalised von Mises density on [0, 2 pi), exp(kappa cos(phi - mu)) / (2 pi I0(kappa)).

    Its mode sits across the cut at phi = 0 when mu is near 0. log_prob is -inf outside [0, 2 pi).
    Exact circular moments: E[cos phi] = A cos mu, E[sin phi] = A sin mu, A = I1(kappa) / I0(kappa).
    """

    dim = 1

    def __init__(self, mu: float, kappa: float) -> None:
        self.mu, self.kappa = mu, kappa

    def log_prob(self, x: Tensor) -> Tensor:
        phi = x[..., 0]
        log_norm = math.log(TWO_PI) + math.log(float(torch.special.i0(torch.tensor(self.kappa, dtype=F64))))
        inside = (phi >= 0) & (phi < TWO_PI)
        return torch.where(inside, self.kappa * torch.cos(phi - self.mu) - log_norm, -math.inf)

    def energy(self, x: Tensor) -> Tensor:
        return -self.log_prob(x)

    def mean_resultant(self) -> float:
        kappa = torch.tensor(self.kappa, dtype=F64)
        return float(torch.special.i1(kappa) / torch.special.i0(kappa))


@pytest.fixture(scope="module")
def posterior() -> RadialVelocityPosterior:
    return RadialVelocityPosterior(simulate_observations())


def test_angle_of_covers_the_circle_and_keeps_nan() -> None:
    phi = torch.linspace(0, TWO_PI, 1001, dtype=F64)[:-1]
    u = torch.stack([torch.cos(phi), torch.sin(phi)], -1) * 2.5
    assert torch.allclose(angle_of(u), phi, atol=1e-12)
    # just below the cut, -tiny + 2 pi rounds to 2 pi (float32: above it): the angle is 0, inside [0, 2 pi)
    for dtype in (torch.float32, F64):
        assert float(angle_of(torch.tensor([[1.0, -1e-30]], dtype=dtype))) == 0.0
    signed_zeros = torch.tensor([[0.0, 0.0], [-0.0, 0.0], [0.0, -0.0], [-0.0, -0.0]])
    assert bool((angle_of(signed_zeros) == 0).all())  # atan2 gives 0 or +-pi here
    assert bool(torch.isnan(angle_of(torch.tensor([math.nan, 1.0])))), "NaN must not become an angle"


def test_log_prob_matches_a_hand_computation(posterior: RadialVelocityPosterior) -> None:
    vector = AngleAsVector(posterior, index=2)
    assert vector.dim == 5 and vector.names == ("v0", "K", "r cos phi0", "r sin phi0", "ln P")
    v0, k, u1, u2, ln_period = 0.2, 0.9, -0.3, -0.4, math.log(7.0)
    phi = math.atan2(u2, u1) + TWO_PI  # third quadrant: pi + atan(4/3)
    expected = float(posterior.log_prob(torch.tensor([v0, k, phi, ln_period], dtype=F64))) - 0.5 * (0.3**2 + 0.4**2)
    y = torch.tensor([v0, k, u1, u2, ln_period], dtype=F64)
    assert float(vector.log_prob(y)) == pytest.approx(expected, rel=1e-13)
    assert float(vector.energy(y)) == pytest.approx(-expected, rel=1e-13)
    # the radius is invisible to the likelihood: scaling u changes only the Gaussian term
    y2 = torch.tensor([v0, k, 3 * u1, 3 * u2, ln_period], dtype=F64)
    assert float(vector.log_prob(y2) - vector.log_prob(y)) == pytest.approx(-0.5 * 8 * 0.25, rel=1e-12)
    # outside the period range it is -inf, as for the posterior
    assert bool(torch.isneginf(vector.log_prob(torch.tensor([0.0, 1.0, 1.0, 0.0, 0.5], dtype=F64))))


def test_score_matches_autograd_and_finite_differences(posterior: RadialVelocityPosterior) -> None:
    vector = AngleAsVector(posterior, index=2)
    y = vector.from_angle(posterior.sample_prior(64))
    log_prob, score = vector.log_prob_and_score(y)
    reference_log_prob, reference_score = Target.log_prob_and_score(vector, y)  # autograd through atan2
    assert torch.allclose(log_prob, reference_log_prob, rtol=1e-12)
    assert torch.allclose(score, reference_score, rtol=1e-9, atol=1e-9)
    # central differences on a few points, every coordinate
    eps = 1e-6
    for point in y[:8]:
        steps = eps * torch.eye(5, dtype=F64)
        numerical = (vector.log_prob(point + steps) - vector.log_prob(point - steps)) / (2 * eps)
        analytic = vector.log_prob_and_score(point)[1]
        assert torch.allclose(analytic, numerical, rtol=1e-5, atol=1e-4), (analytic, numerical)
    # any coordinate can be the angle: the first one of a 3-d target
    three = AngleAsVector(VonMisesTimesGaussian(), index=0)
    y = three.from_angle(torch.cat([TWO_PI * torch.rand(32, 1, dtype=F64), torch.randn(32, 2, dtype=F64)], -1))
    assert torch.allclose(three.log_prob_and_score(y)[1], Target.log_prob_and_score(three, y)[1], rtol=1e-10, atol=1e-10)


class VonMisesTimesGaussian(Target):
    """phi ~ von Mises(0.3, 2) times a correlated 2-d Gaussian whose mean moves with phi (autograd score)."""

    dim = 3

    def log_prob(self, x: Tensor) -> Tensor:
        phi, a, b = x[..., 0], x[..., 1], x[..., 2]
        angle = VonMises(0.3, 2.0).log_prob(x[..., :1])
        return angle - 0.5 * (a - torch.sin(phi)).square() - 0.5 * (b - a * torch.cos(phi)).square()

    def energy(self, x: Tensor) -> Tensor:
        return -self.log_prob(x)


def test_the_origin_and_tiny_radii_give_finite_values(posterior: RadialVelocityPosterior) -> None:
    vector = AngleAsVector(posterior, index=2)
    x = posterior.sample_prior(3)
    for dtype, tiny in ((F64, 1e-300), (torch.float32, 1e-40)):
        for radius in (0.0, tiny):
            y = vector.from_angle(x.to(dtype), radius=1.0)
            y[:, 2:4] = radius * y[:, 2:4]
            log_prob, score = vector.log_prob_and_score(y)
            assert bool(torch.isfinite(log_prob).all()) and bool(torch.isfinite(score).all()), (dtype, radius, score)
            if radius == 0.0:
                # the angle is taken as 0 there and the angular part of the score is 0
                at_zero = x.to(dtype).clone()
                at_zero[:, 2] = 0.0
                assert torch.allclose(log_prob, posterior.log_prob(at_zero))
                assert bool((score[:, 2:4] == 0).all())
    # a point just below the cut (float32) maps inside the support, not to -inf
    y = vector.from_angle(x.float(), radius=1.0)
    y[:, 2:4] = torch.tensor([1.0, -1e-30])
    assert bool(torch.isfinite(vector.log_prob(y)).all())


def test_from_angle_and_to_angle_are_inverse_and_the_radius_is_rayleigh(posterior: RadialVelocityPosterior) -> None:
    vector = AngleAsVector(posterior, index=2)
    x = posterior.sample_prior(20000)
    generator = torch.Generator().manual_seed(3)
    y = vector.from_angle(x, generator=generator)
    assert y.shape == (20000, 5) and torch.allclose(vector.to_angle(y), x, atol=1e-12)
    assert torch.equal(y, vector.from_angle(x, generator=torch.Generator().manual_seed(3)))
    radius = torch.linalg.vector_norm(y[:, 2:4], dim=-1)
    # Rayleigh(1): E r = sqrt(pi / 2), E r^2 = 2
    for value, exact in ((radius, math.sqrt(math.pi / 2)), (radius.square(), 2.0)):
        z = (float(value.mean()) - exact) / (float(value.std()) / math.sqrt(value.numel()))
        assert abs(z) < 4, z
    radii = torch.full((20000,), 0.5, dtype=F64)
    assert torch.allclose(torch.linalg.vector_norm(vector.from_angle(x, radius=radii)[:, 2:4], dim=-1), radii)
    assert torch.allclose(vector.from_angle(x, radius=0.5), vector.from_angle(x, radius=radii))
    # batch dimensions pass through
    assert vector.from_angle(x.reshape(4, 5000, 4), radius=1.0).shape == (4, 5000, 5)


def test_the_wrapped_density_is_normalised_and_its_angle_marginal_is_exact() -> None:
    """Midpoint quadrature of the 2-d wrapped von Mises density (mode across the cut) over [-9, 9]^2."""
    target = VonMises(mu=0.2, kappa=4.0)
    vector = AngleAsVector(target, index=0)
    n, half_width = 1800, 9.0
    h = 2 * half_width / n
    centres = -half_width + h * (torch.arange(n, dtype=F64) + 0.5)
    u = torch.stack(torch.meshgrid(centres, centres, indexing="ij"), -1).reshape(-1, 2)
    density = vector.log_prob(u).exp()
    assert float(density.sum() * h * h) == pytest.approx(1.0, abs=2e-4)
    # the mass of each angular sector is the von Mises mass of that arc (15 sectors: no edge on the
    # grid's diagonals, where whole rows of cell centres would sit on an edge)
    sector = torch.div(angle_of(u), TWO_PI / 15, rounding_mode="floor").long()
    masses = torch.zeros(15, dtype=F64).index_add_(0, sector, density) * h * h
    fine = TWO_PI * (torch.arange(15 * 400, dtype=F64) + 0.5) / (15 * 400)
    exact = (target.log_prob(fine[:, None]).exp() * TWO_PI / (15 * 400)).reshape(15, 400).sum(1)
    assert torch.allclose(masses, exact, atol=2e-4), (masses - exact).abs().max()


def test_mala_on_the_wrapped_target_reproduces_the_angle_distribution() -> None:
    """MALA in the 2-d vector coordinates on a von Mises angle whose mode straddles the cut. Chains
    start from exact draws (von Mises angle, Rayleigh radius), so any bias comes from the kernel.
    E[cos phi], E[sin phi], P(phi < pi) and E[r^2] = 2 (the radius is an independent Rayleigh) within
    4 MCSE."""
    target = VonMises(mu=0.1, kappa=2.0)
    vector = AngleAsVector(target, index=0)
    phi = torch.remainder(torch.distributions.VonMises(torch.tensor(0.1, dtype=F64), torch.tensor(2.0, dtype=F64))
                          .sample((256,)), TWO_PI)
    start = vector.from_angle(phi[:, None])
    chains = run_chains(MALA(vector, 0.15), start, 1500)
    u = chains.samples
    assert bool(torch.isfinite(u).all())
    angle = angle_of(u)
    observables = torch.stack([torch.cos(angle), torch.sin(angle), (angle < math.pi).double(), u.square().sum(-1)], -1)
    a = target.mean_resultant()
    # P(phi < pi) by quadrature of the exact density
    grid = math.pi * (torch.arange(20000, dtype=F64) + 0.5) / 20000
    lower_half = float(target.log_prob(grid[:, None]).exp().sum() * math.pi / 20000)
    exact = torch.tensor([a * math.cos(0.1), a * math.sin(0.1), lower_half, 2.0], dtype=F64)
    z = (observables.mean((0, 1)) - exact) / mcse(observables)
    assert bool((z.abs() < 4).all()), f"z-scores (cos, sin, P(phi < pi), r^2): {z.tolist()}"
    assert 0.5 < float(chains.accepted.double().mean()) < 0.99


def test_bad_arguments_raise_clear_errors(posterior: RadialVelocityPosterior) -> None:
    with pytest.raises(TypeError, match="target"):
        AngleAsVector(lambda x: x, 0)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="index"):
        AngleAsVector(posterior, 2.0)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="index"):
        AngleAsVector(posterior, 4)
    vector = AngleAsVector(posterior, 2)
    x = posterior.sample_prior(3)
    with pytest.raises(ValueError, match="x"):
        vector.from_angle(torch.zeros(3, 5, dtype=F64))
    with pytest.raises(ValueError, match="radius"):
        vector.from_angle(x, radius=-1.0)
    with pytest.raises(ValueError, match="radius"):
        vector.from_angle(x, radius=torch.ones(4, dtype=F64))
    with pytest.raises(ValueError, match="radius"):
        vector.from_angle(x, radius=torch.tensor([1.0, 0.0, 1.0], dtype=F64))
    with pytest.raises(TypeError, match="radius"):
        vector.from_angle(x, radius="1")  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="generator"):
        vector.from_angle(x, generator=3)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="y"):
        vector.log_prob(torch.zeros(3, 4, dtype=F64))
    with pytest.raises(TypeError, match="y"):
        vector.log_prob(torch.zeros(3, 5, dtype=torch.int64))
    mixture = GaussianMixture(torch.zeros(1, 2), 1.0)
    assert AngleAsVector(mixture, 1).dim == 3 and not hasattr(AngleAsVector(mixture, 1), "names")
