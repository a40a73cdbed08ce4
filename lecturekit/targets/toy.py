r"""Toy targets with exact answers: the Müller-Brown potential and Gaussian mixtures.

:class:`MullerBrown` is the two-dimensional potential of Müller & Brown (1979), a sum of four
exponentials of quadratic forms with three minima separated by saddles, sampled as
:math:`\rho \propto e^{-\beta U}`. :class:`GaussianMixture` is the normalised mixture
:math:`\rho(x) = \sum_k w_k\,\mathcal{N}(x; \mu_k, \Sigma_k)` in any dimension, whose
normalising constant, mean, covariance and component weights are known exactly;
:func:`four_mode_mixture` is the high-dimensional four-mode mixture of Grenioux et al. (2023),
on which local samplers stay in the mode they start in.

References:
    | Location of saddle points and minimum energy paths by a constrained simplex optimization procedure (Müller & Brown, 1979)
    | https://doi.org/10.1007/BF00547608
    | On Sampling with Approximate Transport Maps (Grenioux et al., 2023)
    | https://arxiv.org/abs/2302.04763
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

from lecturekit.checks import (
    check_dtype,
    check_int,
    check_points,
    check_number,
    check_positive_int,
    check_same_device,
    check_tensor,
    fill_at_infinity,
)
from lecturekit.targets.base import Target

__all__ = ["GaussianMixture", "MullerBrown", "four_mode_mixture"]


class MullerBrown(Target):
    r"""The Müller-Brown potential (Müller & Brown, Theor. Chim. Acta 53, 75, 1979).

    .. math::

        U(x, y) = \sum_{k=1}^{4} A_k \exp\big(a_k (x - x^0_k)^2
                  + b_k (x - x^0_k)(y - y^0_k) + c_k (y - y^0_k)^2\big)

    with :math:`A = (-200, -100, -170, 15)`, :math:`a = (-1, -1, -6.5, 0.7)`,
    :math:`b = (0, 0, 11, 0.6)`, :math:`c = (-10, -10, -6.5, 0.7)`,
    :math:`x^0 = (1, 0, -0.5, -1)`, :math:`y^0 = (0, 0.5, 1.5, 1)`.
    Its three minima are near :math:`(-0.558, 1.442)` with :math:`U = -146.70`,
    :math:`(0.623, 0.028)` with :math:`U = -108.17` and :math:`(-0.050, 0.467)` with
    :math:`U = -80.77`.

    The course samples it at inverse temperature ``beta = 0.1`` by default: the deepest
    two basins then differ by :math:`\beta\Delta U \approx 3.9`, so both carry visible
    weight while the barrier between them (:math:`\beta\Delta U \approx 10` from the
    deepest minimum) still traps a local sampler.

    >>> mb = MullerBrown()
    >>> round(float(mb.energy(torch.tensor([-0.558, 1.442]))), 1)
    -146.7
    """

    dim = 2
    A = (-200.0, -100.0, -170.0, 15.0)
    a = (-1.0, -1.0, -6.5, 0.7)
    b = (0.0, 0.0, 11.0, 0.6)
    c = (-10.0, -10.0, -6.5, 0.7)
    x0 = (1.0, 0.0, -0.5, -1.0)
    y0 = (0.0, 0.5, 1.5, 1.0)
    minima = ((-0.558, 1.442), (0.623, 0.028), (-0.050, 0.467))

    def __init__(self, beta: float = 0.1) -> None:
        self.beta = check_number(beta, "beta", positive=True)

    def _terms(self, x: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        check_points(x, self.dim)
        params = torch.tensor([self.A, self.a, self.b, self.c, self.x0, self.y0], dtype=x.dtype, device=x.device)
        A, a, b, c, x0, y0 = params
        dx = x[..., 0:1] - x0
        dy = x[..., 1:2] - y0
        terms = A * torch.exp(a * dx**2 + b * dx * dy + c * dy**2)
        return terms, 2 * a * dx + b * dy, b * dx + 2 * c * dy

    def energy(self, x: Tensor) -> Tensor:
        terms, _, _ = self._terms(x)
        return fill_at_infinity(terms.sum(-1), x, math.inf)

    def log_prob_and_score(self, x: Tensor) -> tuple[Tensor, Tensor]:
        """Analytic gradient: one pass over the four exponentials (the score is NaN at infinity)."""
        terms, d_dx, d_dy = self._terms(x.detach())
        grad_energy = torch.stack([(terms * d_dx).sum(-1), (terms * d_dy).sum(-1)], dim=-1)
        return fill_at_infinity(-self.beta * terms.sum(-1), x, -math.inf), -self.beta * grad_energy


class GaussianMixture(Target):
    r"""A normalised mixture of Gaussians in any dimension,

    .. math::

        \rho(x) = \sum_{k=1}^{K} w_k\, \mathcal{N}(x; \mu_k, \Sigma_k),

    with ``beta = 1`` and :math:`U = -\log\rho`, so :meth:`log_prob` is *normalised*.

    ``means`` holds the :math:`\mu_k`, shape ``(K, d)``. ``covariances`` gives the
    :math:`\Sigma_k` as a float (the same isotropic variance :math:`\sigma^2 I` for all), a
    tensor of shape ``(K,)`` (isotropic per component), ``(K, d)`` (diagonal) or ``(K, d, d)``
    (full, symmetric positive definite). ``weights`` are the positive :math:`w_k`, shape
    ``(K,)``, normalised to sum to one; uniform by default.

    >>> gm = GaussianMixture(torch.tensor([[1.0, 1.0], [-1.0, -1.0]]), 0.1, torch.tensor([0.25, 0.75]))
    >>> gm.sample(4).shape
    torch.Size([4, 2])
    """

    def __init__(
        self,
        means: Tensor,
        covariances: Tensor | float = 1.0,
        weights: Tensor | None = None,
    ) -> None:
        if isinstance(means, torch.Tensor):
            check_tensor(means, "means", floating=False)
        means = torch.as_tensor(means)
        for name, value in (("covariances", covariances), ("weights", weights)):
            if isinstance(value, torch.Tensor):
                check_tensor(value, name, floating=False)
                check_same_device(means=means, **{name: value})
        if means.dtype == torch.bool or means.is_complex():
            raise TypeError(f"means must hold real numbers, got dtype {means.dtype}")
        if not means.is_floating_point():
            means = means.to(torch.get_default_dtype())
        if means.dim() != 2 or means.shape[0] == 0 or means.shape[1] == 0:
            raise ValueError(f"means must have shape (K, d) with K, d >= 1, got {tuple(means.shape)}")
        if not bool(torch.isfinite(means).all()):
            raise ValueError("means must be finite")
        n_components, dim = means.shape
        covariance_matrices = self._as_covariance_matrices(covariances, n_components, dim, means)
        try:
            cholesky = torch.linalg.cholesky(covariance_matrices)
        except RuntimeError as error:
            raise ValueError("covariances must be symmetric positive definite") from error
        if weights is None:
            weights = means.new_full((n_components,), 1.0 / n_components)
        weights = torch.as_tensor(weights, dtype=means.dtype, device=means.device)
        if weights.shape != (n_components,):
            raise ValueError(f"weights must have shape ({n_components},), got {tuple(weights.shape)}")
        if not bool(torch.all(weights > 0)) or not bool(torch.all(torch.isfinite(weights))):
            raise ValueError("weights must be positive and finite")
        self.dim = int(dim)
        self.beta = 1.0
        self.means = means
        self.covariances = covariance_matrices
        self.cholesky = cholesky
        self.weights = weights / weights.sum()

    @staticmethod
    def _as_covariance_matrices(covariances: Tensor | float, k: int, d: int, like: Tensor) -> Tensor:
        if isinstance(covariances, bool) or not isinstance(covariances, (int, float, Tensor)):
            raise TypeError(f"covariances must be a number or a tensor, got {type(covariances).__name__}")
        cov = torch.as_tensor(covariances, dtype=like.dtype, device=like.device)
        if not bool(torch.isfinite(cov).all()):
            raise ValueError("covariances must be finite, but they contain NaN or inf")
        eye = torch.eye(d, dtype=like.dtype, device=like.device)
        if cov.dim() == 0:
            if not float(cov) > 0:
                raise ValueError(f"covariances must be positive, got {float(cov)}")
            return cov * eye.expand(k, d, d).clone()
        if cov.shape == (k,):
            if not bool(torch.all(cov > 0)):
                raise ValueError("covariances must be positive")
            return cov[:, None, None] * eye
        if cov.shape == (k, d):
            if not bool(torch.all(cov > 0)):
                raise ValueError("covariances must be positive")
            return torch.diag_embed(cov)
        if cov.shape == (k, d, d):
            # Cholesky reads only the lower triangle: an asymmetric matrix would be silently misread
            if not torch.allclose(cov, cov.mT):
                raise ValueError("covariances must be symmetric positive definite")
            return cov
        raise ValueError(
            f"covariances must be a float or have shape ({k},), ({k}, {d}) or ({k}, {d}, {d}); got {tuple(cov.shape)}"
        )

    @property
    def n_components(self) -> int:
        return int(self.means.shape[0])

    def to(self, device: torch.device | str) -> "GaussianMixture":
        """A copy of the mixture on ``device``."""
        return GaussianMixture(self.means.to(device), self.covariances.to(device), self.weights.to(device))

    def component_log_probs(self, x: Tensor) -> Tensor:
        r""":math:`\log w_k + \log\mathcal{N}(x;\mu_k,\Sigma_k)`, shape ``(..., K)``."""
        check_points(x, self.dim)
        if x.device != self.means.device:
            raise ValueError(f"x is on {x.device} but the mixture is on {self.means.device}; move one of them")
        diff = x.unsqueeze(-2) - self.means.to(x.dtype)  # (..., K, d)
        chol = self.cholesky.to(x.dtype)
        solved = torch.linalg.solve_triangular(chol, diff.unsqueeze(-1), upper=False).squeeze(-1)
        mahalanobis = solved.pow(2).sum(-1)
        half_log_det = torch.log(torch.diagonal(chol, dim1=-2, dim2=-1)).sum(-1)
        log_norm = -0.5 * self.dim * math.log(2 * math.pi) - half_log_det
        return torch.log(self.weights.to(x.dtype)) + log_norm - 0.5 * mahalanobis

    def log_prob(self, x: Tensor) -> Tensor:
        """Normalised log-density; ``-inf`` at points with an infinite coordinate, NaN at points with a NaN."""
        return fill_at_infinity(torch.logsumexp(self.component_log_probs(x), dim=-1), x, -math.inf)

    def energy(self, x: Tensor) -> Tensor:
        return -self.log_prob(x)

    def responsibilities(self, x: Tensor) -> Tensor:
        """Posterior probability of each component given ``x``, shape ``(..., K)``."""
        return torch.softmax(self.component_log_probs(x), dim=-1)

    def sample(self, n: int) -> Tensor:
        """Exact i.i.d. samples, shape ``(n, dim)``, on the mixture's device."""
        check_positive_int(n, "n")
        components = torch.multinomial(self.weights, n, replacement=True)
        noise = torch.randn(n, self.dim, dtype=self.means.dtype, device=self.means.device)
        return self.means[components] + (self.cholesky[components] @ noise.unsqueeze(-1)).squeeze(-1)

    def mean(self) -> Tensor:
        r"""Exact mean :math:`\sum_k w_k \mu_k`."""
        return self.weights @ self.means

    def covariance(self) -> Tensor:
        r"""Exact covariance :math:`\sum_k w_k(\Sigma_k + \mu_k\mu_k^T) - \mu\mu^T`."""
        mu = self.mean()
        second = (self.weights[:, None, None] * (self.covariances + self.means[:, :, None] * self.means[:, None, :])).sum(0)
        return second - torch.outer(mu, mu)


