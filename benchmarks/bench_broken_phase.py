"""Broken-phase lattice phi^4 (book chapter 15): plain vs Z2-equivariant vs symmetrised flow.

Albergo form m^2 = -4, lambda = 3 (Del Debbio beta = 0.8165, lambda = 0.5) on an L x L
torus. Trains a ``lattice_flow`` and a ``z2_lattice_flow`` (8 layers) by reverse KL for the
same number of steps, times both (the equivariant conditioners run twice per layer), then
runs flow IMH with the plain flow, its ``Z2Symmetrized`` version and the equivariant flow,
and HMC as the reference. One line per sampler: acceptance, <|M|>/V, weight of M > 0,
chi_2 (HMC: <M^2>/V, using <M> = 0) with MCSEs, and the tunnelling time in steps.

    python benchmarks/bench_broken_phase.py [--L 6] [--steps 300] [--threads 1] [--seed 0]

Run by hand or with ``make bench``; it is not a test. On a shared machine the timings are
pessimistic: say so with them.
"""

from __future__ import annotations

import argparse

import torch

from lecturekit.broken_phase import count_tunnellings, sign_weight, tunnelling_time
from lecturekit.device import Timer, default_device, seed_everything
from lecturekit.diagnostics import mcse
from lecturekit.distributions import DiagonalGaussian
from lecturekit.flows.equivariant import z2_lattice_flow
from lecturekit.flows.lattice import lattice_flow
from lecturekit.targets.phi4_lattice import Phi4Lattice, magnetization
from lecturekit.samplers.flow_mcmc import FlowIndependenceMetropolis
from lecturekit.samplers.hmc import HMC
from lecturekit.samplers.mcmc import run_chains
from lecturekit.flows.symmetry import Z2Symmetrized
from lecturekit.training.loop import train_reverse_kl

M2, LAM = -4.0, 3.0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--L", type=int, default=6)
    parser.add_argument("--steps", type=int, default=300, help="reverse-KL steps per flow")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    device = default_device()
    L, V = args.L, args.L**2
    target = Phi4Lattice(L, M2, LAM)

    seed_everything(args.seed)
    with Timer(device) as timer:
        hmc = run_chains(HMC(target, 0.15, 8, jitter=0.5), 0.1 * torch.randn(128, V, device=device), 2_000)
    m_hmc = magnetization(hmc.samples[200:]).double().cpu()
    threshold = 0.5 * float(m_hmc.abs().mean())
    print(f"device {device}, L = {L}, m2 = {M2}, lambda = {LAM}; HMC 128 x 2000 steps in {timer.elapsed:.1f} s")

    def line(name: str, m: torch.Tensor, acceptance: float, reference: bool = False) -> None:
        chi2 = float(m.square().mean()) / V - (0.0 if reference else float(m.mean()) ** 2 / V)
        weight, tau = sign_weight(m), tunnelling_time(m, threshold)
        events = int(count_tunnellings(m, threshold).sum())
        print(
            f"{name:18s} acc {acceptance:5.2f}  <|M|>/V {float(m.abs().mean()) / V:.4f} +- {float(mcse(m.abs())) / V:.4f}"
            f"  w(M>0) {weight.value:.3f} +- {weight.stderr:.3f}  chi2 {chi2:6.2f} +- {float(mcse(m.square())) / V:.2f}"
            f"  tau_tunnel {tau.value:9.1f} ({events} events)"
        )

    line("HMC", m_hmc, hmc.acceptance_rate(), reference=True)
    seed_everything(args.seed + 1)
    base = DiagonalGaussian(torch.zeros(V), torch.ones(V), trainable=True)
    flows = {"plain flow": lattice_flow(L, 8, base=base).to(device), "equivariant flow": z2_lattice_flow(L, 8).to(device)}
    for name, flow in flows.items():
        with Timer(device) as timer:
            history = train_reverse_kl(flow, target, args.steps, batch_size=64, lr=3e-3, lr_schedule="cosine", max_grad_norm=10.0)
        print(f"trained {name}: {args.steps} steps in {timer.elapsed:.1f} s, final loss {sum(history.losses[-50:]) / 50:.3f}")
    proposals = {"plain flow": flows["plain flow"], "symmetrised flow": Z2Symmetrized(flows["plain flow"]),
                 "equivariant flow": flows["equivariant flow"]}
    for name, proposal in proposals.items():
        with torch.no_grad():
            run = run_chains(FlowIndependenceMetropolis(target, proposal), proposal.sample(64), 1_000)
        line(name, magnetization(run.samples[100:]).double().cpu(), run.acceptance_rate())


if __name__ == "__main__":
    main()
