"""Coupled vs uncoupled base on the 1D phi^4 field: what a fixed training budget buys (Section 4.4).

For each base (``coupled``: the informed Gaussian of the free field; ``uncoupled``: independent
sites) and each seed, this script trains the same Real NVP flow (8 affine couplings, hidden
(64, 64), alternating masks) on ``Phi4Chain()`` (N = 100, a = 0.1, beta = 20, flonaco's
convention) by reverse KL with ``train_reverse_kl_with_tilt_start`` for the same number of
steps: ``--steps``, or as many as fit in ``--train-seconds`` by a calibration on a throw-away
flow with the coupled base (the two bases cost nearly the same per step; on a loaded machine
the actual training time, printed per run, drifts from the calibration). Then it measures,
with the Z2-symmetrised flow as the proposal:

- ``acc``: the acceptance of independent Metropolis-Hastings (``--chains`` chains started
  from the proposal, ``--imh-steps`` steps, the first quarter dropped);
- ``logZ err``: the importance-sampling estimate of log Z (``--n-is`` samples) minus the
  exact transfer-matrix value, with its delta-method standard error;
- ``P(+)``: the mode balance, the fraction of IMH states whose field mean is positive (exactly
  0.5 by symmetry), with its MCSE;
- ``diverged``: training stopped on a non-finite loss (``FloatingPointError``).

Aims for the coupled base (issue 12): acceptance >= 0.25, |log Z error| < 0.05, mode balance
0.50 +- 0.02, no seed diverging. Timings depend on the machine's load: say how loaded it was.

    python benchmarks/bench_informed_base.py [--seeds 5] [--train-seconds 60 | --steps 935] [--bases coupled uncoupled]
"""

from __future__ import annotations

import argparse
import statistics

import torch

from lecturekit.device import Timer, default_device, seed_everything
from lecturekit.diagnostics import ChainTooShortError, acceptance_rate, mcse
from lecturekit.flows.core import real_nvp
from lecturekit.targets.phi4_chain import Phi4Chain, field_mean, transfer_matrix_reference
from lecturekit.training.tilt_start import train_reverse_kl_with_tilt_start
from lecturekit.estimates import log_partition_estimate
from lecturekit.samplers.flow_mcmc import FlowIndependenceMetropolis
from lecturekit.samplers.importance import importance_sample
from lecturekit.samplers.mcmc import run_chains
from lecturekit.flows.symmetry import Z2Symmetrized

N_TILTED = 50
BATCH = 256


def make_flow(target: Phi4Chain, base_name: str, device: torch.device) -> torch.nn.Module:
    base = target.coupled_base() if base_name == "coupled" else target.uncoupled_base()
    return real_nvp(target.dim, n_layers=8, hidden=(64, 64), base=base).to(device)


def calibrate_steps(target: Phi4Chain, base_name: str, device: torch.device, seconds: float) -> int:
    """How many training steps fit in ``seconds``, timed on a throw-away flow."""
    flow = make_flow(target, base_name, device)
    train_reverse_kl_with_tilt_start(flow, target, 5, n_tilted_steps=0)  # warm-up
    with Timer(device) as timer:
        train_reverse_kl_with_tilt_start(flow, target, 30, n_tilted_steps=0)
    return max(1, int(seconds / (timer.elapsed / 30)) - N_TILTED)


def log_z_in_chunks(target: Phi4Chain, proposal: torch.nn.Module, n: int, chunk: int = 25_000):
    log_weights = [importance_sample(target, proposal, min(chunk, n - i)).log_weights for i in range(0, n, chunk)]
    return log_partition_estimate(torch.cat(log_weights))


