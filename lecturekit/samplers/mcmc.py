r"""Metropolis-Hastings MCMC, vectorised over many chains.

A kernel has BlackJAX's shape: ``init(position) -> MCMCState`` and
``step(state) -> (MCMCState, StepInfo)``. ``position`` has shape ``(n_chains, dim)``
and one call to ``step`` advances *every* chain by one Metropolis-Hastings move
(Metropolis et al. 1953; Hastings 1970): propose :math:`x' \sim q(\cdot \mid x)`, then
keep it with probability

.. math::

    \alpha(x \to x') = \min\Big[1,\; \frac{\rho(x')\, q(x \mid x')}{\rho(x)\, q(x' \mid x)}\Big],

otherwise stay at :math:`x`. The ratio only involves :math:`\rho` up to its
normalising constant, which is why MCMC works with Boltzmann weights
:math:`e^{-\beta U}`.

Proposals where the target's ``log_prob`` is :math:`-\infty` (outside its support),
or where the ratio comes out NaN, are rejected: the chain never leaves the support
and no NaN reaches the state. Chains must start inside the support.

The kernels here are random-walk Metropolis (:class:`RandomWalkMetropolis`) and the
Metropolis-adjusted Langevin algorithm (:class:`MALA`); :func:`run_chains` drives any kernel.

References:
    | Equation of State Calculations by Fast Computing Machines (Metropolis et al., 1953)
    | https://doi.org/10.1063/1.1699114
    | Monte Carlo sampling methods using Markov chains and their applications (Hastings, 1970)
    | https://doi.org/10.1093/biomet/57.1.97
    | Exponential convergence of Langevin distributions and their discrete approximations (Roberts & Tweedie, 1996)
    | https://doi.org/10.2307/3318418
"""

from __future__ import annotations

import math
from typing import NamedTuple, Protocol

import torch
from torch import Tensor

from lecturekit.checks import check_points, check_positive_int, check_same_device, check_same_floating_dtype, check_tensor
from lecturekit.diagnostics import acceptance_rate
from lecturekit.progress import progress_bar
from lecturekit.targets.base import Target

__all__ = [
    "MALA",
    "ChainResult",
    "Kernel",
    "MCMCState",
    "RandomWalkMetropolis",
    "StepInfo",
    "check_target_device",
    "metropolis_accept",
    "metropolis_update",
    "run_chains",
]


class MCMCState(NamedTuple):
    """Where the chains are, with what the next step needs cached."""

    position: Tensor  #: ``(n_chains, dim)``
    log_prob: Tensor  #: ``(n_chains,)``, the target's log-density at ``position``
    score: Tensor | None = None  #: ``(n_chains, dim)``, its gradient (MALA); ``None`` for RW
    #: ``(n_chains,)``, an independence proposal's log-density at ``position`` (flow IMH); else ``None``
    proposal_log_prob: Tensor | None = None


class StepInfo(NamedTuple):
    """What happened in one step."""

    accepted: Tensor  #: ``(n_chains,)`` bool
    log_acceptance_ratio: Tensor  #: ``(n_chains,)``, may be ``-inf``, never NaN


class Kernel(Protocol):
    """Anything with BlackJAX's ``init``/``step`` pair."""

    def init(self, position: Tensor) -> MCMCState: ...

    def step(self, state: MCMCState) -> tuple[MCMCState, StepInfo]: ...


# --------------------------------------------------------------------------- shared accept/reject


def metropolis_accept(log_acceptance_ratio: Tensor) -> Tensor:
    r"""Metropolis' coin flip, vectorised: accept where :math:`u < r`, :math:`u \sim U[0, 1)`.

    This accepts with probability :math:`\min(1, r)`, :math:`r = e^{\log r}`. A log-ratio of
    :math:`-\infty` or NaN is always rejected (:math:`u < 0` and every comparison with
    NaN are false).
    """
    return torch.rand_like(log_acceptance_ratio) < log_acceptance_ratio.exp()


