r"""Scalar :math:`\phi^4` field theory on a periodic two-dimensional lattice.

A configuration is one real number per site of an :math:`L\times L` torus, flattened
row-major to a vector of length :math:`V = L^2`: ``phi[..., r * L + c]`` is site
:math:`x = (r, c)`. Two parameterisations of the action are in use.

*Albergo form* (Albergo, Kanwar & Shanahan, PRD 100, 034515, 2019; the tutorial of
Albergo et al., arXiv:2101.08176):

.. math::

    S(\phi) = \sum_x \Big[ m^2\phi_x^2 + \lambda\phi_x^4
        + \sum_{\mu=1}^{2} \big(2\phi_x^2 - \phi_x\phi_{x+\hat\mu} - \phi_x\phi_{x-\hat\mu}\big) \Big]
      = \sum_x \Big[ -2\sum_\mu \phi_x\phi_{x+\hat\mu} + (4 + m^2)\phi_x^2 + \lambda\phi_x^4 \Big].

*Del Debbio form* (Del Debbio, Marsh Rossney & Wilson, PRD 104, 094507, 2021), for a
field :math:`\varphi`:

.. math::

    U(\varphi) = \sum_x \Big[ -\beta \sum_\mu \varphi_x\varphi_{x+\hat\mu} + \varphi_x^2
        + \lambda(\varphi_x^2 - 1)^2 \Big]
      = \sum_x \Big[ -\beta \sum_\mu \varphi_x\varphi_{x+\hat\mu} + (1 - 2\lambda)\varphi_x^2
        + \lambda\varphi_x^4 \Big] + \lambda V .

Both are the same family, :math:`\sum_x [-\kappa\sum_\mu\phi_x\phi_{x+\hat\mu} + a\phi_x^2
+ b\phi_x^4] + c`, which :class:`Phi4Lattice` evaluates. Substituting
:math:`\phi = \sqrt{\beta/2}\,\varphi` into the Albergo form and matching the three
coefficients (:math:`2\cdot\beta/2 = \beta`, :math:`(4 + m^2)\beta/2 = 1 - 2\lambda_{DD}`,
:math:`\lambda_A\beta^2/4 = \lambda_{DD}`) gives

.. math::

    m^2 = \frac{2(1 - 2\lambda_{DD})}{\beta} - 4, \qquad \lambda_A = \frac{4\lambda_{DD}}{\beta^2},
    \qquad S_A\big(\sqrt{\beta/2}\,\varphi\big) = U(\varphi) - \lambda_{DD} V,

and back, :math:`\beta` is the positive root of :math:`\lambda_A\beta^2 + (m^2 + 4)\beta - 2 = 0`
(:func:`albergo_from_del_debbio`, :func:`del_debbio_from_albergo`). The tutorial's point
:math:`m^2 = -4, \lambda_A = 8` is :math:`\beta = 1/2, \lambda_{DD} = 1/2`.

Observables (as in Albergo, Kanwar & Shanahan 2019) of a set of configurations: the magnetisation
:math:`M = \sum_x\phi_x`, the connected two-point function
:math:`G_c(y) = \frac1V\sum_x \langle\phi_x\phi_{x+y}\rangle - \langle\phi_x\rangle\langle\phi_{x+y}\rangle`,
the two-point susceptibility :math:`\chi_2 = \sum_y G_c(y)` and the Ising energy
:math:`E = \frac12\sum_\mu G_c(\hat\mu)`. At :math:`\lambda = 0` the field is Gaussian and
:meth:`Phi4Lattice.free_covariance` gives them exactly.

>>> target = Phi4Lattice(8, m2=-4.0, lam=8.0)
>>> target.dim, del_debbio_from_albergo(-4.0, 8.0)
(64, (0.5, 0.5))

References:
    | Flow-based generative models for Markov chain Monte Carlo in lattice field theory (Albergo et al., 2019)
    | https://doi.org/10.1103/PhysRevD.100.034515
    | Introduction to Normalizing Flows for Lattice Field Theory (Albergo et al., 2021)
    | https://arxiv.org/abs/2101.08176
    | Efficient modeling of trivializing maps for lattice φ⁴ theory using normalizing flows: A first look at scalability (Del Debbio et al., 2021)
    | https://doi.org/10.1103/PhysRevD.104.094507
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

from lecturekit.checks import check_finite, check_number, check_points, check_positive_int, check_tensor
from lecturekit.diagnostics import integrated_autocorr_time, mcse
from lecturekit.estimates import Estimate
from lecturekit.targets.base import Target

__all__ = [
    "Phi4Lattice",
    "albergo_from_del_debbio",
    "del_debbio_from_albergo",
    "ising_energy",
    "magnetization",
    "site_correlator",
    "susceptibility",
    "susceptibility_along_chain",
    "two_point_function",
]


def albergo_from_del_debbio(beta: float, lam: float) -> tuple[float, float]:
    r"""``(m2, lam_A)`` of the Albergo form equivalent to Del Debbio's ``(beta, lam)``.

    .. math::

        m^2 = \frac{2(1 - 2\lambda)}{\beta} - 4, \qquad \lambda_A = \frac{4\lambda}{\beta^2};

    the fields are related by :math:`\phi_A = \sqrt{\beta/2}\,\varphi_{DD}` (module docstring).

    >>> albergo_from_del_debbio(0.5, 0.5)
    (-4.0, 8.0)
    """
    beta = check_number(beta, "beta")
    lam = check_number(lam, "lam", non_negative=True)  # the action must be bounded below
    if beta <= 0:
        raise ValueError(f"beta must be positive (it sets the field rescaling sqrt(beta / 2)), got {beta!r}")
    return 2 * (1 - 2 * lam) / beta - 4, 4 * lam / beta**2


def del_debbio_from_albergo(m2: float, lam: float) -> tuple[float, float]:
    r"""``(beta, lam_DD)`` of the Del Debbio form equivalent to Albergo's ``(m2, lam)``.

    :math:`\beta` is the positive root of :math:`\lambda\beta^2 + (m^2 + 4)\beta - 2 = 0`
    (which exists for every :math:`\lambda > 0`, and for :math:`\lambda = 0` when
    :math:`m^2 > -4`), then :math:`\lambda_{DD} = \lambda\beta^2/4`.

    >>> del_debbio_from_albergo(-4.0, 8.0)
    (0.5, 0.5)
    """
    m2 = check_number(m2, "m2")
    lam = check_number(lam, "lam", non_negative=True)
    b = m2 + 4
    if lam == 0:
        if b <= 0:
            raise ValueError(f"with lam = 0 the Del Debbio form needs m2 > -4, got m2={m2!r}")
        beta = 2 / b
    else:  # the positive root, written to avoid cancellation when b > 0
        root = math.sqrt(b * b + 8 * lam)
        beta = 4 / (b + root) if b > 0 else (root - b) / (2 * lam)
    return beta, lam * beta**2 / 4


class Phi4Lattice(Target):
    r"""The :math:`\phi^4` action on a periodic :math:`L\times L` lattice as a :class:`~lecturekit.targets.base.Target`.

    .. math::

        S(\phi) = \sum_x \Big[-\kappa\sum_{\mu=1}^2 \phi_x\phi_{x+\hat\mu} + a\,\phi_x^2
            + b\,\phi_x^4\Big] + c, \qquad \rho(\phi)\propto e^{-S(\phi)},

    with hopping :math:`\kappa`, quadratic :math:`a`, quartic :math:`b` and constant
    :math:`c`. ``Phi4Lattice(L, m2, lam)`` is the Albergo form
    (:math:`\kappa = 2, a = 4 + m^2, b = \lambda, c = 0`);
    :meth:`from_del_debbio` is the Del Debbio form
    (:math:`\kappa = \beta, a = 1 - 2\lambda, b = \lambda, c = \lambda V`). Either way
    ``m2`` and ``lam`` hold the Albergo parameters of the same theory, in the units of the
    object's own field; ``field_scale`` is the factor :math:`\sqrt{\beta/2}` that maps this
    object's field onto the Albergo field (1 for the Albergo form).

    ``x`` has shape ``(..., L * L)``, sites flattened row-major. The score is analytic:

    .. math::

        -\frac{\partial S}{\partial\phi_x} = \kappa\sum_\mu(\phi_{x+\hat\mu} + \phi_{x-\hat\mu})
            - 2a\,\phi_x - 4b\,\phi_x^3 .

    >>> target = Phi4Lattice(2, m2=1.0, lam=0.0)
    >>> float(target.energy(torch.ones(4)))  # kinetic terms vanish: sum_x m^2 phi^2 = 4
    4.0
    """

    def __init__(self, L: int, m2: float, lam: float) -> None:
        check_positive_int(L, "L")
        self.L = L
        self.dim = L * L
        self.m2 = check_number(m2, "m2")
        self.lam = check_number(lam, "lam", non_negative=True)
        self.hopping, self.quadratic, self.quartic, self.constant = 2.0, 4.0 + self.m2, self.lam, 0.0
        self.field_scale = 1.0
        self.beta = 1.0  # the inverse temperature of Target; both forms absorb it in the couplings

    @classmethod
    def from_del_debbio(cls, L: int, beta: float, lam: float) -> "Phi4Lattice":
        r"""Del Debbio et al.'s :math:`U(\varphi)`, hopping ``beta`` and quartic ``lam``, constant included.

        >>> target = Phi4Lattice.from_del_debbio(8, beta=0.5, lam=0.5)
        >>> target.m2, target.lam, target.field_scale
        (-4.0, 8.0, 0.5)
        """
        m2, lam_albergo = albergo_from_del_debbio(beta, lam)
        target = cls(L, m2, lam_albergo)
        target.hopping, target.quadratic, target.quartic = float(beta), 1 - 2 * float(lam), float(lam)
        target.constant = float(lam) * target.dim
        target.field_scale = math.sqrt(beta / 2)
        return target

    def __repr__(self) -> str:
        return f"Phi4Lattice(L={self.L}, m2={self.m2:g}, lam={self.lam:g}, field_scale={self.field_scale:g})"

    def lattice(self, x: Tensor) -> Tensor:
        """``x`` of shape ``(..., L * L)`` viewed as ``(..., L, L)`` (checked)."""
        check_points(x, self.dim)
        return x.unflatten(-1, (self.L, self.L))

    def _neighbour_sum(self, phi: Tensor) -> Tensor:
        r""":math:`\sum_\mu \phi_{x+\hat\mu}` on ``(..., L, L)``."""
        return phi.roll(-1, -1) + phi.roll(-1, -2)

    def energy(self, x: Tensor) -> Tensor:
        r"""The action :math:`S(\phi)`, shape ``(...)``."""
        phi = self.lattice(x)
        square = phi.square()
        density = (self.quadratic + self.quartic * square) * square - self.hopping * phi * self._neighbour_sum(phi)
        return density.sum((-2, -1)) + self.constant

    def log_prob_and_score(self, x: Tensor) -> tuple[Tensor, Tensor]:
        r""":math:`-S(\phi)` and its analytic gradient, detached."""
        phi = self.lattice(x.detach())
        square = phi.square()
        forward = self._neighbour_sum(phi)
        hop = phi * forward
        log_prob = -((self.quadratic + self.quartic * square) * square - self.hopping * hop).sum((-2, -1)) - self.constant
        neighbours = forward + phi.roll(1, -1) + phi.roll(1, -2)
        score = self.hopping * neighbours - phi * (2 * self.quadratic + 4 * self.quartic * square)
        return log_prob, score.flatten(-2)

    # ------------------------------------------------------------------ the free field

    def free_covariance(self) -> Tensor:
        r"""Exact covariance :math:`\langle\phi_x\phi_y\rangle` of the free field (``lam = 0``), ``(V, V)`` float64.

        For :math:`b = 0` the action is :math:`\phi^T K\phi + c` with
        :math:`K = a I - \tfrac\kappa2 A` (:math:`A` the adjacency matrix of the torus, each
        of the four neighbours counted, so twice on an :math:`L = 2` lattice), and
        :math:`e^{-\phi^TK\phi}` is Gaussian with covariance :math:`\tfrac12 K^{-1}`. In the
        Albergo form :math:`K = -\Delta + m^2` and the propagator is
        :math:`G(y) = \frac{1}{2V}\sum_p \frac{\cos(p\cdot y)}{m^2 + \sum_\mu 4\sin^2(p_\mu/2)}`;
        :math:`\chi_2 = 1/(2m^2)`. Needs ``lam = 0`` and a positive definite :math:`K`
        (:math:`m^2 > 0`).
        """
        if self.lam != 0:
            raise ValueError(f"the field is Gaussian only at lam = 0, got lam={self.lam}")
        if self.m2 <= 0:
            raise ValueError(f"the free field is normalisable only for m2 > 0 (Albergo form), got m2={self.m2}")
        eye = torch.eye(self.dim, dtype=torch.float64)
        shifts = eye.unflatten(-1, (self.L, self.L))
        adjacency = sum(shifts.roll(s, d) for s in (1, -1) for d in (-1, -2)).flatten(-2)
        precision = self.quadratic * eye - self.hopping / 2 * adjacency
        return 0.5 * torch.linalg.inv(precision)

    def free_two_point(self) -> Tensor:
        r"""Exact :math:`G_c(y)` of the free field, shape ``(L, L)`` (``y`` row-major), float64."""
        return self.free_covariance()[0].reshape(self.L, self.L)

    def free_magnetization_variance(self) -> float:
        r"""Exact :math:`\langle M^2\rangle` of the free field; :math:`\chi_2 = \langle M^2\rangle / V`."""
        return float(self.free_covariance().sum())


# --------------------------------------------------------------------------- observables


def _lattice(phi: Tensor, L: int | None) -> Tensor:
    """``phi`` of shape ``(..., V)`` as ``(..., L, L)``, with ``L = sqrt(V)`` unless given."""
    if not isinstance(phi, Tensor) or not phi.is_floating_point() or phi.dim() == 0:
        raise TypeError(f"phi must be a floating-point tensor of shape (..., L * L), got {type(phi).__name__}")
    if L is None:
        L = math.isqrt(phi.shape[-1])
        if L * L != phi.shape[-1]:
            raise ValueError(f"phi must have shape (..., L * L) for a square lattice, got {tuple(phi.shape)}")
    check_positive_int(L, "L")
    check_points(phi, L * L, "phi")
    return phi.unflatten(-1, (L, L))


def magnetization(phi: Tensor) -> Tensor:
    r"""Magnetisation :math:`M = \sum_x\phi_x` of each configuration, shape ``(...)``.

    >>> magnetization(torch.ones(3, 16))
    tensor([16., 16., 16.])
    """
    return _lattice(phi, None).sum((-2, -1))


def site_correlator(phi: Tensor, L: int | None = None) -> Tensor:
    r"""Per-configuration :math:`C(y) = \frac1V\sum_x\phi_x\phi_{x+y}`, shape ``(..., L, L)``.

    Computed with the FFT (Wiener-Khinchin). Its mean over configurations is the
    disconnected two-point function; per configuration it gives a time series
    whose autocorrelation sets the error bars of :math:`G(y)` along a Markov chain.
    """
    field = _lattice(phi, L)
    spectrum = torch.fft.rfft2(field)
    return torch.fft.irfft2(spectrum.abs().square(), s=field.shape[-2:]) / (field.shape[-1] * field.shape[-2])


def two_point_function(phi: Tensor, L: int | None = None) -> Tensor:
    r"""Connected two-point function :math:`G_c(y)` of a set of configurations, shape ``(L, L)``.

    .. math::

        G_c(y) = \frac1V\sum_x \big[\overline{\phi_x\phi_{x+y}} - \bar\phi_x\,\bar\phi_{x+y}\big],

    bars being means over all leading axes of ``phi`` (``(..., V)``: samples, or steps and chains).
    """
    check_tensor(phi, "phi")
    check_finite(phi, "phi")
    field = _lattice(phi, L).flatten(end_dim=-3) if phi.dim() > 1 else _lattice(phi, L).unsqueeze(0)
    return site_correlator(field.flatten(-2)).mean(0) - site_correlator(field.mean(0).flatten(-2))


def susceptibility(phi: Tensor, L: int | None = None) -> Tensor:
    r"""Two-point susceptibility :math:`\chi_2 = \sum_y G_c(y) = (\overline{M^2} - \bar M^2)/V`."""
    return two_point_function(phi, L).sum()


def susceptibility_along_chain(chain: Tensor) -> Estimate:
    r""":math:`\chi_2` of chains ``(n_steps, n_chains, V)`` with the MCSE and :math:`\tau` of :math:`M^2/V`.

    Returns an :class:`~lecturekit.estimates.Estimate` (0-dim tensors): ``value`` is
    :math:`\chi_2 = (\overline{M^2} - \bar M^2)/V`, equal to :func:`susceptibility` of the same
    configurations; ``stderr`` is the MCSE of :math:`\overline{M^2}/V` (the mean of :math:`M` is
    near 0 by symmetry); ``tau`` is the integrated autocorrelation time of :math:`M^2/V`, in
    steps. The error comes from
    :func:`~lecturekit.diagnostics.mcse`, which raises
    :class:`~lecturekit.diagnostics.ChainTooShortError` when the chain is too short for its
    autocorrelation time.
    """
    if not isinstance(chain, Tensor) or chain.dim() != 3:
        raise ValueError(f"chain must have shape (n_steps, n_chains, L * L), got {getattr(chain, 'shape', chain)!r}")
    volume = chain.shape[-1]
    m = magnetization(chain)
    m_squared = m**2 / volume
    value = m_squared.mean() - m.mean() ** 2 / volume
    return Estimate(value, mcse(m_squared), integrated_autocorr_time(m_squared))


def ising_energy(phi: Tensor, L: int | None = None) -> Tensor:
    r"""Ising energy :math:`E = \frac12\big[G_c(\hat 1) + G_c(\hat 2)\big]` (Albergo et al. 2019)."""
    G = two_point_function(phi, L)
    return 0.5 * (G[0, 1] + G[1, 0])
