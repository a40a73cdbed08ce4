"""Speed of lecturekit's Real NVP against normflows' and zuko's, in one process.

The same architecture for all: 8 affine couplings whose conditioner is one MLP with two
hidden layers of 128 (ReLU) returning shift and log-scale together, a fixed standard
normal base, float32. Parameter counts are printed (and must agree). Each library's
own recipe fixes the masks: normflows splits into halves and swaps them between layers
(lecturekit's ``mask="half"`` is the same), zuko alternates even / odd coordinates
(lecturekit's default ``mask="alternating"``). Both lecturekit variants are timed.

Timed, for d = 2 and d = 64:

1. a maximum-likelihood training step on a batch of 1024: log-prob, backward, Adam step;
2. ``sample_and_log_prob`` of 4096 points (reparametrised, autograd on, no backward).

Repeats are interleaved (every repeat times every library, in a rotating order) and
the median rate is reported with the ratios lecturekit / peer. On the CPU with one
thread the clock is the process CPU time (``time.process_time``), which other
programs on a shared machine disturb far less than wall time; otherwise it is the
wall clock with the device synchronised. Not a test: ``make bench`` runs it (it needs
the ``bench`` extra: normflows, zuko).

Usage: ``python benchmarks/bench_flows.py [--repeats 9] [--seconds 0.5] [--device cpu] [--threads 1]``
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable

import torch

from lecturekit.device import default_device, seed_everything, synchronize
from lecturekit.flows.core import real_nvp

N_LAYERS = 8
HIDDEN = (128, 128)
BATCH = 1024
N_SAMPLES = 4096

Builder = Callable[[int, torch.device], tuple[torch.nn.Module, Callable, Callable]]


def build_lecturekit(mask: str) -> Builder:
    def build(dim: int, device: torch.device):
        flow = real_nvp(dim, n_layers=N_LAYERS, hidden=HIDDEN, mask=mask).to(device)
        return flow, flow.log_prob, flow.sample_and_log_prob

    return build


def build_normflows(dim: int, device: torch.device):
    import normflows as nf

    # normflows' Real NVP recipe: split into halves, couple, swap the halves.
    layers = []
    for _ in range(N_LAYERS):
        param_map = nf.nets.MLP([dim // 2, *HIDDEN, 2 * (dim - dim // 2)], init_zeros=True)
        layers += [nf.flows.AffineCouplingBlock(param_map), nf.flows.Permute(dim, mode="swap")]
    model = nf.NormalizingFlow(nf.distributions.DiagGaussian(dim, trainable=False), layers).to(device)
    return model, model.log_prob, model.sample


def build_zuko(dim: int, device: torch.device):
    import zuko

    # zuko's Real NVP: alternating (checkered) masks, affine couplings, fixed N(0, I) base.
    flow = zuko.flows.RealNVP(dim, transforms=N_LAYERS, hidden_features=HIDDEN).to(device)
    return flow, lambda x: flow().log_prob(x), lambda n: flow().rsample_and_log_prob((n,))


BUILDERS: dict[str, Builder] = {
    "lecturekit": build_lecturekit("alternating"),
    "lecturekit[half]": build_lecturekit("half"),
    "normflows": build_normflows,
    "zuko": build_zuko,
}


def make_tasks(dim: int, device: torch.device) -> tuple[dict[str, Callable[[], None]], dict[str, Callable[[], None]]]:
    seed_everything(0)
    data = torch.randn(BATCH, dim, device=device) * 0.7 + 0.3
    train, sample, counts = {}, {}, {}
    for name, build in BUILDERS.items():
        seed_everything(0)
        module, log_prob, sample_and_log_prob = build(dim, device)
        counts[name] = sum(p.numel() for p in module.parameters() if p.requires_grad)
        optimizer = torch.optim.Adam(module.parameters(), lr=1e-4)

        def train_step(log_prob=log_prob, optimizer=optimizer) -> None:
            optimizer.zero_grad(set_to_none=True)
            loss = -log_prob(data).mean()
            loss.backward()
            optimizer.step()

        def sample_step(sample_and_log_prob=sample_and_log_prob) -> None:
            x, log_q = sample_and_log_prob(N_SAMPLES)
            assert x.shape == (N_SAMPLES, dim) and log_q.shape == (N_SAMPLES,)

        train[name], sample[name] = train_step, sample_step
    print("  trainable parameters: " + ", ".join(f"{name} {n:,}" for name, n in counts.items()))
    if len(set(counts.values())) != 1:
        raise RuntimeError(f"the architectures differ: parameter counts {counts}")
    return train, sample


def rate(step: Callable[[], None], seconds: float, device: torch.device, clock: Callable[[], float]) -> float:
    """Calls per second of ``step``, timed for at least ``seconds``."""
    synchronize(device)
    start = clock()
    n = 0
    while True:
        step()
        n += 1
        if n % 3 == 0:
            synchronize(device)
            elapsed = clock() - start
            if elapsed >= seconds:
                return n / elapsed


def compare(
    tasks: dict[str, Callable[[], None]],
    repeats: int,
    seconds: float,
    device: torch.device,
    clock: Callable[[], float],
) -> dict[str, float]:
    names = list(tasks)
    for name in names:  # warm-up
        for _ in range(3):
            tasks[name]()
    results: dict[str, list[float]] = {name: [] for name in names}
    for r in range(repeats):
        order = names[r % len(names) :] + names[: r % len(names)]
        for name in order:
            results[name].append(rate(tasks[name], seconds, device, clock))
    return {name: statistics.median(values) for name, values in results.items()}


def report(title: str, medians: dict[str, float]) -> None:
    print(f"  {title}: " + ", ".join(f"{name} {value:.2f}/s" for name, value in medians.items()))
    for ours in ("lecturekit", "lecturekit[half]"):
        ratios = ", ".join(f"x{medians[ours] / medians[peer]:.2f} vs {peer}" for peer in ("normflows", "zuko"))
        print(f"    {ours:<17} {ratios}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=9)
    parser.add_argument("--seconds", type=float, default=0.5, help="time per measurement")
    parser.add_argument("--device", default=None, help="default: lecturekit.device.default_device()")
    parser.add_argument("--dims", type=int, nargs="+", default=[2, 64])
    parser.add_argument(
        "--threads",
        type=int,
        default=1,
        help="torch CPU threads (default 1: on a shared machine more threads oversubscribe the cores)",
    )
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    device = torch.device(args.device) if args.device else default_device()
    cpu_clock = device.type == "cpu" and args.threads == 1
    clock = time.process_time if cpu_clock else time.perf_counter
    print(f"torch {torch.__version__}, device {device}, {torch.get_num_threads()} thread(s), float32")
    print(f"{N_LAYERS} affine couplings, MLP hidden {HIDDEN}, training batch {BATCH}, sampling {N_SAMPLES}")
    print(
        f"median of {args.repeats} interleaved repeats of {args.seconds} s each, "
        f"{'process CPU time' if cpu_clock else 'wall clock'}"
    )
    for dim in args.dims:
        print(f"d = {dim}")
        train, sample = make_tasks(dim, device)
        report("training steps per second", compare(train, args.repeats, args.seconds, device, clock))
        report("sample_and_log_prob(4096) per second", compare(sample, args.repeats, args.seconds, device, clock))


if __name__ == "__main__":
    main()
