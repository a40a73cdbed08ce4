"""How much does one vectorised MALA step cost beyond the target evaluation it needs?

One MALA step on many chains needs exactly one call to ``target.log_prob_and_score``;
everything else (the proposal, the acceptance ratio, the accept/reject) should be
cheap next to it. This script times, on ``lecturekit.device.default_device()``:

- ``eval``: one ``MullerBrown.log_prob_and_score`` on a batch of 1,024 points;
- ``step``: one ``MALA.step`` advancing 1,024 chains,

as the median over many repeats (after a warm-up), each repeat timing a block of
calls with :class:`lecturekit.device.Timer` (which synchronises a GPU). The two are
interleaved so that a busy machine slows both alike. Ideal ratio 1.0; aim <= 1.5.

Run by hand or with ``make bench``; it is not a test.

    python benchmarks/bench_mala.py [--chains 1024] [--repeats 3000] [--block 1] [--threads 1]
"""

from __future__ import annotations

import argparse
import statistics

import torch

from lecturekit.device import Timer, default_device, seed_everything
from lecturekit.samplers.mcmc import MALA
from lecturekit.targets.toy import MullerBrown


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--chains", type=int, default=1024)
    parser.add_argument("--repeats", type=int, default=3000, help="timed blocks per measurement")
    parser.add_argument("--block", type=int, default=1, help="calls per timed block")
    parser.add_argument("--warmup", type=int, default=200, help="untimed calls of each before timing")
    parser.add_argument(
        "--threads", type=int, default=1, help="CPU threads for torch (0: keep torch's default); ignored on a GPU"
    )
    args = parser.parse_args()

    seed_everything(0)
    device = default_device()
    if device.type == "cpu" and args.threads > 0:
        # 1,024 points in 2D are far too small for intra-op parallelism; on a busy machine idle
        # OpenMP workers only add waiting times that have nothing to do with the sampler.
        torch.set_num_threads(args.threads)
    target = MullerBrown()
    kernel = MALA(target, step_size=1e-3)
    # start the chains around the deepest minimum
    position = torch.tensor([-0.558, 1.442], device=device) + 0.05 * torch.randn(args.chains, 2, device=device)
    state = kernel.init(position)
    points = state.position.clone()

    def run_eval() -> None:
        for _ in range(args.block):
            target.log_prob_and_score(points)

    def run_step() -> None:
        nonlocal state
        for _ in range(args.block):
            state, _ = kernel.step(state)

    with torch.no_grad():
        for _ in range(args.warmup // args.block + 1):
            run_eval()
            run_step()
        eval_times, step_times = [], []
        for _ in range(args.repeats):
            with Timer(device) as timer:
                run_eval()
            eval_times.append(timer.elapsed / args.block)
            with Timer(device) as timer:
                run_step()
            step_times.append(timer.elapsed / args.block)

    t_eval, t_step = statistics.median(eval_times), statistics.median(step_times)
    print(f"device: {device}, torch {torch.__version__}, {torch.get_num_threads()} threads, {args.chains} chains")
    print(f"target.log_prob_and_score: {t_eval * 1e6:9.1f} us  (median of {args.repeats} x {args.block})")
    print(f"MALA.step:                 {t_step * 1e6:9.1f} us")
    print(f"ratio step / eval:         {t_step / t_eval:9.2f}  (ideal 1.0, aim <= 1.5)")


if __name__ == "__main__":
    main()
