r"""An exoplanet example: the radial velocity of a star with one planet.

A planet on a circular orbit makes its star's velocity along the line of sight oscillate,

.. math::

    v(t; x) = v_0 + K\cos\Big(\frac{2\pi}{P}\,t + \phi_0\Big),
    \qquad x = (v_0, K, \phi_0, \ln P) \in \mathbb{R}^4,

and the observations are :math:`v_k = v(t_k; x) + \epsilon_k`,
:math:`\epsilon_k \sim \mathcal{N}(0, \sigma_\mathrm{obs}^2)`. The priors are those of
Price-Whelan et al. (ApJ 837, 20, 2017, "The Joker"):
:math:`\ln P \sim \mathcal{U}(\ln P_\mathrm{min}, \ln P_\mathrm{max})`,
:math:`\phi_0 \sim \mathcal{U}(0, 2\pi)`, :math:`K \sim \mathcal{N}(\mu_K, \sigma_K^2)`,
:math:`v_0 \sim \mathcal{N}(0, \sigma_{v_0}^2)`. Observing a few periods at irregular times
leaves the period ambiguous: the posterior of :math:`\ln P` has several separated modes
(aliases), which local MCMC cannot cross.

**The phase.** :math:`\phi_0` lives on the prior's support :math:`[0, 2\pi)` and
:meth:`RadialVelocityPosterior.log_prob` is :math:`-\infty` outside it (as outside
:math:`[\ln P_\mathrm{min}, \ln P_\mathrm{max}]`), so that this class is the plain textbook
posterior (and the one the exercises write). Sampled in these coordinates the circle is cut
at :math:`\phi_0 = 0`: a local step across the cut is rejected, and a flow has to model a
phase mode that straddles the cut as two half-modes at :math:`0` and :math:`2\pi`. Wrapping
:math:`\phi_0` instead (a periodic ``log_prob`` on :math:`\mathbb{R}`) would make the target
not normalisable, and the flow-IMH ratio would need the flow's density summed over the
images :math:`\phi_0 + 2\pi k`. The course therefore **samples an unconstrained angle**:
:class:`lecturekit.targets.angles.AngleAsVector` ``(posterior, index=2)`` replaces :math:`\phi_0` by
a vector :math:`u \in \mathbb{R}^2` with :math:`\phi_0 = \operatorname{atan2}(u_2, u_1)` and
adds :math:`-|u|^2/2`; the radius integrates out exactly (it is Rayleigh-distributed and
independent of everything), so the 5-dimensional target is normalisable, has the same
evidence, has no cut, and every kernel (MALA, HMC, flow-IMH) is exact on it unchanged.
:func:`simulate_observations` measures times from the middle of the observations, which
happens to put the default posterior's phase modes near :math:`\phi_0 = 2`, away from the
cut; :meth:`RadialVelocityData.with_time_origin` moves the clock, and with it the phase
modes (measured from the last observation they straddle the cut), leaving the posterior of
:math:`(v_0, K, \ln P)` exactly unchanged.

**The exact reference.** Given :math:`(\ln P, \phi_0)` the model is linear in
:math:`\beta = (v_0, K)`, :math:`v = A\beta` with rows :math:`A_k = (1, \cos(2\pi t_k/P + \phi_0))`,
and the prior of :math:`\beta` is Gaussian, :math:`\mathcal{N}(m, S)` with
:math:`m = (0, \mu_K)`, :math:`S = \mathrm{diag}(\sigma_{v_0}^2, \sigma_K^2)`. So
:math:`(v_0, K)` integrate out in closed form (Bishop, *PRML*, sec. 3.5.1):

.. math::

    \log p(v \mid \ln P, \phi_0) = -\tfrac n2\log(2\pi\sigma^2) - \tfrac12\log\frac{|S|}{|\Lambda^{-1}|}
      - \tfrac12\Big(\frac{v^\top v}{\sigma^2} + m^\top S^{-1} m - b^\top\Lambda^{-1} b\Big),

with :math:`\Lambda = S^{-1} + A^\top A/\sigma^2` and :math:`b = S^{-1}m + A^\top v/\sigma^2`.
Tabulated on a fine :math:`(\ln P, \phi_0)` grid (:class:`PeriodPhaseGrid`) this gives the
exact marginals of :math:`\ln P` and :math:`\phi_0` and the masses of the :math:`\ln P` modes.
The same Gaussian integral over :math:`v_0` alone, with :math:`K = 0`, gives the exact
evidence of the model without a planet (:func:`no_planet_log_evidence`); the ratio of the
two evidences is the Bayes factor of a planet (Kass & Raftery 1995).

References:
    | The Joker: A Custom Monte Carlo Sampler for Binary-star and Exoplanet Radial Velocity Data (Price-Whelan et al., 2017)
    | https://doi.org/10.3847/1538-4357/aa5e50
    | Bayes Factors (Kass & Raftery, 1995)
    | https://doi.org/10.1080/01621459.1995.10476572
"""

