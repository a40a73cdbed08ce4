r"""Annealed training of flows: along inverse temperatures, from easy to hard.

Both methods here follow the tempered path :math:`\rho_*^{\beta}\propto e^{-\beta U}`,
:math:`\beta_0 < \dots < \beta_K = 1` (:class:`~lecturekit.targets.tempering.TemperedPath` without a
base): at high temperature (small :math:`\beta`) the modes are wide and overlap, so a flow
or a sampler finds them all; lowering the temperature step by step keeps them.

**Annealed variational inference** (Wu, Wang & Zhang, PRL 2019): minimise the reverse KL
towards :math:`\rho_*^{\beta_k}` for each :math:`\beta_k` in turn, each stage starting from the
flow of the previous one (:func:`annealed_reverse_kl`). A flow that covers every mode at
high temperature keeps them as the modes sharpen, where plain reverse KL at
:math:`\beta = 1` collapses onto one (mode seeking).

**Annealed data sets** (after McNaughton, Milošević, Perali & Pilati, PRE 2020): from a
high temperature, use the flow trained at :math:`\beta_{k-1}` as the independence proposal
of a global-local sampler of :math:`\rho_*^{\beta_k}`, then train the flow by maximum
likelihood on those samples (:func:`annealed_data_sets`).

Sequential Monte Carlo along the path (AIS, SMC, flow transport) lives in
:mod:`lecturekit.samplers.smc`.

References:
    | Solving Statistical Mechanics Using Variational Autoregressive Networks (Wu et al., 2019)
    | https://doi.org/10.1103/PhysRevLett.122.080602
    | Boosting Monte Carlo simulations of spin glasses using autoregressive neural networks (McNaughton et al., 2020)
    | https://doi.org/10.1103/PhysRevE.101.053312
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch
from torch import Tensor

from lecturekit.checks import check_positive_int
from lecturekit.flows.core import Flow
from lecturekit.samplers.adaptive import GlobalLocalKernel
from lecturekit.samplers.mcmc import MALA, Kernel, run_chains
from lecturekit.targets.base import Target
from lecturekit.targets.tempering import TemperedPath, check_schedule
from lecturekit.training.loop import TrainingHistory, train_max_likelihood, train_reverse_kl

__all__ = ["annealed_data_sets", "annealed_reverse_kl"]


# --------------------------------------------------------------------------- annealed VI


def annealed_reverse_kl(
    flow: Flow,
    target: Target,
    betas: Sequence[float],
    n_steps: int | Sequence[int],
    batch_size: int = 256,
    lr: float = 1e-3,
    max_grad_norm: float | None = None,
    progress: bool = False,
) -> TrainingHistory:
    r"""Annealed variational inference (Wu, Wang & Zhang, PRL 2019): reverse KL along a schedule.

    For each :math:`\beta_k` in ``betas`` (increasing, ending at 1) train ``flow`` in place
    for ``n_steps`` steps (one number, or one per temperature) with
    :func:`~lecturekit.training.loop.train_reverse_kl` towards :math:`\rho_*^{\beta_k}\propto
    e^{-\beta_k U}`, starting from where the previous temperature left the flow:

    .. math::

        \theta_k = \arg\min_\theta\ \mathbb{E}_{x\sim\rho_\theta}\big[\log\rho_\theta(x)
                   + \beta_k U(x)\big]\quad\text{(from }\theta_{k-1}\text{)}.

    Returns a :class:`~lecturekit.training.loop.TrainingHistory` with the loss and ESS of every
    step, the temperatures in turn; its ``extras`` hold ``"betas"`` and ``"n_steps"`` (the steps
    taken at each temperature). The loss at :math:`\beta_k` is :math:`\mathrm{KL}(\rho_\theta\,\|\,\rho_*^{\beta_k}) - \log Z_{\beta_k}`,
    :math:`Z_\beta = \int e^{-\beta U}`, so it falls towards :math:`-\log Z_{\beta_k}` as the flow learns.

    Example:
        >>> import math
        >>> from lecturekit.flows.core import real_nvp
        >>> from lecturekit.targets.toy import GaussianMixture
        >>> _ = torch.manual_seed(0)
        >>> target = GaussianMixture(torch.ones(1, 2))  # N((1, 1), I): U = -log rho, Z_1 = 1
        >>> flow = real_nvp(2, n_layers=2, hidden=(16, 16))
        >>> run = annealed_reverse_kl(flow, target, [0.5, 1.0], 30, batch_size=128, lr=2e-2)
        >>> run.extras, len(run.losses)
        ({'betas': [0.5, 1.0], 'n_steps': [30, 30]}, 60)
        >>> log_z_half = 0.5 * math.log(2 * math.pi) + math.log(2)  # Z_beta = (2 pi)^(1 - beta) / beta
        >>> abs(sum(run.losses[25:30]) / 5 + log_z_half) < 0.1  # the last steps at beta = 0.5
        True
        >>> abs(sum(run.losses[-5:]) / 5) < 0.1  # log Z_1 = 0
        True

    References:
        | Solving Statistical Mechanics Using Variational Autoregressive Networks (Wu et al., 2019)
        | https://doi.org/10.1103/PhysRevLett.122.080602
    """
    betas = check_schedule(betas)
    steps = _per_temperature(n_steps, len(betas), "n_steps")
    losses: list[float] = []
    ess: list[float] = []
    for beta, n in zip(betas, steps):
        stage = train_reverse_kl(flow, target, n, batch_size=batch_size, lr=lr, beta=beta,
                                 max_grad_norm=max_grad_norm, progress=progress)
        losses += stage.losses
        ess += stage.ess
    return TrainingHistory(losses, ess, {"betas": betas, "n_steps": steps})


def _per_temperature(value: int | Sequence[int], n: int, name: str) -> list[int]:
    values = [value] * n if isinstance(value, int) and not isinstance(value, bool) else list(value)  # type: ignore[arg-type]
    if len(values) != n:
        raise ValueError(f"{name} must be an int or have one entry per temperature ({n}), got {len(values)}")
    return [check_positive_int(v, name) for v in values]


# --------------------------------------------------------------------------- annealed data sets


def annealed_data_sets(
    flow: Flow,
    target: Target,
    betas: Sequence[float],
    initial_position: Tensor,
    n_steps: int,
    n_train_steps: int,
    batch_size: int = 256,
    lr: float = 1e-3,
    make_local_kernel: Callable[[Target], Kernel] | None = None,
    n_local_steps: int = 5,
    burn_in: int = 0,
    progress: bool = False,
) -> TrainingHistory:
    r"""Annealed data sets (after McNaughton et al., PRE 2020): flow-MCMC chains as training data.

    For each :math:`\beta_k` in ``betas`` (increasing, ending at 1):

    1. sample :math:`\rho_*^{\beta_k}\propto e^{-\beta_k U}` with ``n_steps`` steps of the
       :class:`~lecturekit.samplers.adaptive.GlobalLocalKernel`: the flow as it was trained at
       :math:`\beta_{k-1}` (untrained, i.e. its base, at :math:`k = 0`) proposes independent
       moves, followed by ``n_local_steps`` steps of ``make_local_kernel(tempered_target)``
       (default: :class:`~lecturekit.samplers.mcmc.MALA` with step size 0.05);
    2. train the flow by maximum likelihood (:func:`~lecturekit.training.loop.train_max_likelihood`,
       ``n_train_steps`` steps of ``batch_size``) on those chains, dropping the first ``burn_in``
       iterations.

    The walkers carry over from one temperature to the next, starting at
    ``initial_position`` (``(n_walkers, dim)``). ``flow`` is trained in place. The chains at
    each :math:`\beta_k` are exact MCMC for :math:`\rho_*^{\beta_k}` (the flow is frozen
    while they run), but a flow that has missed a mode cannot propose it: annealing helps
    because the modes are easy to find at high temperature. Step 2 is

    .. math::

        \theta_k = \arg\min_\theta\ -\frac1M\sum_{j=1}^{M}\log\rho_\theta(x_j),
        \qquad x_j \text{ the chains' states at } \beta_k \text{ (from } \theta_{k-1}\text{)},

    a maximum-likelihood fit, i.e. the forward :math:`\mathrm{KL}(\rho_*^{\beta_k}\,\|\,\rho_\theta)`
    up to a constant.

    Returns a :class:`~lecturekit.training.loop.TrainingHistory` with the maximum-likelihood loss
    of every training step, the temperatures in turn (its ``ess`` is empty), and in ``extras``:

    - ``"betas"``: the temperatures; ``"n_steps"``: the training steps at each (``n_train_steps``);
    - ``"samples"``: per temperature, the global-local chains ``(n_steps, n_walkers, dim)``,
      the training data;
    - ``"global_acceptance"``: per temperature, the fraction of accepted flow proposals;
    - ``"flow_states"``: per temperature, the flow's ``state_dict`` (detached copies) after
      training there, to plot or reload.

    Example:
        >>> from lecturekit.flows.core import real_nvp
        >>> from lecturekit.targets.toy import GaussianMixture
        >>> _ = torch.manual_seed(0)
        >>> target = GaussianMixture(torch.ones(1, 2), 0.25)  # N((1, 1), I / 4); rho^beta has variance 1 / (4 beta)
        >>> flow = real_nvp(2, n_layers=2, hidden=(16, 16))
        >>> history = annealed_data_sets(flow, target, [0.25, 1.0], torch.zeros(32, 2), n_steps=20,
        ...                              n_train_steps=10, n_local_steps=2, batch_size=128, lr=1e-2, burn_in=5)
        >>> [chains.shape for chains in history.extras["samples"]]
        [torch.Size([20, 32, 2]), torch.Size([20, 32, 2])]
        >>> last = history.extras["samples"][-1][5:]  # the chains at beta = 1
        >>> abs(last.mean().item() - 1.0) < 0.1, abs(last.var().item() - 0.25) < 0.05
        (True, True)

    References:
        | Boosting Monte Carlo simulations of spin glasses using autoregressive neural networks (McNaughton et al., 2020)
        | https://doi.org/10.1103/PhysRevE.101.053312
    """
    if not isinstance(flow, Flow):
        raise TypeError(f"flow must be a lecturekit Flow, got {type(flow).__name__}")
    betas = check_schedule(betas)
    check_positive_int(n_steps, "n_steps")
    check_positive_int(n_train_steps, "n_train_steps")
    if isinstance(burn_in, bool) or not isinstance(burn_in, int) or not 0 <= burn_in < n_steps:
        raise ValueError(f"burn_in must be an int in [0, n_steps={n_steps}), got {burn_in!r}")
    if make_local_kernel is None:
        def make_local_kernel(tempered: Target) -> Kernel:
            return MALA(tempered, step_size=0.05)
    position = initial_position
    samples, acceptance, losses, states = [], [], [], []  # type: ignore[var-annotated]
    for beta in betas:
        tempered = TemperedPath(target, None, beta)
        kernel = GlobalLocalKernel(tempered, flow, make_local_kernel(tempered), n_local_steps)
        chains = run_chains(kernel, position, n_steps, progress=progress)
        position = chains.final_state.position
        samples.append(chains.samples)
        acceptance.append(chains.acceptance_rate())
        data = chains.samples[burn_in:].reshape(-1, chains.samples.shape[-1])
        losses += train_max_likelihood(flow, data, n_train_steps, batch_size=batch_size, lr=lr, progress=progress).losses
        states.append({key: value.detach().clone() for key, value in flow.state_dict().items()})
    extras = {"betas": betas, "n_steps": [n_train_steps] * len(betas), "samples": samples,
              "global_acceptance": acceptance, "flow_states": states}
    return TrainingHistory(losses, [], extras)
