r"""Flows for fields on a periodic lattice: checkerboard couplings with convolutional conditioners.

On an :math:`L\times L` torus the natural coupling splits the sites by the two colours of
a checkerboard: every nearest neighbour of a site has the other colour, so one colour can
be transformed conditioned on the other (Albergo, Kanwar & Shanahan, PRD 100, 034515,
2019). The conditioner is a small convolutional network with periodic (circular) padding,
so it is equivariant under the lattice translations that preserve the checkerboard, and
its parameters do not grow with :math:`L` (the tutorial of Albergo et al.,
arXiv:2101.08176: 16 couplings, hidden channels (8, 8), kernel 3).

Fields have the flat layout of :mod:`lecturekit.targets.phi4_lattice`, shape ``(..., L * L)``
(row-major), so :class:`ConvAffineCoupling` is a :class:`~lecturekit.flows.core.Transform`
and :func:`lattice_flow` returns an ordinary :class:`~lecturekit.flows.core.Flow`.

>>> flow = lattice_flow(4, n_layers=2)
>>> x, log_q = flow.sample_and_log_prob(3)
>>> x.shape, bool(torch.allclose(log_q, flow.log_prob(x), atol=1e-5))
(torch.Size([3, 16]), True)

References:
    | Density estimation using Real NVP (Dinh et al., 2017)
    | https://arxiv.org/abs/1605.08803
    | Flow-based generative models for Markov chain Monte Carlo in lattice field theory (Albergo et al., 2019)
    | https://doi.org/10.1103/PhysRevD.100.034515
    | Introduction to Normalizing Flows for Lattice Field Theory (Albergo et al., 2021)
    | https://arxiv.org/abs/2101.08176
"""

from __future__ import annotations

import inspect
from collections.abc import Sequence

import torch
from torch import Tensor, nn
from torch.nn import functional as F

from lecturekit.checks import check_module_class, check_number, check_points, check_positive_int, check_widths
from lecturekit.distributions import StandardNormal
from lecturekit.flows.core import Flow, Transform, _check_parity, checkerboard_mask

__all__ = ["ConvAffineCoupling", "PeriodicConvNet", "lattice_flow"]


