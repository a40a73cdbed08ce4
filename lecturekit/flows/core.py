r"""Normalizing flows: invertible maps with a tractable Jacobian.

A flow pushes a base density :math:`\rho_B` forward through a bijection
:math:`x = T_\theta(z)`; by the change of variables (Rezende & Mohamed, ICML 2015;
Papamakarios et al., JMLR 22(57), 2021)

.. math::

    \log\rho_\theta(x) = \log\rho_B\big(T_\theta^{-1}(x)\big)
        + \log\big|\det \nabla_x T_\theta^{-1}(x)\big| .

A composition :math:`T_\theta = T_K\circ\dots\circ T_1` adds the log-determinants of its
pieces. Conventions here:

- a :class:`Transform` maps in the *sampling direction*: ``forward(z)`` returns
  :math:`x = T(z)` and :math:`\log|\det \partial x/\partial z|`; ``inverse(x)`` returns
  :math:`z = T^{-1}(x)` and :math:`\log|\det \partial z/\partial x|` (the negative of the
  former at the matching point);
- tensors are batch-first, shape ``(..., dim)`` in and ``(...)`` for log-determinants, on
  whatever device the module lives on, in the module's dtype: a tensor on another device or
  in another floating dtype (``float64`` points into a ``float32`` flow) is refused with an
  error naming it, never silently converted;
- :meth:`Flow.log_prob` is ``-inf`` at points with an infinite coordinate and NaN at points
  with a NaN coordinate (:func:`lecturekit.checks.fill_at_infinity`).

The building block is the affine coupling layer of Real NVP (Dinh, Sohl-Dickstein &
Bengio, ICLR 2017), :class:`AffineCoupling`, whose boolean mask marks the coordinates
that pass through unchanged (``True``); :func:`half_mask`, :func:`alternating_mask` and
:func:`checkerboard_mask` make the usual ones. :func:`real_nvp` stacks couplings with
complementary masks into a :class:`Flow`; :func:`save_flow` and :func:`load_flow` store
and rebuild one.

>>> flow = real_nvp(2, n_layers=4, hidden=(32, 32))
>>> x, log_q = flow.sample_and_log_prob(5)
>>> bool(torch.allclose(log_q, flow.log_prob(x), atol=1e-5))
True

References:
    | Variational Inference with Normalizing Flows (Rezende & Mohamed, 2015)
    | https://arxiv.org/abs/1505.05770
    | Normalizing Flows for Probabilistic Modeling and Inference (Papamakarios et al., 2021)
    | https://arxiv.org/abs/1912.02762
    | Density estimation using Real NVP (Dinh et al., 2017)
    | https://arxiv.org/abs/1605.08803
    | Glow: Generative Flow with Invertible 1x1 Convolutions (Kingma & Dhariwal, 2018)
    | https://arxiv.org/abs/1807.03039
    | Flow-based generative models for Markov chain Monte Carlo in lattice field theory (Albergo et al., 2019)
    | https://doi.org/10.1103/PhysRevD.100.034515
"""

from __future__ import annotations

import inspect
import math
from collections.abc import Sequence
from typing import Any

import torch
from torch import Tensor, nn

from lecturekit.checks import (
    check_matches_module,
    check_module_class,
    check_number,
    check_points,
    check_positive_int,
    check_widths,
    fill_at_infinity,
)
from lecturekit.distributions import StandardNormal

__all__ = [
    "AffineCoupling",
    "Flow",
    "Transform",
    "alternating_mask",
    "checkerboard_mask",
    "half_mask",
    "mlp",
    "real_nvp",
]

MASKS = ("alternating", "half", "checkerboard")
_FORMAT = "lecturekit.flow"
_FORMAT_VERSION = 1


class Transform(nn.Module):
    r"""A bijection :math:`T` of :math:`\mathbb{R}^d` with a tractable log-Jacobian.

    Subclasses implement both directions:

    - ``forward(z) -> (x, log_det)`` with :math:`x = T(z)` and
      ``log_det`` :math:`= \log|\det \partial T(z)/\partial z|`;
    - ``inverse(x) -> (z, log_det)`` with :math:`z = T^{-1}(x)` and
      ``log_det`` :math:`= \log|\det \partial T^{-1}(x)/\partial x|`.
    """

    dim: int

    def forward(self, z: Tensor) -> tuple[Tensor, Tensor]:  # pragma: no cover - abstract
        raise NotImplementedError

    def inverse(self, x: Tensor) -> tuple[Tensor, Tensor]:  # pragma: no cover - abstract
        raise NotImplementedError