def four_mode_mixture(
    dim: int, dtype: torch.dtype = torch.float32, device: torch.device | str = "cpu"
) -> GaussianMixture:
    r"""The 4-mode mixture of Grenioux, Durmus, Moulines & Gabrié (ICML 2023) in dimension ``dim``.

    Four unit-covariance Gaussians with equal weights :math:`1/4` whose means have every
    entry :math:`\pm a`, :math:`a = 0.591\sqrt{2\ln d}`, in the sign patterns
    :math:`(-,+)`, :math:`(+,+)`, :math:`(-,-)`, :math:`(+,-)` by halves of the coordinates
    (the first :math:`\lfloor d/2\rfloor` and the rest), as in their code (h2o64/flow_mcmc).
    Neighbouring means are :math:`2a\sqrt{d/2}` apart, so the barriers between modes grow
    with :math:`d` and a local sampler started in one mode stays there.

    >>> mixture = four_mode_mixture(16)
    >>> mixture.means.shape, mixture.weights.tolist()
    (torch.Size([4, 16]), [0.25, 0.25, 0.25, 0.25])
    """
    dim = check_int(dim, "dim", minimum=2)
    dtype = check_dtype(dtype)
    a = 0.591 * math.sqrt(2 * math.log(dim))
    half = dim // 2
    signs = torch.ones(4, dim, dtype=dtype, device=device)
    signs[0, :half] = -1
    signs[2] = -1
    signs[3, half:] = -1
    return GaussianMixture(a * signs, 1.0)