class PeriodicConvNet(nn.Module):
    r"""A stack of 2D convolutions on the torus: ``in_channels -> hidden[0] -> ... -> out_channels``.

    Equivalent to every convolution padding its input circularly, but cheaper: the input
    is padded once, by the sum of the layers' half-widths, and the layers then run
    without padding. (A convolution and a pointwise activation commute with lattice
    translations, so the features computed on the padded border are exactly the periodic
    images of the interior ones.) Input and output have shape ``(n, channels, L, L)``.
    With ``zero_last`` the last layer starts at zero, so the network outputs zero.
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        hidden: Sequence[int] = (8, 8),
        kernel_size: int = 3,
        activation: type[nn.Module] = nn.LeakyReLU,
        zero_last: bool = True,
    ) -> None:
        super().__init__()
        check_positive_int(in_channels, "in_channels")
        check_positive_int(out_channels, "out_channels")
        hidden = check_widths(hidden, "hidden")
        check_positive_int(kernel_size, "kernel_size")
        if kernel_size % 2 == 0:
            raise ValueError(f"kernel_size must be odd (a centred stencil), got {kernel_size}")
        activation = check_module_class(activation, "activation")
        in_place = "inplace" in inspect.signature(activation).parameters
        widths = [in_channels, *hidden, out_channels]
        layers: list[nn.Module] = []
        for i, (fan_in, fan_out) in enumerate(zip(widths[:-1], widths[1:])):
            layers.append(nn.Conv2d(fan_in, fan_out, kernel_size))
            if i < len(widths) - 2:
                layers.append(activation(inplace=True) if in_place else activation())
        if zero_last:
            nn.init.zeros_(layers[-1].weight)
            nn.init.zeros_(layers[-1].bias)
        self.layers = nn.Sequential(*layers)
        self.padding = (kernel_size // 2) * (len(widths) - 1)

    def forward(self, x: Tensor) -> Tensor:
        if self.padding > min(x.shape[-2:]):
            # Circular padding wraps at most once; deeper receptive fields need per-layer padding.
            raise ValueError(f"lattice {tuple(x.shape[-2:])} is smaller than the receptive field's padding {self.padding}")
        return self.layers(F.pad(x, (self.padding,) * 4, mode="circular"))


class ConvAffineCoupling(Transform):
    r"""Affine coupling on one colour of a checkerboard, conditioned by a periodic convolutional net.

    With :math:`m_x = 1` on the kept colour (``parity``, see
    :func:`~lecturekit.flows.core.checkerboard_mask`) and :math:`\bar m = 1 - m`,

    .. math::

        x = m\odot z + \bar m\odot\big(z\odot e^{s} + t\big), \qquad
        (s, t) = \big(b\tanh\tilde s,\ \tilde t\big), \quad
        (\tilde s, \tilde t) = \mathrm{CNN}(m\odot z),

    one network giving both fields as two output channels. Only the transformed sites'
    :math:`s` enter, so :math:`\log|\det\partial x/\partial z| = \sum_x \bar m_x s_x`, and
    :math:`z = m\odot x + \bar m\odot(x - t)\odot e^{-s}` with the same :math:`(s, t)`,
    since :math:`m\odot x = m\odot z`. As in :class:`~lecturekit.flows.core.AffineCoupling` the
    network's last layer starts at zero (the layer is the identity) and :math:`|s|\le b`
    (``scale_bound``).

    >>> layer = ConvAffineCoupling(4, parity=0)
    >>> x, log_det = layer(torch.randn(5, 16))
    >>> x.shape, log_det.shape
    (torch.Size([5, 16]), torch.Size([5]))
    """

    def __init__(
        self,
        L: int,
        parity: int,
        hidden: Sequence[int] = (8, 8),
        kernel_size: int = 3,
        scale_bound: float = 2.0,
        activation: type[nn.Module] = nn.LeakyReLU,
    ) -> None:
        super().__init__()
        kept = checkerboard_mask(L, L, _check_parity(parity)).reshape(L, L)
        self.L = L
        self.dim = L * L
        self.parity = parity
        self.scale_bound = check_number(scale_bound, "scale_bound", positive=True)
        self.register_buffer("kept", kept.float(), persistent=False)
        # One (2, L, L) mask zeroes both output channels on the kept sites.
        self.register_buffer("transformed", (~kept).float().expand(2, L, L).clone(), persistent=False)
        self.conditioner = PeriodicConvNet(1, 2, hidden, kernel_size, activation)

    def _shift_and_log_scale(self, kept_field: Tensor) -> tuple[Tensor, Tensor]:
        """``(t, s)`` on the lattice ``(n, L, L)``, both zero on the kept sites."""
        out = self.conditioner(kept_field.unsqueeze(1)) * self.transformed.to(kept_field.dtype)
        raw_log_scale, shift = out.unbind(1)
        return shift, torch.tanh(raw_log_scale) * self.scale_bound  # tanh(0) = 0 on kept sites

    def forward(self, z: Tensor) -> tuple[Tensor, Tensor]:
        check_points(z, self.dim, "z")
        field = z.reshape(-1, self.L, self.L)
        shift, log_scale = self._shift_and_log_scale(field * self.kept.to(z.dtype))
        x = torch.addcmul(shift, field, log_scale.exp())  # = z on kept sites, where s = t = 0
        return x.reshape(z.shape), log_scale.sum((-2, -1)).reshape(z.shape[:-1])

    def inverse(self, x: Tensor) -> tuple[Tensor, Tensor]:
        check_points(x, self.dim, "x")
        field = x.reshape(-1, self.L, self.L)
        shift, log_scale = self._shift_and_log_scale(field * self.kept.to(x.dtype))
        z = (field - shift) * torch.exp(-log_scale)
        return z.reshape(x.shape), -log_scale.sum((-2, -1)).reshape(x.shape[:-1])

    def extra_repr(self) -> str:
        return f"L={self.L}, parity={self.parity}, scale_bound={self.scale_bound}"


def lattice_flow(
    L: int,
    n_layers: int = 16,
    hidden: Sequence[int] = (8, 8),
    kernel_size: int = 3,
    base: nn.Module | None = None,
    scale_bound: float = 2.0,
    activation: type[nn.Module] = nn.LeakyReLU,
) -> Flow:
    r"""A flow for fields on an ``L x L`` torus: ``n_layers`` :class:`ConvAffineCoupling` of alternating colour.

    The defaults are the architecture of Albergo et al.'s tutorial (arXiv:2101.08176):
    16 couplings, conditioners with hidden channels (8, 8) and 3x3 kernels. ``base``
    defaults to :class:`~lecturekit.distributions.StandardNormal` of dimension ``L * L``;
    the flow starts as the identity map. :func:`~lecturekit.flows.io.save_flow` and
    :func:`~lecturekit.flows.io.load_flow` store and rebuild it.

    >>> lattice_flow(8).sample(2).shape
    torch.Size([2, 64])
    """
    check_positive_int(L, "L")
    check_positive_int(n_layers, "n_layers")
    hidden = check_widths(hidden, "hidden")
    scale_bound = check_number(scale_bound, "scale_bound", positive=True)
    activation = check_module_class(activation, "activation")
    if base is None:
        base = StandardNormal(L * L)
    elif getattr(base, "dim", None) != L * L:
        raise ValueError(f"base must have dim L * L = {L * L}, got {getattr(base, 'dim', None)!r}")
    layers = [ConvAffineCoupling(L, i % 2, hidden, kernel_size, scale_bound, activation) for i in range(n_layers)]
    flow = Flow(base, layers)
    flow.settings = {  # for lecturekit.flows.io.save_flow / load_flow
        "builder": "lattice_flow",
        "L": L,
        "n_layers": n_layers,
        "hidden": list(hidden),
        "kernel_size": kernel_size,
        "scale_bound": scale_bound,
        "activation": activation.__name__,
    }
    return flow