# --------------------------------------------------------------------------- masks


def _check_dim(dim: object, name: str = "dim", minimum: int = 2) -> int:
    check_positive_int(dim, name)
    if dim < minimum:  # type: ignore[operator]
        raise ValueError(f"{name} must be at least {minimum} to split it into two parts, got {dim!r}")
    return dim  # type: ignore[return-value]


def _check_parity(parity: object) -> int:
    if not isinstance(parity, int) or isinstance(parity, bool):
        raise TypeError(f"parity must be 0 or 1, got {type(parity).__name__} {parity!r}")
    if parity not in (0, 1):
        raise ValueError(f"parity must be 0 or 1, got {parity!r}")
    return parity


def half_mask(dim: int, flip: bool = False) -> Tensor:
    """Boolean mask of shape ``(dim,)``: the first half ``True`` (the second with ``flip``).

    ``dim`` must be even, so both halves have ``dim // 2`` coordinates.

    >>> half_mask(4), half_mask(4, flip=True)
    (tensor([ True,  True, False, False]), tensor([False, False,  True,  True]))
    """
    _check_dim(dim)
    if dim % 2:
        raise ValueError(f"dim must be even for a half mask, got {dim}; use alternating_mask for odd dimensions")
    mask = torch.arange(dim) < dim // 2
    return ~mask if flip else mask


def alternating_mask(dim: int, parity: int = 0) -> Tensor:
    """Boolean mask of shape ``(dim,)``, ``True`` on even indices (``parity=0``) or odd ones (``parity=1``).

    >>> alternating_mask(5), alternating_mask(5, parity=1)
    (tensor([ True, False,  True, False,  True]), tensor([False,  True, False,  True, False]))
    """
    _check_dim(dim)
    return torch.arange(dim) % 2 == _check_parity(parity)


def checkerboard_mask(height: int, width: int, parity: int = 0) -> Tensor:
    r"""Checkerboard mask of an ``height x width`` lattice, flattened row-major to ``(height * width,)``.

    Site :math:`(r, c)` (flat index :math:`r\,w + c`) is ``True`` when :math:`(r + c) \bmod 2`
    equals ``parity``. The lattices here are square with an even side ``L``: then
    the two colours have :math:`L^2/2` sites each, and every nearest neighbour, including
    across the periodic boundary, has the other colour (Albergo, Kanwar & Shanahan, PRD 100,
    034515, 2019). Other shapes raise ``ValueError``.

    >>> checkerboard_mask(2, 2)
    tensor([ True, False, False,  True])
    """
    check_positive_int(height, "height")
    check_positive_int(width, "width")
    if height != width:
        raise ValueError(f"checkerboard masks need a square lattice, got height={height}, width={width}")
    if height % 2:
        raise ValueError(f"checkerboard masks need an even lattice side, got {height}")
    _check_parity(parity)
    rows = torch.arange(height).unsqueeze(1)
    cols = torch.arange(width).unsqueeze(0)
    return ((rows + cols) % 2 == parity).reshape(-1)


# --------------------------------------------------------------------------- coupling


def mlp(
    in_features: int,
    out_features: int,
    hidden: Sequence[int],
    activation: type[nn.Module] = nn.ReLU,
    zero_last: bool = True,
) -> nn.Sequential:
    """A fully connected network ``in -> hidden[0] -> ... -> out`` with ``activation`` between layers.

    With ``zero_last`` the last layer's weight and bias start at zero, so the network
    outputs exactly zero at initialisation. Activations that can work in place (ReLU,
    SiLU, ...) do, which saves a copy of every hidden layer.
    """
    in_place = "inplace" in inspect.signature(activation).parameters
    widths = [in_features, *hidden, out_features]
    layers: list[nn.Module] = []
    for i, (fan_in, fan_out) in enumerate(zip(widths[:-1], widths[1:])):
        layers.append(nn.Linear(fan_in, fan_out))
        if i < len(widths) - 2:
            layers.append(activation(inplace=True) if in_place else activation())
    if zero_last:
        nn.init.zeros_(layers[-1].weight)
        nn.init.zeros_(layers[-1].bias)
    return nn.Sequential(*layers)