def metropolis_update(
    state: MCMCState, proposal: MCMCState, log_acceptance_ratio: Tensor
) -> tuple[MCMCState, StepInfo]:
    """The one accept/reject step every kernel ends with.

    Non-finite log-ratios become :math:`-\\infty` and are rejected: :math:`-\\infty`
    outside the target's support, NaN (e.g. a score of NaN there) or :math:`+\\infty`
    from a broken target. Accepted chains take the proposal's position and cached
    ``log_prob``/``score``/``proposal_log_prob``, the others keep theirs.
    """
    if (state.score is None) != (proposal.score is None):
        raise ValueError("state and proposal must both cache a score, or neither")
    if (state.proposal_log_prob is None) != (proposal.proposal_log_prob is None):
        raise ValueError("state and proposal must both cache a proposal_log_prob, or neither")
    log_ratio = log_acceptance_ratio.nan_to_num(nan=-math.inf, posinf=-math.inf, neginf=-math.inf)
    accepted = metropolis_accept(log_ratio)
    move = torch.stack([accepted] * state.position.shape[-1], dim=-1)  # a full-size mask: faster torch.where
    new_state = MCMCState(
        position=torch.where(move, proposal.position, state.position),
        log_prob=torch.where(accepted, proposal.log_prob, state.log_prob),
        score=None if state.score is None else torch.where(move, proposal.score, state.score),
        proposal_log_prob=None
        if state.proposal_log_prob is None
        else torch.where(accepted, proposal.proposal_log_prob, state.proposal_log_prob),
    )
    return new_state, StepInfo(accepted, log_ratio)


def _add_scaled(x: Tensor, scale: float | Tensor, y: Tensor, out: Tensor | None = None) -> Tensor:
    """``x + scale * y`` in one operation; ``scale`` is a float or a tensor broadcastable to ``y``."""
    if isinstance(scale, float):
        return torch.add(x, y, alpha=scale, out=out)
    return torch.addcmul(x, scale, y, out=out)


def _normal_like(x: Tensor, std: float | Tensor) -> Tensor:
    """Gaussian noise shaped like ``x`` with standard deviation ``std`` (a float or a broadcastable tensor)."""
    return torch.empty_like(x).normal_(0.0, std) if isinstance(std, float) else std * torch.randn_like(x)


# --------------------------------------------------------------------------- checks


def check_target_device(target: Target, x: Tensor, name: str = "position") -> None:
    """Raise if a tensor held by ``target`` lives on another device than ``x`` or has another floating dtype.

    A ``ValueError`` for a device mismatch, a ``TypeError`` when ``x`` is floating-point
    with another dtype than the target's floating-point tensors (``float64`` points are
    not silently rounded into a ``float32`` target, nor the reverse), as
    :mod:`lecturekit.checks` documents.
    """
    tensors = {f"target.{key}": value for key, value in vars(target).items() if isinstance(value, Tensor)}
    if tensors:
        check_same_device(**{name: x}, **tensors)
        check_same_floating_dtype(**{name: x}, **tensors)


def _check_step_size(step_size: float | Tensor) -> float | Tensor:
    if isinstance(step_size, bool) or not isinstance(step_size, (int, float, Tensor)):
        raise TypeError(f"step_size must be a float or a tensor of shape (n_chains,), got {type(step_size).__name__}")
    if isinstance(step_size, Tensor):
        check_tensor(step_size, "step_size")
        if step_size.dim() > 1:
            raise ValueError(f"step_size must be a float or have shape (n_chains,), got {tuple(step_size.shape)}")
        if not bool(torch.all(torch.isfinite(step_size) & (step_size > 0))):
            raise ValueError("step_size must be positive and finite")
        return float(step_size) if step_size.dim() == 0 else step_size.detach()
    if not (math.isfinite(step_size) and step_size > 0):
        raise ValueError(f"step_size must be positive and finite, got {step_size!r}")
    return float(step_size)