from __future__ import annotations

import math
from typing import NamedTuple

import torch
from torch import Tensor

from lecturekit.checks import check_finite, check_number, check_points, check_tensor
from lecturekit.targets.base import Target

__all__ = [
    "PeriodPhaseGrid",
    "PriorWithPhaseAsVector",
    "RadialVelocityData",
    "RadialVelocityPosterior",
    "no_planet_log_evidence",
    "radial_velocity",
    "simulate_observations",
]

TWO_PI = 2 * math.pi


def radial_velocity(t: Tensor, x: Tensor) -> Tensor:
    r""":math:`v(t; x) = v_0 + K\cos(2\pi t/P + \phi_0)` for parameters ``x`` ``(..., 4)`` at times ``t`` ``(n,)``.

    ``x`` holds :math:`(v_0, K, \phi_0, \ln P)`; returns shape ``(..., n)``.

    >>> radial_velocity(torch.tensor([0.0, 1.0]), torch.tensor([1.0, 2.0, 0.0, 0.0]))
    tensor([3., 3.])
    """
    check_points(x, 4, "x")
    check_tensor(t, "t")
    check_finite(t, "t")
    v0, amplitude, phase, ln_period = (x[..., i : i + 1] for i in range(4))
    return v0 + amplitude * torch.cos(TWO_PI * t.to(x) * torch.exp(-ln_period) + phase)


class RadialVelocityData(NamedTuple):
    """Observations and the parameters they were simulated from."""

    times: Tensor  #: ``(n,)``, days (:func:`simulate_observations`: from the middle of the observations)
    velocities: Tensor  #: ``(n,)``
    sigma_obs: float  #: the known noise standard deviation
    truth: Tensor  #: ``(4,)``: :math:`(v_0, K, \phi_0, \ln P)` used to simulate them

    def with_time_origin(self, origin: float) -> RadialVelocityData:
        r"""The same observations on a clock that reads zero at ``origin`` (a time of the current clock).

        The times become :math:`t' = t - t_0` and the truth's phase
        :math:`\phi_0' = \phi_0 + 2\pi t_0/P \bmod 2\pi`, so that
        :math:`v(t'; x') = v(t; x)`. Since the phase prior is uniform on the circle, the
        posterior of :math:`(v_0, K, \ln P)` is exactly unchanged; only the phase moves, by
        :math:`2\pi t_0/P` at period :math:`P` (a different shift for each alias).

        >>> data = simulate_observations()
        >>> later = data.with_time_origin(float(data.times[-1]))
        >>> bool(torch.allclose(radial_velocity(later.times, later.truth), radial_velocity(data.times, data.truth)))
        True
        """
        origin = check_number(origin, "origin")
        truth = self.truth.clone()
        truth[2] = torch.remainder(truth[2] + TWO_PI * origin * torch.exp(-truth[3]), TWO_PI)
        return RadialVelocityData(self.times - origin, self.velocities, self.sigma_obs, truth)


#: The course's synthetic star: a 10-day period, observed 10 times over 40 days with noise
#: 0.4 (units of the velocity prior). With seed 4 and the default prior (P from 4 to 50 days)
#: its ln P posterior has three separated modes, near P = 10.4, 29 and 6.8 days, holding about
#: 0.81, 0.13 and 0.06 of the mass (:class:`PeriodPhaseGrid`).
DEFAULT_TRUTH = (0.3, 1.0, 2.0, math.log(10.0))