class AffineCoupling(Transform):
    r"""Affine coupling layer of Real NVP (Dinh, Sohl-Dickstein & Bengio, ICLR 2017).

    A boolean ``mask`` splits :math:`z` into a part :math:`z_A` (``True``) that passes
    through unchanged and conditions the transformation of the rest, :math:`z_B`:

    .. math::

        x_A = z_A, \qquad x_B = z_B \odot e^{s(z_A)} + t(z_A),

    with log-scale :math:`s = b \tanh(\tilde s)` bounded by ``scale_bound`` :math:`b`
    and :math:`(t, \tilde s)` the two halves of one conditioner network's output. With
    the coordinates ordered :math:`(A, B)` the Jacobian is block triangular, with the
    identity and :math:`\mathrm{diag}(e^{s})` on its diagonal, so

    .. math::

        \log\Big|\det\frac{\partial x}{\partial z}\Big| = \sum_{i\in B} s_i(z_A),
        \qquad z_B = (x_B - t(x_A))\odot e^{-s(x_A)} .

    The conditioner's last layer starts at zero, so a fresh layer is the identity
    (as in Glow, Kingma & Dhariwal 2018) and training starts from the base density.

    The split never multiplies by the mask: the two parts are gathered by index
    (``index_select``) and the result is written back by index (``index_copy``), and
    masks made of two contiguous blocks (:func:`half_mask`) use views and one
    concatenation instead. Only the :math:`|A|` kept coordinates enter the conditioner and
    only the :math:`|B|` transformed ones are computed.

    ``mask`` is a boolean tensor of shape ``(dim,)`` with at least one ``True`` and one
    ``False`` (see :func:`half_mask`, :func:`alternating_mask`, :func:`checkerboard_mask`).
    The conditioner is an :func:`mlp` with hidden layers of widths ``hidden`` and the
    nonlinearity ``activation`` (an ``nn.Module`` class). ``scale_bound`` is the bound
    :math:`b` on :math:`|s_i|`: it keeps a layer from stretching by more than :math:`e^{b}`
    per coordinate, which keeps early training stable.

    >>> layer = AffineCoupling(alternating_mask(4))
    >>> x, log_det = layer(torch.randn(8, 4))
    >>> x.shape, log_det.shape
    (torch.Size([8, 4]), torch.Size([8]))
    """

    def __init__(
        self,
        mask: Tensor,
        hidden: Sequence[int] = (64, 64),
        scale_bound: float = 2.0,
        activation: type[nn.Module] = nn.ReLU,
    ) -> None:
        super().__init__()
        if not isinstance(mask, Tensor) or mask.dtype != torch.bool or mask.dim() != 1:
            raise TypeError(f"mask must be a 1-d boolean tensor, got {mask!r}")
        n_kept = int(mask.sum())
        if n_kept == 0 or n_kept == mask.numel():
            raise ValueError("mask must contain both True (kept) and False (transformed) entries")
        hidden = check_widths(hidden, "hidden")
        self.dim = int(mask.numel())
        self.scale_bound = check_number(scale_bound, "scale_bound", positive=True)
        self.register_buffer("mask", mask.clone())
        self.register_buffer("idx_kept", torch.nonzero(mask).squeeze(-1), persistent=False)
        self.register_buffer("idx_transformed", torch.nonzero(~mask).squeeze(-1), persistent=False)
        # Masks made of two contiguous blocks (half masks) split into views instead of copies.
        n_first = int(torch.nonzero(mask != mask[0])[0])
        self._blocks = (n_first, self.dim - n_first) if bool(torch.all(mask[n_first:] != mask[0])) else None
        self._kept_first = bool(mask[0])
        # One network returns the shift t and the raw log-scale side by side.
        activation = check_module_class(activation, "activation")
        self.conditioner = mlp(n_kept, 2 * (self.dim - n_kept), hidden, activation)

    def _split(self, x: Tensor) -> tuple[Tensor, Tensor]:
        """``(x_A, x_B)``: the kept and the transformed coordinates."""
        if self._blocks is not None:
            first, second = x.split(self._blocks, dim=-1)
            return (first, second) if self._kept_first else (second, first)
        return x.index_select(-1, self.idx_kept), x.index_select(-1, self.idx_transformed)

    def _merge(self, x: Tensor, kept: Tensor, transformed: Tensor) -> Tensor:
        """``x`` with its transformed coordinates replaced by ``transformed``."""
        if self._blocks is not None:
            return torch.cat((kept, transformed) if self._kept_first else (transformed, kept), dim=-1)
        return x.index_copy(-1, self.idx_transformed, transformed)

    def forward(self, z: Tensor) -> tuple[Tensor, Tensor]:
        check_points(z, self.dim, "z")
        check_matches_module(z, self, "z", "the coupling layer")
        z_a, z_b = self._split(z)
        shift, raw = self.conditioner(z_a).chunk(2, dim=-1)
        log_scale = torch.tanh(raw) * self.scale_bound
        x_b = torch.addcmul(shift, z_b, log_scale.exp())
        return self._merge(z, z_a, x_b), log_scale.sum(-1)

    def inverse(self, x: Tensor) -> tuple[Tensor, Tensor]:
        check_points(x, self.dim, "x")
        check_matches_module(x, self, "x", "the coupling layer")
        x_a, x_b = self._split(x)
        shift, raw = self.conditioner(x_a).chunk(2, dim=-1)
        minus_log_scale = torch.tanh(raw) * -self.scale_bound
        z_b = (x_b - shift) * minus_log_scale.exp()
        return self._merge(x, x_a, z_b), minus_log_scale.sum(-1)

    def extra_repr(self) -> str:
        return f"dim={self.dim}, kept={self.idx_kept.numel()}, scale_bound={self.scale_bound}"