def run_one(target: Phi4Chain, base_name: str, seed: int, n_steps: int, args: argparse.Namespace,
            device: torch.device, log_z_exact: float) -> dict[str, float | str]:
    seed_everything(seed)
    flow = make_flow(target, base_name, device)
    row: dict[str, float | str] = {"base": base_name, "seed": seed, "steps": N_TILTED + n_steps}
    diverged = ""
    with Timer(device) as timer:
        try:
            train_reverse_kl_with_tilt_start(flow, target, n_steps, n_tilted_steps=N_TILTED, start_tilt=-0.5,
                                             batch_size=BATCH)
        except FloatingPointError as error:
            diverged = str(error)
    row["train_s"] = timer.elapsed
    if diverged:
        row["diverged"] = diverged
        return row
    proposal = Z2Symmetrized(flow)
    with torch.no_grad():
        estimate = log_z_in_chunks(target, proposal, args.n_is)
        chains = run_chains(FlowIndependenceMetropolis(target, proposal), proposal.sample(args.chains), args.imh_steps)
    kept = slice(args.imh_steps // 4, None)
    positive = (field_mean(chains.samples[kept]) > 0).double()
    try:
        balance_se = float(mcse(positive))
    except ChainTooShortError:
        balance_se = float("nan")  # the chains switch modes too rarely to tell
    row.update(
        acc=acceptance_rate(chains.accepted[kept]),
        log_z_err=float(estimate.value) - log_z_exact,
        log_z_se=float(estimate.stderr),
        balance=float(positive.mean()),
        balance_se=balance_se,
        diverged="",
    )
    return row


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=5)
    parser.add_argument("--first-seed", type=int, default=0)
    parser.add_argument("--train-seconds", type=float, default=60.0)
    parser.add_argument("--steps", type=int, default=0, help="training steps after the tilted ones (0: calibrate)")
    parser.add_argument("--bases", nargs="+", default=["coupled", "uncoupled"], choices=["coupled", "uncoupled"])
    parser.add_argument("--n-is", type=int, default=100_000, help="importance samples for log Z")
    parser.add_argument("--chains", type=int, default=256)
    parser.add_argument("--imh-steps", type=int, default=400)
    parser.add_argument("--threads", type=int, default=0, help="CPU threads for torch (0: torch's default)")
    args = parser.parse_args()

    device = default_device()
    if device.type == "cpu" and args.threads > 0:
        torch.set_num_threads(args.threads)
    target = Phi4Chain()
    exact = transfer_matrix_reference(target, grid_spacing=0.01)
    print(f"device {device}, torch threads {torch.get_num_threads()}; exact log Z = {exact.log_z:.6f}")
    header = f"{'base':>9} {'seed':>4} {'steps':>6} {'train s':>8} {'acc':>6} {'logZ err':>9} {'+-':>7} {'P(+)':>6} {'+-':>6}"
    if args.steps > 0:
        n_steps = args.steps
        print(f"{N_TILTED} tilted + {n_steps} steps (given)")
    else:
        n_steps = calibrate_steps(target, "coupled", device, args.train_seconds)
        print(f"{N_TILTED} tilted + {n_steps} steps, calibrated for {args.train_seconds:g} s")
    for base_name in args.bases:
        print(f"\n{base_name} base")
        print(header)
        rows = []
        for seed in range(args.first_seed, args.first_seed + args.seeds):
            row = run_one(target, base_name, seed, n_steps, args, device, exact.log_z)
            rows.append(row)
            if row.get("diverged"):
                print(f"{base_name:>9} {seed:>4} diverged: {row['diverged']}")
                continue
            print(f"{base_name:>9} {seed:>4} {row['steps']:>6} {row['train_s']:>8.1f} {row['acc']:>6.3f} "
                  f"{row['log_z_err']:>+9.4f} {row['log_z_se']:>7.4f} {row['balance']:>6.3f} {row['balance_se']:>6.3f}",
                  flush=True)
        finished = [r for r in rows if not r.get("diverged")]
        if finished:
            accs = [float(r["acc"]) for r in finished]
            errs = [abs(float(r["log_z_err"])) for r in finished]
            balances = [float(r["balance"]) for r in finished]
            print(f"{base_name}: acceptance min {min(accs):.3f} median {statistics.median(accs):.3f}; "
                  f"|log Z error| max {max(errs):.4f}; P(+) in [{min(balances):.3f}, {max(balances):.3f}]; "
                  f"diverged {len(rows) - len(finished)} of {len(rows)}")
            if base_name == "coupled":
                ok = (min(accs) >= 0.25 and max(errs) < 0.05 and all(abs(b - 0.5) <= 0.02 for b in balances)
                      and len(finished) == len(rows))
                print(f"coupled aims (acc >= 0.25, |log Z err| < 0.05, P(+) = 0.50 +- 0.02, none diverged): "
                      f"{'met' if ok else 'NOT met'}")


if __name__ == "__main__":
    main()
