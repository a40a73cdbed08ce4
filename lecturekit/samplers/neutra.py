r"""NeuTra: local MCMC in the latent space of a normalizing flow.

Neural transport MCMC (Hoffman, Sountsov, Dillon, Langmore, Tran & Vasudevan, "NeuTra-lizing
bad geometry in Hamiltonian Monte Carlo using neural transport", arXiv:1903.03704, 2019) runs
an ordinary local kernel (random walk, MALA, HMC) not on the target :math:`\rho_*(x)` but on
its *push-backward* through a flow :math:`x = T(z)`,

.. math::

    \tilde\rho(z) = \rho_*\big(T(z)\big)\,\Big|\det\frac{\partial T}{\partial z}\Big|,
    \qquad
    \log\tilde\rho(z) = \log\rho_*\big(T(z)\big) + \log\Big|\det\frac{\partial T}{\partial z}\Big| ,

the density of :math:`z = T^{-1}(x)` when :math:`x\sim\rho_*`. If :math:`z_t` is a Markov
chain that leaves :math:`\tilde\rho` invariant, :math:`x_t = T(z_t)` leaves :math:`\rho_*`
invariant: the mapped-back chain is exact **for any invertible** :math:`T`, trained or not.
The flow only changes how fast the chain mixes: when :math:`T` pushes the base
:math:`\rho_B` onto :math:`\rho_*` (:math:`\rho_\theta = \rho_*`), :math:`\tilde\rho = \rho_B`,
a standard normal that a local kernel explores with large steps. Here :math:`T` is the
flow's sampling direction, ``flow.forward`` (where the normalising direction, from data to
latent, is written :math:`T_\theta`, this :math:`T` is :math:`T_\theta^{-1}`).

:class:`NeuTraTarget` is a :class:`~lecturekit.targets.base.Target`, so every kernel of
:mod:`lecturekit.samplers` runs on it unchanged; :meth:`NeuTraTarget.to_target` maps latent
chains back and :meth:`NeuTraTarget.to_latent` maps starting points in. The same idea, with
transport maps fitted to the chain, is transport-map accelerated MCMC (Parno & Marzouk 2018).

References:
    | Transport Map Accelerated Markov Chain Monte Carlo (Parno & Marzouk, 2018)
    | https://doi.org/10.1137/17M1134640
    | NeuTra-lizing Bad Geometry in Hamiltonian Monte Carlo Using Neural Transport (Hoffman et al., 2019)
    | https://arxiv.org/abs/1903.03704
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

from lecturekit.checks import check_matches_module
from lecturekit.checks import check_positive_int
from lecturekit.flows.core import Flow
from lecturekit.checks import check_points
from lecturekit.targets.base import Target, log_prob_and_score_by_autograd
from lecturekit.targets.base import check_target_and_proposal
from lecturekit.samplers.mcmc import check_target_device

__all__ = ["NeuTraTarget"]


class NeuTraTarget(Target):
    r"""The push-backward :math:`\tilde\rho(z) = \rho_*(T(z))\,|\det\partial T/\partial z|` of ``target`` through ``flow``.

    .. math::

        \log\tilde\rho(z) = \log\rho_*\big(T(z)\big) + \log\Big|\det\frac{\partial T}{\partial z}\Big|,
        \qquad
        \nabla_z\log\tilde\rho(z) \text{ by autograd through } T

    (Hoffman et al. 2019). ``target.log_prob`` already includes the target's inverse
    temperature, so this target has ``beta = 1`` and ``energy = -log_prob``; it is normalised
    exactly when ``target`` is. Where :math:`\log\rho_*(T(z)) = -\infty` (outside the
    target's support) :meth:`log_prob` is :math:`-\infty` and the score is returned as zero
    (it is undefined there), so no NaN reaches a kernel, which rejects such proposals.

    The flow must stay fixed while chains run on it (a flow that changes with the chain's
    history breaks the Markov property). Latent points must have the flow's dtype and
    device. One :meth:`log_prob_and_score` costs one forward and one backward pass of the
    flow plus one target evaluation with its gradient.

    ``target`` is the :class:`~lecturekit.targets.base.Target` :math:`\rho_*` in the original
    space; ``flow`` a :class:`~lecturekit.flows.core.Flow` of the same dimension, whose
    ``flow.forward(z)`` is :math:`(T(z), \log|\det\partial T/\partial z|)`.

    Example:
        >>> from lecturekit.flows.core import real_nvp
        >>> from lecturekit.samplers.mcmc import MALA, run_chains
        >>> from lecturekit.targets.toy import GaussianMixture
        >>> _ = torch.manual_seed(0)
        >>> target = GaussianMixture(torch.ones(1, 2), 0.5)  # N((1, 1), I / 2)
        >>> flow = real_nvp(2, n_layers=2)
        >>> latent = NeuTraTarget(target, flow)
        >>> z = torch.randn(4, 2)
        >>> x, log_det = flow(z)
        >>> torch.allclose(latent.log_prob(z), target.log_prob(x) + log_det)
        True
        >>> start = latent.to_latent(torch.zeros(32, 2))
        >>> result = run_chains(MALA(latent, step_size=0.2), start, n_steps=60)
        >>> samples = latent.to_target(result.samples[10:])  # x = T(z), an exact chain of the target
        >>> samples.shape
        torch.Size([50, 32, 2])
        >>> abs(samples.mean().item() - 1.0) < 0.15, abs(samples.var().item() - 0.5) < 0.1
        (True, True)

    References:
        | NeuTra-lizing Bad Geometry in Hamiltonian Monte Carlo Using Neural Transport (Hoffman et al., 2019)
        | https://arxiv.org/abs/1903.03704
    """

    def __init__(self, target: Target, flow: Flow) -> None:
        check_target_and_proposal(target, flow, "flow")
        if not isinstance(flow, Flow):
            raise TypeError(f"flow must be a lecturekit Flow, got {type(flow).__name__}")
        self.target = target
        self.flow = flow
        self.dim = int(target.dim)
        self.beta = 1.0

    # ----------------------------------------------------------------------- checks

    def _check(self, points: Tensor, name: str) -> None:
        check_points(points, self.dim, name)
        check_matches_module(points, self.flow, name, "the flow")

    # ----------------------------------------------------------------------- density

    def log_prob(self, z: Tensor) -> Tensor:
        r""":math:`\log\rho_*(T(z)) + \log|\det\partial T/\partial z|` for ``z`` of shape ``(..., dim)``; ``-inf`` outside the support."""
        self._check(z, "z")
        x, log_det = self.flow(z)
        check_target_device(self.target, x, "flow output")
        log_target = self.target.log_prob(x)
        return torch.where(torch.isneginf(log_target), -math.inf, log_target + log_det)

    def energy(self, z: Tensor) -> Tensor:
        return -self.log_prob(z)

    def log_prob_and_score(self, z: Tensor) -> tuple[Tensor, Tensor]:
        r""":math:`\log\tilde\rho(z)` and :math:`\nabla_z\log\tilde\rho(z)` by autograd through the flow, detached.

        The gradient is taken with respect to ``z`` only (the flow's parameters collect
        nothing); it is zero wherever :math:`\log\tilde\rho(z)` is not finite.
        """
        self._check(z, "z")
        log_prob, score = log_prob_and_score_by_autograd(self.log_prob, z)
        finite = torch.isfinite(log_prob).unsqueeze(-1)
        return log_prob, torch.where(finite, score, torch.zeros_like(score))

    # ----------------------------------------------------------------------- maps

    def _map(self, points: Tensor, name: str, direction: str, batch_size: int) -> Tensor:
        self._check(points, name)
        check_positive_int(batch_size, "batch_size")
        flat = points.detach().reshape(-1, self.dim)
        transform = self.flow if direction == "forward" else self.flow.inverse
        with torch.no_grad():
            mapped = [transform(chunk)[0] for chunk in flat.split(batch_size)] if flat.shape[0] else [flat]
        return torch.cat(mapped).reshape(points.shape)

    def to_target(self, z: Tensor, batch_size: int = 65536) -> Tensor:
        r"""Map latent points (e.g. chains of shape ``(n_steps, n_chains, dim)``) to :math:`x = T(z)`.

        Any leading shape; evaluated without a graph, ``batch_size`` points at a time.
        """
        return self._map(z, "z", "forward", batch_size)

    def to_latent(self, x: Tensor, batch_size: int = 65536) -> Tensor:
        r"""Map points of the original space to the latent space, :math:`z = T^{-1}(x)` (e.g. to start chains).

        Any leading shape; evaluated without a graph, ``batch_size`` points at a time.
        """
        return self._map(x, "x", "inverse", batch_size)
