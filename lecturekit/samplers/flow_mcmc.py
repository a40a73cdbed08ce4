r"""Metropolis-Hastings with a normalizing flow as the proposal: flow-based independence sampling.

*Independent* Metropolis-Hastings (Hastings 1970; Tierney, Ann. Stat. 1994) proposes
:math:`x' \sim \rho_\theta` regardless of the current state :math:`x` and accepts with

.. math::

    \alpha(x \to x') = \min\Big[1,\ \frac{\rho_*(x')\,\rho_\theta(x)}{\rho_*(x)\,\rho_\theta(x')}\Big]
                     = \min\big[1,\ w(x') / w(x)\big],
    \qquad w = \rho_* / \rho_\theta ,

the ratio of the importance weights of the proposed and the current state. The chain
samples :math:`\rho_*` exactly, whatever the flow, as long as :math:`\rho_\theta > 0` where
:math:`\rho_* > 0`; the flow's quality shows in the acceptance rate and in the
autocorrelation (a chain that sits on a state of large weight rejects for long).
With a flow trained by variational inference this is the sampler of Albergo, Kanwar &
Shanahan (PRD 2019): MCMC corrects the flow's samples, so that the chain targets
:math:`\rho_*` exactly however imperfect the flow.

The proposal's log-density must be the *normalised* :math:`\log\rho_\theta` (never a
symmetric default: the proposal does not depend on :math:`x`, so its density does not
cancel). Each state caches both :math:`\log\rho_*(x)` and :math:`\log\rho_\theta(x)`
(:attr:`MCMCState.proposal_log_prob`), so one step costs one flow pass
(``sample_and_log_prob``) and one target evaluation.

References:
    | Monte Carlo sampling methods using Markov chains and their applications (Hastings, 1970)
    | https://doi.org/10.1093/biomet/57.1.97
    | Markov Chains for Exploring Posterior Distributions (Tierney, 1994)
    | https://doi.org/10.1214/aos/1176325750
    | Metropolized independent sampling with comparisons to rejection sampling and importance sampling (Liu, 1996)
    | https://doi.org/10.1007/BF00162521
    | Flow-based generative models for Markov chain Monte Carlo in lattice field theory (Albergo et al., 2019)
    | https://doi.org/10.1103/PhysRevD.100.034515
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

from lecturekit.checks import check_number
from lecturekit.checks import check_same_device
from lecturekit.checks import check_points
from lecturekit.targets.base import Target
from lecturekit.targets.base import Proposal, check_target_and_proposal
from lecturekit.samplers.mcmc import MCMCState, StepInfo, _LocalKernel, check_target_device, metropolis_update

__all__ = ["FlowIndependenceMetropolis", "independence_log_acceptance_ratio", "lognormal_independence_acceptance"]


def independence_log_acceptance_ratio(
    log_target_current: Tensor,
    log_proposal_current: Tensor,
    log_target_proposed: Tensor,
    log_proposal_proposed: Tensor,
) -> Tensor:
    r"""Log acceptance ratio of independent Metropolis-Hastings, for a batch of chains.

    .. math::

        \log r = \big[\log\rho_*(x') - \log\rho_\theta(x')\big]
               - \big[\log\rho_*(x) - \log\rho_\theta(x)\big] = \log w(x') - \log w(x).

    All four arguments have the same shape, e.g. ``(n_chains,)``. A proposal outside the
    target's support (:math:`\log\rho_*(x') = -\infty`) gets :math:`\log r = -\infty`
    whatever the rest, and so does any NaN: the result is never NaN. A current state with
    :math:`\log\rho_*(x) = -\infty` and a proposal inside the support gives
    :math:`+\infty` (always move in).

    >>> independence_log_acceptance_ratio(
    ...     torch.tensor([0.0, 0.0, -math.inf]), torch.tensor([0.0, 0.0, 0.0]),
    ...     torch.tensor([1.0, -math.inf, -math.inf]), torch.tensor([0.5, 0.0, 0.0]))
    tensor([0.5000,   -inf,   -inf])
    """
    arguments = {
        "log_target_current": log_target_current,
        "log_proposal_current": log_proposal_current,
        "log_target_proposed": log_target_proposed,
        "log_proposal_proposed": log_proposal_proposed,
    }
    for name, value in arguments.items():
        if not isinstance(value, Tensor) or not value.is_floating_point():
            raise TypeError(f"{name} must be a floating-point torch.Tensor, got {getattr(value, 'dtype', type(value))}")
        if value.shape != log_target_current.shape:
            raise ValueError(
                f"{name} has shape {tuple(value.shape)} but log_target_current has {tuple(log_target_current.shape)}"
            )
    check_same_device(**arguments)
    log_w_proposed = torch.where(
        torch.isneginf(log_target_proposed), -math.inf, log_target_proposed - log_proposal_proposed
    )
    log_w_current = torch.where(torch.isneginf(log_target_current), -math.inf, log_target_current - log_proposal_current)
    log_ratio = log_w_proposed - log_w_current
    return torch.where(torch.isnan(log_ratio) | torch.isneginf(log_w_proposed), -math.inf, log_ratio)


def lognormal_independence_acceptance(sigma: float) -> float:
    r"""Stationary acceptance rate of independent Metropolis-Hastings when the log-weights are Gaussian.

    If :math:`\log w = \log\rho_* - \log\rho_\theta` is :math:`\mathcal N(\mu, \sigma^2)` under
    the proposal :math:`\rho_\theta`, it is :math:`\mathcal N(\mu + \sigma^2, \sigma^2)` under
    :math:`\rho_* \propto w\rho_\theta`, so at stationarity the log acceptance ratio
    :math:`Y = \log w(x') - \log w(x)` is :math:`\mathcal N(-\sigma^2, 2\sigma^2)` and

    .. math::

        \bar\alpha = \mathbb E\big[\min(1, e^{Y})\big]
            = P(Y > 0) + \mathbb E\big[e^{Y}\,;\,Y < 0\big]
            = \Phi\Big(-\frac{\sigma}{\sqrt2}\Big) + e^{-\sigma^2 + \sigma^2}\,\Phi\Big(-\frac{\sigma}{\sqrt2}\Big)
            = 2\,\Phi\Big(-\frac{\sigma}{\sqrt2}\Big)
            \approx \frac{2}{\sigma\sqrt\pi}\,e^{-\sigma^2/4} \quad (\sigma\gg1),

    :math:`\Phi` the standard normal distribution function. (The same computation gives
    the acceptance of pseudo-marginal MCMC with log-normal noise.) When the flow's error is
    a sum of many weakly dependent local errors, :math:`\sigma^2` grows like the number of
    degrees of freedom :math:`D`, and the acceptance falls like :math:`e^{-O(D)}`: why a
    global flow proposal gets harder to use as the system grows. Real log-weights have
    heavier tails than a Gaussian, so take this as a heuristic.

    >>> lognormal_independence_acceptance(0.0), round(lognormal_independence_acceptance(2.0), 4)
    (1.0, 0.1573)
    """
    sigma = check_number(sigma, "sigma", non_negative=True)
    return 2.0 * float(torch.special.ndtr(torch.tensor(-sigma / math.sqrt(2.0), dtype=torch.float64)))


class FlowIndependenceMetropolis:
    r"""Independent Metropolis-Hastings with a flow proposal, vectorised over chains.

    ``init(position)`` evaluates the target and the flow at the starting points (shape
    ``(n_chains, dim)``, which must lie inside the target's support and have a finite flow
    density); ``step(state)`` draws one flow sample per chain with
    ``proposal.sample_and_log_prob`` (or ``sample`` then ``log_prob`` for a proposal
    without it), evaluates the target there, and accepts with
    :func:`independence_log_acceptance_ratio` through the shared
    :func:`~lecturekit.samplers.mcmc.metropolis_update`. Nothing carries gradients.

    ``target`` is the :class:`~lecturekit.targets.base.Target` to sample (unnormalised is
    fine); ``proposal`` is a flow, or any :class:`~lecturekit.targets.base.Proposal` with a
    *normalised* ``log_prob``, which must be positive wherever the target is. A step proposes
    :math:`x' \sim \rho_\theta` and moves there with probability
    :math:`\min[1, w(x')/w(x)]`, :math:`w = \rho_*/\rho_\theta`.

    Example:
        >>> from lecturekit.flows.core import real_nvp
        >>> from lecturekit.samplers.mcmc import run_chains
        >>> from lecturekit.targets.toy import GaussianMixture
        >>> _ = torch.manual_seed(0)
        >>> flow = real_nvp(2, n_layers=2)  # untrained: the identity, a standard normal proposal
        >>> target = GaussianMixture(torch.tensor([[1.0, 0.0], [-1.0, 0.0]]), 0.25)  # two modes
        >>> kernel = FlowIndependenceMetropolis(target, flow)
        >>> state, info = kernel.step(kernel.init(flow.sample(8)))
        >>> state.position.shape, state.proposal_log_prob.shape, info.accepted.shape
        (torch.Size([8, 2]), torch.Size([8]), torch.Size([8]))
        >>> samples = run_chains(kernel, flow.sample(32), n_steps=60).samples[10:]
        >>> abs(samples.square().sum(-1).mean().item() - 1.5) < 0.15  # E|x|^2 = 1 + 2 * 0.25
        True
        >>> abs((samples[..., 0] > 0).float().mean().item() - 0.5) < 0.1  # both modes, equal weights
        True

    References:
        | Markov Chains for Exploring Posterior Distributions (Tierney, 1994)
        | https://doi.org/10.1214/aos/1176325750
        | Flow-based generative models for Markov chain Monte Carlo in lattice field theory (Albergo et al., 2019)
        | https://doi.org/10.1103/PhysRevD.100.034515
    """

    def __init__(self, target: Target, proposal: Proposal) -> None:
        check_target_and_proposal(target, proposal)
        self.target = target
        self.proposal = proposal

    def _draw(self, n: int) -> tuple[Tensor, Tensor]:
        sample_and_log_prob = getattr(self.proposal, "sample_and_log_prob", None)
        if sample_and_log_prob is not None:
            return sample_and_log_prob(n)
        x = self.proposal.sample(n)
        return x, self.proposal.log_prob(x)

    def init(self, position: Tensor) -> MCMCState:
        check_points(position, self.target.dim, "position")
        if position.dim() != 2:
            raise ValueError(f"position must have shape (n_chains, {self.target.dim}), got {tuple(position.shape)}")
        check_target_device(self.target, position)
        position = position.detach()
        with torch.no_grad():
            log_prob = self.target.log_prob(position)
            proposal_log_prob = self.proposal.log_prob(position)
        _LocalKernel._check_in_support(log_prob)
        if not bool(torch.isfinite(proposal_log_prob).all()):
            bad = torch.nonzero(~torch.isfinite(proposal_log_prob)).flatten()[:10].tolist()
            raise ValueError(f"position must have a finite proposal log-density: not finite for chains {bad}")
        return MCMCState(position, log_prob, None, proposal_log_prob)

    def step(self, state: MCMCState) -> tuple[MCMCState, StepInfo]:
        if state.proposal_log_prob is None:
            raise ValueError("state has no proposal_log_prob: start the chains with FlowIndependenceMetropolis.init")
        with torch.no_grad():
            proposed, log_q_proposed = self._draw(state.position.shape[0])
            log_p_proposed = self.target.log_prob(proposed)
        log_ratio = independence_log_acceptance_ratio(
            state.log_prob, state.proposal_log_prob, log_p_proposed, log_q_proposed
        )
        return metropolis_update(state, MCMCState(proposed, log_p_proposed, None, log_q_proposed), log_ratio)
