"""Global-local vs NeuTra-MALA on the 4-mode mixture in d = 64, with the same wall-clock budget (Section 4.2).

The target is ``four_mode_mixture(dim)`` (Grenioux, Durmus, Moulines & Gabrie, ICML 2023: four
unit-covariance Gaussians, weights 1/4). One Real NVP (6 affine couplings, hidden (64, 64)) is
trained by maximum likelihood on exact samples of the mixture (``--train-samples``,
``--train-steps``); its training time is reported on its own, with its loss on fresh samples
(longer training over-fits the 8,192 samples: 1,000 steps gave a training loss of 90.1, below
the target's entropy 92.2, and a flow-IMH acceptance of 0.05 instead of 0.18 in d = 64). Then, for each initialisation
(``one``: every chain in mode 0, a test of discovery; ``spread``: ``chains / 4`` per mode, as in
the paper, a test of weight estimation), both samplers run for ``--seconds`` of wall-clock time
each, with the flow frozen:

- ``global-local``: iterations of one flow-IMH step then ``--local-steps`` MALA steps (step size
  ``--mala-step``) in the original space (``GlobalLocalKernel``); one state kept per iteration;
- ``NeuTra-MALA``: MALA steps (step size ``--neutra-step``) on the flow's push-backward
  (``NeuTraTarget``), mapped back through the flow; one state kept every ``local-steps + 1``
  steps (the same number of target evaluations per kept state).

The first quarter of the kept states is dropped. Columns: ``evals`` target evaluations per chain
done in the budget, ``acc`` acceptance (global-local: of the flow proposals), ``found`` modes
visited by some chain, ``per chain`` modes visited per chain, ``max err`` the largest
``|weight - 1/4|``, ``MCSE`` the largest Monte Carlo standard error of the four weights
(multi-chain ESS). Aim (issue 10): global-local finds all 4 modes with weights within 0.05.

    .venv/bin/python benchmarks/bench_neutra_global_local.py [--seconds 20] [--threads 1] [--device cuda]

Timings depend on the machine and its load: say which when you quote them.
"""

from __future__ import annotations

import argparse
import math
import time

import torch
from torch import Tensor

from lecturekit.device import seed_everything, synchronize
from lecturekit.diagnostics import mode_fraction_mcse, mode_occupancy
from lecturekit.flows.core import Flow, real_nvp
from lecturekit.samplers.adaptive import GlobalLocalKernel
from lecturekit.samplers.mcmc import Kernel, MALA
from lecturekit.samplers.neutra import NeuTraTarget
from lecturekit.targets.toy import GaussianMixture, four_mode_mixture
from lecturekit.training.loop import train_max_likelihood

AIM_ERROR = 0.05
CHECK_EVERY = 10  # kernel steps between clock readings


def run_for(kernel: Kernel, start: Tensor, seconds: float, thin: int, device: torch.device) -> tuple[Tensor, int, float]:
    """Step ``kernel`` until ``seconds`` have passed; every ``thin``-th state, the steps done, the acceptance."""
    state = kernel.init(start)
    kept, n_steps, n_accepted = [], 0, 0.0
    synchronize(device)
    t0 = time.perf_counter()
    while True:
        for _ in range(CHECK_EVERY):
            state, info = kernel.step(state)
            n_steps += 1
            n_accepted += float(info.accepted.float().mean())
            if n_steps % thin == 0:
                kept.append(state.position.clone())
        synchronize(device)
        if time.perf_counter() - t0 >= seconds:
            break
    return torch.stack(kept), n_steps, n_accepted / n_steps