class _LocalKernel:
    """Shared set-up of the local kernels: target, step size (one, or one per chain), checks."""

    def __init__(self, target: Target, step_size: float | Tensor) -> None:
        if not isinstance(target, Target):
            raise TypeError(f"target must be a lecturekit.targets.base.Target, got {type(target).__name__}")
        self.target = target
        self.step_size = _check_step_size(step_size)

    def _step_size_like(self, x: Tensor) -> float | Tensor:
        """The step size, broadcastable against ``x`` of shape ``(n_chains, ...)``."""
        if isinstance(self.step_size, float):
            return self.step_size
        return self.step_size.to(x.dtype).reshape(-1, *[1] * (x.dim() - 1))

    def _check_position(self, position: Tensor) -> Tensor:
        check_points(position, self.target.dim, "position")
        if position.dim() != 2:
            raise ValueError(f"position must have shape (n_chains, {self.target.dim}), got {tuple(position.shape)}")
        check_target_device(self.target, position)
        if isinstance(self.step_size, Tensor):
            if self.step_size.shape != position.shape[:1]:
                raise ValueError(
                    f"step_size has shape {tuple(self.step_size.shape)} but position has {position.shape[0]} chains"
                )
            check_same_device(position=position, step_size=self.step_size)
        return position.detach()

    @staticmethod
    def _check_in_support(log_prob: Tensor, score: Tensor | None = None) -> None:
        finite = torch.isfinite(log_prob)
        if score is not None:
            finite &= torch.isfinite(score).all(-1)
        if not bool(finite.all()):
            bad = torch.nonzero(~finite).flatten()[:10].tolist()
            raise ValueError(
                f"position must lie inside the target's support: log_prob or score is not finite for chains {bad}"
            )


class _GradientKernel(_LocalKernel):
    """A local kernel whose state caches the score as well as the log-density (MALA, HMC)."""

    def init(self, position: Tensor) -> MCMCState:
        position = self._check_position(position)
        log_prob, score = self.target.log_prob_and_score(position)
        self._check_in_support(log_prob, score)
        return MCMCState(position, log_prob, score)


# --------------------------------------------------------------------------- kernels


class RandomWalkMetropolis(_LocalKernel):
    r"""Random-walk Metropolis (Metropolis et al. 1953).

    .. math::

        x' = x + \sigma \xi, \quad \xi \sim \mathcal{N}(0, I), \qquad
        \log r = \log\rho(x') - \log\rho(x),

    the proposal being symmetric. ``step_size`` is :math:`\sigma`: a float, or a tensor
    of shape ``(n_chains,)`` giving each chain its own. One step costs one target
    ``log_prob`` evaluation. In high dimension :math:`d` the step must shrink like
    :math:`d^{-1/2}`, and an acceptance rate near 0.234 is then optimal (Roberts, Gelman
    & Gilks 1997).

    Example:
        >>> from lecturekit.targets.toy import GaussianMixture
        >>> _ = torch.manual_seed(0)
        >>> target = GaussianMixture(torch.ones(1, 2), 0.5)  # N((1, 1), I / 2)
        >>> kernel = RandomWalkMetropolis(target, step_size=1.0)
        >>> state, info = kernel.step(kernel.init(torch.zeros(8, 2)))
        >>> state.position.shape, info.accepted.shape
        (torch.Size([8, 2]), torch.Size([8]))
        >>> samples = run_chains(kernel, torch.zeros(32, 2), n_steps=100).samples[20:]
        >>> abs(samples.mean().item() - 1.0) < 0.1, abs(samples.var().item() - 0.5) < 0.1
        (True, True)

    References:
        | Equation of State Calculations by Fast Computing Machines (Metropolis et al., 1953)
        | https://doi.org/10.1063/1.1699114
        | Weak convergence and optimal scaling of random walk Metropolis algorithms (Roberts et al., 1997)
        | https://doi.org/10.1214/aoap/1034625254
    """

    def init(self, position: Tensor) -> MCMCState:
        position = self._check_position(position)
        log_prob = self.target.log_prob(position)
        self._check_in_support(log_prob)
        return MCMCState(position, log_prob, None)

    def step(self, state: MCMCState) -> tuple[MCMCState, StepInfo]:
        x = state.position
        proposal = x + _normal_like(x, self._step_size_like(x))
        log_prob = self.target.log_prob(proposal)
        return metropolis_update(state, MCMCState(proposal, log_prob, None), log_prob - state.log_prob)


