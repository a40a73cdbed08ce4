r"""The one-dimensional :math:`\phi^4` field with Dirichlet ends, and its exact answer.

The field :math:`\phi:[0,1]\to\mathbb{R}`, :math:`\phi(0) = \phi(1) = 0`, with energy
:math:`\int \tfrac a2|\nabla\phi|^2 + V(\phi)` and a double-well :math:`V`, discretised on
:math:`N` interior points as in the code of Gabrié, Rotskoff & Vanden-Eijnden (PNAS 119,
e2109420119, 2022; marylou-gabrie/flonaco). With :math:`c = aN` and
:math:`\phi_0 = \phi_{N+1} = 0`,

.. math::

    U(\phi) = \frac c2\sum_{i=0}^{N}(\phi_{i+1} - \phi_i)^2
        + \frac1c\sum_{i=1}^{N}\Big[\frac{(1 - \phi_i^2)^2}{4} + b\,\phi_i\Big]
        + \lambda\big(\bar\phi(\phi) - \bar\phi_0\big)^2,
    \qquad \rho_*(\phi) = \frac{e^{-\beta U(\phi)}}{Z},

with :math:`\bar\phi(\phi) = \frac1N\sum_i\phi_i` (the discrete :math:`\int_0^1\phi`). The
published settings are :math:`N = 100`, :math:`a = 0.1`, :math:`\beta = 20`. Without tilt
(:math:`b = 0`) and constraint (:math:`\lambda = 0`) the target is symmetric under
:math:`\phi\to-\phi` and has two modes, the field near :math:`+1` or near :math:`-1` in the
bulk, each of mass exactly 1/2; a tilt :math:`b > 0` favours the negative one. The constraint
term is :math:`\lambda(\int\phi - \bar\phi_0)^2` in the continuum (flonaco scales its ``lambda``
differently: its term is :math:`\lambda(\bar\phi - \bar\phi_0)^2/(4N)`).

**Exact reference.** Without the constraint the Boltzmann weight is a product of
nearest-neighbour factors, so :math:`Z` is a product of transfer operators
(Kramers & Wannier 1941; for continuous spins Scalapino, Sears & Ferrell, PRB 6, 3409, 1972):

.. math::

    Z = \int \prod_{i=1}^N d\phi_i\; K(0,\phi_1)\,w(\phi_1)\,K(\phi_1,\phi_2)\cdots w(\phi_N)\,K(\phi_N, 0),
    \quad K(\phi,\phi') = e^{-\beta c(\phi-\phi')^2/2},\ w(\phi) = e^{-\beta[V(\phi) + b\phi]/c}.

:func:`transfer_matrix_reference` evaluates it with the rectangle rule on a uniform grid
(exponentially accurate for smooth, decaying integrands; Trefethen & Weideman, SIAM Rev. 56,
385, 2014), as :math:`N` matrix-vector products in float64, forward for :math:`\log Z` and
the forward/backward messages for every site's marginal.

>>> target = Phi4Chain()
>>> target.dim, target.beta
(100, 20.0)

References:
    | Adaptive Monte Carlo augmented with normalizing flows (Gabrié et al., 2022)
    | https://doi.org/10.1073/pnas.2109420119
    | Statistics of the Two-Dimensional Ferromagnet. Part I (Kramers & Wannier, 1941)
    | https://doi.org/10.1103/PhysRev.60.252
    | Statistical Mechanics of One-Dimensional Ginzburg-Landau Fields (Scalapino et al., 1972)
    | https://doi.org/10.1103/PhysRevB.6.3409
    | The Exponentially Convergent Trapezoidal Rule (Trefethen & Weideman, 2014)
    | https://doi.org/10.1137/130932132
"""

from __future__ import annotations

import math
from typing import NamedTuple

import torch
from torch import Tensor

from lecturekit.checks import check_number, check_points, check_positive_int, check_tensor
from lecturekit.distributions import DiagonalGaussian, TridiagonalGaussian
from lecturekit.targets.base import Target

__all__ = [
    "ChainReference",
    "Phi4Chain",
    "field_mean",
    "site_value",
    "transfer_matrix_reference",
]


def _check_real(value: object, name: str, positive: bool = False, non_negative: bool = False) -> float:
    """checks.check_number: TypeError for a non-number, ValueError for NaN, inf or out of range."""
    return check_number(value, name, positive=positive, non_negative=non_negative)