def simulate_observations(
    n_observations: int = 10,
    span: float = 40.0,
    truth: tuple[float, float, float, float] = DEFAULT_TRUTH,
    sigma_obs: float = 0.4,
    seed: int = 4,
    dtype: torch.dtype = torch.float64,
) -> RadialVelocityData:
    r"""Synthetic radial velocities: ``n_observations`` uniform random times over ``span`` days.

    The times are drawn, sorted and shifted to be measured from the middle of the
    observations; the velocities are :func:`radial_velocity` at ``truth``
    :math:`= (v_0, K, \phi_0, \ln P)` plus Gaussian noise of standard deviation
    ``sigma_obs``. Everything comes from a private generator seeded with ``seed`` (the
    global torch seed is untouched), on the CPU.
    """
    if isinstance(n_observations, bool) or not isinstance(n_observations, int) or n_observations < 2:
        raise ValueError(f"n_observations must be an int >= 2, got {n_observations!r}")
    for name, value in (("span", span), ("sigma_obs", sigma_obs)):
        if not (isinstance(value, (int, float)) and math.isfinite(value) and value > 0):
            raise ValueError(f"{name} must be a positive finite number, got {value!r}")
    generator = torch.Generator().manual_seed(seed)
    times = torch.sort(span * torch.rand(n_observations, generator=generator, dtype=dtype)).values
    times = times - 0.5 * (times[0] + times[-1])
    truth_tensor = torch.tensor(truth, dtype=dtype)
    noise = sigma_obs * torch.randn(n_observations, generator=generator, dtype=dtype)
    return RadialVelocityData(times, radial_velocity(times, truth_tensor) + noise, float(sigma_obs), truth_tensor)


