r"""Adaptive flow-MCMC and the global-local ("explore-exploit") sampler.

Each iteration of the **global-local** ("explore-exploit") sampler moves every walker
:math:`x^i`, :math:`i = 1\dots N`, by

1. one *global* step: independent Metropolis-Hastings with a flow proposal
   :math:`x' \sim \rho_\theta`, accepted with
   :math:`\min[1, \rho_*(x')\rho_\theta(x) / (\rho_*(x)\rho_\theta(x'))]`
   (:class:`~lecturekit.samplers.flow_mcmc.FlowIndependenceMetropolis`);
2. ``n_local_steps`` *local* steps of any kernel (MALA by default).

Both kernels leave :math:`\rho_*` invariant, so their composition does too, whatever the
flow (Samsonov et al. 2022; Grenioux et al., ICML 2023).

**Adaptive flow-MCMC** (Gabrié, Rotskoff & Vanden-Eijnden, PNAS 2022; flowMC, Wong,
Gabrié & Foreman-Mackey, JOSS 2023) adds, in a *training phase*, one maximum-likelihood
gradient step of the flow on the walkers' current positions after every iteration,

.. math::

    \theta \leftarrow \theta + \eta\,\nabla_\theta\,\frac1N\sum_{i=1}^N \log\rho_\theta(x^i_{t+1}),

(here with Adam, through :func:`lecturekit.training.loop.train_flow` and
:func:`lecturekit.training.loop.forward_kl_loss`), so that the flow learns from the chains the
modes that they have found and the global step learns to jump between them. A flow that
changes with the chain's history breaks the Markov property: only the *production*
phase, run afterwards with the flow frozen, is an exact MCMC sampler of :math:`\rho_*`.
With no training iterations, :func:`adaptive_flow_mcmc` *is* the global-local sampler
(:func:`global_local_mcmc`).

References:
    | Local-Global MCMC kernels: the best of both worlds (Samsonov et al., 2022)
    | https://arxiv.org/abs/2111.02702
    | Adaptive Monte Carlo augmented with normalizing flows (Gabrié et al., 2022)
    | https://doi.org/10.1073/pnas.2109420119
    | On Sampling with Approximate Transport Maps (Grenioux et al., 2023)
    | https://arxiv.org/abs/2302.04763
    | flowMC: Normalizing flow enhanced sampling package for probabilistic inference in JAX (Wong et al., 2023)
    | https://doi.org/10.21105/joss.05021
"""

from __future__ import annotations

from collections.abc import Callable
from typing import NamedTuple

import torch
from torch import Tensor

from lecturekit.checks import check_int
from lecturekit.flows.core import Flow
from lecturekit.progress import progress_bar
from lecturekit.targets.base import Target
from lecturekit.training.loop import StepResult, forward_kl_loss, train_flow
from lecturekit.samplers.flow_mcmc import FlowIndependenceMetropolis
from lecturekit.samplers.mcmc import MALA, Kernel, MCMCState

__all__ = [
    "AdaptiveHistory",
    "AdaptiveResult",
    "GlobalLocalInfo",
    "GlobalLocalKernel",
    "adaptive_flow_mcmc",
    "global_local_mcmc",
]


class GlobalLocalInfo(NamedTuple):
    """What one global-local iteration did, per walker."""

    accepted: Tensor  #: ``(n_walkers,)`` bool: the global (flow) proposal was accepted
    local_accepted: Tensor  #: ``(n_local_steps, n_walkers)`` bool: each local proposal


