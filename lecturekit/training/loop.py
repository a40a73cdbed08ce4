r"""Training flows: by data (maximum likelihood), by energy (reverse KL), or both.

**Maximum likelihood.** Given data :math:`x_1,\dots,x_N` from an unknown density
:math:`\rho_*`, minimise

.. math::

    L_\mathrm{ML}(\theta) = -\frac1N\sum_{i=1}^N \log\rho_\theta(x_i)
              = \mathrm{KL}(\rho_*\,\|\,\rho_\theta) - \mathbb{E}_{\rho_*}[\log\rho_*] + O(N^{-1/2}),

the *forward* Kullback-Leibler divergence up to a constant (Papamakarios et al., JMLR 2021,
sec. 2.3.1). It needs samples of the target but never its density.

**Variational inference** (Rezende & Mohamed, ICML 2015). Given the target's
unnormalised log-density :math:`\log\rho_*(x) = -U(x) - \log Z` but no data, minimise the
*reverse* KL divergence, estimated on the flow's own samples:

.. math::

    \mathrm{KL}(\rho_\theta\,\|\,\rho_*) - \log Z
        = \mathbb{E}_{z\sim\rho_B}\big[\log\rho_\theta(T_\theta(z)) + U(T_\theta(z))\big]
        \approx \frac1n\sum_{i=1}^n \big[\log\rho_\theta(x_i) + U(x_i)\big],
        \quad x_i = T_\theta(z_i).

Writing :math:`x_i = T_\theta(z_i)` with :math:`z_i` drawn from a fixed base makes the
estimate differentiable in :math:`\theta` (the reparametrisation trick), and its gradient
is an unbiased estimate of the gradient of the KL. An inverse temperature :math:`\beta`
targets :math:`\rho_*^\beta \propto e^{-\beta U}` instead (the tempered targets of
:mod:`lecturekit.samplers.annealing`).

**Boltzmann generators** (Noé, Olsson, Köhler & Wu, Science 2019) minimise
:math:`L_\mathrm{KL} + \lambda L_\mathrm{ML}`: training by energy plus a little data.

All three share one loop (:func:`train_flow`): Adam (Kingma & Ba, ICLR 2015), optional
gradient-norm clipping and cosine learning-rate decay (Loshchilov & Hutter, ICLR 2017), a
``tqdm`` bar, and a check that the loss stays finite. The loop never reads a number back
from the device inside a step (every ``.item()`` waits for a GPU); it looks at the losses
every ``check_every`` steps.

References:
    | Normalizing Flows for Probabilistic Modeling and Inference (Papamakarios et al., 2021)
    | https://arxiv.org/abs/1912.02762
    | Variational Inference with Normalizing Flows (Rezende & Mohamed, 2015)
    | https://arxiv.org/abs/1505.05770
    | Boltzmann generators: Sampling equilibrium states of many-body systems with deep learning (Noé et al., 2019)
    | https://doi.org/10.1126/science.aaw1147
    | Adam: A Method for Stochastic Optimization (Kingma & Ba, 2015)
    | https://arxiv.org/abs/1412.6980
    | SGDR: Stochastic Gradient Descent with Warm Restarts (Loshchilov & Hutter, 2017)
    | https://arxiv.org/abs/1608.03983
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any, NamedTuple

import torch
from torch import Tensor

from lecturekit.checks import (
    check_finite,
    check_matches_module,
    check_number,
    check_points,
    check_positive_int,
    check_tensor,
)
from lecturekit.diagnostics import _kish_ess
from lecturekit.flows.core import Flow
from lecturekit.progress import progress_bar
from lecturekit.targets.base import Target

__all__ = [
    "StepResult",
    "TrainingHistory",
    "boltzmann_generator_loss",
    "forward_kl_loss",
    "reverse_kl_loss",
    "reverse_kl_terms",
    "train_boltzmann_generator",
    "train_flow",
    "train_max_likelihood",
    "train_reverse_kl",
]

LR_SCHEDULES = ("constant", "cosine")


# --------------------------------------------------------------------------- checks


def _check_flow(flow: object) -> Flow:
    if not isinstance(flow, Flow):
        raise TypeError(f"flow must be a lecturekit Flow, got {type(flow).__name__}")
    return flow


def _check_target(target: object, flow: Flow) -> Target:
    if not isinstance(target, Target):
        raise TypeError(f"target must be a lecturekit.targets.base.Target, got {type(target).__name__}")
    if target.dim != flow.dim:
        raise ValueError(f"target.dim={target.dim} does not match flow.dim={flow.dim}")
    return target


def _check_data(data: object, dim: int) -> Tensor:
    check_points(data, dim, "data")  # type: ignore[arg-type]
    assert isinstance(data, Tensor)
    if data.dim() != 2 or data.shape[0] == 0:
        raise ValueError(f"data must have shape (N, {dim}) with N >= 1, got {tuple(data.shape)}")
    if not bool(torch.isfinite(data).all()):
        raise ValueError("data must be finite (it contains nan or inf)")
    return data


def _flow_tensor(flow: Flow) -> Tensor:
    for tensor in flow.parameters():
        return tensor
    raise ValueError("flow has no parameters to train")


# --------------------------------------------------------------------------- losses


def forward_kl_loss(flow: Flow, data: Tensor) -> Tensor:
    r"""Negative mean log-likelihood :math:`-\frac1N\sum_i\log\rho_\theta(x_i)` of ``data`` of shape ``(N, dim)``."""
    _check_flow(flow)
    check_points(data, flow.dim, "data")
    check_matches_module(data, flow, "data", "the flow")
    return -flow.log_prob(data).mean()


def reverse_kl_terms(flow: Flow, target: Target, n_samples: int, beta: float = 1.0) -> Tensor:
    r"""Per-sample terms :math:`\log\rho_\theta(x_i) + \beta U(x_i)` on ``n_samples`` fresh flow samples.

    Here :math:`U = -\log\rho_*` up to a constant, i.e. ``-target.log_prob`` (which already
    includes the target's own inverse temperature), and :math:`x_i = T_\theta(z_i)` is
    reparametrised, so the terms carry gradients. Their mean is :func:`reverse_kl_loss`;
    their negatives are the importance log-weights :math:`\log w_i` of the samples towards
    :math:`\rho_*^\beta`. Returns shape ``(n_samples,)``.
    """
    _check_flow(flow)
    _check_target(target, flow)
    check_positive_int(n_samples, "n_samples")
    beta = check_number(beta, "beta", positive=True)
    x, log_q = flow.sample_and_log_prob(n_samples)
    log_p = target.log_prob(x)
    return log_q - log_p if beta == 1.0 else log_q - beta * log_p


def reverse_kl_loss(flow: Flow, target: Target, n_samples: int, beta: float = 1.0) -> Tensor:
    r"""Reparametrised estimate of :math:`\mathrm{KL}(\rho_\theta\,\|\,\rho_*^\beta) - \log Z_\beta`.

    .. math::

        L_\mathrm{KL}(\theta) = \frac1n\sum_{i=1}^n\big[\log\rho_\theta(x_i) + \beta U(x_i)\big],
        \qquad x_i = T_\theta(z_i),\ z_i\sim\rho_B,

    with :math:`U = -` ``target.log_prob`` (Rezende & Mohamed, ICML 2015). The estimate
    and its gradient are unbiased; the constant :math:`\log Z_\beta` (unknown) does not
    move the minimum, and :math:`L_\mathrm{KL} \ge -\log Z_\beta` with equality only when
    :math:`\rho_\theta = \rho_*^\beta / Z_\beta`.

    >>> from lecturekit.flows.core import real_nvp
    >>> from lecturekit.targets.toy import GaussianMixture
    >>> loss = reverse_kl_loss(real_nvp(2, n_layers=2), GaussianMixture(torch.zeros(1, 2)), 64)
    >>> loss.shape, loss.requires_grad
    (torch.Size([]), True)
    """
    return reverse_kl_terms(flow, target, n_samples, beta).mean()


def boltzmann_generator_loss(
    flow: Flow, target: Target, data: Tensor, n_samples: int, ml_weight: float = 1.0, beta: float = 1.0
) -> Tensor:
    r"""The Boltzmann generator's loss :math:`L_\mathrm{KL} + \lambda L_\mathrm{ML}` (Noé et al., Science 2019).

    :math:`L_\mathrm{KL}` is :func:`reverse_kl_loss` on ``n_samples`` flow samples,
    :math:`L_\mathrm{ML}` is :func:`forward_kl_loss` on ``data`` (shape ``(N, dim)``),
    and :math:`\lambda` is ``ml_weight`` (0 gives pure variational inference).
    """
    ml_weight = check_number(ml_weight, "ml_weight", non_negative=True)
    check_tensor(data, "data")
    check_finite(data, "data")
    return reverse_kl_loss(flow, target, n_samples, beta) + ml_weight * forward_kl_loss(flow, data)


# --------------------------------------------------------------------------- one training loop


class StepResult(NamedTuple):
    """What a loss function hands to :func:`train_flow` for one step."""

    loss: Tensor  #: scalar, with a graph to the flow's parameters
    log_weights: Tensor | None = None  #: ``(n,)`` importance log-weights of the flow samples, if any


class TrainingHistory(NamedTuple):
    """What every trainer returns: one entry per optimisation step, in order, and the trainer's extras.

    Trainers that run in stages (annealing, CRAFT) concatenate their stages' steps in ``losses``
    and ``ess``; each trainer's docstring lists the keys it puts in ``extras``.
    """

    losses: list[float]  #: the loss of every optimisation step (the mini-batch loss)
    #: Kish's effective sample size of the step's flow samples as importance samples of the
    #: target, as a *fraction* of the batch size (in (0, 1]); empty where a step draws no flow
    #: samples weighed against a target (maximum likelihood, the VAE).
    ess: list[float]
    #: what a trainer records besides the loss (temperatures, samples, flow states...); empty for most
    extras: dict[str, Any]


def _ess_fraction(log_weights: Tensor) -> Tensor:
    """Kish ESS / n from log-weights, on the device, without a sync (``-inf`` weights count as zero)."""
    log_weights = log_weights.detach()
    return _kish_ess(log_weights) / log_weights.shape[0]


def train_flow(
    flow: Flow,
    step_loss: Callable[[int], StepResult],
    n_steps: int,
    lr: float = 1e-3,
    max_grad_norm: float | None = None,
    weight_decay: float = 0.0,
    lr_schedule: str = "constant",
    progress: bool = False,
    desc: str = "training",
    check_every: int = 50,
) -> TrainingHistory:
    r"""The one optimisation loop behind every trainer here.

    ``step_loss(step)`` returns a :class:`StepResult` for step ``step``: a scalar loss
    :math:`L_t(\theta)` with a graph to the flow's parameters, and optionally the importance
    log-weights of the step's flow samples. The loop takes one Adam step on it (Kingma & Ba,
    ICLR 2015, with L2 penalty ``weight_decay``) after clipping the gradients' global norm,

    .. math::

        g_t = \nabla_\theta L_t(\theta_t)\,\min\Big(1, \frac{c}{\lVert\nabla_\theta L_t(\theta_t)\rVert}\Big),

    with :math:`c` = ``max_grad_norm`` (no clipping if ``None``). ``lr_schedule="cosine"``
    decays the learning rate along a half cosine over the ``n_steps`` :math:`T`
    (Loshchilov & Hutter, ICLR 2017),

    .. math::

        \eta_t = \frac{\eta_0}{2}\Big(1 + \cos\frac{\pi t}{T}\Big), \qquad \eta_0 = \texttt{lr};

    ``"constant"`` keeps :math:`\eta_t = \eta_0`.

    Losses and ESS stay on the device and are read back every ``check_every`` steps (and
    at the end); a non-finite loss then raises ``FloatingPointError`` naming the first bad
    step, and the flow is put back to its parameters at the last check, all of whose
    losses were finite. A ``tqdm.auto`` progress bar labelled ``desc`` shows the loss when
    ``progress`` is true. Returns a :class:`TrainingHistory`.

    Example:
        >>> from lecturekit.flows.core import real_nvp
        >>> from lecturekit.training.loop import StepResult, forward_kl_loss, train_flow
        >>> _ = torch.manual_seed(0)
        >>> data = torch.randn(256, 2) + torch.tensor([2.0, -1.0])
        >>> flow = real_nvp(2, n_layers=2, hidden=(16,))
        >>> history = train_flow(flow, lambda step: StepResult(forward_kl_loss(flow, data)), n_steps=30, lr=1e-2)
        >>> len(history.losses), history.ess  # no log-weights were handed back: no ESS
        (30, [])
        >>> history.losses[-1] < history.losses[0]
        True

    References:
        | Adam: A Method for Stochastic Optimization (Kingma & Ba, 2015)
        | https://arxiv.org/abs/1412.6980
        | SGDR: Stochastic Gradient Descent with Warm Restarts (Loshchilov & Hutter, 2017)
        | https://arxiv.org/abs/1608.03983
    """
    _check_flow(flow)
    if not callable(step_loss):
        raise TypeError(f"step_loss must be a callable step -> StepResult, got {type(step_loss).__name__}")
    check_positive_int(n_steps, "n_steps")
    check_positive_int(check_every, "check_every")
    lr = check_number(lr, "lr", positive=True)
    weight_decay = check_number(weight_decay, "weight_decay", non_negative=True)
    if max_grad_norm is not None:
        max_grad_norm = check_number(max_grad_norm, "max_grad_norm", positive=True)
    if lr_schedule not in LR_SCHEDULES:
        raise ValueError(f"lr_schedule must be one of {LR_SCHEDULES}, got {lr_schedule!r}")
    parameters = [p for p in flow.parameters() if p.requires_grad]
    if not parameters:
        raise ValueError("flow has no parameters to train")

    optimizer = torch.optim.Adam(parameters, lr=lr, weight_decay=weight_decay)
    scheduler = (
        torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=n_steps) if lr_schedule == "cosine" else None
    )
    losses: list[Tensor] = []
    ess: list[Tensor] = []
    checked = 0  # losses[:checked] are known to be finite
    snapshot = [p.detach().clone() for p in parameters]
    with progress_bar(n_steps, progress, desc=desc) as bar:
        for step in bar:
            result = step_loss(step)
            if not isinstance(result, StepResult):
                raise TypeError(f"step_loss must return a StepResult, got {type(result).__name__}")
            optimizer.zero_grad(set_to_none=True)
            result.loss.backward()
            if max_grad_norm is not None:
                torch.nn.utils.clip_grad_norm_(parameters, max_grad_norm, foreach=True)
            optimizer.step()
            if scheduler is not None:
                scheduler.step()
            losses.append(result.loss.detach())
            if result.log_weights is not None:
                ess.append(_ess_fraction(result.log_weights))
            if (step + 1) % check_every == 0 or step == n_steps - 1:
                recent = torch.stack(losses[checked:])
                if not bool(torch.isfinite(recent).all()):  # one sync per check_every steps
                    with torch.no_grad():
                        for p, saved in zip(parameters, snapshot):
                            p.copy_(saved)
                    _raise_first_non_finite(losses)
                checked = len(losses)
                snapshot = [p.detach().clone() for p in parameters]
                postfix = {"loss": f"{float(recent[-1]):.4f}"}
                if ess:
                    postfix["ess"] = f"{float(ess[-1]):.3f}"
                bar.set_postfix(postfix)
    return TrainingHistory(
        torch.stack(losses).cpu().tolist(), torch.stack(ess).cpu().tolist() if ess else [], {}
    )


def _raise_first_non_finite(losses: list[Tensor]) -> None:
    history = torch.stack(losses).cpu().tolist()
    step = next(i for i, value in enumerate(history) if not math.isfinite(value))
    raise FloatingPointError(
        f"loss became {history[step]} at step {step}; lower lr, clip gradients (max_grad_norm) or lower "
        "scale_bound. The flow is restored to its parameters at the last finite check."
    )


class _DataBatches:
    """Mini-batches of ``batch_size`` rows: the next rows of a random permutation, a new one every epoch.

    An incomplete last batch is skipped; ``batch_size`` is capped at the number of rows.
    """

    def __init__(self, data: Tensor, batch_size: int) -> None:
        self.data = data
        self.batch_size = min(batch_size, data.shape[0])
        self.order = torch.randperm(data.shape[0], device=data.device)
        self.start = 0

    def next(self) -> Tensor:
        if self.start + self.batch_size > self.data.shape[0]:
            self.order = torch.randperm(self.data.shape[0], device=self.data.device)
            self.start = 0
        batch = self.data[self.order[self.start : self.start + self.batch_size]]
        self.start += self.batch_size
        return batch


def _prepare_data(flow: Flow, data: Tensor) -> Tensor:
    reference = _flow_tensor(flow)
    return _check_data(data, flow.dim).detach().to(device=reference.device, dtype=reference.dtype)


# --------------------------------------------------------------------------- the three trainers


def train_max_likelihood(
    flow: Flow,
    data: Tensor,
    n_steps: int,
    batch_size: int = 256,
    lr: float = 1e-3,
    max_grad_norm: float | None = None,
    weight_decay: float = 0.0,
    lr_schedule: str = "constant",
    progress: bool = False,
) -> TrainingHistory:
    r"""Fit ``flow`` to ``data`` (shape ``(N, dim)``) by maximum likelihood with Adam.

    Each step takes the next ``batch_size`` points :math:`x_{i_1},\dots,x_{i_B}` of a random
    permutation of the data (a new one every epoch; an incomplete last batch is skipped) and
    does one Adam step on the mini-batch negative log-likelihood (:func:`forward_kl_loss`),

    .. math::

        L_\mathrm{ML}(\theta) = -\frac1B\sum_{b=1}^B \log\rho_\theta(x_{i_b}),

    an unbiased estimate of :math:`\mathrm{KL}(\rho_*\,\|\,\rho_\theta)` up to the entropy of
    :math:`\rho_*`, a constant (see :func:`train_flow` for ``lr``, ``weight_decay``,
    ``max_grad_norm`` and ``lr_schedule``). ``data`` is moved to the flow's device and
    dtype. A ``tqdm.auto`` progress bar shows the loss when ``progress`` is true.

    Returns a :class:`TrainingHistory` with the mini-batch loss of every step (its ``ess`` is
    empty: there is no importance weight without a target). Raises ``FloatingPointError`` if the loss stops being finite.

    Example:
        >>> from lecturekit.flows.core import real_nvp
        >>> from lecturekit.training.loop import train_max_likelihood
        >>> _ = torch.manual_seed(0)
        >>> data = 0.5 * torch.randn(1000, 2) + torch.tensor([2.0, -1.0])
        >>> flow = real_nvp(2, n_layers=2, hidden=(16,))
        >>> history = train_max_likelihood(flow, data, n_steps=50, batch_size=64, lr=2e-2)
        >>> history.losses[-1] < history.losses[0]
        True
        >>> bool(torch.allclose(flow.sample(1000).mean(0), torch.tensor([2.0, -1.0]), atol=0.3))
        True

    References:
        | Normalizing Flows for Probabilistic Modeling and Inference (Papamakarios et al., 2021)
        | https://arxiv.org/abs/1912.02762
        | Density estimation using Real NVP (Dinh et al., 2017)
        | https://arxiv.org/abs/1605.08803
    """
    _check_flow(flow)
    check_positive_int(n_steps, "n_steps")
    check_positive_int(batch_size, "batch_size")
    batches = _DataBatches(_prepare_data(flow, data), batch_size)

    def step_loss(step: int) -> StepResult:
        return StepResult(forward_kl_loss(flow, batches.next()))

    return train_flow(
        flow, step_loss, n_steps, lr=lr, max_grad_norm=max_grad_norm, weight_decay=weight_decay,
        lr_schedule=lr_schedule, progress=progress, desc="max likelihood",
    )


def train_reverse_kl(
    flow: Flow,
    target: Target,
    n_steps: int,
    batch_size: int = 256,
    lr: float = 1e-3,
    beta: float = 1.0,
    max_grad_norm: float | None = None,
    weight_decay: float = 0.0,
    lr_schedule: str = "constant",
    progress: bool = False,
) -> TrainingHistory:
    r"""Train ``flow`` towards ``target`` by energy alone: variational inference.

    Each step draws ``batch_size`` fresh flow samples :math:`x_i = T_\theta(z_i)` and takes one
    Adam step on :func:`reverse_kl_loss` at inverse temperature ``beta``,

    .. math::

        L_\mathrm{KL}(\theta) = \frac1n\sum_{i=1}^n\big[\log\rho_\theta(x_i) + \beta U(x_i)\big]
        \approx \mathrm{KL}(\rho_\theta\,\|\,\rho_*^\beta) - \log Z_\beta

    (see :func:`train_flow` for the other settings). Returns a :class:`TrainingHistory`: the
    loss of every batch and the Kish ESS fraction of its samples as importance samples of
    the target, with log-weights :math:`\log w_i = -\log\rho_\theta(x_i) - \beta U(x_i)`.
    Reverse KL is *mode seeking*: a flow that never puts samples in a mode gets no gradient
    to find it (mode collapse).

    Example:
        >>> from lecturekit.flows.core import real_nvp
        >>> from lecturekit.targets.toy import GaussianMixture
        >>> from lecturekit.training.loop import train_reverse_kl
        >>> _ = torch.manual_seed(0)
        >>> target = GaussianMixture(torch.tensor([[2.0, -1.0]]), 0.25)  # one Gaussian, variance 0.25
        >>> flow = real_nvp(2, n_layers=2, hidden=(16,))
        >>> history = train_reverse_kl(flow, target, n_steps=50, batch_size=64, lr=2e-2)
        >>> len(history.losses), len(history.ess)
        (50, 50)
        >>> history.losses[-1] < history.losses[0]
        True
        >>> bool(torch.allclose(flow.sample(1000).mean(0), torch.tensor([2.0, -1.0]), atol=0.3))
        True

    References:
        | Variational Inference with Normalizing Flows (Rezende & Mohamed, 2015)
        | https://arxiv.org/abs/1505.05770
        | Normalizing Flows for Probabilistic Modeling and Inference (Papamakarios et al., 2021)
        | https://arxiv.org/abs/1912.02762
    """
    _check_flow(flow)
    _check_target(target, flow)
    check_positive_int(batch_size, "batch_size")
    beta = check_number(beta, "beta", positive=True)

    def step_loss(step: int) -> StepResult:
        terms = reverse_kl_terms(flow, target, batch_size, beta)
        return StepResult(terms.mean(), -terms)

    return train_flow(
        flow, step_loss, n_steps, lr=lr, max_grad_norm=max_grad_norm, weight_decay=weight_decay,
        lr_schedule=lr_schedule, progress=progress, desc="reverse KL",
    )


def train_boltzmann_generator(
    flow: Flow,
    target: Target,
    data: Tensor,
    n_steps: int,
    batch_size: int = 256,
    data_batch_size: int | None = None,
    lr: float = 1e-3,
    ml_weight: float = 1.0,
    beta: float = 1.0,
    max_grad_norm: float | None = None,
    weight_decay: float = 0.0,
    lr_schedule: str = "constant",
    progress: bool = False,
) -> TrainingHistory:
    r"""Train ``flow`` on :math:`L_\mathrm{KL} + \lambda L_\mathrm{ML}`: energy plus a small data set.

    Each step draws ``batch_size`` flow samples :math:`x_i = T_\theta(z_i)` for the reverse KL
    (:func:`reverse_kl_loss`, inverse temperature ``beta``) and takes the next
    ``data_batch_size`` rows :math:`y_1,\dots,y_B` (default: ``batch_size``, capped at
    ``len(data)``) of ``data`` (shape ``(N, dim)``, moved to the flow's device and dtype) for
    maximum likelihood, then one Adam step on

    .. math::

        L(\theta) = \frac1n\sum_{i=1}^n\big[\log\rho_\theta(x_i) + \beta U(x_i)\big]
            - \frac{\lambda}{B}\sum_{b=1}^B\log\rho_\theta(y_b),
        \qquad \lambda = \texttt{ml\_weight}

    (Noé et al., Science 2019). The data term pulls the flow into every mode the data
    visit, which the mode-seeking reverse KL alone may miss; the energy term fits the
    density where there are no data. Returns a :class:`TrainingHistory` (the ESS is that of
    the flow samples).

    Example:
        >>> from lecturekit.flows.core import real_nvp
        >>> from lecturekit.targets.toy import GaussianMixture
        >>> from lecturekit.training.loop import train_boltzmann_generator
        >>> _ = torch.manual_seed(0)
        >>> target = GaussianMixture(torch.tensor([[2.0, -1.0]]), 0.25)
        >>> data = target.sample(200)
        >>> flow = real_nvp(2, n_layers=2, hidden=(16,))
        >>> history = train_boltzmann_generator(flow, target, data, n_steps=50, batch_size=64, ml_weight=0.5, lr=2e-2)
        >>> history.losses[-1] < history.losses[0]
        True
        >>> bool(torch.allclose(flow.sample(1000).mean(0), torch.tensor([2.0, -1.0]), atol=0.3))
        True

    References:
        | Boltzmann generators: Sampling equilibrium states of many-body systems with deep learning (Noé et al., 2019)
        | https://doi.org/10.1126/science.aaw1147
    """
    _check_flow(flow)
    _check_target(target, flow)
    check_positive_int(n_steps, "n_steps")
    check_positive_int(batch_size, "batch_size")
    if data_batch_size is None:
        data_batch_size = batch_size
    check_positive_int(data_batch_size, "data_batch_size")
    ml_weight = check_number(ml_weight, "ml_weight", non_negative=True)
    beta = check_number(beta, "beta", positive=True)
    batches = _DataBatches(_prepare_data(flow, data), data_batch_size)

    def step_loss(step: int) -> StepResult:
        terms = reverse_kl_terms(flow, target, batch_size, beta)
        loss = terms.mean() + ml_weight * forward_kl_loss(flow, batches.next())
        return StepResult(loss, -terms)

    return train_flow(
        flow, step_loss, n_steps, lr=lr, max_grad_norm=max_grad_norm, weight_decay=weight_decay,
        lr_schedule=lr_schedule, progress=progress, desc="Boltzmann generator",
    )