class RadialVelocityPosterior(Target):
    r"""The posterior of :math:`x = (v_0, K, \phi_0, \ln P)` given radial-velocity data.

    :meth:`log_prob` is the *normalised* log-prior plus the Gaussian log-likelihood
    (so its integral is the evidence), and :math:`-\infty` outside the prior's support
    :math:`\ln P\in[\ln P_\mathrm{min}, \ln P_\mathrm{max}]`, :math:`\phi_0\in[0, 2\pi)`.
    Defaults: ``ln_period_range`` :math:`= (\ln 4, \ln 50)` (days),
    ``amplitude_prior`` :math:`= (\mu_K, \sigma_K) = (1, 0.5)`, ``sigma_v0`` :math:`= 1`.
    Periods below 4 days are excluded: with ten observations their aliases are so narrow in
    :math:`\ln P` that a small flow cannot learn them within a short training budget.

    >>> posterior = RadialVelocityPosterior(simulate_observations())
    >>> bool(torch.isfinite(posterior.log_prob(posterior.data.truth)))
    True
    >>> float(posterior.log_prob(torch.tensor([0.0, 1.0, -0.1, 2.0], dtype=torch.float64)))
    -inf
    """

    dim = 4
    names = ("v0", "K", "phi0", "ln P")

    def __init__(
        self,
        data: RadialVelocityData,
        ln_period_range: tuple[float, float] = (math.log(4.0), math.log(50.0)),
        amplitude_prior: tuple[float, float] = (1.0, 0.5),
        sigma_v0: float = 1.0,
    ) -> None:
        if not isinstance(data, RadialVelocityData):
            raise TypeError(f"data must be a RadialVelocityData, got {type(data).__name__}")
        low, high = (float(v) for v in ln_period_range)
        if not (math.isfinite(low) and math.isfinite(high) and low < high):
            raise ValueError(f"ln_period_range must be finite with low < high, got {ln_period_range!r}")
        mu_k, sigma_k = (float(v) for v in amplitude_prior)
        if not (math.isfinite(mu_k) and math.isfinite(sigma_k) and sigma_k > 0):
            raise ValueError(f"amplitude_prior must be (mu_K, sigma_K) with sigma_K > 0, got {amplitude_prior!r}")
        if not (math.isfinite(sigma_v0) and sigma_v0 > 0):
            raise ValueError(f"sigma_v0 must be positive and finite, got {sigma_v0!r}")
        self.data = data
        self.ln_period_range = (low, high)
        self.mu_k, self.sigma_k, self.sigma_v0 = mu_k, sigma_k, float(sigma_v0)
        self.beta = 1.0

    # ------------------------------------------------------------------ the model

    def sample_prior(self, n: int, dtype: torch.dtype = torch.float64, device: torch.device | str | None = None) -> Tensor:
        """``n`` independent draws from the prior, shape ``(n, 4)`` (torch's global generator)."""
        if isinstance(n, bool) or not isinstance(n, int) or n < 1:
            raise ValueError(f"n must be a positive int, got {n!r}")
        low, high = self.ln_period_range
        u = torch.rand(n, 2, dtype=dtype, device=device)
        g = torch.randn(n, 2, dtype=dtype, device=device)
        return torch.stack(
            [self.sigma_v0 * g[:, 0], self.mu_k + self.sigma_k * g[:, 1], TWO_PI * u[:, 0], low + (high - low) * u[:, 1]],
            dim=-1,
        )

    def in_support(self, x: Tensor) -> Tensor:
        r"""Whether each point lies in the prior's support (``(..., 4)`` -> ``(...)`` bool)."""
        check_points(x, self.dim)
        phase, ln_period = x[..., 2], x[..., 3]
        low, high = self.ln_period_range
        return (phase >= 0) & (phase < TWO_PI) & (ln_period >= low) & (ln_period <= high)

    def log_prior(self, x: Tensor) -> Tensor:
        """Normalised log-prior density, :math:`-\\infty` outside the support."""
        check_points(x, self.dim)
        low, high = self.ln_period_range
        v0, amplitude = x[..., 0], x[..., 1]
        log_prior = (
            _gaussian_log_density(v0, 0.0, self.sigma_v0)
            + _gaussian_log_density(amplitude, self.mu_k, self.sigma_k)
            - math.log(TWO_PI)
            - math.log(high - low)
        )
        return torch.where(self.in_support(x), log_prior, -math.inf)

    def log_likelihood(self, x: Tensor) -> Tensor:
        """Gaussian log-likelihood of the observed velocities (finite everywhere)."""
        residuals = self.data.velocities.to(x) - radial_velocity(self.data.times, x)
        return _gaussian_log_density(residuals, 0.0, self.data.sigma_obs).sum(-1)

    def log_prob(self, x: Tensor) -> Tensor:
        """Log-posterior up to the evidence: log-prior + log-likelihood, :math:`-\\infty` outside the support."""
        log_prior = self.log_prior(x)
        return torch.where(torch.isneginf(log_prior), -math.inf, log_prior + self.log_likelihood(x))

    def energy(self, x: Tensor) -> Tensor:
        return -self.log_prob(x)

    def log_prob_and_score(self, x: Tensor) -> tuple[Tensor, Tensor]:
        r"""Log-posterior and its analytic gradient (one pass; autograd is 3x slower here).

        With residuals :math:`r_k = v_k - v(t_k; x)`, :math:`\theta_k = 2\pi t_k/P + \phi_0`:
        :math:`\partial_{v_0} = \sum_k r_k/\sigma^2 - v_0/\sigma_{v_0}^2`,
        :math:`\partial_K = \sum_k r_k\cos\theta_k/\sigma^2 - (K - \mu_K)/\sigma_K^2`,
        :math:`\partial_{\phi_0} = -K\sum_k r_k\sin\theta_k/\sigma^2` and
        :math:`\partial_{\ln P} = K\sum_k r_k\sin\theta_k\,(2\pi t_k/P)/\sigma^2`. The score is
        set to 0 outside the support, where ``log_prob`` is :math:`-\infty`.
        """
        x = x.detach()
        check_points(x, self.dim)
        times = self.data.times.to(x)
        v0, amplitude, phase, ln_period = (x[..., i : i + 1] for i in range(4))
        angular = TWO_PI * times * torch.exp(-ln_period)  # (..., n)
        theta = angular + phase
        cos, sin = torch.cos(theta), torch.sin(theta)
        residuals = self.data.velocities.to(x) - v0 - amplitude * cos
        weighted = residuals / self.data.sigma_obs**2
        k_sin = amplitude.squeeze(-1) * (weighted * sin).sum(-1)
        score = torch.stack(
            [
                weighted.sum(-1) - x[..., 0] / self.sigma_v0**2,
                (weighted * cos).sum(-1) - (x[..., 1] - self.mu_k) / self.sigma_k**2,
                -k_sin,
                amplitude.squeeze(-1) * (weighted * sin * angular).sum(-1),
            ],
            dim=-1,
        )
        log_likelihood = _gaussian_log_density(residuals, 0.0, self.data.sigma_obs).sum(-1)
        log_prior = self.log_prior(x)
        inside = ~torch.isneginf(log_prior)
        log_prob = torch.where(inside, log_prior + log_likelihood, -math.inf)
        return log_prob, torch.where(inside.unsqueeze(-1), score, 0.0)

    # ------------------------------------------------------------------ (v0, K) integrated out

    def marginal_log_prob(self, ln_period: Tensor, phase: Tensor) -> Tensor:
        r""":math:`\log\int p(v\mid x)\,p(x)\,dv_0\,dK`: the log-posterior of :math:`(\ln P, \phi_0)` up to the evidence.

        Closed form (see the module docstring); ``ln_period`` and ``phase`` broadcast
        together; :math:`-\infty` outside the support.
        """
        ln_period, phase = torch.broadcast_tensors(ln_period, phase)
        times, v = self.data.times.to(ln_period), self.data.velocities.to(ln_period)
        sigma2 = self.data.sigma_obs**2
        n = times.shape[0]
        c = torch.cos(TWO_PI * times * torch.exp(-ln_period).unsqueeze(-1) + phase.unsqueeze(-1))  # (..., n)
        prior_precision = (1 / self.sigma_v0**2, 1 / self.sigma_k**2)
        # Lambda = S^-1 + A^T A / sigma^2 with A = [1, c]; b = S^-1 m + A^T v / sigma^2
        l11 = prior_precision[0] + n / sigma2
        l12 = c.sum(-1) / sigma2
        l22 = prior_precision[1] + c.square().sum(-1) / sigma2
        b1 = v.sum() / sigma2
        b2 = prior_precision[1] * self.mu_k + (c * v).sum(-1) / sigma2
        det = l11 * l22 - l12.square()
        quadratic = (l22 * b1**2 - 2 * l12 * b1 * b2 + l11 * b2.square()) / det  # b^T Lambda^-1 b
        log_det_s = math.log(self.sigma_v0**2) + math.log(self.sigma_k**2)
        log_evidence = (
            -0.5 * n * math.log(TWO_PI * sigma2)
            - 0.5 * (log_det_s + torch.log(det))
            - 0.5 * (float(v.square().sum()) / sigma2 + prior_precision[1] * self.mu_k**2 - quadratic)
        )
        low, high = self.ln_period_range
        in_support = (phase >= 0) & (phase < TWO_PI) & (ln_period >= low) & (ln_period <= high)
        return torch.where(in_support, log_evidence - math.log(TWO_PI) - math.log(high - low), -math.inf)


