r"""Base distributions :math:`\rho_B` for normalizing flows.

A flow pushes a simple base density :math:`\rho_B(z)` forward through a bijection
(Papamakarios et al., JMLR 22(57), 2021). Every base here is a :class:`torch.nn.Module`
whose tensors are buffers (or parameters), so ``base.to(device)`` and
``base.double()`` move and cast it, and its state travels in ``state_dict()``.

The interface every base shares, so that :class:`~lecturekit.flows.core.Flow` and
:func:`~lecturekit.flows.io.load_flow` take any of them:

- ``dim``: the dimension :math:`d`;
- ``sample(n)``: ``n`` reparametrised draws, shape ``(n, d)``, on the base's device and
  in its dtype (gradients flow to trainable parameters);
- ``log_prob(z)``: the *normalised* log-density of ``z`` of shape ``(..., d)``, shape ``(...)``;
- ``config()`` and ``from_config(**config)``: JSON-like constructor settings from which
  :func:`lecturekit.flows.io.load_flow` rebuilds a module with the same state-dict layout
  (the values then come from the state dict).

:class:`StandardNormal` and :class:`DiagonalGaussian` are the usual uninformed bases;
sampling the latter as :math:`z = \mu + \sigma\odot\varepsilon` is the reparametrisation trick
(Kingma & Welling, ICLR 2014). :class:`TridiagonalGaussian` is an *informed* base: a
Gaussian whose precision matrix is tridiagonal (a Gaussian Markov chain, Rue & Held 2005),
such as the discretised free field :math:`\int \tfrac a2|\nabla\phi|^2 + \phi^2/(2\sigma^2)`
(built by :meth:`lecturekit.targets.phi4_chain.Phi4Chain.coupled_base`), the "coupled" base of
Gabrié, Rotskoff & Vanden-Eijnden (PNAS 2022).

References:
    | Normalizing Flows for Probabilistic Modeling and Inference (Papamakarios et al., 2021)
    | https://arxiv.org/abs/1912.02762
    | Auto-Encoding Variational Bayes (Kingma & Welling, 2014)
    | https://arxiv.org/abs/1312.6114
    | Gaussian Markov Random Fields: Theory and Applications (Rue & Held, 2005)
    | https://doi.org/10.1201/9780203492024
    | Adaptive Monte Carlo augmented with normalizing flows (Gabrié et al., 2022)
    | https://doi.org/10.1073/pnas.2109420119
"""

from __future__ import annotations

import math
from typing import Any

import torch
from torch import Tensor, nn

from lecturekit.checks import check_matches_module, check_points, check_positive_int, check_tensor

__all__ = ["DiagonalGaussian", "StandardNormal", "TridiagonalGaussian"]

_LOG_TWO_PI = math.log(2 * math.pi)


class StandardNormal(nn.Module):
    r"""The standard normal :math:`\mathcal{N}(0, I_d)`,

    .. math::

        \log\rho_B(z) = -\tfrac12 \lVert z\rVert^2 - \tfrac d2 \log 2\pi .

    It has no parameters; an empty buffer records its device and dtype, so samples land
    wherever ``.to(...)`` put the module.

    >>> base = StandardNormal(3)
    >>> base.sample(5).shape
    torch.Size([5, 3])
    >>> round(float(base.log_prob(torch.zeros(3))), 4)  # -1.5 log(2 pi)
    -2.7568
    """

    def __init__(self, dim: int) -> None:
        super().__init__()
        self.dim = check_positive_int(dim, "dim")
        self.register_buffer("_anchor", torch.zeros(0), persistent=False)

    def sample(self, n: int) -> Tensor:
        """``n`` draws of shape ``(n, dim)`` on the module's device and dtype."""
        check_positive_int(n, "n")
        return torch.randn(n, self.dim, dtype=self._anchor.dtype, device=self._anchor.device)

    def log_prob(self, z: Tensor) -> Tensor:
        check_points(z, self.dim, "z")
        return -0.5 * (z.square().sum(-1) + self.dim * _LOG_TWO_PI)

    def config(self) -> dict[str, Any]:
        return {"dim": self.dim}

    @classmethod
    def from_config(cls, dim: int) -> "StandardNormal":
        return cls(dim)

    def extra_repr(self) -> str:
        return f"dim={self.dim}"


