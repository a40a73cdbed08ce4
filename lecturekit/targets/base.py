r"""Target densities known up to a normalising constant.

A target is a Boltzmann density on :math:`\mathbb{R}^d`,

.. math::

    \rho_*(x) = \frac{1}{Z_\beta} e^{-\beta U(x)},

described by its dimension ``dim``, its energy :math:`U` and its inverse temperature
:math:`\beta`. Every method takes a batch ``x`` of shape ``(..., dim)`` and returns a
tensor of shape ``(...)`` on ``x``'s device. ``log_prob`` is the *unnormalised*
:math:`-\beta U(x)` unless the class says otherwise (the Gaussian mixture is
normalised, which makes exact checks possible).

Non-finite points follow one policy (:func:`lecturekit.checks.fill_at_infinity`): a point
with an infinite coordinate gets energy ``+inf`` (``log_prob = -inf``), a point with a NaN
coordinate gets NaN, point by point, without an error, as torch's own functions do; the
samplers reject both. Bad *arguments* (wrong type, shape, dtype, device) raise at once.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable
from typing import Protocol, runtime_checkable

import torch
from torch import Tensor

__all__ = ["Proposal", "Target", "check_target_and_proposal", "log_prob_and_score_by_autograd"]


def log_prob_and_score_by_autograd(log_prob: Callable[[Tensor], Tensor], x: Tensor) -> tuple[Tensor, Tensor]:
    r"""``log_prob(x)`` and its gradient :math:`\nabla_x` by autograd, both detached.

    The gradient is taken with respect to ``x`` only (a module's parameters inside
    ``log_prob`` collect nothing); it works inside ``torch.no_grad()``.
    """
    with torch.enable_grad():
        x = x.detach().requires_grad_(True)
        value = log_prob(x)
        (score,) = torch.autograd.grad(value.sum(), x)
    return value.detach(), score


class Target(ABC):
    r"""A density :math:`\rho(x) \propto e^{-\beta U(x)}` on :math:`\mathbb{R}^{d}`.

    Subclasses implement :meth:`energy`; :meth:`log_prob` and :meth:`log_prob_and_score`
    follow (override the latter with an analytic gradient where it is cheaper).
    Energies outside a support are ``+inf`` (so ``log_prob`` is ``-inf``).
    """

    dim: int
    beta: float = 1.0

    @abstractmethod
    def energy(self, x: Tensor) -> Tensor:
        """Energy :math:`U(x)` for ``x`` of shape ``(..., dim)``; returns shape ``(...)``."""

    def log_prob(self, x: Tensor) -> Tensor:
        r"""Log-density up to a constant, :math:`-\beta U(x)`."""
        return -self.beta * self.energy(x)

    def log_prob_and_score(self, x: Tensor) -> tuple[Tensor, Tensor]:
        r"""Return :math:`\log\rho(x)` and the score :math:`\nabla_x \log\rho(x)`.

        The default uses autograd; the result is detached from any graph.
        """
        return log_prob_and_score_by_autograd(self.log_prob, x)

    def score(self, x: Tensor) -> Tensor:
        r"""The score :math:`\nabla_x \log\rho(x)`."""
        return self.log_prob_and_score(x)[1]


@runtime_checkable
class Proposal(Protocol):
    """A distribution we can sample and whose *normalised* log-density we know.

    :class:`lecturekit.targets.toy.GaussianMixture` qualifies, and so do normalizing flows.
    """

    dim: int

    def sample(self, n: int) -> Tensor:
        """``n`` samples, shape ``(n, dim)``."""
        ...

    def log_prob(self, x: Tensor) -> Tensor:
        """Normalised log-density, shape ``(n,)``."""
        ...


def check_target_and_proposal(target: object, proposal: object, name: str = "proposal") -> None:
    """Raise unless ``target`` is a :class:`~lecturekit.targets.base.Target` and ``proposal`` (called
    ``name`` in the message) a :class:`Proposal` of the same dimension."""
    if not isinstance(target, Target):
        raise TypeError(f"target must be a lecturekit.targets.base.Target, got {type(target).__name__}")
    if not isinstance(proposal, Proposal):
        raise TypeError(f"{name} must have dim, sample(n) and a normalised log_prob(x), got {type(proposal).__name__}")
    if proposal.dim != target.dim:
        raise ValueError(f"{name}.dim={proposal.dim} does not match target.dim={target.dim}")