class GlobalLocalKernel:
    r"""One flow-IMH step then ``n_local_steps`` steps of ``local_kernel``, as one kernel.

    It has the kernels' ``init(position) -> MCMCState`` / ``step(state) -> (state, info)``
    shape, so :func:`~lecturekit.samplers.mcmc.run_chains` can drive it too. The state caches
    what the *local* kernel caches (``log_prob``, and the score for MALA); the flow's
    density at the walkers is evaluated afresh at the start of every step, so the flow may
    change between steps (training) without leaving a stale density in the state.
    ``n_local_steps = 0`` gives flow-IMH alone.

    Cost of a step: one flow pass to sample and one to evaluate :math:`\log\rho_\theta` at
    the walkers, one target evaluation for the global proposal, then ``local_kernel.init``
    (one target evaluation, with the score for MALA) and ``n_local_steps`` local steps.

    The step is the composition :math:`P = P_{\rm local}^{\,n} \circ P_{\rm IMH}` of two kernels
    that each leave :math:`\rho_*` invariant, so :math:`\rho_* P = \rho_*`: the flow jumps between
    modes, the local kernel explores each one.

    Example:
        >>> from lecturekit.flows.core import real_nvp
        >>> from lecturekit.samplers.mcmc import MALA, run_chains
        >>> from lecturekit.targets.toy import GaussianMixture
        >>> _ = torch.manual_seed(0)
        >>> target = GaussianMixture(torch.tensor([[2.0, 0.0], [-2.0, 0.0]]), 0.25)  # two modes
        >>> kernel = GlobalLocalKernel(target, real_nvp(2, n_layers=2), MALA(target, step_size=0.1), 2)
        >>> start = torch.tensor([2.0, 0.0]).repeat(64, 1)  # every walker in the right-hand mode
        >>> samples = run_chains(kernel, start, n_steps=40).samples[10:]
        >>> abs((samples[..., 0] < 0).float().mean().item() - 0.5) < 0.15  # half of them crossed
        True

    References:
        | Local-Global MCMC kernels: the best of both worlds (Samsonov et al., 2022)
        | https://arxiv.org/abs/2111.02702
        | Adaptive Monte Carlo augmented with normalizing flows (Gabrié et al., 2022)
        | https://doi.org/10.1073/pnas.2109420119
    """

    def __init__(self, target: Target, flow: Flow, local_kernel: Kernel, n_local_steps: int) -> None:
        self.global_kernel = FlowIndependenceMetropolis(target, flow)
        if not (callable(getattr(local_kernel, "init", None)) and callable(getattr(local_kernel, "step", None))):
            raise TypeError(f"local_kernel must have init(position) and step(state), got {type(local_kernel).__name__}")
        self.local_kernel = local_kernel
        self.n_local_steps = check_int(n_local_steps, "n_local_steps", minimum=0)
        self.flow = flow

    def init(self, position: Tensor) -> MCMCState:
        """Check the walkers (inside the support, finite flow density) and cache the local kernel's state."""
        self.global_kernel.init(position)  # raises if a walker is outside the support
        return self.local_kernel.init(position)

    def step(self, state: MCMCState) -> tuple[MCMCState, GlobalLocalInfo]:
        with torch.no_grad():
            flow_log_prob = self.flow.log_prob(state.position)
            current = MCMCState(state.position, state.log_prob, None, flow_log_prob)
            moved, global_info = self.global_kernel.step(current)
            state = self.local_kernel.init(moved.position)
            local_accepted = torch.empty(
                (self.n_local_steps, state.position.shape[0]), dtype=torch.bool, device=state.position.device
            )
            for k in range(self.n_local_steps):
                state, info = self.local_kernel.step(state)
                local_accepted[k] = info.accepted
        return state, GlobalLocalInfo(global_info.accepted, local_accepted)


class AdaptiveHistory(NamedTuple):
    """Per-iteration record of an adaptive run: training iterations first, then production."""

    global_acceptance: list[float]  #: fraction of walkers whose flow proposal was accepted
    #: fraction of accepted local proposals (over walkers and local steps); NaN without local steps
    local_acceptance: list[float]
    losses: list[float]  #: the maximum-likelihood loss of each *training* iteration
    n_training: int  #: the first ``n_training`` entries of the acceptances are the training phase


class AdaptiveResult(NamedTuple):
    """Output of :func:`adaptive_flow_mcmc`."""

    #: ``(n_production // thin, n_walkers, dim)``: the production phase, an exact MCMC sample
    samples: Tensor
    #: ``(n_training // thin, n_walkers, dim)``: the training phase (adaptive: *not* exact MCMC)
    training_samples: Tensor
    history: AdaptiveHistory
    final_state: MCMCState

    def acceptance_rate(self) -> float:
        """Mean global (flow) acceptance over the production iterations, the exact-MCMC phase."""
        production = self.history.global_acceptance[self.history.n_training :]
        if not production:
            raise ValueError("the run has no production iterations")
        return sum(production) / len(production)