def _gaussian_log_density(x: Tensor, mean: float, std: float) -> Tensor:
    return -0.5 * ((x - mean) / std).square() - math.log(std) - 0.5 * math.log(TWO_PI)


class PeriodPhaseGrid:
    r"""The exact marginal posterior of :math:`(\ln P, \phi_0)` on a grid of cell centres.

    ``n_ln_period`` cells over the prior's :math:`\ln P` range and ``n_phase`` over
    :math:`[0, 2\pi)`, in float64. Attributes: ``ln_period`` ``(n_ln_period,)`` and ``phase``
    ``(n_phase,)`` (cell centres), ``log_prob`` ``(n_ln_period, n_phase)``
    (:meth:`RadialVelocityPosterior.marginal_log_prob`) and ``probabilities`` (the cells'
    normalised masses). The :math:`\ln P` modes are a few cells wide at the default
    resolution; check convergence by doubling it.
    """

    def __init__(self, posterior: RadialVelocityPosterior, n_ln_period: int = 4000, n_phase: int = 256) -> None:
        if not isinstance(posterior, RadialVelocityPosterior):
            raise TypeError(f"posterior must be a RadialVelocityPosterior, got {type(posterior).__name__}")
        for name, n in (("n_ln_period", n_ln_period), ("n_phase", n_phase)):
            if isinstance(n, bool) or not isinstance(n, int) or n < 2:
                raise ValueError(f"{name} must be an int >= 2, got {n!r}")
        low, high = posterior.ln_period_range
        f64 = torch.float64
        self.ln_period = low + (high - low) * (torch.arange(n_ln_period, dtype=f64) + 0.5) / n_ln_period
        self.phase = TWO_PI * (torch.arange(n_phase, dtype=f64) + 0.5) / n_phase
        self.cell_widths = ((high - low) / n_ln_period, TWO_PI / n_phase)
        rows = [posterior.marginal_log_prob(chunk[:, None], self.phase) for chunk in self.ln_period.split(500)]
        self.log_prob = torch.cat(rows)
        self.probabilities = torch.softmax(self.log_prob.flatten(), 0).reshape(self.log_prob.shape)

    def log_evidence(self) -> float:
        r""":math:`\log p(v)`, the log of the integral of the posterior's numerator."""
        return float(torch.logsumexp(self.log_prob.flatten(), 0)) + math.log(self.cell_widths[0] * self.cell_widths[1])

    def ln_period_marginal(self) -> Tensor:
        r"""Masses of the :math:`\ln P` cells, shape ``(n_ln_period,)``, summing to one."""
        return self.probabilities.sum(1)

    def phase_marginal(self) -> Tensor:
        r"""Masses of the :math:`\phi_0` cells, shape ``(n_phase,)``, summing to one."""
        return self.probabilities.sum(0)

    def ln_period_modes(self, min_mass: float = 1e-3) -> tuple[Tensor, Tensor]:
        r"""The :math:`\ln P` modes and their exact masses.

        The :math:`\ln P` axis is cut at the minima of the marginal between consecutive
        local maxima; basins holding less than ``min_mass`` are merged into a neighbour.
        Returns ``(edges, masses)``: ``edges`` ``(M + 1,)`` from :math:`\ln P_\mathrm{min}` to
        :math:`\ln P_\mathrm{max}`, and the ``M`` masses, which sum to one. Count samples in the
        same intervals with :func:`lecturekit.diagnostics.interval_membership` and
        :func:`lecturekit.estimates.mode_weights`.
        """
        marginal = self.ln_period_marginal()
        width = self.cell_widths[0]
        low = float(self.ln_period[0]) - width / 2
        high = float(self.ln_period[-1]) + width / 2
        # cut points: the local minima of the marginal (cell centres)
        interior = (marginal[1:-1] <= marginal[:-2]) & (marginal[1:-1] < marginal[2:])
        cuts = self.ln_period[1:-1][interior]
        edges = torch.cat([torch.tensor([low], dtype=torch.float64), cuts, torch.tensor([high], dtype=torch.float64)])
        masses = _interval_masses(self.ln_period, marginal, edges)
        while masses.numel() > 1 and float(masses.min()) < min_mass:
            k = int(masses.argmin())
            # drop the cut on the side of the lighter neighbour (merge the small basin into it)
            if k == 0:
                drop = 1
            elif k == masses.numel() - 1:
                drop = k
            else:
                drop = k if float(masses[k - 1]) < float(masses[k + 1]) else k + 1
            edges = torch.cat([edges[:drop], edges[drop + 1 :]])
            masses = _interval_masses(self.ln_period, marginal, edges)
        return edges, masses