class Phi4Chain(Target):
    r"""The 1D :math:`\phi^4` field of the module docstring: ``n_sites`` interior points, Dirichlet ends.

    .. math::

        U(\phi) = \frac c2\sum_{i=0}^{N}(\phi_{i+1} - \phi_i)^2
            + \frac1c\sum_{i=1}^{N}\Big[\frac{(1 - \phi_i^2)^2}{4} + b\,\phi_i\Big]
            + \lambda\big(\bar\phi - \bar\phi_0\big)^2,
        \qquad c = aN, \quad \rho_*(\phi)\propto e^{-\beta U(\phi)}.

    ``n_sites`` is :math:`N`, the number of interior grid points (the dimension); ``a`` the
    coupling :math:`a`, which sets the grid coupling :math:`c = aN`; ``beta`` the inverse
    temperature :math:`\beta`; ``tilt`` the field :math:`b` of the tilt
    :math:`\frac1c\sum_i b\phi_i`; ``constraint`` the strength :math:`\lambda \ge 0` of
    :math:`\lambda(\bar\phi - \bar\phi_0)^2`, and ``phi_bar`` the mean :math:`\bar\phi_0`
    that the constraint favours. The defaults are the published settings
    :math:`N = 100`, :math:`a = 0.1`, :math:`\beta = 20`, without tilt or constraint.

    >>> target = Phi4Chain(n_sites=4, a=0.5, beta=1.0)
    >>> round(float(target.energy(torch.zeros(4))), 6)  # N V(0) / c = 4 * 0.25 / 2
    0.5
    """

    def __init__(
        self,
        n_sites: int = 100,
        a: float = 0.1,
        beta: float = 20.0,
        tilt: float = 0.0,
        constraint: float = 0.0,
        phi_bar: float = 0.0,
    ) -> None:
        self.dim = check_positive_int(n_sites, "n_sites")
        self.a = _check_real(a, "a", positive=True)
        self.beta = _check_real(beta, "beta", positive=True)
        self.tilt = _check_real(tilt, "tilt")
        self.constraint = _check_real(constraint, "constraint", non_negative=True)
        self.phi_bar = _check_real(phi_bar, "phi_bar")

    @property
    def n_sites(self) -> int:
        return self.dim

    @property
    def coupling(self) -> float:
        """:math:`c = aN`, the factor of the gradient term (and :math:`1/c` of the potential)."""
        return self.a * self.dim

    def with_settings(self, **changes: float) -> "Phi4Chain":
        """A copy with some settings changed, e.g. ``target.with_settings(tilt=0.01)``."""
        settings = {"n_sites": self.dim, "a": self.a, "beta": self.beta, "tilt": self.tilt,
                    "constraint": self.constraint, "phi_bar": self.phi_bar}
        unknown = set(changes) - set(settings)
        if unknown:
            raise TypeError(f"unknown settings {sorted(unknown)}; expected some of {sorted(settings)}")
        return Phi4Chain(**{**settings, **changes})  # type: ignore[arg-type]

    def _padded_differences(self, x: Tensor) -> Tensor:
        """:math:`\\phi_{i+1} - \\phi_i` for :math:`i = 0..N`, shape ``(..., N + 1)``."""
        zero = x.new_zeros(x.shape[:-1] + (1,))
        padded = torch.cat([zero, x, zero], dim=-1)
        return padded[..., 1:] - padded[..., :-1]

    def energy(self, x: Tensor) -> Tensor:
        check_points(x, self.dim)
        c = self.coupling
        gradient = 0.5 * c * self._padded_differences(x).square().sum(-1)
        potential = ((1 - x.square()).square() / 4 + self.tilt * x).sum(-1) / c
        energy = gradient + potential
        if self.constraint:
            energy = energy + self.constraint * (x.mean(-1) - self.phi_bar).square()
        return energy

    def log_prob_and_score(self, x: Tensor) -> tuple[Tensor, Tensor]:
        r"""Analytic score :math:`-\beta\nabla U`, with
        :math:`\partial_i U = c(2\phi_i - \phi_{i-1} - \phi_{i+1}) + [\phi_i^3 - \phi_i + b]/c
        + 2\lambda(\bar\phi - \bar\phi_0)/N`."""
        x = x.detach()
        check_points(x, self.dim)
        c = self.coupling
        differences = self._padded_differences(x)
        grad = c * (differences[..., :-1] - differences[..., 1:]) + (x * (x.square() - 1) + self.tilt) / c
        if self.constraint:
            grad = grad + (2 * self.constraint / self.dim) * (x.mean(-1, keepdim=True) - self.phi_bar)
        return -self.beta * self.energy(x), -self.beta * grad

    # ------------------------------------------------------------------ base measures

    def coupled_base(self, sigma: float = 1.0, dtype: torch.dtype | None = None) -> TridiagonalGaussian:
        r"""The informed ("coupled") Gaussian base: :math:`\rho_B\propto e^{-\beta U_B}` with

        .. math::

            U_B(\phi) = \frac c2\sum_{i=0}^{N}(\phi_{i+1}-\phi_i)^2 + \frac1c\sum_{i=1}^N\frac{\phi_i^2}{2\sigma^2},

        the free part of :math:`U` in the same discretisation; precision
        :math:`Q = \beta[(2c + 1/(c\sigma^2))I - c(\delta_{i,j+1} + \delta_{i+1,j})]`
        (flonaco's ``coupled`` prior for :math:`\sigma = 1`). Its Cholesky factor is computed in
        float64, then stored in ``dtype`` (default: torch's default dtype, as the flows').
        """
        sigma = _check_real(sigma, "sigma", positive=True)
        c, n = self.coupling, self.dim
        diagonal = torch.full((n,), self.beta * (2 * c + 1 / (c * sigma**2)), dtype=torch.float64)
        off = torch.full((n - 1,), -self.beta * c, dtype=torch.float64)
        return TridiagonalGaussian(diagonal, off).to(dtype or torch.get_default_dtype())

    def uncoupled_base(self, sigma: float = 1.0, dtype: torch.dtype | None = None) -> DiagonalGaussian:
        r"""The uninformed ("uncoupled") base :math:`U_B = \frac1c\sum_i\phi_i^2/(2\sigma^2)`:
        independent :math:`\mathcal{N}(0, c\sigma^2/\beta)` coordinates, in ``dtype`` (default:
        torch's default dtype)."""
        sigma = _check_real(sigma, "sigma", positive=True)
        std = math.sqrt(self.coupling / self.beta) * sigma
        dtype = dtype or torch.get_default_dtype()
        return DiagonalGaussian(torch.zeros(self.dim, dtype=dtype), torch.full((self.dim,), std, dtype=dtype))

    def __repr__(self) -> str:
        return (f"Phi4Chain(n_sites={self.dim}, a={self.a}, beta={self.beta}, tilt={self.tilt}, "
                f"constraint={self.constraint}, phi_bar={self.phi_bar})")