def adaptive_flow_mcmc(
    target: Target,
    flow: Flow,
    initial_position: Tensor,
    n_training: int,
    n_production: int,
    make_local_kernel: Callable[[Target], Kernel] | None = None,
    n_local_steps: int = 5,
    lr: float = 1e-3,
    max_grad_norm: float | None = None,
    thin: int = 1,
    progress: bool = False,
) -> AdaptiveResult:
    r"""Adaptive flow-MCMC (Gabrié, Rotskoff & Vanden-Eijnden, PNAS 2022), vectorised over walkers.

    Runs ``n_training`` iterations of the :class:`GlobalLocalKernel` (one flow-IMH step, then
    ``n_local_steps`` steps of the kernel ``make_local_kernel(target)``, by default
    :class:`~lecturekit.samplers.mcmc.MALA` with step size 0.01), each followed by one Adam
    step (learning rate ``lr``, gradient norm clipped to ``max_grad_norm``) on the maximum-likelihood loss
    :math:`-\frac1N\sum_i\log\rho_\theta(x^i)` of the walkers' current positions; then
    ``n_production`` iterations with the flow frozen.

    **Only the production samples are exact MCMC samples of the target**: during training the
    proposal depends on the chain's past. The walkers start at ``initial_position``
    (``(n_walkers, dim)``, inside the target's support, in the flow's dtype and on its device);
    ``flow`` is trained in place. ``n_training = 0`` is the global-local sampler with a
    frozen flow (:func:`global_local_mcmc`). The training steps go through
    :func:`lecturekit.training.loop.train_flow`, which raises ``FloatingPointError`` (and restores
    the flow) if the loss stops being finite. Every ``thin``-th position is kept.
    ``progress=True`` shows ``tqdm`` bars.

    Each training iteration :math:`t` moves the walkers with the kernel built on the current
    flow, then takes one step on :math:`L(\theta) = -\frac1N\sum_i\log\rho_\theta(x^i_{t+1})`,
    a Monte Carlo estimate of :math:`\mathrm{KL}(\rho_*\,\|\,\rho_\theta)` up to a constant once
    the walkers are spread over :math:`\rho_*`.

    Example:
        >>> from lecturekit.flows.core import real_nvp
        >>> from lecturekit.targets.toy import GaussianMixture
        >>> _ = torch.manual_seed(0)
        >>> target = GaussianMixture(torch.tensor([[2.0, 0.0], [-2.0, 0.0]]), 0.25)  # two modes
        >>> start = torch.tensor([2.0, 0.0]).repeat(64, 1)  # every walker in the right-hand mode
        >>> flow = real_nvp(2, n_layers=2, hidden=(16, 16))
        >>> result = adaptive_flow_mcmc(target, flow, start, n_training=20, n_production=20,
        ...                             make_local_kernel=lambda t: MALA(t, step_size=0.1),
        ...                             n_local_steps=2, lr=1e-2)
        >>> result.samples.shape, result.training_samples.shape, len(result.history.losses)
        (torch.Size([20, 64, 2]), torch.Size([20, 64, 2]), 20)
        >>> result.history.losses[-1] < result.history.losses[0]  # the flow learns from the walkers
        True
        >>> abs((result.samples[..., 0] < 0).float().mean().item() - 0.5) < 0.15  # both modes, equal weights
        True

    References:
        | Adaptive Monte Carlo augmented with normalizing flows (Gabrié et al., 2022)
        | https://doi.org/10.1073/pnas.2109420119
        | flowMC: Normalizing flow enhanced sampling package for probabilistic inference in JAX (Wong et al., 2023)
        | https://doi.org/10.21105/joss.05021
    """
    check_int(n_training, "n_training", minimum=0)
    check_int(n_production, "n_production", minimum=0)
    check_int(thin, "thin", minimum=1)
    if n_training + n_production == 0:
        raise ValueError("n_training + n_production must be at least 1")
    if n_production > 0 and thin > n_production:
        raise ValueError(
            f"thin={thin} keeps no sample of n_production={n_production} iterations; expected thin <= n_production"
        )
    if not isinstance(flow, Flow):
        raise TypeError(f"flow must be a lecturekit Flow, got {type(flow).__name__}")
    if make_local_kernel is None:
        local_kernel: Kernel = MALA(target, step_size=1e-2)
    else:
        local_kernel = _local_kernel(make_local_kernel, target)
    kernel = GlobalLocalKernel(target, flow, local_kernel, n_local_steps)
    state = kernel.init(initial_position)
    n_walkers, dim = state.position.shape
    global_accepted: list[Tensor] = []
    local_accepted: list[Tensor] = []

    def empty_samples(n_steps: int) -> Tensor:
        return state.position.new_empty((n_steps // thin, n_walkers, dim))

    def iterate(t: int, samples: Tensor) -> None:
        nonlocal state
        state, info = kernel.step(state)
        global_accepted.append(info.accepted.float().mean())
        local_accepted.append(info.local_accepted.float().mean())  # NaN when there are no local steps
        if (t + 1) % thin == 0:
            samples[(t + 1) // thin - 1] = state.position

    training_samples = empty_samples(n_training)
    losses: list[float] = []
    if n_training > 0:

        def step_loss(t: int) -> StepResult:
            iterate(t, training_samples)
            return StepResult(forward_kl_loss(flow, state.position))

        losses = train_flow(
            flow, step_loss, n_training, lr=lr, max_grad_norm=max_grad_norm, progress=progress,
            desc="adaptive flow-MCMC: training",
        ).losses

    samples = empty_samples(n_production)
    for t in progress_bar(n_production, progress, desc="adaptive flow-MCMC: production"):
        iterate(t, samples)

    history = AdaptiveHistory(
        torch.stack(global_accepted).cpu().tolist(),
        torch.stack(local_accepted).cpu().tolist(),
        losses,
        n_training,
    )
    return AdaptiveResult(samples, training_samples, history, state)


def global_local_mcmc(
    target: Target,
    flow: Flow,
    initial_position: Tensor,
    n_steps: int,
    make_local_kernel: Callable[[Target], Kernel] | None = None,
    n_local_steps: int = 5,
    thin: int = 1,
    progress: bool = False,
) -> AdaptiveResult:
    r"""The global-local ("explore-exploit") sampler with a frozen flow: exact MCMC.

    Each of ``n_steps`` iterations applies :class:`GlobalLocalKernel`, one flow-IMH step
    (accepted with :math:`\min[1, w(x')/w(x)]`, :math:`w = \rho_*/\rho_\theta`) then
    ``n_local_steps`` steps of ``make_local_kernel(target)`` (default
    :class:`~lecturekit.samplers.mcmc.MALA` with step size 0.01). It is exact for any flow that is positive wherever
    the target is; a good flow only makes it mix faster. The same code as
    :func:`adaptive_flow_mcmc` with no training iterations; its ``samples`` hold the
    ``n_steps // thin`` kept positions.

    Example:
        >>> from lecturekit.flows.core import real_nvp
        >>> from lecturekit.targets.toy import GaussianMixture
        >>> _ = torch.manual_seed(0)
        >>> target = GaussianMixture(torch.tensor([[2.0, 0.0], [-2.0, 0.0]]), 0.25)  # two modes
        >>> start = torch.tensor([2.0, 0.0]).repeat(64, 1)  # every walker in the right-hand mode
        >>> result = global_local_mcmc(target, real_nvp(2, n_layers=2), start, 40,
        ...                            make_local_kernel=lambda t: MALA(t, step_size=0.1), n_local_steps=2)
        >>> result.samples.shape
        torch.Size([40, 64, 2])
        >>> abs((result.samples[10:, :, 0] < 0).float().mean().item() - 0.5) < 0.15  # half crossed
        True

    References:
        | Local-Global MCMC kernels: the best of both worlds (Samsonov et al., 2022)
        | https://arxiv.org/abs/2111.02702
        | On Sampling with Approximate Transport Maps (Grenioux et al., 2023)
        | https://arxiv.org/abs/2302.04763
    """
    check_int(n_steps, "n_steps", minimum=1)
    return adaptive_flow_mcmc(
        target, flow, initial_position, 0, n_steps, make_local_kernel=make_local_kernel,
        n_local_steps=n_local_steps, thin=thin, progress=progress,
    )


def _local_kernel(make_local_kernel: object, target: Target) -> Kernel:
    """``make_local_kernel(target)``, checked to be an MCMC kernel."""
    if not callable(make_local_kernel):
        raise TypeError(
            f"make_local_kernel must be a callable target -> Kernel, got {type(make_local_kernel).__name__}"
        )
    kernel = make_local_kernel(target)
    if not (callable(getattr(kernel, "init", None)) and callable(getattr(kernel, "step", None))):
        raise TypeError(
            f"make_local_kernel must return an MCMC kernel with init and step methods, got {type(kernel).__name__}"
        )
    return kernel
