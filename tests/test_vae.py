"""Tests of lecturekit.training.vae against the linear-Gaussian model, whose marginal and posterior are exact.

With a linear decoder x = W z + b + sigma * eps and z ~ N(0, I), the marginal is
p(x) = N(b, W W^T + sigma^2 I); when W has orthogonal columns the posterior p(z | x) is a
diagonal Gaussian, which a linear encoder represents exactly.
"""

from __future__ import annotations

import math

import pytest
import torch

from lecturekit.device import seed_everything
from lecturekit.training.vae import VAE, train_vae

DATA_DIM, LATENT_DIM, SIGMA = 3, 2, 0.4


def assert_close(actual: torch.Tensor, expected: torch.Tensor, atol: float) -> None:
    """Elementwise |actual - expected| <= atol (torch.testing.assert_close costs seconds of lazy imports)."""
    assert actual.shape == expected.shape, (actual.shape, expected.shape)
    error = float((actual - expected).abs().max())
    assert error <= atol, f"max abs error {error:.3g} > {atol}"


class Gaussian:
    """Exact N(mean, covariance) (plain torch; torch.distributions pulls in slow lazy imports)."""

    def __init__(self, mean: torch.Tensor, covariance: torch.Tensor) -> None:
        self.mean, self.covariance = mean, covariance
        self.cholesky = torch.linalg.cholesky(covariance)

    def sample(self, n: int) -> torch.Tensor:
        return self.mean + torch.randn(n, self.mean.shape[0], dtype=self.mean.dtype) @ self.cholesky.T

    def log_prob(self, x: torch.Tensor) -> torch.Tensor:
        white = torch.linalg.solve_triangular(self.cholesky, (x - self.mean).T, upper=False).T
        half_log_det = torch.log(torch.diagonal(self.cholesky)).sum()
        return -0.5 * (white**2).sum(-1) - half_log_det - 0.5 * x.shape[-1] * math.log(2 * math.pi)


def linear_gaussian_vae(exact_posterior: bool = True) -> tuple[VAE, Gaussian]:
    """A linear VAE (float64) and its exact marginal; the encoder is the exact posterior or a perturbed one."""
    seed_everything(1)
    vae = VAE(DATA_DIM, LATENT_DIM, hidden=()).double()
    q, _ = torch.linalg.qr(torch.randn(DATA_DIM, LATENT_DIM, dtype=torch.float64))
    w = q * torch.tensor([1.5, 0.7], dtype=torch.float64)  # orthogonal columns
    b = torch.tensor([0.3, -0.2, 0.5], dtype=torch.float64)
    precision = 1 + (w**2).sum(0) / SIGMA**2  # diagonal posterior precision
    enc_weight = (w / SIGMA**2).T / precision[:, None]  # posterior mean = enc_weight @ (x - b)
    log_std = -0.5 * torch.log(precision)
    if not exact_posterior:
        log_std = log_std + 0.6
    with torch.no_grad():
        vae.decoder[0].weight.copy_(w)
        vae.decoder[0].bias.copy_(b)
        vae.decoder_log_std.fill_(math.log(SIGMA))
        vae.encoder[0].weight.copy_(torch.cat([enc_weight, torch.zeros_like(enc_weight)]))
        vae.encoder[0].bias.copy_(torch.cat([-enc_weight @ b + (0.0 if exact_posterior else 0.3), log_std]))
    marginal = Gaussian(b, w @ w.T + SIGMA**2 * torch.eye(DATA_DIM, dtype=torch.float64))
    return vae, marginal


def test_shapes_and_dtypes() -> None:
    seed_everything(0)
    vae = VAE(data_dim=2, latent_dim=1, hidden=(8,))
    x = torch.randn(5, 2)
    mean, log_std = vae.encode(x)
    assert mean.shape == log_std.shape == (5, 1)
    assert [t.shape for t in vae.decode(torch.randn(7, 1))] == [(7, 2), (7, 2)]
    assert vae.elbo(x).shape == (5,)
    assert vae.elbo(x, n_samples=3).shape == (5,)
    assert vae.log_weights(x, 4).shape == (4, 5)
    assert vae.log_prob_estimate(x, 4).shape == (5,)
    assert vae.log_prob_grid(x).shape == (5,)
    assert vae.sample(6).shape == (6, 2)
    het = VAE(2, 2, hidden=(8,), heteroscedastic=True).double()
    assert het.decoder_log_std is None
    assert het.sample(3).dtype == torch.float64
    assert het.log_prob_grid(torch.randn(2, 2, dtype=torch.float64), n_grid=50).shape == (2,)


