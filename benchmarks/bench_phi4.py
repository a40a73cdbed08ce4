"""Flow-IMH on 2D lattice phi^4: acceptance reached after a given reverse-KL training time.

Setting of Albergo et al.'s tutorial (arXiv:2101.08176): L = 8, m^2 = -4, lambda = 8, a
``lattice_flow`` of 16 checkerboard couplings with periodic conv conditioners (hidden
(8, 8), kernel 3). The training recipe is the book's chapter 3.3: a trainable diagonal
Gaussian base started at width 0.5, Adam at lr 3e-3 with cosine decay, batch 64,
gradient clipping at norm 10 (``lecturekit.training.loop.train_reverse_kl``).

The script, on ``lecturekit.device.default_device()``:

1. measures the steps/s of the training step (``train_reverse_kl`` on a throwaway flow);
2. for each time budget (default 15, 30, 60 s) trains a fresh flow for as many steps as
   the measured rate fits in 95% of the budget (the cosine schedule needs the number of
   steps in advance), and reports the training time it actually took;
3. runs flow IMH (``FlowIndependenceMetropolis``, 64 chains) with each trained flow and
   reports the acceptance, the IS effective sample size, and chi_2 with its error from
   the chains' autocorrelation, against an HMC reference (256 chains).

Aim: acceptance >= 0.30 after 60 s on a 2-core CPU, with chi_2 within 2 standard errors
of HMC (the tutorial's HMC value is 0.75 +- 0.01). Run by hand or with ``make bench``;
it is not a test. On a shared machine the timings are pessimistic: say so with them.

    python benchmarks/bench_phi4.py [--budgets 15 30 60] [--threads 1] [--seed 0] [--rate STEPS_PER_S]
"""

from __future__ import annotations

import argparse
import math

import torch

from lecturekit.device import Timer, default_device, seed_everything
from lecturekit.diagnostics import ChainTooShortError, ess_from_log_weights
from lecturekit.distributions import DiagonalGaussian
from lecturekit.flows.core import Flow
from lecturekit.flows.lattice import lattice_flow
from lecturekit.targets.phi4_lattice import Phi4Lattice, susceptibility, susceptibility_along_chain
from lecturekit.samplers.flow_mcmc import FlowIndependenceMetropolis
from lecturekit.samplers.hmc import HMC
from lecturekit.samplers.mcmc import run_chains
from lecturekit.training.loop import train_reverse_kl

L, M2, LAM = 8, -4.0, 8.0
BATCH_SIZE, LR, MAX_GRAD_NORM = 64, 3e-3, 10.0


def make_flow(device: torch.device) -> Flow:
    base = DiagonalGaussian(torch.zeros(L * L), torch.full((L * L,), 0.5), trainable=True)
    return lattice_flow(L, n_layers=16, hidden=(8, 8), kernel_size=3, base=base).to(device)


def train(flow: Flow, target: Phi4Lattice, n_steps: int) -> None:
    train_reverse_kl(
        flow, target, n_steps, batch_size=BATCH_SIZE, lr=LR, lr_schedule="cosine", max_grad_norm=MAX_GRAD_NORM
    )


def chi2_with_error(chain: torch.Tensor) -> tuple[float, float]:
    """chi_2 from ``(steps, chains, V)``, with the MCSE of M^2 / V (lecturekit's estimate).

    The error is NaN when the chain is too short for its autocorrelation time (a poorly
    trained flow rejects for long stretches); the estimate of chi_2 is then not reported
    as a measurement.
    """
    try:
        estimate = susceptibility_along_chain(chain)
        return float(estimate.value), float(estimate.stderr)
    except ChainTooShortError as error:
        print(f"  (chi_2 error refused: {error})")
        return float(susceptibility(chain)), math.nan


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--budgets", type=float, nargs="+", default=[15.0, 30.0, 60.0], help="training seconds")
    parser.add_argument("--threads", type=int, default=1, help="CPU threads for torch (0: torch's default)")
    parser.add_argument("--chains", type=int, default=64, help="flow-IMH chains")
    parser.add_argument("--imh-steps", type=int, default=600, help="flow-IMH steps per chain")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--rate",
        type=float,
        default=None,
        help="steps/s to assume instead of the measured rate, e.g. to give each budget the step count "
        "that a quiet machine fits in it when this one is busy (the train times printed are then not the budget)",
    )
    args = parser.parse_args()

    device = default_device()
    if device.type == "cpu" and args.threads > 0:
        # Batches of 64 8x8 fields are too small for intra-op parallelism to pay; on a shared
        # machine extra threads wait on each other (measured: 2 threads ~20x slower under load).
        torch.set_num_threads(args.threads)
    target = Phi4Lattice(L, M2, LAM)
    print(f"device: {device}, torch {torch.__version__}, {torch.get_num_threads()} threads")

    seed_everything(args.seed)
    with torch.no_grad(), Timer(device) as timer:
        hmc = run_chains(HMC(target, 0.1, n_leapfrog=10, jitter=0.5), 0.1 * torch.randn(256, L * L, device=device), 1100)
    chi2_hmc, error_hmc = chi2_with_error(hmc.samples[100:])
    print(f"HMC reference: chi_2 = {chi2_hmc:.4f} +- {error_hmc:.4f} ({timer.elapsed:.1f} s; tutorial 0.75 +- 0.01)")

    calibration = make_flow(device)
    train(calibration, target, 10)  # warm-up
    with Timer(device) as timer:
        train(calibration, target, 100)
    rate = 100 / timer.elapsed
    print(f"training step (batch {BATCH_SIZE}, 16 conv couplings): {rate:.1f} steps/s")
    if args.rate is not None:
        rate = args.rate
        print(f"budgets get the step counts of an assumed {rate:.1f} steps/s (--rate)")

    print(f"{'budget s':>8} {'steps':>6} {'train s':>8} {'accept':>7} {'ESS/N':>6} {'chi_2':>16} {'z vs HMC':>8}")
    for budget in args.budgets:
        seed_everything(args.seed)
        flow = make_flow(device)
        n_steps = max(1, int(0.95 * budget * rate))
        with Timer(device) as timer:
            train(flow, target, n_steps)
        with torch.no_grad():
            x, log_q = flow.sample_and_log_prob(8192)
            ess = float(ess_from_log_weights(target.log_prob(x) - log_q)) / 8192
            imh = run_chains(FlowIndependenceMetropolis(target, flow), flow.sample(args.chains), args.imh_steps)
        chi2, error = chi2_with_error(imh.samples)
        z = (chi2 - chi2_hmc) / math.hypot(error, error_hmc)
        over = " (over budget)" if timer.elapsed > budget else ""
        print(
            f"{budget:8.0f} {n_steps:6d} {timer.elapsed:8.1f} {imh.acceptance_rate():7.3f} {ess:6.3f} "
            f"{chi2:8.4f} +- {error:.4f} {z:+8.1f}{over}"
        )


if __name__ == "__main__":
    main()
