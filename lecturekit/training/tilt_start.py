r"""Reverse-KL training that first breaks a :math:`\mathbb{Z}_2` symmetry with a tilt (for :class:`~lecturekit.targets.phi4_chain.Phi4Chain`).

Reverse-KL training (Rezende & Mohamed, ICML 2015) of a flow towards the untilted
:math:`\phi^4` chain of Gabrié, Rotskoff & Vanden-Eijnden (PNAS 2022), whose energy is even,
:math:`U(-\phi) = U(\phi)`, and whose two modes have the field near :math:`+1` or near
:math:`-1`. For a flow that starts as the identity on an even base, the reverse-KL
gradient along a shift of the field towards either sign vanishes by symmetry, and training
lingers near the saddle :math:`\phi = 0`. Training therefore first minimises the reverse KL
towards the tilted target :math:`U_b(\phi) = U(\phi) + \frac1c\sum_i b\,\phi_i`, which prefers one
sign, and then towards :math:`U` itself (:func:`train_reverse_kl_with_tilt_start`).

References:
    | Variational Inference with Normalizing Flows (Rezende & Mohamed, 2015)
    | https://arxiv.org/abs/1505.05770
    | Adaptive Monte Carlo augmented with normalizing flows (Gabrié et al., 2022)
    | https://doi.org/10.1073/pnas.2109420119
"""

from __future__ import annotations

from lecturekit.flows.core import Flow
from lecturekit.targets.phi4_chain import Phi4Chain, _check_real
from lecturekit.training.loop import TrainingHistory, train_reverse_kl

__all__ = ["train_reverse_kl_with_tilt_start"]


def train_reverse_kl_with_tilt_start(
    flow: Flow,
    target: Phi4Chain,
    n_steps: int,
    n_tilted_steps: int = 50,
    batch_size: int = 256,
    lr: float = 1e-2,
    start_tilt: float = 0.5,
    max_grad_norm: float | None = 100.0,
    progress: bool = False,
) -> TrainingHistory:
    r"""Reverse-KL training (:func:`lecturekit.training.loop.train_reverse_kl`) that first breaks the :math:`\mathbb{Z}_2` symmetry.

    A fresh flow is the identity on a symmetric base, and for a symmetric target the reverse-KL
    gradient of any symmetric shift vanishes there by symmetry: training sits for hundreds of
    steps near the saddle :math:`\phi = 0`, half-way between the modes. The first
    ``n_tilted_steps`` steps therefore minimise

    .. math::

        \frac1n\sum_{i=1}^n\Big[\log\rho_\theta(\phi_i) + \beta\Big(U(\phi_i)
            + \frac{b}{c}\sum_{j}\phi_{i,j}\Big)\Big], \qquad \phi_i = T_\theta(z_i),

    the reverse KL towards the target with its tilt raised by :math:`b` = ``start_tilt``
    (:math:`b > 0` favours the negative mode, :math:`c = aN`), then ``n_steps`` steps the
    reverse KL towards ``target`` itself, with a cosine learning-rate decay. Both phases use
    ``batch_size`` samples a step, the learning rate ``lr`` and the gradient clipping
    ``max_grad_norm`` (see :func:`~lecturekit.training.loop.train_flow`). The flow ends in
    one mode (reverse KL is mode seeking); symmetrise it
    (:class:`lecturekit.flows.symmetry.Z2Symmetrized`) to cover both. ``n_tilted_steps = 0``
    skips the first phase (for targets that are not symmetric). Returns both phases' history,
    in order.

    Example:
        >>> import torch
        >>> from lecturekit.flows.core import real_nvp
        >>> from lecturekit.targets.phi4_chain import Phi4Chain
        >>> from lecturekit.training.tilt_start import train_reverse_kl_with_tilt_start
        >>> _ = torch.manual_seed(0)
        >>> target = Phi4Chain(n_sites=10)  # symmetric: no tilt
        >>> flow = real_nvp(10, n_layers=2, hidden=(16,), base=target.coupled_base())
        >>> history = train_reverse_kl_with_tilt_start(flow, target, 30, n_tilted_steps=30, batch_size=64)
        >>> len(history.losses), len(history.ess)
        (60, 60)
        >>> float(flow.sample(500).mean()) < -0.3  # the positive start tilt chose the negative mode
        True

    References:
        | Variational Inference with Normalizing Flows (Rezende & Mohamed, 2015)
        | https://arxiv.org/abs/1505.05770
        | Adaptive Monte Carlo augmented with normalizing flows (Gabrié et al., 2022)
        | https://doi.org/10.1073/pnas.2109420119
    """
    if not isinstance(target, Phi4Chain):
        raise TypeError(f"target must be a Phi4Chain, got {type(target).__name__}")
    if isinstance(n_tilted_steps, bool) or not isinstance(n_tilted_steps, int) or n_tilted_steps < 0:
        raise ValueError(f"n_tilted_steps must be an int >= 0, got {n_tilted_steps!r}")
    start_tilt = _check_real(start_tilt, "start_tilt")
    settings = {"batch_size": batch_size, "lr": lr, "max_grad_norm": max_grad_norm, "progress": progress}
    losses: list[float] = []
    ess: list[float] = []
    if n_tilted_steps:
        tilted = target.with_settings(tilt=target.tilt + start_tilt)
        first = train_reverse_kl(flow, tilted, n_tilted_steps, **settings)  # type: ignore[arg-type]
        losses, ess = first.losses, first.ess
    second = train_reverse_kl(flow, target, n_steps, lr_schedule="cosine", **settings)  # type: ignore[arg-type]
    return TrainingHistory(losses + second.losses, ess + second.ess, {})
