r"""Training flows by maximum likelihood (Section 2.1: "maximum likelihood + SGD").

Given data :math:`x_1,\dots,x_N` from an unknown density :math:`\rho_*`, maximum
likelihood minimises

.. math::

    L(\theta) = -\frac1N\sum_{i=1}^N \log\rho_\theta(x_i)
              = \mathrm{KL}(\rho_*\,\|\,\rho_\theta) - \mathbb{E}_{\rho_*}[\log\rho_*] + O(N^{-1/2}),

the *forward* Kullback-Leibler divergence up to a constant (Papamakarios et al., JMLR 2021,
sec. 2.3.1). It needs samples of the target but never its density; the flow's exact
log-density (:meth:`lecturekit.flows.Flow.log_prob`) makes the loss exact.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

from lecturekit.checks import check_matches_module, check_number, check_points, check_positive_int
from lecturekit.flows import Flow
from lecturekit.progress import progress_bar

__all__ = ["forward_kl_loss", "train_max_likelihood"]


def _flow_tensor(flow: Flow) -> Tensor:
    for tensor in flow.parameters():
        return tensor
    raise ValueError("flow has no parameters to train")


def forward_kl_loss(flow: Flow, data: Tensor) -> Tensor:
    r"""Negative mean log-likelihood :math:`-\frac1N\sum_i\log\rho_\theta(x_i)` of ``data`` of shape ``(N, dim)``."""
    if not isinstance(flow, Flow):
        raise TypeError(f"flow must be a lecturekit Flow, got {type(flow).__name__}")
    check_points(data, flow.dim, "data")
    check_matches_module(data, flow, "data", "the flow")
    return -flow.log_prob(data).mean()


def train_max_likelihood(
    flow: Flow,
    data: Tensor,
    n_steps: int,
    batch_size: int = 256,
    lr: float = 1e-3,
    progress: bool = False,
    weight_decay: float = 0.0,
) -> list[float]:
    """Fit ``flow`` to ``data`` (shape ``(N, dim)``) by maximum likelihood with Adam.

    Each step takes the next ``batch_size`` points of a random permutation of the data
    (a new one every epoch; an incomplete last batch is skipped) and does one Adam step
    (Kingma & Ba, ICLR 2015) on :func:`forward_kl_loss`, with Adam's L2 penalty ``weight_decay``
    (none by default). ``data`` is moved to the flow's device and dtype. A
    ``tqdm.auto`` progress bar shows the loss when ``progress`` is true.

    Returns the mini-batch loss of every step. Raises ``FloatingPointError`` if the loss stops
    being finite (lower ``lr`` or ``scale_bound``).
    """
    if not isinstance(flow, Flow):
        raise TypeError(f"flow must be a lecturekit Flow, got {type(flow).__name__}")
    check_points(data, flow.dim, "data")
    if data.dim() != 2 or data.shape[0] == 0:
        raise ValueError(f"data must have shape (N, {flow.dim}) with N >= 1, got {tuple(data.shape)}")
    if not bool(torch.isfinite(data).all()):
        raise ValueError("data must be finite (it contains nan or inf)")
    check_positive_int(n_steps, "n_steps")
    check_positive_int(batch_size, "batch_size")
    check_number(lr, "lr", positive=True)
    check_number(weight_decay, "weight_decay", non_negative=True)
    reference = _flow_tensor(flow)
    data = data.detach().to(device=reference.device, dtype=reference.dtype)
    n_data = data.shape[0]
    batch_size = min(batch_size, n_data)

    optimizer = torch.optim.Adam(flow.parameters(), lr=lr, weight_decay=weight_decay)
    losses: list[Tensor] = []
    order = torch.randperm(n_data, device=data.device)
    start = 0
    with progress_bar(n_steps, progress, desc="max likelihood") as bar:
        for step in bar:
            if start + batch_size > n_data:
                order = torch.randperm(n_data, device=data.device)
                start = 0
            batch = data[order[start : start + batch_size]]
            start += batch_size
            loss = forward_kl_loss(flow, batch)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            losses.append(loss.detach())
            # Read the loss back only now and then: every .item() waits for the GPU.
            if step % 50 == 0 or step == n_steps - 1:
                value = float(losses[-1])
                if not math.isfinite(value):
                    _raise_first_non_finite(losses)
                bar.set_postfix(loss=f"{value:.4f}")
    return torch.stack(losses).cpu().tolist()


def _raise_first_non_finite(losses: list[Tensor]) -> None:
    history = torch.stack(losses).cpu().tolist()
    step = next(i for i, value in enumerate(history) if not math.isfinite(value))
    raise FloatingPointError(f"loss became {history[step]} at step {step}; lower lr or scale_bound")