# --------------------------------------------------------------------------- observables


def field_mean(x: Tensor) -> Tensor:
    r""":math:`\bar\phi = \frac1N\sum_i\phi_i` of fields of shape ``(..., N)``; shape ``(...)``."""
    if not isinstance(x, Tensor) or x.dim() == 0:
        raise TypeError(f"x must be a tensor of shape (..., N), got {type(x).__name__}")
    check_tensor(x, "x")
    return x.mean(-1)


def site_value(x: Tensor, site: int | None = None) -> Tensor:
    """The field at one site (0-based index; default ``N // 2``, site 50 for ``N = 100``)."""
    if not isinstance(x, Tensor) or x.dim() == 0:
        raise TypeError(f"x must be a tensor of shape (..., N), got {type(x).__name__}")
    n = x.shape[-1]
    site = n // 2 if site is None else site
    if isinstance(site, bool) or not isinstance(site, int):
        raise TypeError(f"site must be an int in [0, {n}), got {type(site).__name__} {site!r}")
    if not 0 <= site < n:
        raise ValueError(f"site must be an int in [0, {n}), got {site!r}")
    return x[..., site]


# --------------------------------------------------------------------------- exact reference


class ChainReference(NamedTuple):
    """The transfer-matrix answer for a :class:`Phi4Chain` (float64, CPU)."""

    log_z: float  #: :math:`\log Z`, with :math:`Z = \int e^{-\beta U}\,d\phi`
    grid: Tensor  #: ``(M,)`` the field values of the quadrature grid (cell centres)
    #: ``(N, M)`` each site's marginal as probabilities of the grid cells (rows sum to 1)
    marginals: Tensor

    @property
    def grid_spacing(self) -> float:
        return float(self.grid[1] - self.grid[0])

    def marginal_density(self, site: int) -> Tensor:
        """Density of :math:`\\phi_{site}` at the grid points, shape ``(M,)``."""
        return self.marginals[site] / self.grid_spacing

    def prob_positive(self, site: int | None = None) -> float:
        r""":math:`P(\phi_{site} > 0)` (default site ``N // 2``)."""
        site = self.marginals.shape[0] // 2 if site is None else site
        return float(self.marginals[site][self.grid > 0].sum())

    def site_means(self) -> Tensor:
        r""":math:`\mathbb{E}[\phi_i]` for every site, shape ``(N,)``."""
        return self.marginals @ self.grid

    def site_second_moments(self) -> Tensor:
        r""":math:`\mathbb{E}[\phi_i^2]` for every site, shape ``(N,)``."""
        return self.marginals @ self.grid.square()