def _interval_masses(centres: Tensor, masses: Tensor, edges: Tensor) -> Tensor:
    index = torch.bucketize(centres, edges[1:-1].contiguous())
    return torch.zeros(edges.numel() - 1, dtype=masses.dtype).index_add_(0, index, masses)


# ---------------------------------------------------------------------- model selection


def no_planet_log_evidence(data: RadialVelocityData, sigma_v0: float = 1.0) -> float:
    r"""Exact log-evidence of the no-planet model :math:`v_k = v_0 + \epsilon_k`, :math:`v_0 \sim \mathcal{N}(0, \sigma_{v_0}^2)`.

    Integrating out the constant velocity leaves a Gaussian,
    :math:`v \sim \mathcal{N}(0, C)` with :math:`C = \sigma^2 I + \sigma_{v_0}^2 \mathbf{1}\mathbf{1}^\top`
    (Bishop, *PRML*, sec. 3.5.1), whose determinant and inverse are closed-form
    (matrix determinant lemma, Sherman-Morrison) with :math:`s = \sigma^2 + n\sigma_{v_0}^2`:

    .. math::

        \log p(v \mid \text{no planet}) = -\tfrac n2 \log 2\pi - \tfrac{n-1}2\log\sigma^2 - \tfrac12\log s
          - \frac{1}{2\sigma^2}\Big(v^\top v - \frac{\sigma_{v_0}^2}{s}\Big(\sum_k v_k\Big)^2\Big).

    With the same ``sigma_v0`` as :class:`RadialVelocityPosterior`, the log Bayes factor of a
    planet is ``PeriodPhaseGrid(posterior).log_evidence() - no_planet_log_evidence(data)``
    (Kass & Raftery, JASA 90, 773, 1995).

    >>> data = simulate_observations()
    >>> no_planet_log_evidence(data) < PeriodPhaseGrid(RadialVelocityPosterior(data)).log_evidence()
    True
    """
    if not isinstance(data, RadialVelocityData):
        raise TypeError(f"data must be a RadialVelocityData, got {type(data).__name__}")
    sigma_v0 = check_number(sigma_v0, "sigma_v0", positive=True)
    v = data.velocities.to(torch.float64)
    n = v.shape[0]
    sigma2 = float(data.sigma_obs) ** 2
    s = sigma2 + n * sigma_v0**2
    quadratic = (float(v.square().sum()) - sigma_v0**2 / s * float(v.sum()) ** 2) / sigma2
    return -0.5 * n * math.log(TWO_PI) - 0.5 * (n - 1) * math.log(sigma2) - 0.5 * math.log(s) - 0.5 * quadratic


