r"""Hamiltonian Monte Carlo, vectorised over chains (Duane, Kennedy, Pendleton & Roweth 1987; Neal 2011).

The position :math:`x` gets a momentum :math:`p\sim\mathcal N(0, I)`, and the pair
moves along the dynamics of :math:`H(x, p) = -\log\rho(x) + \tfrac12|p|^2`, integrated
with ``n_leapfrog`` leapfrog steps of size :math:`h`:

.. math::

    p \leftarrow p + \tfrac h2\nabla\log\rho(x), \qquad
    x \leftarrow x + h\,p, \qquad
    p \leftarrow p + \tfrac h2\nabla\log\rho(x).

Leapfrog is volume-preserving and time-reversible, so Metropolis-Hastings with
:math:`\log r = -H(x', p') + H(x, p)` makes the chain exact whatever the step size;
the step size only sets how often it accepts. A fixed trajectory length can resonate
with a Gaussian mode: a mode whose half period it matches is only reflected, never
mixed. Drawing the step size at random every step, independently of the state, breaks
the resonance and keeps the chain exact (Neal 2011 recommends randomising the step size
or the trajectory length for this reason). HMC is the reference sampler of lattice field
theory, against which flow-based samplers are checked (Albergo et al. 2019 do so).

References:
    | Hybrid Monte Carlo (Duane et al., 1987)
    | https://doi.org/10.1016/0370-2693(87)91197-X
    | MCMC Using Hamiltonian Dynamics (Neal, 2011)
    | https://arxiv.org/abs/1206.1901
"""

from __future__ import annotations

import torch
from torch import Tensor

from lecturekit.checks import check_number, check_positive_int
from lecturekit.targets.base import Target
from lecturekit.samplers.mcmc import MCMCState, StepInfo, _add_scaled, _GradientKernel, metropolis_update

__all__ = ["HMC"]


class HMC(_GradientKernel):
    r"""Hamiltonian Monte Carlo with an identity mass matrix.

    ``step_size`` is the leapfrog step :math:`h`: a float, or a tensor of shape
    ``(n_chains,)`` giving each chain its own. ``n_leapfrog`` steps make one trajectory of
    length :math:`n h`. With ``jitter`` :math:`j\in[0, 1)`, every step and chain draws its
    step size uniformly from :math:`h\,[1 - j, 1 + j]`. The state caches ``log_prob`` and ``score``, so a step costs
    ``n_leapfrog`` calls to the target's ``log_prob_and_score`` (the trajectory's first
    gradient is the cached one). Trajectories that leave the support or blow up (a
    non-finite log-density or score anywhere) are rejected by :func:`metropolis_update`.

    Each step draws a fresh momentum and accepts the end of the trajectory with probability

    .. math::

        \min\big[1,\ e^{-H(x', p') + H(x, p)}\big], \qquad H(x, p) = -\log\rho(x) + \tfrac12|p|^2 .

    Example:
        >>> from lecturekit.samplers.mcmc import run_chains
        >>> from lecturekit.targets.toy import GaussianMixture
        >>> _ = torch.manual_seed(0)
        >>> target = GaussianMixture(torch.ones(1, 2), 0.5)  # N((1, 1), I / 2)
        >>> kernel = HMC(target, step_size=0.3, n_leapfrog=5)
        >>> state, info = kernel.step(kernel.init(torch.zeros(8, 2)))
        >>> state.position.shape, info.accepted.shape
        (torch.Size([8, 2]), torch.Size([8]))
        >>> samples = run_chains(kernel, torch.zeros(32, 2), n_steps=20).samples[5:]
        >>> abs(samples.mean().item() - 1.0) < 0.1, abs(samples.var().item() - 0.5) < 0.1
        (True, True)

    References:
        | Hybrid Monte Carlo (Duane et al., 1987)
        | https://doi.org/10.1016/0370-2693(87)91197-X
        | MCMC Using Hamiltonian Dynamics (Neal, 2011)
        | https://arxiv.org/abs/1206.1901
    """

    def __init__(self, target: Target, step_size: float | Tensor, n_leapfrog: int = 10, jitter: float = 0.0) -> None:
        super().__init__(target, step_size)
        self.n_leapfrog = check_positive_int(n_leapfrog, "n_leapfrog")
        jitter = check_number(jitter, "jitter", non_negative=True)
        if not jitter < 1:
            raise ValueError(f"jitter must be a number in [0, 1), got {jitter!r}")
        self.jitter = jitter

    def leapfrog(
        self, position: Tensor, momentum: Tensor, score: Tensor, step_size: float | Tensor
    ) -> tuple[Tensor, Tensor, Tensor, Tensor]:
        """``n_leapfrog`` steps of size ``step_size`` (a float or ``(n_chains, 1)``) from ``(position, momentum)``.

        ``score`` is the target's score at ``position``; returns ``(x, p, log_prob, score)`` at the end.
        """
        h = step_size
        half = h / 2
        p = _add_scaled(momentum, half, score)
        x = position
        for i in range(self.n_leapfrog):
            x = _add_scaled(x, h, p)
            log_prob, score = self.target.log_prob_and_score(x)
            p = _add_scaled(p, h if i < self.n_leapfrog - 1 else half, score)
        return x, p, log_prob, score

    def step(self, state: MCMCState) -> tuple[MCMCState, StepInfo]:
        position = state.position
        step_size = self._step_size_like(position)
        if self.jitter:
            step_size = step_size * (1 + self.jitter * (2 * position.new_empty(position.shape[0], 1).uniform_() - 1))
        momentum = torch.randn_like(position)
        x, p, log_prob, score = self.leapfrog(position, momentum, state.score, step_size)
        kinetic_change = 0.5 * (p.square().sum(-1) - momentum.square().sum(-1))
        log_ratio = log_prob - state.log_prob - kinetic_change
        return metropolis_update(state, MCMCState(x, log_prob, score), log_ratio)