def transfer_matrix_reference(
    target: Phi4Chain, grid_spacing: float = 0.01, half_width: float = 3.0, tail_tolerance: float = 1e-12
) -> ChainReference:
    r"""Exact :math:`\log Z` and site marginals of ``target`` by the transfer operator on a grid.

    The grid has cells of width ``grid_spacing`` :math:`h` centred at
    :math:`g_k\in(-L, L)`, :math:`L` = ``half_width`` (no grid point at 0, so
    :math:`P(\phi_i > 0)` needs no half cell). With :math:`K_{jk} = K(g_j, g_k)` and
    :math:`w_k = h\,w(g_k)`, the forward messages :math:`f_1 = K(0,\cdot)w`,
    :math:`f_{i+1} = (f_i K)\odot w` give :math:`Z = f_N\cdot K(\cdot,0)`, and the backward
    ones :math:`r_N = K(\cdot,0)`, :math:`r_i = K(w\odot r_{i+1})` the marginals
    :math:`p_i\propto f_i\odot r_i`. Each message is rescaled to sum 1 and the logs of the
    scales are added, so nothing under- or overflows. Cost: :math:`O(NM^2)` in float64.

    Raises ``ValueError`` for a target with a constraint (it couples all sites) and when a
    marginal puts more than ``tail_tolerance`` in the outermost cells (widen the grid).
    """
    if not isinstance(target, Phi4Chain):
        raise TypeError(f"target must be a Phi4Chain, got {type(target).__name__}")
    if target.constraint:
        raise ValueError("the constraint term couples all sites: no transfer-matrix reference for constraint > 0")
    h = _check_real(grid_spacing, "grid_spacing", positive=True)
    half_width = _check_real(half_width, "half_width", positive=True)
    n_cells = int(round(2 * half_width / h))
    if n_cells < 4:
        raise ValueError(f"grid_spacing={h} is too coarse for half_width={half_width}")
    grid = (torch.arange(n_cells, dtype=torch.float64) + 0.5) * h - n_cells * h / 2
    beta, c, n = target.beta, target.coupling, target.dim
    log_site = -beta * ((1 - grid.square()).square() / 4 + target.tilt * grid) / c + math.log(h)
    site_shift = float(log_site.max())
    site_weight = (log_site - site_shift).exp()  # w / max(w); the shift goes back into log Z
    bond = torch.exp(-0.5 * beta * c * (grid[:, None] - grid[None, :]).square())
    boundary = torch.exp(-0.5 * beta * c * grid.square())

    log_z = n * site_shift
    forward = torch.empty(n, n_cells, dtype=torch.float64)
    message = boundary * site_weight
    for i in range(n):
        if i > 0:
            message = (message @ bond) * site_weight
        scale = message.sum()
        log_z += math.log(float(scale))
        message = message / scale
        forward[i] = message
    log_z += math.log(float(message @ boundary))

    marginals = torch.empty_like(forward)
    backward = boundary / boundary.sum()
    for i in range(n - 1, -1, -1):
        if i < n - 1:
            backward = bond @ (site_weight * backward)
            backward = backward / backward.sum()
        joint = forward[i] * backward
        marginals[i] = joint / joint.sum()
    edge = float(torch.maximum(marginals[:, 0], marginals[:, -1]).max())
    if edge > tail_tolerance:
        raise ValueError(
            f"a marginal puts {edge:.2e} in the outermost grid cells (more than tail_tolerance={tail_tolerance:g}): "
            "increase half_width"
        )
    return ChainReference(log_z, grid, marginals)
