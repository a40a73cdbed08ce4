"""A target wrapper that counts its evaluations (the cost unit of samplers that compare at equal cost)."""

from __future__ import annotations

from torch import Tensor

from lecturekit.targets.base import Target

__all__ = ["CountingTarget"]


class CountingTarget(Target):
    r"""A target that counts its evaluations: points passed to ``log_prob`` or ``log_prob_and_score``.

    Its density, score and ``beta`` are those of ``target``; each call on a batch ``x`` of shape
    ``(..., dim)`` adds the number of points, ``x.shape[:-1].numel()``, to ``n_evaluations``.
    """

    def __init__(self, target: Target) -> None:
        if not isinstance(target, Target):
            raise TypeError(f"target must be a lecturekit.targets.base.Target, got {type(target).__name__}")
        self.target = target
        self.dim = target.dim
        self.beta = target.beta
        self.n_evaluations = 0

    def energy(self, x: Tensor) -> Tensor:
        return -self.log_prob(x) / self.beta

    def log_prob(self, x: Tensor) -> Tensor:
        self.n_evaluations += x.shape[:-1].numel()
        return self.target.log_prob(x)

    def log_prob_and_score(self, x: Tensor) -> tuple[Tensor, Tensor]:
        self.n_evaluations += x.shape[:-1].numel()
        return self.target.log_prob_and_score(x)
