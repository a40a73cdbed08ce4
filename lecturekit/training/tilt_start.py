r"""Reverse-KL training that first breaks a :math:`\mathbb{Z}_2` symmetry with a tilt (for :class:`~lecturekit.targets.phi4_chain.Phi4Chain`)."""

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
    ``n_tilted_steps`` steps therefore train on the target tilted by ``start_tilt`` (towards
    the negative mode), then ``n_steps`` steps on ``target`` itself, with a cosine learning-rate
    decay. The flow ends in one mode (reverse KL is mode seeking); symmetrise it
    (:class:`lecturekit.flows.symmetry.Z2Symmetrized`) to cover both. ``n_tilted_steps = 0`` skips
    the first phase (for targets that are not symmetric). Returns both phases' history, in order.
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
