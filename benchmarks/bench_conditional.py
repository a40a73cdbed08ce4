"""Conditional block-flow proposals (book chapter 16): the cost of one sweep of block updates.

Trains a ``BlockConditionalFlow`` (2 x 2 blocks) on the 4 x 4 lattice phi^4 of chapter 10
(Del Debbio beta = 0.5, lambda = 0.5) by reverse KL on the block conditionals, then times
sweeps of ``BlockFlowSampler`` (every block proposed once, exact MH acceptance) at several L.
One line per L: acceptance of the block proposals, time per sweep and per proposed site.

    python benchmarks/bench_conditional.py [--sizes 4 8 16 32] [--chains 64] [--sweeps 100]
                                           [--steps 150] [--threads 1] [--seed 0]

Run by hand or with ``make bench``; it is not a test. On a shared machine the timings are
pessimistic: say so with them.
"""

from __future__ import annotations

import argparse
import time

import torch

from lecturekit.device import Timer, default_device, seed_everything
from lecturekit.targets.phi4_lattice import Phi4Lattice
from lecturekit.samplers.conditional import BlockConditionalFlow, BlockFlowSampler, train_block_flow

BETA, LAM = 0.5, 0.5


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", type=int, nargs="+", default=[4, 8, 16, 32])
    parser.add_argument("--chains", type=int, default=64)
    parser.add_argument("--sweeps", type=int, default=100)
    parser.add_argument("--steps", type=int, default=150, help="reverse-KL steps for the block flow")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    device = default_device()
    seed_everything(args.seed)
    flow = BlockConditionalFlow(2).to(device)
    start = time.process_time()
    train_block_flow(flow, Phi4Lattice.from_del_debbio(4, BETA, LAM), args.steps)
    print(f"device {device}, threads {args.threads}: block flow trained ({args.steps} steps) "
          f"in {time.process_time() - start:.1f} s CPU")
    for L in args.sizes:
        sampler = BlockFlowSampler(Phi4Lattice.from_del_debbio(L, BETA, LAM), flow)
        x0 = sampler.run(torch.zeros(args.chains, L * L, device=device), 5).final
        cpu = time.process_time()
        with Timer(device) as timer:
            result = sampler.run(x0, args.sweeps)
        cpu = time.process_time() - cpu
        per_sweep = timer.elapsed / args.sweeps
        print(
            f"L = {L:3d}: block acceptance {result.acceptance_rate():.3f}, "
            f"{1e3 * per_sweep:7.2f} ms wall / {1e3 * cpu / args.sweeps:7.2f} ms CPU per sweep of {args.chains} chains, "
            f"{1e9 * cpu / args.sweeps / (args.chains * L * L):6.1f} ns CPU per proposed site"
        )


if __name__ == "__main__":
    main()
