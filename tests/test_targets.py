"""Targets against published numbers, autograd and exact integrals."""

from __future__ import annotations

import math

import pytest
import torch

from lecturekit.targets.base import Target
from lecturekit.targets.toy import GaussianMixture, MullerBrown, four_mode_mixture

F64 = torch.float64
Z_MAX = 4.0

# REFERENCES.md (Müller & Brown 1979): stationary points and their energies
MINIMA = [((-0.558, 1.442), -146.70), ((0.623, 0.028), -108.17), ((-0.050, 0.467), -80.77)]
SADDLES = [((-0.822, 0.624), -40.66), ((0.212, 0.293), -72.25)]


def newton(target: MullerBrown, start: tuple[float, float], steps: int = 20) -> torch.Tensor:
    """Stationary point of U near ``start`` by Newton's method on the gradient (float64)."""
    x = torch.tensor(start, dtype=F64)
    for _ in range(steps):
        gradient = -target.score(x) / target.beta
        hessian = torch.autograd.functional.hessian(target.energy, x)
        x = x - torch.linalg.solve(hessian, gradient)
    return x


# --------------------------------------------------------------------------- Müller-Brown


@pytest.mark.parametrize(("point", "energy"), MINIMA)
def test_muller_brown_minima(point: tuple[float, float], energy: float) -> None:
    mb = MullerBrown()
    assert float(mb.energy(torch.tensor(point, dtype=F64))) == pytest.approx(energy, abs=0.01)
    minimum = newton(mb, point)
    assert torch.allclose(minimum, torch.tensor(point, dtype=F64), atol=1e-3)  # the quoted point is the minimum
    assert float(mb.energy(minimum)) == pytest.approx(energy, abs=0.01)
    assert float(mb.score(minimum).norm()) < 1e-8  # gradient vanishes
    eigenvalues = torch.linalg.eigvalsh(torch.autograd.functional.hessian(mb.energy, minimum))
    assert torch.all(eigenvalues > 0)  # a local minimum


@pytest.mark.parametrize(("point", "energy"), SADDLES)
def test_muller_brown_saddles(point: tuple[float, float], energy: float) -> None:
    mb = MullerBrown()
    saddle = newton(mb, point)
    assert torch.allclose(saddle, torch.tensor(point, dtype=F64), atol=1e-3)
    assert float(mb.energy(saddle)) == pytest.approx(energy, abs=0.01)
    eigenvalues = torch.linalg.eigvalsh(torch.autograd.functional.hessian(mb.energy, saddle))
    assert float(eigenvalues[0]) < 0 < float(eigenvalues[1])


@pytest.mark.parametrize("beta", [0.1, 1.0, 0.05])
def test_muller_brown_analytic_score_equals_autograd(beta: float) -> None:
    mb = MullerBrown(beta=beta)
    x = torch.stack([torch.empty(3, 50, dtype=F64).uniform_(-1.8, 1.2), torch.empty(3, 50, dtype=F64).uniform_(-0.4, 2.1)], -1)
    log_prob, score = mb.log_prob_and_score(x)
    auto_log_prob, auto_score = Target.log_prob_and_score(mb, x)  # the generic autograd version
    assert log_prob.shape == (3, 50) and score.shape == (3, 50, 2)
    assert torch.allclose(log_prob, auto_log_prob, rtol=1e-12, atol=1e-10)
    assert torch.allclose(score, auto_score, rtol=1e-10, atol=1e-9)
    assert torch.allclose(log_prob, -beta * mb.energy(x), rtol=1e-12)
    assert torch.allclose(mb.score(x), score)
    assert torch.autograd.gradcheck(mb.energy, (x[0, :5].clone().requires_grad_(),))


def test_muller_brown_float32_agrees_with_float64() -> None:
    mb = MullerBrown()
    x = torch.rand(100, 2, dtype=F64) * torch.tensor([3.0, 2.5], dtype=F64) - torch.tensor([1.8, 0.4], dtype=F64)
    log_prob32, score32 = mb.log_prob_and_score(x.float())
    log_prob64, score64 = mb.log_prob_and_score(x)
    assert log_prob32.dtype == torch.float32
    assert torch.allclose(log_prob32.double(), log_prob64, rtol=1e-4, atol=1e-3)
    assert torch.allclose(score32.double(), score64, rtol=1e-3, atol=1e-2)