class DiagonalGaussian(nn.Module):
    r"""A Gaussian with independent coordinates, :math:`\mathcal{N}(\mu, \mathrm{diag}(\sigma^2))`,

    .. math::

        \log\rho_B(z) = -\sum_{i=1}^d \Big[\frac{(z_i - \mu_i)^2}{2\sigma_i^2}
                        + \log\sigma_i + \tfrac12\log 2\pi\Big].

    Sampling is reparametrised, :math:`z = \mu + \sigma\odot\varepsilon` with
    :math:`\varepsilon\sim\mathcal{N}(0, I)` (Kingma & Welling, ICLR 2014), so with
    ``trainable=True`` the mean ``loc`` and the log standard deviation ``log_scale``
    are parameters that gradients reach; otherwise they are fixed buffers.

    >>> base = DiagonalGaussian(torch.zeros(2), torch.tensor([1.0, 2.0]))
    >>> base.sample(4).shape
    torch.Size([4, 2])
    """

    def __init__(self, loc: Tensor, scale: Tensor, trainable: bool = False) -> None:
        super().__init__()
        for name, value in (("loc", loc), ("scale", scale)):
            if isinstance(value, Tensor):
                check_tensor(value, name, floating=False)
        loc = torch.as_tensor(loc)
        scale = torch.as_tensor(scale, device=loc.device)
        if not loc.is_floating_point():
            loc = loc.to(torch.get_default_dtype())
        if loc.dim() != 1 or loc.numel() == 0:
            raise ValueError(f"loc must have shape (dim,) with dim >= 1, got {tuple(loc.shape)}")
        if scale.shape != loc.shape:
            raise ValueError(f"scale must have the shape of loc, {tuple(loc.shape)}, got {tuple(scale.shape)}")
        scale = scale.to(loc.dtype)
        if not bool(torch.all(torch.isfinite(loc))):
            raise ValueError("loc must be finite")
        if not bool(torch.all((scale > 0) & torch.isfinite(scale))):
            raise ValueError("scale must be positive and finite")
        if not isinstance(trainable, bool):
            raise TypeError(f"trainable must be a bool, got {type(trainable).__name__}")
        self.dim = int(loc.numel())
        self.trainable = trainable
        if trainable:
            self.loc = nn.Parameter(loc.clone())
            self.log_scale = nn.Parameter(scale.log())
        else:
            self.register_buffer("loc", loc.clone())
            self.register_buffer("log_scale", scale.log())

    @property
    def scale(self) -> Tensor:
        r"""The standard deviations :math:`\sigma`."""
        return self.log_scale.exp()

    def sample(self, n: int) -> Tensor:
        check_positive_int(n, "n")
        eps = torch.randn(n, self.dim, dtype=self.loc.dtype, device=self.loc.device)
        return torch.addcmul(self.loc, eps, self.scale)

    def log_prob(self, z: Tensor) -> Tensor:
        check_points(z, self.dim, "z")
        standardised = (z - self.loc) * torch.exp(-self.log_scale)
        return -0.5 * (standardised.square().sum(-1) + self.dim * _LOG_TWO_PI) - self.log_scale.sum()

    def config(self) -> dict[str, Any]:
        return {"dim": self.dim, "trainable": self.trainable}

    @classmethod
    def from_config(cls, dim: int, trainable: bool = False) -> "DiagonalGaussian":
        """A placeholder with the right layout; ``load_state_dict`` fills in ``loc`` and ``scale``."""
        return cls(torch.zeros(dim), torch.ones(dim), trainable=trainable)

    def extra_repr(self) -> str:
        return f"dim={self.dim}, trainable={self.trainable}"