# --------------------------------------------------------------------------- flow


class Flow(nn.Module):
    r"""A normalizing flow: a base density pushed forward through a chain of transforms.

    With :math:`x = T(z) = T_K\circ\dots\circ T_1(z)` and :math:`z\sim\rho_B`,

    .. math::

        \log\rho_\theta(x) = \log\rho_B(z) - \sum_{k=1}^K
            \log\Big|\det\frac{\partial T_k}{\partial z_{k-1}}\Big|, \qquad z = T^{-1}(x)

    (Papamakarios et al., JMLR 2021, eq. 2). ``log_prob`` evaluates it through the
    inverse; ``sample_and_log_prob`` through the forward pass, reparametrised so that
    gradients of the samples *and* of their log-densities reach every parameter
    (needed for reverse-KL training, :func:`lecturekit.training.loop.reverse_kl_loss`).

    ``base`` is a base distribution module with ``dim``, ``sample(n)`` and ``log_prob(z)``
    (see :mod:`lecturekit.distributions`); ``transforms`` are the :class:`Transform` pieces
    :math:`T_1,\dots,T_K`, applied in this order in the sampling direction, each of dimension
    ``base.dim``.
    """

    def __init__(self, base: nn.Module, transforms: Sequence[Transform]) -> None:
        super().__init__()
        if not isinstance(base, nn.Module) or not all(hasattr(base, a) for a in ("dim", "sample", "log_prob")):
            raise TypeError(f"base must be an nn.Module with dim, sample and log_prob, got {type(base).__name__}")
        transforms = list(transforms)
        for i, transform in enumerate(transforms):
            if not isinstance(transform, Transform):
                raise TypeError(f"transforms[{i}] must be a Transform, got {type(transform).__name__}")
            if transform.dim != base.dim:
                raise ValueError(f"transforms[{i}] has dim {transform.dim} but base has dim {base.dim}")
        self.dim = int(base.dim)
        self.base = base
        self.transforms = nn.ModuleList(transforms)
        self.settings: dict[str, Any] | None = None  # filled in by real_nvp, used by save_flow

    def forward(self, z: Tensor) -> tuple[Tensor, Tensor]:
        """Map base points to data space: ``(x, log|det dx/dz|)``."""
        check_points(z, self.dim, "z")
        check_matches_module(z, self, "z", "the flow")
        log_det = None
        for transform in self.transforms:
            z, ld = transform(z)
            log_det = ld if log_det is None else log_det + ld
        return z, z.new_zeros(z.shape[:-1]) if log_det is None else log_det

    def inverse(self, x: Tensor) -> tuple[Tensor, Tensor]:
        """Map data points to the base: ``(z, log|det dz/dx|)``."""
        check_points(x, self.dim, "x")
        check_matches_module(x, self, "x", "the flow")
        log_det = None
        for transform in reversed(self.transforms):
            x, ld = transform.inverse(x)
            log_det = ld if log_det is None else log_det + ld
        return x, x.new_zeros(x.shape[:-1]) if log_det is None else log_det

    def log_prob(self, x: Tensor) -> Tensor:
        r""":math:`\log\rho_\theta(x)` for ``x`` of shape ``(..., dim)``.

        ``-inf`` at points with an infinite coordinate (the density vanishes there), NaN at
        points with a NaN coordinate, as torch's own functions propagate NaN.
        """
        z, log_det = self.inverse(x)
        return fill_at_infinity(self.base.log_prob(z) + log_det, x, -math.inf)

    def sample_and_log_prob(self, n: int) -> tuple[Tensor, Tensor]:
        r"""``n`` samples :math:`x = T(z)` and their :math:`\log\rho_\theta(x)`, differentiable in the parameters."""
        z = self.base.sample(n)
        x, log_det = self(z)
        return x, self.base.log_prob(z) - log_det

    def sample(self, n: int) -> Tensor:
        """``n`` samples of shape ``(n, dim)``, without a graph."""
        with torch.no_grad():
            return self(self.base.sample(n))[0]


