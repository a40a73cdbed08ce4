r"""Lattice flows that commute with the sign flip :math:`\phi\mapsto-\phi` (a :math:`\mathbb{Z}_2` symmetry).

Without a magnetic field the :math:`\phi^4` action is even, :math:`S(-\phi) = S(\phi)`, so
the target is invariant under the sign flip; in the broken phase it is bimodal, with one
mode per sign of the magnetisation. A flow :math:`f` that is *equivariant*,
:math:`f(-z) = -f(z)`, on an *even* base density, :math:`\rho_B(-z) = \rho_B(z)`, has an
invariant density: with :math:`J(z) = \log|\det\partial f/\partial z|`, equivariance
makes the Jacobian matrix even in :math:`z` (the derivative of an odd map is even), hence
:math:`J(-z) = J(z)`, and

.. math::

    \log\rho_\theta(-x) = \log\rho_B(-z) - J(-z) = \log\rho_B(z) - J(z) = \log\rho_\theta(x),
    \qquad x = f(z).

Such a flow gives the two signs the same mass by construction, whatever its training:
reverse-KL training cannot collapse onto one sign (Nicoli et al., PRE 101, 023304, 2020;
Hackett et al., arXiv:2107.00734, 2021, who also discuss what it still cannot do; Köhler,
Klein & Noé, ICML 2020, for flows equivariant under a group).

:class:`Z2EquivariantConvCoupling` makes the checkerboard coupling of
:class:`~lecturekit.flows.lattice.ConvAffineCoupling` equivariant by symmetrising its
conditioner: with :math:`c = m\odot z` the kept colour and :math:`(\tilde s, \tilde t) =
\mathrm{CNN}(c)`,

.. math::

    s(c) = \tfrac12\big[\tilde s(c) + \tilde s(-c)\big] \ \text{(even)}, \qquad
    t(c) = \tfrac12\big[\tilde t(c) - \tilde t(-c)\big] \ \text{(odd)},

so that :math:`x = m\odot z + \bar m\odot(z\odot e^{b\tanh s(c)} + t(c))` satisfies
:math:`x(-z) = -x(z)` and its log-determinant :math:`\sum_x\bar m_x b\tanh s_x` is even.
(An alternative is the symmetrised density of :mod:`lecturekit.flows.symmetry`, which needs
no special architecture but costs two flow evaluations per density.)

>>> flow = z2_lattice_flow(4, n_layers=2)
>>> z = torch.randn(3, 16)
>>> x, log_det = flow(z)
>>> x_flip, log_det_flip = flow(-z)
>>> bool(torch.allclose(x_flip, -x)), bool(torch.allclose(log_det_flip, log_det))
(True, True)

References:
    | Asymptotically unbiased estimation of physical observables with neural samplers (Nicoli et al., 2020)
    | https://doi.org/10.1103/PhysRevE.101.023304
    | Equivariant Flows: Exact Likelihood Generative Learning for Symmetric Densities (Köhler et al., 2020)
    | https://arxiv.org/abs/2006.02425
    | Flow-based sampling for multimodal distributions in lattice field theory (Hackett et al., 2021)
    | https://arxiv.org/abs/2107.00734
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor, nn

from lecturekit.checks import check_module_class, check_number, check_positive_int, check_widths
from lecturekit.distributions import DiagonalGaussian
from lecturekit.flows.core import Flow
from lecturekit.flows.lattice import ConvAffineCoupling

__all__ = ["Z2EquivariantConvCoupling", "z2_lattice_flow"]


class Z2EquivariantConvCoupling(ConvAffineCoupling):
    r"""A checkerboard affine coupling with an even log-scale and an odd shift: :math:`f(-z) = -f(z)`.

    The conditioner network runs on the kept colour :math:`c` and on :math:`-c` (in one
    batch), and the log-scale is the even part of its output, the shift the odd part
    (module docstring). Everything else, masks, the bound :math:`|s|\le b` and the inverse,
    is :class:`~lecturekit.flows.lattice.ConvAffineCoupling`'s. Like it, the layer starts
    as the identity.

    >>> layer = Z2EquivariantConvCoupling(4, parity=1)
    >>> x, log_det = layer(torch.randn(5, 16))
    >>> x.shape, log_det.shape
    (torch.Size([5, 16]), torch.Size([5]))
    """

    def _shift_and_log_scale(self, kept_field: Tensor) -> tuple[Tensor, Tensor]:
        n = kept_field.shape[0]
        both = torch.cat([kept_field, -kept_field]).unsqueeze(1)
        out = self.conditioner(both) * self.transformed.to(kept_field.dtype)
        plus, minus = out[:n], out[n:]
        raw_log_scale = 0.5 * (plus[:, 0] + minus[:, 0])  # even in c
        shift = 0.5 * (plus[:, 1] - minus[:, 1])  # odd in c
        return shift, torch.tanh(raw_log_scale) * self.scale_bound


def z2_lattice_flow(
    L: int,
    n_layers: int = 16,
    hidden: Sequence[int] = (8, 8),
    kernel_size: int = 3,
    base_scale: float = 1.0,
    scale_bound: float = 2.0,
    activation: type[nn.Module] = nn.LeakyReLU,
) -> Flow:
    r"""A :math:`\mathbb{Z}_2`-invariant flow density on an ``L x L`` torus.

    ``n_layers`` :class:`Z2EquivariantConvCoupling` of alternating colour on a Gaussian base
    of mean zero (fixed, so the base stays even) and a trainable width per site, started
    at ``base_scale``. The density satisfies :math:`\rho_\theta(-x) = \rho_\theta(x)` for
    every value of the parameters; the other settings are those of
    :func:`~lecturekit.flows.lattice.lattice_flow`.

    >>> flow = z2_lattice_flow(4, n_layers=2)
    >>> x = flow.sample(3)
    >>> bool(torch.allclose(flow.log_prob(x), flow.log_prob(-x)))
    True
    """
    check_positive_int(L, "L")
    check_positive_int(n_layers, "n_layers")
    hidden = check_widths(hidden, "hidden")
    base_scale = check_number(base_scale, "base_scale", positive=True)
    scale_bound = check_number(scale_bound, "scale_bound", positive=True)
    activation = check_module_class(activation, "activation")
    base = DiagonalGaussian(torch.zeros(L * L), torch.full((L * L,), base_scale), trainable=True)
    base.loc.requires_grad_(False)  # a nonzero mean would break the symmetry
    layers = [
        Z2EquivariantConvCoupling(L, i % 2, hidden, kernel_size, scale_bound, activation) for i in range(n_layers)
    ]
    return Flow(base, layers)