class TridiagonalGaussian(nn.Module):
    r"""A centred Gaussian :math:`\mathcal{N}(0, Q^{-1})` with a *tridiagonal* precision matrix :math:`Q`,

    .. math::

        \log\rho_B(z) = -\tfrac12 z^\top Q z + \tfrac12\log\det Q - \tfrac d2\log 2\pi ,

    the law of a Gaussian Markov chain :math:`z_1 - z_2 - \dots - z_d` (Rue & Held,
    *Gaussian Markov random fields*, 2005, ch. 2). The lattice free field of the :math:`\phi^4`
    chain (:class:`~lecturekit.targets.phi4_chain.Phi4Chain`),
    :math:`\beta\,[\tfrac{aN}{2}\sum_i(\phi_{i+1}-\phi_i)^2 + \tfrac{1}{aN}\sum_i\phi_i^2/(2\sigma^2)]`
    with Dirichlet ends, is one (Gabrié, Rotskoff & Vanden-Eijnden, PNAS 2022: the "coupled" base).

    Everything goes through the banded Cholesky factor :math:`Q = LL^\top`, :math:`L` lower
    bidiagonal with diagonal :math:`\ell_i` and sub-diagonal :math:`m_i`, computed once in
    float64 by the :math:`O(d)` recursion

    .. math::

        \ell_1 = \sqrt{Q_{11}}, \quad m_i = Q_{i+1,i}/\ell_i, \quad
        \ell_{i+1} = \sqrt{Q_{i+1,i+1} - m_i^2} .

    Then :math:`z^\top Q z = \lVert L^\top z\rVert^2` with
    :math:`(L^\top z)_i = \ell_i z_i + m_i z_{i+1}`, :math:`\log\det Q = 2\sum_i\log\ell_i`,
    and :math:`z = L^{-\top}\varepsilon`, :math:`\varepsilon\sim\mathcal{N}(0, I)`, is an exact
    draw (:math:`\operatorname{Cov} z = L^{-\top}L^{-1} = Q^{-1}`), found by back substitution
    :math:`z_d = \varepsilon_d/\ell_d`, :math:`z_i = (\varepsilon_i - m_i z_{i+1})/\ell_i`.
    Both cost :math:`O(d)` per point; no dense matrix is formed (the dense
    :meth:`precision_matrix` and :meth:`covariance_matrix` are for checks and plots).

    The factor is the module's state (buffers ``cholesky_diagonal`` and
    ``cholesky_off_diagonal``): it moves with ``.to(...)``, and :func:`lecturekit.flows.io.save_flow`
    stores it with the flow. The base is fixed (no trainable parameters).

    ``precision_diagonal`` holds the :math:`Q_{ii}`, shape ``(d,)``, and
    ``precision_off_diagonal`` the :math:`Q_{i,i+1} = Q_{i+1,i}`, shape ``(d - 1,)``;
    :math:`Q` must be positive definite (a ``ValueError`` otherwise).

    >>> base = TridiagonalGaussian(torch.tensor([2.0, 2.0, 2.0]), torch.tensor([-1.0, -1.0]))
    >>> base.sample(4).shape
    torch.Size([4, 3])
    >>> round(float(base.log_prob(torch.zeros(3))), 4)  # 0.5 log det Q - 1.5 log(2 pi), det Q = 4
    -2.0637
    """

    def __init__(self, precision_diagonal: Tensor, precision_off_diagonal: Tensor) -> None:
        super().__init__()
        diagonal = torch.as_tensor(precision_diagonal)
        if not diagonal.is_floating_point():
            diagonal = diagonal.to(torch.get_default_dtype())
        if diagonal.dim() != 1 or diagonal.numel() == 0:
            raise ValueError(f"precision_diagonal must have shape (dim,) with dim >= 1, got {tuple(diagonal.shape)}")
        dim = int(diagonal.numel())
        off = torch.as_tensor(precision_off_diagonal, device=diagonal.device)
        if off.shape != (dim - 1,):
            raise ValueError(f"precision_off_diagonal must have shape ({dim - 1},), got {tuple(off.shape)}")
        if not (bool(torch.isfinite(diagonal).all()) and bool(torch.isfinite(off).all())):
            raise ValueError("the precision matrix must be finite")
        chol_diag, chol_off = _tridiagonal_cholesky(diagonal.double(), off.double())
        self.dim = dim
        self.register_buffer("cholesky_diagonal", chol_diag.to(diagonal.dtype))
        self.register_buffer("cholesky_off_diagonal", chol_off.to(diagonal.dtype))

    @property
    def precision_diagonal(self) -> Tensor:
        r""":math:`Q_{ii} = \ell_i^2 + m_{i-1}^2`, shape ``(dim,)``."""
        squares = self.cholesky_diagonal.square()
        return torch.cat([squares[:1], squares[1:] + self.cholesky_off_diagonal.square()])

    @property
    def precision_off_diagonal(self) -> Tensor:
        r""":math:`Q_{i+1,i} = m_i\ell_i`, shape ``(dim - 1,)``."""
        return self.cholesky_off_diagonal * self.cholesky_diagonal[:-1]

    def precision_matrix(self) -> Tensor:
        """The dense ``(dim, dim)`` precision matrix (for checks and plots; O(dim^2) memory)."""
        off = self.precision_off_diagonal
        return torch.diag(self.precision_diagonal) + torch.diag(off, 1) + torch.diag(off, -1)

    def covariance_matrix(self) -> Tensor:
        r"""The dense covariance :math:`Q^{-1}` (for checks and plots; O(dim^3) once)."""
        factor = torch.diag(self.cholesky_diagonal) + torch.diag(self.cholesky_off_diagonal, -1)
        return torch.cholesky_inverse(factor)

    def log_det_precision(self) -> Tensor:
        r""":math:`\log\det Q = 2\sum_i\log\ell_i`."""
        return 2 * self.cholesky_diagonal.log().sum()

    def sample(self, n: int) -> Tensor:
        """``n`` exact draws, shape ``(n, dim)``, by back substitution (O(dim) per draw)."""
        check_positive_int(n, "n")
        eps = torch.randn(n, self.dim, dtype=self.cholesky_diagonal.dtype, device=self.cholesky_diagonal.device)
        return self._solve_upper(eps)

    def _solve_upper(self, eps: Tensor) -> Tensor:
        r"""Solve :math:`L^\top z = \varepsilon` for ``eps`` of shape ``(n, dim)``."""
        ell, m = self.cholesky_diagonal, self.cholesky_off_diagonal
        scaled = eps / ell  # z_i = eps_i / l_i - (m_i / l_i) z_{i+1}
        ratio = m / ell[:-1]
        columns = [scaled[:, -1]]
        for i in range(self.dim - 2, -1, -1):
            columns.append(scaled[:, i] - ratio[i] * columns[-1])
        return torch.stack(columns[::-1], dim=-1)

    def log_prob(self, z: Tensor) -> Tensor:
        check_points(z, self.dim, "z")
        check_matches_module(z, self, "z", "the base")
        ell, m = self.cholesky_diagonal, self.cholesky_off_diagonal
        whitened = z * ell  # (L^T z)_i = l_i z_i + m_i z_{i+1}
        whitened = torch.cat([whitened[..., :-1] + m * z[..., 1:], whitened[..., -1:]], dim=-1)
        return -0.5 * (whitened.square().sum(-1) + self.dim * _LOG_TWO_PI) + ell.log().sum()

    def config(self) -> dict[str, Any]:
        return {"dim": self.dim}

    @classmethod
    def from_config(cls, dim: int) -> "TridiagonalGaussian":
        """A placeholder (identity precision) with the right layout; ``load_state_dict`` fills in the factor."""
        check_positive_int(dim, "dim")
        return cls(torch.ones(dim), torch.zeros(dim - 1))

    def extra_repr(self) -> str:
        return f"dim={self.dim}"


def _tridiagonal_cholesky(diagonal: Tensor, off_diagonal: Tensor) -> tuple[Tensor, Tensor]:
    """Lower bidiagonal Cholesky factor ``(l, m)`` of a symmetric tridiagonal matrix (O(d), sequential)."""
    pivots = [diagonal[0]]
    m: list[Tensor] = []
    for i in range(off_diagonal.numel()):
        if not float(pivots[-1]) > 0:
            break
        m.append(off_diagonal[i] / pivots[-1].sqrt())
        pivots.append(diagonal[i + 1] - m[-1].square())
    if not float(pivots[-1]) > 0:
        raise ValueError("the precision matrix must be positive definite (its Cholesky factorisation failed)")
    return torch.stack(pivots).sqrt(), torch.stack(m) if m else diagonal.new_zeros(0)