# --------------------------------------------------------------------------- builder and files


def _masks(dim: int, n_layers: int, mask: str, lattice_shape: Sequence[int] | None) -> list[Tensor]:
    if mask not in MASKS:
        raise ValueError(f"mask must be one of {MASKS}, got {mask!r}")
    if mask == "checkerboard":
        if lattice_shape is None or len(lattice_shape) != 2:
            raise ValueError(f"mask='checkerboard' needs lattice_shape=(height, width), got {lattice_shape!r}")
        height, width = lattice_shape
        if height * width != dim:
            raise ValueError(f"lattice_shape {tuple(lattice_shape)} has {height * width} sites but dim is {dim}")
        return [checkerboard_mask(height, width, parity=i % 2) for i in range(n_layers)]
    if lattice_shape is not None:
        raise ValueError(f"lattice_shape is only used with mask='checkerboard', got mask={mask!r}")
    if mask == "half":
        return [half_mask(dim, flip=bool(i % 2)) for i in range(n_layers)]
    return [alternating_mask(dim, parity=i % 2) for i in range(n_layers)]


def real_nvp(
    dim: int,
    n_layers: int = 8,
    hidden: Sequence[int] = (64, 64),
    mask: str = "alternating",
    lattice_shape: Sequence[int] | None = None,
    base: nn.Module | None = None,
    scale_bound: float = 2.0,
    activation: type[nn.Module] = nn.ReLU,
) -> Flow:
    r"""A Real NVP flow (Dinh, Sohl-Dickstein & Bengio, ICLR 2017): ``n_layers`` affine couplings.

    Consecutive layers use complementary masks, so every coordinate is transformed in
    every other layer:

    - ``"alternating"``: even / odd indices (any ``dim >= 2``);
    - ``"half"``: first / second half (even ``dim``);
    - ``"checkerboard"``: the two colours of a square ``lattice_shape = (L, L)`` lattice
      with even ``L`` and ``dim = L * L``, sites flattened row-major (for lattice fields).

    ``base`` defaults to :class:`~lecturekit.distributions.StandardNormal`. The flow
    starts as the identity map (zero-initialised conditioner outputs).

    >>> flow = real_nvp(2, n_layers=4, hidden=(16, 16))
    >>> flow.sample(3).shape
    torch.Size([3, 2])
    """
    _check_dim(dim)
    check_positive_int(n_layers, "n_layers")
    hidden = check_widths(hidden, "hidden")
    scale_bound = check_number(scale_bound, "scale_bound", positive=True)
    activation = check_module_class(activation, "activation")
    if not isinstance(mask, str):
        raise TypeError(f"mask must be one of {MASKS}, got {mask!r}")
    masks = _masks(dim, n_layers, mask, lattice_shape)
    if base is None:
        base = StandardNormal(dim)
    elif getattr(base, "dim", None) != dim:
        raise ValueError(f"base must have dim {dim}, got {getattr(base, 'dim', None)!r}")
    layers = [AffineCoupling(m, hidden, scale_bound, activation) for m in masks]
    flow = Flow(base, layers)
    flow.settings = {
        "dim": dim,
        "n_layers": n_layers,
        "hidden": list(hidden),
        "mask": mask,
        "lattice_shape": None if lattice_shape is None else [int(s) for s in lattice_shape],
        "scale_bound": scale_bound,
        "activation": activation.__name__,
    }
    return flow