def summarise(name: str, states: Tensor, target: GaussianMixture, evaluations: int, acceptance: float) -> bool:
    states = states[states.shape[0] // 4 :]  # burn-in
    occupancy = mode_occupancy(states, target.means, target.weights)
    try:
        error_bar = f"{float(mode_fraction_mcse(states, target.means).max()):6.3f}"
    except ValueError:  # a mode label that never changes: undefined
        error_bar = f"{'n/a':>6s}"
    found = int(occupancy.modes_found.sum())
    error = float(occupancy.weight_error.max())
    per_chain = float(occupancy.visited.sum(1).float().mean())
    weights = " ".join(f"{w:.3f}" for w in occupancy.fractions.tolist())
    print(f"  {name:13s} {evaluations:>7d} {acceptance:5.2f} {found:>5d} {per_chain:>9.2f} {error:>8.3f} "
          f"{error_bar}  [{weights}]")
    return found == 4 and error < AIM_ERROR


def train_flow_on_exact_samples(target: GaussianMixture, args: argparse.Namespace, device: torch.device) -> Flow:
    flow = real_nvp(args.dim, n_layers=6, hidden=(64, 64)).to(device)
    synchronize(device)
    t0 = time.perf_counter()
    loss = train_max_likelihood(flow, target.sample(args.train_samples), args.train_steps, batch_size=256, lr=3e-3).losses
    synchronize(device)
    with torch.no_grad():
        held_out = float(-flow.log_prob(target.sample(20_000)).mean())
    print(f"flow: maximum likelihood on {args.train_samples} exact samples, {args.train_steps} steps: "
          f"{time.perf_counter() - t0:.1f} s (not part of the sampling budget); loss on the last 50 batches "
          f"{sum(loss[-50:]) / len(loss[-50:]):.2f}, on 20,000 fresh samples {held_out:.2f}; its lower bound, "
          f"the target's entropy: {exact_entropy(target)}")
    return flow


def exact_entropy(target: GaussianMixture, n: int = 20_000) -> str:
    """Monte Carlo estimate of -E log rho_* with its standard error: the best possible maximum-likelihood loss."""
    minus_log_prob = -target.log_prob(target.sample(n)).double()
    return f"{float(minus_log_prob.mean()):.2f} +- {float(minus_log_prob.std() / n**0.5):.2f}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dim", type=int, default=64)
    parser.add_argument("--chains", type=int, default=32)
    parser.add_argument("--seconds", type=float, default=20.0, help="wall-clock budget of each sampler and start")
    parser.add_argument("--init", nargs="+", default=["one", "spread"], choices=["one", "spread"])
    parser.add_argument("--local-steps", type=int, default=3)
    parser.add_argument("--mala-step", type=float, default=0.3)
    parser.add_argument("--neutra-step", type=float, default=0.15)
    parser.add_argument("--train-samples", type=int, default=8192)
    parser.add_argument("--train-steps", type=int, default=300)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--threads", type=int, default=0, help="CPU threads for torch (0: torch's default)")
    args = parser.parse_args()
    device = torch.device(args.device)
    if device.type == "cpu" and args.threads > 0:
        torch.set_num_threads(args.threads)
    if not (math.isfinite(args.seconds) and args.seconds > 0):
        parser.error(f"--seconds must be positive and finite, got {args.seconds}")
    if args.chains < 4 or args.chains % 4:
        parser.error(f"--chains must be a positive multiple of 4 (chains per mode), got {args.chains}")
    print(f"device {device}, torch threads {torch.get_num_threads()}; d = {args.dim}, {args.chains} chains, "
          f"{args.seconds:g} s per sampler and start")

    seed_everything(args.seed)
    target = four_mode_mixture(args.dim, device=device)
    flow = train_flow_on_exact_samples(target, args, device)
    latent = NeuTraTarget(target, flow)
    thin = args.local_steps + 1
    starts = {
        "one": target.means[0] + torch.randn(args.chains, args.dim, device=device),
        "spread": target.means.repeat_interleave(args.chains // 4, 0)
        + torch.randn(args.chains, args.dim, device=device),
    }
    passed = {}
    for init in args.init:
        start = starts[init]
        print(f"\nstart: {'all chains in mode 0' if init == 'one' else f'{args.chains // 4} chains per mode'}")
        print(f"  {'sampler':13s} {'evals':>7s} {'acc':>5s} {'found':>5s} {'per chain':>9s} {'max err':>8s} "
              f"{'MCSE':>6s}  weights (exact 0.25 each)")
        global_local = GlobalLocalKernel(target, flow, MALA(target, args.mala_step), args.local_steps)
        states, n_iterations, acceptance = run_for(global_local, start, args.seconds, 1, device)
        passed[init] = summarise("global-local", states, target, n_iterations * thin, acceptance)
        states, n_steps, acceptance = run_for(MALA(latent, args.neutra_step), latent.to_latent(start),
                                              args.seconds, thin, device)
        summarise("NeuTra-MALA", latent.to_target(states), target, n_steps, acceptance)
    for init, ok in passed.items():
        print(f"aim (global-local, start '{init}'): all 4 modes and max |weight - 1/4| < {AIM_ERROR}: "
              f"{'met' if ok else 'NOT met'}")


if __name__ == "__main__":
    main()
