"""Radial velocity: wall time until the ln P mode masses of the chains are within 0.02 of the exact ones.

Adaptive flow-MCMC (training, then production with the flow frozen, in chunks; the clock
includes training) against plain MALA chains run for the same wall-clock budget. After each
chunk the mode masses of all production samples so far (minus the first ``BURN_IN``
iterations) are compared with the exact masses from the (ln P, phi0) grid.

Both samplers run on the course's coordinates, with the phase as an unconstrained 2-vector
(``AngleAsVector(posterior, 2)``, 5 dimensions); ``--phase cut`` runs them on the
4-dimensional posterior with the circle cut at phi0 = 0 instead, for comparison.
``--clock third`` measures times from the third observation, which moves the main phase mode
onto the cut and leaves the ln P posterior exactly unchanged.

    .venv/bin/python benchmarks/bench_adaptive_rv.py [--device cuda] [--walkers 256] [--phase cut] [--clock third]

Numbers depend on the machine and its load: say which when you quote them.
"""

from __future__ import annotations

import argparse
import time

import torch

from lecturekit.targets.angles import AngleAsVector
from lecturekit.device import seed_everything, synchronize
from lecturekit.diagnostics import interval_membership
from lecturekit.estimates import mode_weights
from lecturekit.flows.core import real_nvp
from lecturekit.targets.radial_velocity import (
    PeriodPhaseGrid,
    RadialVelocityPosterior,
    simulate_observations,
)
from lecturekit.samplers.adaptive import adaptive_flow_mcmc, global_local_mcmc
from lecturekit.samplers.mcmc import MALA, MCMCState
from lecturekit.targets.base import Target

TOLERANCE = 0.02
CHUNK = 50  # production iterations between checks
BURN_IN = 100
STEP = 2e-4
N_LOCAL = 3


def local_mala(target: Target) -> MALA:
    return MALA(target, STEP)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--walkers", type=int, default=256)
    parser.add_argument("--training", type=int, default=300)
    parser.add_argument("--max-production", type=int, default=2000)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--phase", choices=("vector", "cut"), default="vector")
    parser.add_argument("--clock", choices=("middle", "third"), default="middle")
    args = parser.parse_args()
    device = torch.device(args.device)
    data = simulate_observations()
    if args.clock == "third":
        data = data.with_time_origin(float(data.times[2]))
    posterior = RadialVelocityPosterior(data)
    edges, exact = PeriodPhaseGrid(posterior).ln_period_modes(min_mass=1e-3)
    edges = edges.to(device)
    print(f"exact ln P mode masses: {[round(float(m), 4) for m in exact]}; tolerance {TOLERANCE}")

    seed_everything(args.seed)
    start = posterior.sample_prior(args.walkers, dtype=torch.float32, device=device)
    if args.phase == "vector":
        target = AngleAsVector(posterior, index=2)
        start = target.from_angle(start)  # Rayleigh radii: exact draws of the 5-d prior

        def ln_period(y: torch.Tensor) -> torch.Tensor:
            return target.to_angle(y)[..., 3]
    else:
        target = posterior

        def ln_period(y: torch.Tensor) -> torch.Tensor:
            return y[..., 3]
    clock = "the middle of the observations" if args.clock == "middle" else "the third observation"
    print(f"phase: {args.phase}; times from {clock}; {target.dim} dimensions; {args.walkers} walkers")
    flow = real_nvp(target.dim, n_layers=6, hidden=(32, 32)).to(device)
    synchronize(device)
    t0 = time.perf_counter()
    trained = adaptive_flow_mcmc(target, flow, start, args.training, 0, n_local_steps=N_LOCAL,
                                 make_local_kernel=local_mala, lr=3e-3)
    synchronize(device)
    t_training = time.perf_counter() - t0
    position, chunks, reached, error = trained.final_state.position, [], None, float("nan")
    n_production = 0
    while n_production < args.max_production:
        chunk = global_local_mcmc(target, flow, position, CHUNK, n_local_steps=N_LOCAL, make_local_kernel=local_mala)
        position = chunk.final_state.position
        chunks.append(ln_period(chunk.samples))
        n_production += CHUNK
        if n_production > BURN_IN:
            kept = torch.cat(chunks)[BURN_IN:]
            error = float((mode_weights(interval_membership(kept, edges)).value - exact).abs().max())
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
    kernel = MALA(target, STEP)
    state: MCMCState = kernel.init(start)
    samples, t0, n_steps, reached_mala = [], time.perf_counter(), 0, None
    with torch.no_grad():
        while time.perf_counter() - t0 < t_adaptive:
            for _ in range(CHUNK * (N_LOCAL + 1)):
                state, _ = kernel.step(state)
            samples.append(ln_period(state.position))
            n_steps += CHUNK * (N_LOCAL + 1)
            masses = mode_weights(interval_membership(torch.stack(samples[len(samples) // 4 :]), edges)).value
            mala_error = float((masses - exact).abs().max())
            if mala_error < TOLERANCE and reached_mala is None:
                reached_mala = time.perf_counter() - t0
    print(f"MALA, same budget ({t_adaptive:.1f} s, {n_steps} steps): max mode-mass error {mala_error:.3f}; "
          + (f"within {TOLERANCE} after {reached_mala:.1f} s" if reached_mala else f"never within {TOLERANCE}"))
    print(f"MALA mode masses: {[round(float(m), 4) for m in masses]}")


if __name__ == "__main__":
    main()