def test_exact_posterior_gives_exact_log_prob() -> None:
    """With q = p(z|x) every importance weight equals p(x): the IS estimate and quadrature are exact."""
    vae, marginal = linear_gaussian_vae(exact_posterior=True)
    x = marginal.sample(50)
    exact = marginal.log_prob(x)
    with torch.no_grad():
        assert_close(vae.log_prob_estimate(x, n_samples=7), exact, atol=1e-10)
        assert_close(vae.log_weights(x, 5), exact.expand(5, -1), atol=1e-10)
        assert_close(vae.log_prob_grid(x, n_grid=300), exact, atol=1e-8)


def test_samples_follow_the_marginal() -> None:
    vae, marginal = linear_gaussian_vae()
    seed_everything(2)
    n = 40_000
    samples = vae.sample(n)
    z = (samples.mean(0) - marginal.mean) / (marginal.covariance.diagonal() / n).sqrt()
    assert float(z.abs().max()) < 4.5
    cov = torch.cov(samples.T)
    # standard error of a sample covariance entry: sqrt((S_ii S_jj + S_ij^2) / n)
    true = marginal.covariance
    se = ((true.diagonal()[:, None] * true.diagonal()[None, :] + true**2) / n).sqrt()
    assert float(((cov - true) / se).abs().max()) < 4.5


@pytest.mark.parametrize("exact_posterior", [True, False])
def test_elbo_estimate_is_unbiased_for_closed_form_elbo(exact_posterior: bool) -> None:
    """The MC ELBO matches the closed-form ELBO of the linear-Gaussian model, which is log p(x) iff q is exact."""
    vae, marginal = linear_gaussian_vae(exact_posterior=exact_posterior)
    seed_everything(3)
    x = marginal.sample(20)
    with torch.no_grad():
        m, log_std = vae.encode(x)
        w, b = vae.decoder[0].weight, vae.decoder[0].bias
        s2 = torch.exp(2 * log_std)
        expected_rec = (
            -0.5 / SIGMA**2 * (((x - b - m @ w.T) ** 2).sum(-1) + (s2 * (w**2).sum(0)).sum(-1))
            - DATA_DIM * math.log(SIGMA)
            - 0.5 * DATA_DIM * math.log(2 * math.pi)
        )
        kl = 0.5 * (m**2 + s2 - 1 - 2 * log_std).sum(-1)
        draws = torch.stack([vae.elbo(x) for _ in range(2000)])  # (2000, 20)
    z = (draws.mean(0) - (expected_rec - kl)) / (draws.std(0) / math.sqrt(draws.shape[0]))
    assert float(z.abs().max()) < 4.5
    # the gap log p - ELBO is KL(q || posterior): zero for the exact posterior, positive otherwise
    if exact_posterior:
        assert_close(expected_rec - kl, marginal.log_prob(x), atol=1e-10)
    else:
        assert bool(torch.all(expected_rec - kl < marginal.log_prob(x) - 1e-3))


def test_importance_estimate_increases_towards_log_prob() -> None:
    """E[log mean_k w_k] increases with K and stays below log p(x) (IWAE bound)."""
    vae, marginal = linear_gaussian_vae(exact_posterior=False)
    seed_everything(4)
    x = marginal.sample(4000)
    exact = marginal.log_prob(x)
    gaps, errors = [], []
    with torch.no_grad():
        elbo = vae.elbo(x) - exact
        for k in (1, 4, 16, 64):
            gap = vae.log_prob_estimate(x, n_samples=k) - exact
            gaps.append(gap.mean())
            errors.append(gap.std() / math.sqrt(x.shape[0]))
    elbo_mean, elbo_error = elbo.mean(), elbo.std() / math.sqrt(x.shape[0])
    # the ELBO (analytic KL) and the K = 1 estimate agree in expectation; both lie below log p
    assert abs(float(elbo_mean - gaps[0])) < 4 * math.hypot(float(elbo_error), float(errors[0]))
    assert float(elbo_mean + 4 * elbo_error) < 0
    for lower, upper, e_lower, e_upper in zip(gaps, gaps[1:], errors, errors[1:]):
        assert float(upper - lower) > 4 * math.hypot(float(e_lower), float(e_upper))  # strictly increasing
    assert float(gaps[-1] - 4 * errors[-1]) < 0  # still a lower bound
    assert abs(float(gaps[-1])) < 0.1 * abs(float(gaps[0]))  # and close to log p