class PriorWithPhaseAsVector:
    r"""The prior of :class:`RadialVelocityPosterior` in the coordinates :math:`y = (v_0, K, u_1, u_2, \ln P)`.

    The coordinates of :class:`~lecturekit.targets.angles.AngleAsVector` ``(posterior, index=2)``: a
    uniform phase with a Rayleigh radius is a standard normal :math:`u`, so the density is

    .. math::

        \pi(y) = \mathcal{N}(v_0; 0, \sigma_{v_0}^2)\,\mathcal{N}(K; \mu_K, \sigma_K^2)\,
          \mathcal{N}(u; 0, I_2)\,\frac{\mathbb{1}[\ln P_\mathrm{min} \le \ln P \le \ln P_\mathrm{max}]}{\ln P_\mathrm{max} - \ln P_\mathrm{min}},

    normalised, and ``AngleAsVector(posterior, 2).log_prob(y)`` is :math:`\log\pi(y)` plus the
    log-likelihood. A proposal (``dim``, ``sample``, ``log_prob``): the base of the tempered
    path prior-to-posterior of SMC (Del Moral, Doucet & Jasra, JRSS B 68, 411, 2006), whose
    :math:`\log\hat Z` is then the log-evidence.

    >>> posterior = RadialVelocityPosterior(simulate_observations())
    >>> prior = PriorWithPhaseAsVector(posterior)
    >>> prior.sample(3).shape
    torch.Size([3, 5])
    """

    dim = 5

    def __init__(
        self, posterior: RadialVelocityPosterior, dtype: torch.dtype = torch.float64,
        device: torch.device | str | None = None,
    ) -> None:
        if not isinstance(posterior, RadialVelocityPosterior):
            raise TypeError(f"posterior must be a RadialVelocityPosterior, got {type(posterior).__name__}")
        if not isinstance(dtype, torch.dtype):
            raise TypeError(f"dtype must be a torch.dtype, got {type(dtype).__name__}")
        self.posterior = posterior
        self.dtype = dtype
        self.device = device

    def sample(self, n: int) -> Tensor:
        """``n`` independent draws, shape ``(n, 5)`` (torch's global generator)."""
        x = self.posterior.sample_prior(n, dtype=self.dtype, device=self.device)
        u = torch.randn(n, 2, dtype=self.dtype, device=self.device)
        radius = torch.linalg.vector_norm(u, dim=-1)
        u = radius.unsqueeze(-1) * torch.stack([torch.cos(x[:, 2]), torch.sin(x[:, 2])], dim=-1)
        return torch.cat([x[:, :2], u, x[:, 3:]], dim=-1)

    def log_prob(self, y: Tensor) -> Tensor:
        r""":math:`\log\pi(y)`, :math:`-\infty` where :math:`\ln P` is outside the prior's range."""
        check_points(y, self.dim, "y")
        p = self.posterior
        low, high = p.ln_period_range
        ln_period = y[..., 4]
        log_density = (
            _gaussian_log_density(y[..., 0], 0.0, p.sigma_v0)
            + _gaussian_log_density(y[..., 1], p.mu_k, p.sigma_k)
            + _gaussian_log_density(y[..., 2:4], 0.0, 1.0).sum(-1)
            - math.log(high - low)
        )
        inside = (ln_period >= low) & (ln_period <= high)
        return torch.where(inside, log_density, -math.inf)
