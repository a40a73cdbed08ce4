r"""Base distributions :math:`\rho_B` for normalizing flows.

A flow pushes a simple base density :math:`\rho_B(z)` forward through a bijection
(Papamakarios et al., JMLR 22(57), 2021). Every base here is a :class:`torch.nn.Module`
whose tensors are buffers (or parameters), so ``base.to(device)`` and
``base.double()`` move and cast it, and its state travels in ``state_dict()``.

The interface every base shares (the informed Gaussian of Section 4 follows it too):

- ``dim``: the dimension :math:`d`;
- ``sample(n)``: ``n`` reparametrised draws, shape ``(n, d)``, on the base's device and
  in its dtype (gradients flow to trainable parameters);
- ``log_prob(z)``: the *normalised* log-density of ``z`` of shape ``(..., d)``, shape ``(...)``;
- ``config()`` and ``from_config(**config)``: JSON-like constructor settings from which
  :func:`lecturekit.flows.load_flow` rebuilds a module with the same state-dict layout
  (the values then come from the state dict).
"""

from __future__ import annotations

import math
from typing import Any

import torch
from torch import Tensor, nn

from lecturekit.checks import check_points, check_positive_int, check_tensor  # check_positive_int re-exported

__all__ = ["DiagonalGaussian", "StandardNormal", "check_positive_int"]

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