def test_bounds_order_on_nonlinear_vae() -> None:
    """ELBO <= IS estimate <= log p (quadrature), on average, for a random nonlinear VAE."""
    seed_everything(5)
    vae = VAE(2, 1, hidden=(16, 16)).double()
    x = torch.randn(2000, 2, dtype=torch.float64)
    with torch.no_grad():
        elbo = vae.elbo(x)
        estimate = vae.log_prob_estimate(x, n_samples=100)
        exact = vae.log_prob_grid(x)  # 2000 points (the default for latent_dim 1)
        exact_coarse = vae.log_prob_grid(x, n_grid=1000)
    assert_close(exact, exact_coarse, atol=1e-9)  # quadrature converged: halving the grid changes nothing
    se = lambda t: float(t.std() / math.sqrt(t.shape[0]))  # noqa: E731
    assert float((estimate - elbo).mean()) > 4 * se(estimate - elbo)
    assert float((exact - estimate).mean()) > -4 * se(exact - estimate)


def test_training_improves_elbo() -> None:
    seed_everything(6)
    data = torch.randn(512, 2) * torch.tensor([1.0, 0.2]) + torch.tensor([1.0, -1.0])
    vae = VAE(2, 1, hidden=(16,))
    with torch.no_grad():
        before = float(vae.elbo(data, n_samples=8).mean())
    history = train_vae(vae, data, n_steps=150, batch_size=128, lr=1e-2, kl_warmup=50).losses
    assert len(history) == 150 and all(math.isfinite(h) for h in history)
    with torch.no_grad():
        after = float(vae.elbo(data, n_samples=8).mean())
    assert after > before + 1.0
    assert not vae.training


@pytest.mark.parametrize(
    ("call", "error"),
    [
        (lambda v: v.elbo(torch.randn(4, 3)), ValueError),
        (lambda v: v.elbo([[0.0, 1.0]]), TypeError),
        (lambda v: v.elbo(torch.zeros(4, 2, dtype=torch.long)), TypeError),
        (lambda v: v.elbo(torch.randn(2, 4, 2)), ValueError),
        (lambda v: v.elbo(torch.randn(4, 2), n_samples=0), ValueError),
        (lambda v: v.log_prob_estimate(torch.randn(4, 2), n_samples=1.5), TypeError),
        (lambda v: v.decode(torch.randn(4, 2)), ValueError),
        (lambda v: v.log_prob_grid(torch.randn(4, 2), bound=-1.0), ValueError),
        (lambda v: v.sample(0), ValueError),
        (lambda v: train_vae(v, torch.randn(10, 3), 5), ValueError),
        (lambda v: train_vae(v, torch.full((10, 2), float("nan")), 5), ValueError),
        (lambda v: train_vae(v, torch.randn(10, 2), 0), ValueError),
        (lambda v: train_vae(v, torch.randn(10, 2), 5, lr=-1.0), ValueError),
        (lambda v: train_vae(v, torch.randn(10, 2), 5, kl_warmup=-1), ValueError),
        (lambda v: train_vae("vae", torch.randn(10, 2), 5), TypeError),
    ],
)
def test_bad_input_raises(call, error) -> None:
    vae = VAE(2, 1, hidden=(4,))
    with pytest.raises(error):
        call(vae)


def test_bad_construction_raises() -> None:
    with pytest.raises(ValueError, match="latent_dim"):
        VAE(2, 0)
    with pytest.raises(ValueError, match="hidden"):
        VAE(2, 1, hidden=(8, 0))
    with pytest.raises(TypeError, match="heteroscedastic"):
        VAE(2, 1, heteroscedastic=1)
    with pytest.raises(ValueError, match="latent_dim 1 or 2"):
        VAE(2, 3, hidden=(4,)).log_prob_grid(torch.randn(2, 2))


def test_quadrature_in_float32_matches_float64() -> None:
    """The matrix-product form of the quadrature loses no accuracy that matters in float32."""
    seed_everything(7)
    vae = VAE(2, 2, hidden=(16, 16))
    with torch.no_grad():
        vae.decoder_log_std.fill_(math.log(0.1))  # narrow decoder noise: the hard case for cancellation
        x = vae.sample(200)
        single = vae.log_prob_grid(x, n_grid=200)
        double = vae.double().log_prob_grid(x.double(), n_grid=200)
    assert_close(single.double(), double, atol=1e-3)