class MALA(_GradientKernel):
    r"""Metropolis-adjusted Langevin algorithm (Roberts & Tweedie 1996).

    One Euler step of overdamped Langevin dynamics, corrected by Metropolis-Hastings:

    .. math::

        x' = x + h\, s(x) + \sqrt{2h}\, \xi, \quad \xi \sim \mathcal{N}(0, I), \qquad
        q(x' \mid x) = \mathcal{N}\big(x';\, x + h\, s(x),\, 2h I\big),

    with the score :math:`s = \nabla \log\rho = -\beta\nabla U`, so that the drift is the
    gradient step :math:`x - h\beta\nabla U(x)`. ``step_size`` is :math:`h`: a float or one
    per chain.

    The state caches ``log_prob`` and ``score``, so one step costs exactly one call
    to the target's ``log_prob_and_score``. The Gaussian normalisations cancel in the
    acceptance ratio; writing :math:`\eta = x' - x - h\,s(x)` and
    :math:`S = s(x) + s(x')`, so that :math:`x - x' - h\,s(x') = -(\eta + hS)`,

    .. math::

        \log\frac{q(x \mid x')}{q(x' \mid x)} = \frac{|\eta|^2 - |\eta + hS|^2}{4h}
        = -\tfrac12\, S \cdot \big(\eta + \tfrac{h}{2} S\big),

    which :meth:`step` uses; :meth:`log_acceptance_ratio` is the textbook form. Without the
    Metropolis-Hastings correction the Euler step would sample a biased density; with it the
    chain is exact, and in high dimension an acceptance rate near 0.574 with
    :math:`h \propto d^{-1/3}` is optimal (Roberts & Rosenthal 1998).

    Example:
        >>> from lecturekit.targets.toy import GaussianMixture
        >>> _ = torch.manual_seed(0)
        >>> target = GaussianMixture(torch.ones(1, 2), 0.5)  # N((1, 1), I / 2)
        >>> result = run_chains(MALA(target, step_size=0.3), torch.zeros(32, 2), n_steps=60)
        >>> samples = result.samples[10:]
        >>> abs(samples.mean().item() - 1.0) < 0.1, abs(samples.var().item() - 0.5) < 0.1
        (True, True)

    References:
        | Exponential convergence of Langevin distributions and their discrete approximations (Roberts & Tweedie, 1996)
        | https://doi.org/10.2307/3318418
        | Optimal scaling of discrete approximations to Langevin diffusions (Roberts & Rosenthal, 1998)
        | https://doi.org/10.1111/1467-9868.00123
    """

    def step(self, state: MCMCState) -> tuple[MCMCState, StepInfo]:
        x, score = state.position, state.score
        h = self._step_size_like(x)
        noise = _normal_like(x, (2 * h) ** 0.5)  # eta = y - x - h s(x) ~ N(0, 2h I)
        y = _add_scaled(x, h, score).add_(noise)
        log_prob_y, score_y = self.target.log_prob_and_score(y)
        # log q(x|y) - log q(y|x) = (|eta|^2 - |eta + h S|^2) / 4h = -S.(eta + h S / 2) / 2,  S = s(x) + s(y),
        # since x - y - h s(y) = -(eta + h S). (Non-finite values at y are rejected by metropolis_update.)
        score_sum = score + score_y
        log_q_ratio = torch.linalg.vecdot(score_sum, _add_scaled(noise, h / 2, score_sum, out=noise))  # eta is spent
        log_ratio = (log_prob_y - state.log_prob).sub_(log_q_ratio, alpha=0.5)
        return metropolis_update(state, MCMCState(y, log_prob_y, score_y), log_ratio)

    def proposal_log_density(self, x_to: Tensor, x_from: Tensor, score_from: Tensor) -> Tensor:
        r"""Normalised :math:`\log q(x_\text{to} \mid x_\text{from}) = \log\mathcal{N}(x_\text{to};\, x_\text{from} + h\, s,\, 2h I)`.

        All three have shape ``(n_chains, dim)``; returns ``(n_chains,)``.
        """
        for name, value in (("x_to", x_to), ("x_from", x_from), ("score_from", score_from)):
            check_points(value, self.target.dim, name)
        h = self._step_size_like(x_from)
        residual = x_to - x_from - h * score_from
        if isinstance(h, float):
            log_h = math.log(h)
        else:
            h = h.squeeze(-1)
            log_h = torch.log(h)
        return -residual.square().sum(-1) / (4 * h) - 0.5 * self.target.dim * (math.log(4 * math.pi) + log_h)

    def log_acceptance_ratio(self, current: MCMCState, proposed: MCMCState) -> Tensor:
        r""":math:`\log\rho(y) + \log q(x \mid y) - \log\rho(x) - \log q(y \mid x)` from two states with scores.

        The textbook form; :meth:`step` computes the same number more cheaply.
        """
        forward = self.proposal_log_density(proposed.position, current.position, current.score)
        backward = self.proposal_log_density(current.position, proposed.position, proposed.score)
        return proposed.log_prob - current.log_prob + backward - forward


