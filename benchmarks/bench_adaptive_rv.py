"""Radial velocity: wall time until the ln P mode masses of the chains are within 0.02 of the exact ones.

Adaptive flow-MCMC (training, then production with the flow frozen, in chunks; the clock
includes training) against plain MALA chains run for the same wall-clock budget. After each
chunk the mode masses of all production samples so far (minus the first ``BURN_IN``
iterations) are compared with the exact masses from the (ln P, phi0) grid.

    .venv/bin/python benchmarks/bench_adaptive_rv.py [--device cuda] [--walkers 128]

Numbers depend on the machine and its load: say which when you quote them.
"""

from __future__ import annotations

import argparse
import time

import torch

from lecturekit.device import seed_everything, synchronize
from lecturekit.flows import real_nvp
from lecturekit.radial_velocity import PeriodPhaseGrid, RadialVelocityPosterior, mode_masses, simulate_observations
from lecturekit.samplers import MALA, MCMCState, adaptive_flow_mcmc, global_local_mcmc

TOLERANCE = 0.02
CHUNK = 50  # production iterations between checks
BURN_IN = 100
STEP = 2e-4
N_LOCAL = 3


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--walkers", type=int, default=128)
    parser.add_argument("--training", type=int, default=300)
    parser.add_argument("--max-production", type=int, default=2000)
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args()
    device = torch.device(args.device)
    posterior = RadialVelocityPosterior(simulate_observations())
    edges, exact = PeriodPhaseGrid(posterior).ln_period_modes(min_mass=1e-3)
    edges = edges.to(device)
    print(f"exact ln P mode masses: {[round(float(m), 4) for m in exact]}; tolerance {TOLERANCE}")

    seed_everything(args.seed)
    start = posterior.sample_prior(args.walkers, dtype=torch.float32, device=device)
    flow = real_nvp(4, n_layers=6, hidden=(32, 32)).to(device)
    synchronize(device)
    t0 = time.perf_counter()
    trained = adaptive_flow_mcmc(posterior, flow, start, args.training, 0, n_local_steps=N_LOCAL,
                                 local_step_size=STEP, lr=3e-3)
    synchronize(device)
    t_training = time.perf_counter() - t0
    position, chunks, reached, error = trained.final_state.position, [], None, float("nan")
    n_production = 0
    while n_production < args.max_production:
        chunk = global_local_mcmc(posterior, flow, position, CHUNK, n_local_steps=N_LOCAL, local_step_size=STEP)
        position = chunk.final_state.position
        chunks.append(chunk.samples[..., 3])
        n_production += CHUNK
        if n_production > BURN_IN:
            kept = torch.cat(chunks)[BURN_IN:]
            error = float((mode_masses(kept, edges).cpu().double() - exact).abs().max())
            if error < TOLERANCE:
                synchronize(device)
                reached = time.perf_counter() - t0
                break
    synchronize(device)
    t_adaptive = time.perf_counter() - t0
    print(f"adaptive flow-MCMC: training {t_training:.1f} s; "
          + (f"within {TOLERANCE} after {reached:.1f} s ({n_production} production iterations)"
             if reached is not None else f"not within {TOLERANCE} after {t_adaptive:.1f} s (max error {error:.3f})"))

    # plain MALA: the same chains from the same start, for the same wall-clock time
    seed_everything(args.seed)
    kernel = MALA(posterior, STEP)
    state: MCMCState = kernel.init(start)
    samples, t0, n_steps, reached_mala = [], time.perf_counter(), 0, None
    with torch.no_grad():
        while time.perf_counter() - t0 < t_adaptive:
            for _ in range(CHUNK * (N_LOCAL + 1)):
                state, _ = kernel.step(state)
            samples.append(state.position[:, 3].clone())
            n_steps += CHUNK * (N_LOCAL + 1)
            masses = mode_masses(torch.stack(samples[len(samples) // 4 :]), edges).cpu().double()
            mala_error = float((masses - exact).abs().max())
            if mala_error < TOLERANCE and reached_mala is None:
                reached_mala = time.perf_counter() - t0
    print(f"MALA, same budget ({t_adaptive:.1f} s, {n_steps} steps): max mode-mass error {mala_error:.3f}; "
          + (f"within {TOLERANCE} after {reached_mala:.1f} s" if reached_mala else f"never within {TOLERANCE}"))
    print(f"MALA mode masses: {[round(float(m), 4) for m in masses]}")


if __name__ == "__main__":
    main()