@pytest.mark.parametrize(
    ("beta", "error"),
    [(0.0, ValueError), (-1.0, ValueError), (math.nan, ValueError), (math.inf, ValueError), ("0.1", TypeError), (True, TypeError)],
)
def test_muller_brown_rejects_bad_beta(beta: object, error: type[Exception]) -> None:
    with pytest.raises(error, match="beta"):
        MullerBrown(beta=beta)


def test_targets_reject_bad_points() -> None:
    for target in (MullerBrown(), GaussianMixture(torch.zeros(2, 2))):
        with pytest.raises(ValueError, match=r"\(\.\.\., 2\)"):
            target.log_prob(torch.zeros(4, 3))
        with pytest.raises(ValueError, match="shape"):
            target.log_prob(torch.tensor(1.0))
        with pytest.raises(TypeError, match="floating"):
            target.log_prob(torch.zeros(4, 2, dtype=torch.long))
        with pytest.raises(TypeError, match="Tensor"):
            target.log_prob([[0.0, 0.0]])


# --------------------------------------------------------------------------- Gaussian mixtures


def test_gaussian_mixture_normalises_in_2d() -> None:
    means = torch.tensor([[-1.0, 0.0], [1.5, 1.0], [0.0, -1.5]], dtype=F64)
    covariances = torch.tensor(
        [[[0.5, 0.3], [0.3, 0.4]], [[0.2, -0.1], [-0.1, 0.3]], [[1.0, 0.0], [0.0, 0.1]]], dtype=F64
    )
    gm = GaussianMixture(means, covariances, torch.tensor([1.0, 2.0, 3.0], dtype=F64))
    grid = torch.linspace(-7.0, 7.0, 701, dtype=F64)
    spacing = float(grid[1] - grid[0])
    points = torch.stack(torch.meshgrid(grid, grid, indexing="ij"), -1)
    integral = gm.log_prob(points).exp().sum() * spacing**2
    assert float(integral) == pytest.approx(1.0, abs=1e-3)


def test_gaussian_mixture_normalises_in_1d() -> None:
    gm = GaussianMixture(torch.tensor([[-2.0], [1.0]], dtype=F64), torch.tensor([0.3, 2.0], dtype=F64))
    grid = torch.linspace(-15.0, 15.0, 30_001, dtype=F64).unsqueeze(-1)
    integral = torch.trapezoid(gm.log_prob(grid).exp(), grid.squeeze(-1))
    assert float(integral) == pytest.approx(1.0, abs=1e-3)