# --------------------------------------------------------------------------- driver


class ChainResult(NamedTuple):
    """Output of :func:`run_chains`."""

    samples: Tensor  #: ``(n_steps // thin, n_chains, dim)``, the state after every ``thin``-th step
    accepted: Tensor  #: ``(n_steps, n_chains)`` bool, every step (not thinned)
    final_state: MCMCState

    def acceptance_rate(self) -> float:
        """Fraction of accepted proposals over all steps and chains."""
        return acceptance_rate(self.accepted)


def run_chains(
    kernel: Kernel, initial_position: Tensor, n_steps: int, thin: int = 1, progress: bool = False
) -> ChainResult:
    """Run ``n_steps`` steps of ``kernel`` on all chains from ``initial_position`` ``(n_chains, dim)``.

    Keeps the position after every ``thin``-th step (the initial position is not
    included) and the acceptance of every step. ``progress=True`` shows a
    ``tqdm.auto`` bar. ``initial_position`` needs at least one chain.
    """
    if not (callable(getattr(kernel, "init", None)) and callable(getattr(kernel, "step", None))):
        raise TypeError(f"kernel must have init(position) and step(state) methods, got {type(kernel).__name__}")
    check_tensor(initial_position, "initial_position")
    if initial_position.dim() != 2 or initial_position.shape[0] == 0:
        raise ValueError(
            f"initial_position must have shape (n_chains, dim) with n_chains >= 1, got {tuple(initial_position.shape)}"
        )
    check_positive_int(n_steps, "n_steps")
    check_positive_int(thin, "thin")
    if thin > n_steps:
        raise ValueError(f"thin={thin} is larger than n_steps={n_steps}: nothing would be kept")
    with torch.no_grad():
        state = kernel.init(initial_position)
        n_chains = state.position.shape[0]
        samples = state.position.new_empty((n_steps // thin, *state.position.shape))
        accepted = torch.empty((n_steps, n_chains), dtype=torch.bool, device=state.position.device)
        for t in progress_bar(n_steps, progress, desc=type(kernel).__name__):
            state, info = kernel.step(state)
            accepted[t] = info.accepted
            if (t + 1) % thin == 0:
                samples[(t + 1) // thin - 1] = state.position
    return ChainResult(samples, accepted, state)