def test_single_gaussian_log_prob_matches_torch_distributions() -> None:
    mean = torch.tensor([[0.5, -1.0]], dtype=F64)
    covariance = torch.tensor([[[2.0, 0.7], [0.7, 0.5]]], dtype=F64)
    x = torch.randn(20, 2, dtype=F64)
    reference = torch.distributions.MultivariateNormal(mean[0], covariance[0]).log_prob(x)
    assert torch.allclose(GaussianMixture(mean, covariance).log_prob(x), reference, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize(
    "covariances",
    [0.3, torch.tensor([0.2, 0.5], dtype=F64), torch.tensor([[0.2, 0.1], [0.5, 1.0]], dtype=F64),
     torch.tensor([[[0.5, 0.2], [0.2, 0.3]], [[0.4, -0.3], [-0.3, 0.9]]], dtype=F64)],
    ids=["scalar", "isotropic", "diagonal", "full"],
)
def test_gaussian_mixture_samples_match_exact_moments(covariances: object, z_score) -> None:
    gm = GaussianMixture(torch.tensor([[1.0, 1.0], [-1.0, -0.5]], dtype=F64), covariances, torch.tensor([0.25, 0.75], dtype=F64))
    n = 20_000
    x = gm.sample(n)
    assert x.shape == (n, 2) and x.dtype == F64
    mean, covariance = gm.mean(), gm.covariance()
    z = z_score(x.mean(0), mean, x.std(0) / math.sqrt(n))
    assert torch.all(z.abs() < Z_MAX), z
    i, j = torch.triu_indices(2, 2)
    products = (x - mean)[:, i] * (x - mean)[:, j]  # i.i.d., mean = covariance entries
    z = z_score(products.mean(0), covariance[i, j], products.std(0) / math.sqrt(n))
    assert torch.all(z.abs() < Z_MAX), z


def test_gaussian_mixture_exact_moments_and_responsibilities() -> None:
    means = torch.tensor([[1.0, 1.0], [-1.0, -1.0]], dtype=F64)
    gm = GaussianMixture(means, 0.1, torch.tensor([1.0, 3.0], dtype=F64))  # weights normalised to 1/4, 3/4
    assert torch.allclose(gm.weights, torch.tensor([0.25, 0.75], dtype=F64))
    assert torch.allclose(gm.mean(), torch.tensor([-0.5, -0.5], dtype=F64))
    # Sigma = 0.1 I + sum_k w_k mu_k mu_k^T - mu mu^T = 0.1 I + 0.75 [[1, 1], [1, 1]]
    assert torch.allclose(gm.covariance(), 0.1 * torch.eye(2, dtype=F64) + 0.75 * torch.ones(2, 2, dtype=F64))
    x = torch.randn(7, 3, 2, dtype=F64)
    responsibilities = gm.responsibilities(x)
    assert responsibilities.shape == (7, 3, 2)
    assert torch.allclose(responsibilities.sum(-1), torch.ones(7, 3, dtype=F64))
    assert float(gm.responsibilities(means)[0, 0]) > 0.999  # each mean belongs to its component


def test_gaussian_mixture_score_is_the_gaussian_score() -> None:
    mean = torch.tensor([[0.5, -1.0]], dtype=F64)
    covariance = torch.tensor([[[2.0, 0.7], [0.7, 0.5]]], dtype=F64)
    x = torch.randn(10, 2, dtype=F64)
    expected = -torch.linalg.solve(covariance[0], (x - mean).T).T  # -Sigma^{-1} (x - mu)
    assert torch.allclose(GaussianMixture(mean, covariance).score(x), expected, rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"means": torch.zeros(2)}, "means"),
        ({"means": torch.zeros(0, 2)}, "means"),
        ({"means": torch.zeros(2, 2), "covariances": -1.0}, "covariances"),
        ({"means": torch.zeros(2, 2), "covariances": torch.tensor([1.0, -1.0])}, "covariances"),
        ({"means": torch.zeros(2, 2), "covariances": torch.ones(3)}, "covariances"),
        ({"means": torch.zeros(1, 2), "covariances": torch.tensor([[[1.0, 2.0], [2.0, 1.0]]])}, "positive definite"),
        ({"means": torch.zeros(1, 2), "covariances": torch.tensor([[[1.0, 0.5], [0.0, 1.0]]])}, "symmetric"),
        ({"means": torch.tensor([[0.0, math.nan]])}, "means"),
        ({"means": torch.zeros(2, 2), "weights": torch.ones(3)}, "weights"),
        ({"means": torch.zeros(2, 2), "weights": torch.tensor([1.0, 0.0])}, "weights"),
    ],
)
def test_gaussian_mixture_rejects_bad_parameters(kwargs: dict, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        GaussianMixture(**kwargs)


@pytest.mark.parametrize(("n", "error"), [(0, ValueError), (-3, ValueError), (2.5, TypeError), (True, TypeError)])
def test_gaussian_mixture_rejects_bad_sample_size(n: object, error: type[Exception]) -> None:
    with pytest.raises(error, match="n must"):
        GaussianMixture(torch.zeros(1, 2)).sample(n)


def test_targets_follow_the_device(device: torch.device) -> None:
    gm = GaussianMixture(torch.zeros(2, 2)).to(device)
    x = gm.sample(5)
    assert x.device.type == device.type
    for target in (gm, MullerBrown()):
        log_prob, score = target.log_prob_and_score(x)
        assert log_prob.device.type == device.type and score.device.type == device.type


def test_four_mode_mixture_has_the_published_means_and_equal_weights() -> None:
    """Grenioux et al. (ICML 2023): entries +-0.591 sqrt(2 ln d) in four half-sign patterns."""
    mixture = four_mode_mixture(6, dtype=torch.float64)
    a = 0.591 * math.sqrt(2 * math.log(6))
    expected_signs = torch.tensor([[-1, -1, -1, 1, 1, 1], [1, 1, 1, 1, 1, 1], [-1, -1, -1, -1, -1, -1],
                                   [1, 1, 1, -1, -1, -1]], dtype=torch.float64)
    assert torch.equal(mixture.means, a * expected_signs)
    assert torch.equal(mixture.weights, torch.full((4,), 0.25, dtype=torch.float64))
    assert torch.equal(mixture.covariances, torch.eye(6, dtype=torch.float64).expand(4, 6, 6))
    with pytest.raises(ValueError, match="dim must be an int >= 2"):
        four_mode_mixture(1)
    with pytest.raises(TypeError, match="dim must be an int"):
        four_mode_mixture(16.0)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="dtype"):
        four_mode_mixture(16, dtype=torch.int64)
