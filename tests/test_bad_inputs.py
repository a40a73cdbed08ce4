"""Bad input gets a clear error: the right exception type, and a message that names the argument.

One parametrised table over the public API, by kind (see lecturekit.checks for the convention:
TypeError for the wrong kind of argument, ValueError for the wrong value). Each case is a
function of a scratch folder that must raise; the table checks the type and that the message
names the argument. The documented non-errors (NaN and inf *points* propagate or give -inf,
low-precision chains are upcast) are tested at the end.
"""

from __future__ import annotations

import math
import os
from collections.abc import Callable
from pathlib import Path

import pytest
import torch
from torch import nn

from lecturekit.checks import check_int, check_number, check_positive_int
from lecturekit.device import seed_everything
from lecturekit.diagnostics import (
    ConstantChainError,
    autocorrelation,
    ess_from_log_weights,
    integrated_autocorr_time,
    mcmc_ess,
    mcse,
    rhat,
)
from lecturekit.distributions import DiagonalGaussian, StandardNormal
from lecturekit.estimates import reweighted_expectation
from lecturekit.flows.core import AffineCoupling, alternating_mask, checkerboard_mask, real_nvp
from lecturekit.flows.io import load_flow, save_flow
from lecturekit.plotting import plot_energy_contours, plot_traces
from lecturekit.quadrature import GridQuadrature
from lecturekit.samplers.importance import importance_sample
from lecturekit.samplers.mcmc import MALA, RandomWalkMetropolis, run_chains
from lecturekit.targets.toy import GaussianMixture, MullerBrown
from lecturekit.training.loop import forward_kl_loss, train_max_likelihood
from lecturekit.training.vae import VAE, train_vae

INF, NAN = math.inf, math.nan
META = torch.device("meta")


def small_flow() -> nn.Module:
    return real_nvp(2, n_layers=2, hidden=(8,))


def saved_flow(folder: Path) -> tuple[Path, dict]:
    """A valid flow file in ``folder`` and its payload, for editing."""
    path = folder / "flow.pt"
    save_flow(small_flow(), path)
    return path, torch.load(path, weights_only=True)


def write_edited(folder: Path, edit: Callable[[dict], None]) -> Path:
    path, payload = saved_flow(folder)
    edit(payload)
    torch.save(payload, path)
    return path


def write_bytes(folder: Path, content: bytes) -> Path:
    path = folder / "flow.pt"
    path.write_bytes(content)
    return path


def truncated(folder: Path) -> Path:
    path, _ = saved_flow(folder)
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    return path


def chains(n_steps: int = 200, n_chains: int = 4) -> torch.Tensor:
    return torch.randn(n_steps, n_chains)


mixture = GaussianMixture(torch.zeros(1, 2), 1.0)
rw = RandomWalkMetropolis(mixture, 0.5)

# (case, exception type, name the message must contain); a case takes a scratch folder.
CASES: dict[str, tuple[Callable[[Path], object], type[Exception], str]] = {
    # ---------------------------------------------------------------- corrupt or edited flow files
    "load_flow: empty file": (lambda d: load_flow(write_bytes(d, b"")), ValueError, "flow.pt"),
    "load_flow: random bytes": (lambda d: load_flow(write_bytes(d, os.urandom(512))), ValueError, "flow.pt"),
    "load_flow: text file": (lambda d: load_flow(write_bytes(d, b"hello")), ValueError, "flow.pt"),
    "load_flow: truncated": (lambda d: load_flow(truncated(d)), ValueError, "flow.pt"),
    "load_flow: no settings": (lambda d: load_flow(write_edited(d, lambda p: p.pop("settings"))), ValueError, "flow.pt"),
    "load_flow: edited activation": (
        lambda d: load_flow(write_edited(d, lambda p: p["settings"].update(activation="NoSuchActivation"))),
        ValueError,
        "flow.pt",
    ),
    "load_flow: activation that is not one": (
        lambda d: load_flow(write_edited(d, lambda p: p["settings"].update(activation="Linear"))),
        ValueError,
        "flow.pt",
    ),
    "load_flow: edited base class": (
        lambda d: load_flow(write_edited(d, lambda p: p["base"].update({"class": "check_positive_int"}))),
        ValueError,
        "flow.pt",
    ),
    "load_flow: edited dtype": (lambda d: load_flow(write_edited(d, lambda p: p.update(dtype="int64"))), ValueError, "flow.pt"),
    "load_flow: edited layer count": (
        lambda d: load_flow(write_edited(d, lambda p: p["settings"].update(n_layers=3))),
        ValueError,
        "flow.pt",
    ),
    "load_flow: wrong format version": (lambda d: load_flow(write_edited(d, lambda p: p.update(version=99))), ValueError, "flow.pt"),
    "load_flow: missing file": (lambda d: load_flow(d / "missing.pt"), FileNotFoundError, "missing.pt"),
    "load_flow: path not a path": (lambda d: load_flow(42), TypeError, "path"),
    # ---------------------------------------------------------------- dtype mismatches
    "flow.log_prob: float64 into float32 flow": (lambda d: small_flow().log_prob(torch.zeros(3, 2, dtype=torch.float64)), TypeError, "x"),
    "flow.forward: float64 into float32 flow": (lambda d: small_flow()(torch.zeros(3, 2, dtype=torch.float64)), TypeError, "z"),
    "coupling.inverse: float16 into float32 layer": (
        lambda d: AffineCoupling(alternating_mask(2)).inverse(torch.zeros(3, 2, dtype=torch.float16)),
        TypeError,
        "x",
    ),
    "VAE.encode: float64 into float32 VAE": (lambda d: VAE(2, 1).encode(torch.zeros(3, 2, dtype=torch.float64)), TypeError, "x"),
    "flow.log_prob: integer points": (lambda d: small_flow().log_prob(torch.zeros(3, 2, dtype=torch.long)), TypeError, "x"),
    "autocorrelation: integer chain": (lambda d: autocorrelation(torch.arange(10)), TypeError, "chain"),
    "rhat: bool chain": (lambda d: rhat(torch.zeros(10, 2, dtype=torch.bool)), TypeError, "chain"),
    "ess_from_log_weights: integer weights": (lambda d: ess_from_log_weights(torch.tensor([1, 2])), TypeError, "log_weights"),
    "MALA: integer step_size tensor": (lambda d: MALA(mixture, torch.ones(4, dtype=torch.long)), TypeError, "step_size"),
    "GridQuadrature: integer dtype": (lambda d: GridQuadrature(MullerBrown(), (-1, 1), (-1, 1), 10, dtype=torch.int64), TypeError, "dtype"),
    "GridQuadrature: dtype not a dtype": (lambda d: GridQuadrature(MullerBrown(), (-1, 1), (-1, 1), 10, dtype="float64"), TypeError, "dtype"),
    # ---------------------------------------------------------------- device mismatches (meta stands in for a GPU)
    "GaussianMixture: means on meta": (lambda d: GaussianMixture(torch.zeros(1, 2, device=META)), ValueError, "means"),
    "GaussianMixture: covariances on meta": (
        lambda d: GaussianMixture(torch.zeros(1, 2), torch.ones(1, device=META)),
        ValueError,
        "covariances",
    ),
    "GaussianMixture: weights on meta": (lambda d: GaussianMixture(torch.zeros(1, 2), 1.0, torch.ones(1, device=META)), ValueError, "weights"),
    "GaussianMixture.log_prob: points on meta": (lambda d: mixture.log_prob(torch.zeros(3, 2, device=META)), ValueError, "x"),
    "MullerBrown.energy: points on meta": (lambda d: MullerBrown().energy(torch.zeros(3, 2, device=META)), ValueError, "x"),
    "MALA: step_size on meta": (lambda d: MALA(MullerBrown(), torch.full((4,), 0.1, device=META)), ValueError, "step_size"),
    "run_chains: initial_position on meta": (lambda d: run_chains(rw, torch.zeros(4, 2, device=META), 10), ValueError, "initial_position"),
    "flow.log_prob: points on meta": (lambda d: small_flow().log_prob(torch.zeros(3, 2, device=META)), ValueError, "x"),
    "mcse: chain on meta": (lambda d: mcse(torch.zeros(10, 2, device=META)), ValueError, "chain"),
    "reweighted_expectation: f_values elsewhere": (
        lambda d: reweighted_expectation(torch.zeros(3, device=META), torch.zeros(3)),
        ValueError,
        "f_values",
    ),
    "DiagonalGaussian: loc on meta": (lambda d: DiagonalGaussian(torch.zeros(2, device=META), torch.ones(2)), ValueError, "loc"),
    "forward_kl_loss: float64 data into float32 flow": (
        lambda d: forward_kl_loss(small_flow(), torch.zeros(4, 2, dtype=torch.float64)),
        TypeError,
        "data",
    ),
    # ---------------------------------------------------------------- NaN and inf where they are refused
    "reweighted_expectation: NaN f_values": (
        lambda d: reweighted_expectation(torch.tensor([1.0, NAN]), torch.zeros(2)),
        ValueError,
        "f_values",
    ),
    "reweighted_expectation: inf f_values": (
        lambda d: reweighted_expectation(torch.tensor([1.0, INF]), torch.zeros(2)),
        ValueError,
        "f_values",
    ),
    "GaussianMixture: infinite covariance": (lambda d: GaussianMixture(torch.zeros(2, 2), torch.tensor([1.0, INF])), ValueError, "covariances"),
    "GaussianMixture: NaN full covariance": (
        lambda d: GaussianMixture(torch.zeros(1, 2), torch.tensor([[[1.0, NAN], [NAN, 1.0]]])),
        ValueError,
        "covariances",
    ),
    "GaussianMixture: infinite mean": (lambda d: GaussianMixture(torch.tensor([[INF, 0.0]])), ValueError, "means"),
    "GridQuadrature: box without mass": (
        lambda d: GridQuadrature(BoxTarget(), (5, 6), (5, 6), 10),
        ValueError,
        "xlim",
    ),
    "GridQuadrature: NaN log_prob": (lambda d: GridQuadrature(NanTarget(), (-1, 1), (-1, 1), 10), ValueError, "target"),
    "mcse: NaN in chain": (lambda d: mcse(torch.tensor([[0.0, 1.0], [NAN, 1.0], [0.5, 2.0], [1.0, 0.0]])), ValueError, "chain"),
    "rhat: inf in chain": (lambda d: rhat(torch.tensor([[0.0, 1.0], [INF, 1.0], [0.5, 2.0], [1.0, 0.0]])), ValueError, "chain"),
    "ess_from_log_weights: +inf": (lambda d: ess_from_log_weights(torch.tensor([0.0, INF])), ValueError, "log_weights"),
    "train_max_likelihood: NaN data": (lambda d: train_max_likelihood(small_flow(), torch.full((8, 2), NAN), 1), ValueError, "data"),
    "train_vae: inf data": (lambda d: train_vae(VAE(2, 1), torch.full((8, 2), INF), 1), ValueError, "data"),
    # ---------------------------------------------------------------- the small ones
    "GridQuadrature: one n_points": (lambda d: GridQuadrature(MullerBrown(), (-1, 1), (-1, 1), n_points=(100,)), ValueError, "n_points"),
    "GridQuadrature: three n_points": (lambda d: GridQuadrature(MullerBrown(), (-1, 1), (-1, 1), n_points=(10, 10, 10)), ValueError, "n_points"),
    "integrated_autocorr_time: c=True": (lambda d: integrated_autocorr_time(chains(), c=True), TypeError, "c must"),
    "integrated_autocorr_time: c='5'": (lambda d: integrated_autocorr_time(chains(), c="5"), TypeError, "c must"),
    "integrated_autocorr_time: min_length_factor=-1": (
        lambda d: integrated_autocorr_time(chains(), min_length_factor=-1),
        ValueError,
        "min_length_factor",
    ),
    "MALA: step_size=True": (lambda d: MALA(mixture, True), TypeError, "step_size"),
    "run_chains: kernel=None": (lambda d: run_chains(None, torch.zeros(4, 2), 10), TypeError, "kernel"),
    "run_chains: zero chains": (lambda d: run_chains(rw, torch.zeros(0, 2), 10), ValueError, "initial_position"),
    "run_chains: one position, not a batch": (lambda d: run_chains(rw, torch.zeros(2), 10), ValueError, "initial_position"),
    "integrated_autocorr_time: constant chain": (lambda d: integrated_autocorr_time(torch.ones(1000, 4)), ConstantChainError, "chain"),
    "rhat: constant chain": (lambda d: rhat(torch.ones(100, 4)), ConstantChainError, "chain"),
    "rhat: too few steps": (lambda d: rhat(torch.randn(3, 4)), ValueError, "chain"),
    "mcmc_ess: unknown method": (lambda d: mcmc_ess(chains(), method="tail"), ValueError, "method"),
    "mcmc_ess: method not a string": (lambda d: mcmc_ess(chains(), method=1), TypeError, "method"),
    "mcmc_ess: window options without the window": (lambda d: mcmc_ess(chains(), c=5.0), ValueError, "c"),
    "mcse: unknown keyword": (lambda d: mcse(chains(), window=5), TypeError, "window"),
    "plot_energy_contours: levels='many'": (lambda d: plot_energy_contours(MullerBrown(), levels="many"), TypeError, "levels"),
    "plot_energy_contours: max_energy NaN": (lambda d: plot_energy_contours(MullerBrown(), max_energy=NAN), ValueError, "max_energy"),
    # ---------------------------------------------------------------- counts: not an int -> TypeError (in every module)
    "run_chains: n_steps=2.5": (lambda d: run_chains(rw, torch.zeros(4, 2), 2.5), TypeError, "n_steps"),
    "run_chains: thin=1.0": (lambda d: run_chains(rw, torch.zeros(4, 2), 10, thin=1.0), TypeError, "thin"),
    "GaussianMixture.sample: n=2.0": (lambda d: mixture.sample(2.0), TypeError, "n"),
    "importance_sample: n=True": (lambda d: importance_sample(mixture, mixture, True), TypeError, "n"),
    "StandardNormal: dim=2.0": (lambda d: StandardNormal(2.0), TypeError, "dim"),
    "DiagonalGaussian.sample: n=1.5": (lambda d: DiagonalGaussian(torch.zeros(2), torch.ones(2)).sample(1.5), TypeError, "n"),
    "real_nvp: n_layers=2.0": (lambda d: real_nvp(2, n_layers=2.0), TypeError, "n_layers"),
    "real_nvp: dim='2'": (lambda d: real_nvp("2"), TypeError, "dim"),
    "real_nvp: hidden=64": (lambda d: real_nvp(2, hidden=64), TypeError, "hidden"),
    "real_nvp: hidden=(64, 2.5)": (lambda d: real_nvp(2, hidden=(64, 2.5)), TypeError, "hidden"),
    "checkerboard_mask: height=4.0": (lambda d: checkerboard_mask(4.0, 4), TypeError, "height"),
    "alternating_mask: parity=0.0": (lambda d: alternating_mask(4, parity=0.0), TypeError, "parity"),
    "VAE: latent_dim=2.0": (lambda d: VAE(2, 2.0), TypeError, "latent_dim"),
    "VAE: hidden=64": (lambda d: VAE(2, 1, hidden=64), TypeError, "hidden"),
    "VAE.log_prob_grid: n_grid=1.5": (lambda d: VAE(2, 1).log_prob_grid(torch.zeros(3, 2), n_grid=1.5), TypeError, "n_grid"),
    "train_vae: kl_warmup=1.5": (lambda d: train_vae(VAE(2, 1), torch.zeros(8, 2), 1, kl_warmup=1.5), TypeError, "kl_warmup"),
    "train_max_likelihood: batch_size=3.0": (
        lambda d: train_max_likelihood(small_flow(), torch.zeros(8, 2), 1, batch_size=3.0),
        TypeError,
        "batch_size",
    ),
    "seed_everything: seed=1.0": (lambda d: seed_everything(1.0), TypeError, "seed"),
    "plot_traces: max_chains=1.5": (lambda d: plot_traces(torch.zeros(5, 2, 2), max_chains=1.5), TypeError, "max_chains"),
    "plot_energy_contours: grid_size=10.0": (lambda d: plot_energy_contours(MullerBrown(), grid_size=10.0), TypeError, "grid_size"),
    "GridQuadrature: n_points=10.0": (lambda d: GridQuadrature(MullerBrown(), (-1, 1), (-1, 1), 10.0), TypeError, "n_points"),
    # ---------------------------------------------------------------- counts: an int out of range -> ValueError
    "run_chains: n_steps=0": (lambda d: run_chains(rw, torch.zeros(4, 2), 0), ValueError, "n_steps"),
    "GaussianMixture.sample: n=0": (lambda d: mixture.sample(0), ValueError, "n"),
    "importance_sample: n=-1": (lambda d: importance_sample(mixture, mixture, -1), ValueError, "n"),
    "real_nvp: n_layers=0": (lambda d: real_nvp(2, n_layers=0), ValueError, "n_layers"),
    "alternating_mask: parity=2": (lambda d: alternating_mask(4, parity=2), ValueError, "parity"),
    "seed_everything: seed=-1": (lambda d: seed_everything(-1), ValueError, "seed"),
    "GridQuadrature: n_points=1": (lambda d: GridQuadrature(MullerBrown(), (-1, 1), (-1, 1), 1), ValueError, "n_points"),
    "train_vae: kl_warmup=-1": (lambda d: train_vae(VAE(2, 1), torch.zeros(8, 2), 1, kl_warmup=-1), ValueError, "kl_warmup"),
    # ---------------------------------------------------------------- numbers: not a number -> TypeError, out of range -> ValueError
    "MullerBrown: beta=True": (lambda d: MullerBrown(beta=True), TypeError, "beta"),
    "MullerBrown: beta=-1": (lambda d: MullerBrown(beta=-1.0), ValueError, "beta"),
    "train_max_likelihood: lr='1e-3'": (lambda d: train_max_likelihood(small_flow(), torch.zeros(8, 2), 1, lr="1e-3"), TypeError, "lr"),
    "train_max_likelihood: lr=0": (lambda d: train_max_likelihood(small_flow(), torch.zeros(8, 2), 1, lr=0.0), ValueError, "lr"),
    "train_max_likelihood: weight_decay=inf": (
        lambda d: train_max_likelihood(small_flow(), torch.zeros(8, 2), 1, weight_decay=INF),
        ValueError,
        "weight_decay",
    ),
    "train_vae: lr=None": (lambda d: train_vae(VAE(2, 1), torch.zeros(8, 2), 1, lr=None), TypeError, "lr"),
    "real_nvp: scale_bound=inf": (lambda d: real_nvp(2, scale_bound=INF), ValueError, "scale_bound"),
    "VAE.log_prob_grid: bound=0": (lambda d: VAE(2, 1).log_prob_grid(torch.zeros(3, 2), bound=0.0), ValueError, "bound"),
    "RandomWalkMetropolis: step_size=-0.1": (lambda d: RandomWalkMetropolis(mixture, -0.1), ValueError, "step_size"),
    "VAE: activation='relu'": (lambda d: VAE(2, 1, activation="relu"), TypeError, "activation"),
}


class BoxTarget(GaussianMixture):
    """Uniform on the unit square, zero density elsewhere."""

    def __init__(self) -> None:
        super().__init__(torch.zeros(1, 2))

    def log_prob(self, x: torch.Tensor) -> torch.Tensor:
        inside = ((x >= 0) & (x <= 1)).all(-1)
        return torch.where(inside, 0.0, -INF).to(x.dtype)


class NanTarget(GaussianMixture):
    def __init__(self) -> None:
        super().__init__(torch.zeros(1, 2))

    def log_prob(self, x: torch.Tensor) -> torch.Tensor:
        return torch.full(x.shape[:-1], NAN, dtype=x.dtype)


def test_there_are_at_least_60_cases() -> None:
    assert len(CASES) >= 60


@pytest.mark.parametrize("case", list(CASES))
def test_bad_input_raises_a_clear_error(case: str, tmp_path: Path) -> None:
    call, error, name = CASES[case]
    with pytest.raises(error) as info:
        call(tmp_path)
    assert type(info.value) is error or issubclass(type(info.value), error)
    message = str(info.value)
    assert name in message, f"{case}: {message!r} does not name {name!r}"
    # the advice torch gives for unreadable files is unsafe for untrusted ones: never pass it on
    assert "weights_only=False" not in message


def test_load_flow_errors_name_the_file_and_hide_unsafe_advice(tmp_path: Path) -> None:
    path = write_bytes(tmp_path, os.urandom(256))
    with pytest.raises(ValueError, match="not a valid lecturekit flow file") as info:
        load_flow(path)
    assert info.value.__cause__ is None and info.value.__suppress_context__  # torch's text is not chained
    path, _ = saved_flow(tmp_path)
    assert isinstance(load_flow(path), nn.Module)  # and a good file still loads


def test_a_failed_load_leaves_the_file_alone(tmp_path: Path) -> None:
    path = truncated(tmp_path)
    before = path.read_bytes()
    with pytest.raises(ValueError):
        load_flow(path)
    assert path.read_bytes() == before


# --------------------------------------------------------------------------- documented policies (no error)


@pytest.mark.parametrize(
    "log_density",
    [
        pytest.param(lambda x: GaussianMixture(torch.zeros(2, 2), torch.tensor([1.0, 2.0])).log_prob(x), id="mixture isotropic"),
        pytest.param(
            lambda x: GaussianMixture(torch.zeros(1, 2), torch.tensor([[[1.0, 0.5], [0.5, 1.0]]])).log_prob(x), id="mixture full"
        ),
        pytest.param(lambda x: MullerBrown().log_prob(x), id="muller-brown"),
        pytest.param(lambda x: MullerBrown().log_prob_and_score(x)[0], id="muller-brown with score"),
        pytest.param(lambda x: small_flow().log_prob(x), id="flow"),
    ],
)
def test_points_at_infinity_have_zero_density_and_nan_propagates(log_density: Callable) -> None:
    x = torch.tensor([[0.1, 0.2], [INF, 0.0], [0.0, -INF], [INF, -INF], [NAN, 0.0], [NAN, INF]])
    with torch.no_grad():
        values = log_density(x)
    assert torch.isfinite(values[0])
    assert bool((values[1:4] == -INF).all()), values
    assert bool(values[4:].isnan().all()), values


def test_muller_brown_energy_is_plus_inf_at_infinity() -> None:
    energy = MullerBrown().energy(torch.tensor([[INF, 0.0], [NAN, 0.0]]))
    assert float(energy[0]) == INF and math.isnan(float(energy[1]))


def test_samplers_reject_proposals_at_infinity() -> None:
    # an infinite position never enters a chain: its log_prob is -inf, so it is rejected
    kernel = RandomWalkMetropolis(MullerBrown(), 1e30)
    result = run_chains(kernel, torch.tensor([[0.6, 0.0]]).repeat(8, 1), 20)
    assert bool(torch.isfinite(result.samples).all())


def test_low_precision_chains_are_converted_not_refused() -> None:
    chain = torch.randn(2000, 4)
    assert float(integrated_autocorr_time(chain.half(), min_length_factor=1)) == pytest.approx(
        float(integrated_autocorr_time(chain, min_length_factor=1)), rel=0.05
    )
    assert autocorrelation(chain.half()).dtype == torch.float32


def test_the_convention_itself() -> None:
    for bad in (2.5, 2.0, True, "2", None):
        with pytest.raises(TypeError, match="count"):
            check_positive_int(bad, "count")
    with pytest.raises(ValueError, match="count"):
        check_positive_int(0, "count")
    assert check_int(torch.tensor(3).item(), "count") == 3
    import numpy as np

    assert check_positive_int(np.int64(3), "count") == 3
    with pytest.raises(TypeError, match="rate"):
        check_number(True, "rate")
    with pytest.raises(ValueError, match="rate"):
        check_number(NAN, "rate")
    assert check_number(INF, "rate", finite=False) == INF


# --------------------------------------------------------------------------- the sampling API of Sections 3-4


def _flow_with_base(base: nn.Module) -> nn.Module:
    return real_nvp(base.dim, n_layers=2, hidden=(8,), base=base)


def _edited_state(folder: Path, base: nn.Module, name: str, value: float) -> Path:
    """A saved flow whose state entry ``name`` is overwritten with ``value``."""
    path = folder / "flow.pt"
    save_flow(_flow_with_base(base), path)
    payload = torch.load(path, weights_only=True)
    payload["state_dict"][name] = torch.full_like(payload["state_dict"][name], value)
    torch.save(payload, path)
    return path


def _first_weight(folder: Path) -> str:
    path = folder / "probe.pt"
    save_flow(small_flow(), path)
    return next(k for k, v in torch.load(path, weights_only=True)["state_dict"].items() if v.is_floating_point())


def _two_mode_gl(**kwargs: object) -> object:
    from lecturekit.samplers.adaptive import adaptive_flow_mcmc, global_local_mcmc

    runner = global_local_mcmc if "n_steps" in kwargs else adaptive_flow_mcmc
    return runner(mixture, small_flow(), torch.zeros(4, 2), **kwargs)


def _renamed(function: str, **kwargs: object) -> object:
    """Call a sampler or trainer with an argument name it no longer takes (issue 19: one convention)."""
    from lecturekit.samplers import adaptive, annealing, smc

    flows = [small_flow()]
    base = GaussianMixture(torch.zeros(1, 2), 2.0)
    calls = {
        "global_local_mcmc": lambda: adaptive.global_local_mcmc(mixture, small_flow(), torch.zeros(4, 2), **kwargs),
        "adaptive_flow_mcmc": lambda: adaptive.adaptive_flow_mcmc(mixture, small_flow(), torch.zeros(4, 2), 1, 1, **kwargs),
        "annealed_data_sets": lambda: annealing.annealed_data_sets(
            small_flow(), mixture, [1.0], torch.zeros(4, 2), n_train_steps=1, **kwargs),
        "sequential_monte_carlo": lambda: smc.sequential_monte_carlo(mixture, base, 8, [1.0], **kwargs),
        "annealed_importance_sampling": lambda: smc.annealed_importance_sampling(mixture, base, 8, [1.0], **kwargs),
        "flow_transport_smc": lambda: smc.flow_transport_smc(mixture, base, 8, [1.0], flows, **kwargs),
        "train_craft": lambda: smc.train_craft(mixture, base, 8, [1.0], flows, **kwargs),
    }
    return calls[function]()


def _smc(**kwargs: object) -> object:
    from lecturekit.samplers.smc import annealed_importance_sampling, sequential_monte_carlo

    base = GaussianMixture(torch.zeros(1, 2), 2.0)
    runner = annealed_importance_sampling if kwargs.pop("ais", False) else sequential_monte_carlo
    return runner(mixture, base, 16, **kwargs)


def _tempering(name: str) -> Callable:
    from lecturekit.targets import tempering

    return getattr(tempering, name)


def _smc_function(name: str) -> Callable:
    from lecturekit.samplers import smc

    return getattr(smc, name)


def _phi4_chain(**kwargs: float) -> object:
    from lecturekit.targets.phi4_chain import Phi4Chain

    return Phi4Chain(**kwargs)


def _tridiagonal(dtype: torch.dtype = torch.float32) -> nn.Module:
    from lecturekit.distributions import TridiagonalGaussian

    return TridiagonalGaussian(torch.full((3,), 2.0, dtype=dtype), torch.full((2,), -1.0, dtype=dtype))


def _hmc(**kwargs: object) -> object:
    from lecturekit.samplers.hmc import HMC

    return HMC(mixture, **kwargs)


def _interval_membership(edges: torch.Tensor) -> object:
    from lecturekit.diagnostics import interval_membership

    return interval_membership(torch.rand(10), edges)


def _bg_loss(data: torch.Tensor) -> object:
    from lecturekit.training.loop import boltzmann_generator_loss

    return boltzmann_generator_loss(small_flow(), mixture, data, 8)


SAMPLING_CASES: dict[str, tuple[Callable[[Path], object], type[Exception], str]] = {
    # saved flows whose weights would give NaN densities
    "load_flow: all-NaN weights": (
        lambda d: load_flow(_edited_state(d, StandardNormal(2), _first_weight(d), NAN)), ValueError, "flow.pt"),
    "load_flow: inf weights": (
        lambda d: load_flow(_edited_state(d, StandardNormal(2), _first_weight(d), INF)), ValueError, "NaN or inf"),
    "load_flow: negative Cholesky diagonal": (
        lambda d: load_flow(_edited_state(d, _tridiagonal(), "base.cholesky_diagonal", -1.0)),
        ValueError, "cholesky_diagonal"),
    # old argument names: Python's own TypeError names them
    "global_local_mcmc: n_iterations (now n_steps)": (
        lambda d: _renamed("global_local_mcmc", n_iterations=2), TypeError, "n_iterations"),
    "global_local_mcmc: local_step_size (now make_local_kernel)": (
        lambda d: _renamed("global_local_mcmc", n_steps=2, local_step_size=0.1), TypeError, "local_step_size"),
    "adaptive_flow_mcmc: local_kernel (now make_local_kernel)": (
        lambda d: _renamed("adaptive_flow_mcmc", local_kernel=None), TypeError, "local_kernel"),
    "adaptive_flow_mcmc: make_local_kernel not callable": (
        lambda d: _renamed("adaptive_flow_mcmc", make_local_kernel=0.1), TypeError, "make_local_kernel"),
    "adaptive_flow_mcmc: make_local_kernel returns None": (
        lambda d: _renamed("adaptive_flow_mcmc", make_local_kernel=lambda t: None), TypeError, "make_local_kernel"),
    "annealed_data_sets: n_iterations (now n_steps)": (
        lambda d: _renamed("annealed_data_sets", n_iterations=2), TypeError, "n_iterations"),
    "sequential_monte_carlo: make_kernel (now make_local_kernel)": (
        lambda d: _renamed("sequential_monte_carlo", make_kernel=None), TypeError, "make_kernel"),
    "sequential_monte_carlo: n_mcmc_steps (now n_local_steps)": (
        lambda d: _renamed("sequential_monte_carlo", n_mcmc_steps=1), TypeError, "n_mcmc_steps"),
    "annealed_importance_sampling: n_mcmc_steps (now n_local_steps)": (
        lambda d: _renamed("annealed_importance_sampling", n_mcmc_steps=1), TypeError, "n_mcmc_steps"),
    "flow_transport_smc: make_kernel (now make_local_kernel)": (
        lambda d: _renamed("flow_transport_smc", make_kernel=None), TypeError, "make_kernel"),
    "train_craft: n_iterations (now n_steps)": (lambda d: _renamed("train_craft", n_iterations=1), TypeError, "n_iterations"),
    "train_craft: n_mcmc_steps (now n_local_steps)": (
        lambda d: _renamed("train_craft", n_steps=1, n_mcmc_steps=1), TypeError, "n_mcmc_steps"),
    # counts the caller passed, named as passed
    "global_local_mcmc: n_steps=0": (lambda d: _two_mode_gl(n_steps=0), ValueError, "n_steps"),
    "global_local_mcmc: n_steps=2.0": (lambda d: _two_mode_gl(n_steps=2.0), TypeError, "n_steps"),
    "adaptive_flow_mcmc: thin > n_production": (
        lambda d: _two_mode_gl(n_training=0, n_production=3, thin=5), ValueError, "thin"),
    "adaptive_flow_mcmc: n_training='2'": (
        lambda d: _two_mode_gl(n_training="2", n_production=3), TypeError, "n_training"),
    "adaptive_flow_mcmc: n_production=-1": (
        lambda d: _two_mode_gl(n_training=1, n_production=-1), ValueError, "n_production"),
    # schedules and SMC
    "annealed_importance_sampling: betas=None": (lambda d: _smc(ais=True, betas=None), TypeError, "betas"),
    "geometric_schedule: beta_min=1 for 5 steps": (
        lambda d: _tempering("geometric_schedule")(5, beta_min=1.0), ValueError, "beta_min"),
    "geometric_schedule: beta_min=0": (lambda d: _tempering("geometric_schedule")(5, beta_min=0.0), ValueError, "beta_min"),
    "geometric_schedule: n_steps=0": (lambda d: _tempering("geometric_schedule")(0), ValueError, "n_steps"),
    "log_partition_from_genealogy: n_resamplings=-3": (
        lambda d: _smc_function("log_partition_from_genealogy")(
            torch.zeros(()), torch.zeros(4), torch.arange(4), -3),
        ValueError, "n_resamplings"),
    "log_partition_from_genealogy: n_resamplings=1.5": (
        lambda d: _smc_function("log_partition_from_genealogy")(
            torch.zeros(()), torch.zeros(4), torch.arange(4), 1.5),
        TypeError, "n_resamplings"),
    "conditional_ess: NaN log-weights": (
        lambda d: _smc_function("conditional_ess")(torch.tensor([0.0, NAN]), torch.zeros(2)), ValueError, "log_weights"),
    "conditional_ess: NaN increments": (
        lambda d: _smc_function("conditional_ess")(torch.zeros(2), torch.tensor([NAN, 0.0])), ValueError,
        "log_increments"),
    "sequential_monte_carlo: make_local_kernel returns None": (
        lambda d: _smc(betas=[0.5, 1.0], make_local_kernel=lambda path: None), TypeError, "make_local_kernel"),
    "sequential_monte_carlo: n_particles=1": (
        lambda d: _smc_function("sequential_monte_carlo")(mixture, GaussianMixture(torch.zeros(1, 2)), 1),
        ValueError, "n_particles"),
    # numbers of the wrong kind or value
    "HMC: jitter='0.1'": (lambda d: _hmc(step_size=0.1, jitter="0.1"), TypeError, "jitter"),
    "HMC: jitter=1.0": (lambda d: _hmc(step_size=0.1, jitter=1.0), ValueError, "jitter"),
    "HMC: jitter=NaN": (lambda d: _hmc(step_size=0.1, jitter=NAN), ValueError, "jitter"),
    "Phi4Chain: beta=NaN": (lambda d: _phi4_chain(beta=NAN), ValueError, "beta"),
    "Phi4Chain: beta=inf": (lambda d: _phi4_chain(beta=INF), ValueError, "beta"),
    "Phi4Chain: a='0.1'": (lambda d: _phi4_chain(a="0.1"), TypeError, "a"),
    "Phi4Chain: beta=-1": (lambda d: _phi4_chain(beta=-1.0), ValueError, "beta"),
    # mixed dtypes and bad edges
    "TridiagonalGaussian.log_prob: float64 points on a float32 base": (
        lambda d: _tridiagonal(torch.float32).log_prob(torch.zeros(2, 3, dtype=torch.float64)), TypeError, "z"),
    "interval_membership: decreasing edges": (
        lambda d: _interval_membership(torch.tensor([1.0, 0.5, 0.0])), ValueError, "edges"),
    "interval_membership: one edge": (lambda d: _interval_membership(torch.tensor([1.0])), ValueError, "edges"),
    "interval_membership: NaN edge": (
        lambda d: _interval_membership(torch.tensor([0.0, NAN, 1.0])), ValueError, "edges"),
    "boltzmann_generator_loss: NaN data": (
        lambda d: _bg_loss(torch.full((4, 2), NAN)), ValueError, "data"),
    "boltzmann_generator_loss: data not a tensor": (lambda d: _bg_loss([[0.0, 0.0]]), TypeError, "data"),
}


F64 = torch.float64


def _kernel(name: str, **kwargs: object) -> object:
    from lecturekit.samplers import mcmc
    from lecturekit.samplers.hmc import HMC

    kernels = {"HMC": HMC, "MALA": MALA, "RWM": RandomWalkMetropolis, "mcmc.MALA": mcmc.MALA}
    return kernels[name](mixture, **kwargs)


def _neutra(flow: object = None, target: object = None) -> object:
    from lecturekit.samplers.neutra import NeuTraTarget

    return NeuTraTarget(mixture if target is None else target, small_flow() if flow is None else flow)


def _resample(name: str) -> Callable:
    from lecturekit.samplers import resampling

    return getattr(resampling, name)


def _path(**kwargs: object) -> object:
    from lecturekit.targets.tempering import TemperedPath

    base = GaussianMixture(torch.zeros(1, 2), 2.0)
    return TemperedPath(kwargs.pop("target", mixture), kwargs.pop("base", base), **kwargs)


# Hold-out cases of issue 19 item 3, written before the fixes of this branch (mixed dtypes, kernels,
# NeuTra, SMC, resampling, tempering, diagnostics).
HOLDOUT_CASES: dict[str, tuple[Callable[[Path], object], type[Exception], str]] = {
    # mixed dtypes: float64 chains on float32 targets (TypeError, as checks.py documents)
    "HMC chain: float64 positions on a float32 target": (
        lambda d: run_chains(_kernel("HMC", step_size=0.1), torch.zeros(2, 2, dtype=F64), 2), TypeError, "position"),
    "MALA chain: float64 positions on a float32 target": (
        lambda d: run_chains(_kernel("MALA", step_size=0.1), torch.zeros(2, 2, dtype=F64), 2), TypeError, "position"),
    "RWM chain: float64 positions on a float32 target": (
        lambda d: run_chains(_kernel("RWM", step_size=0.1), torch.zeros(2, 2, dtype=F64), 2), TypeError, "position"),
    "NeuTraTarget.log_prob: float64 z on a float32 flow": (
        lambda d: _neutra().log_prob(torch.zeros(2, 2, dtype=F64)), TypeError, "z"),
    "NeuTraTarget.log_prob_and_score: float64 z": (
        lambda d: _neutra().log_prob_and_score(torch.zeros(2, 2, dtype=F64)), TypeError, "z"),
    "sequential_monte_carlo: float64 base, float32 target": (
        lambda d: _smc_function("sequential_monte_carlo")(
            mixture, GaussianMixture(torch.zeros(1, 2, dtype=F64), 2.0), 4, betas=[1.0]),
        TypeError, "base"),
    "annealed_importance_sampling: float64 base, float32 target": (
        lambda d: _smc_function("annealed_importance_sampling")(
            mixture, GaussianMixture(torch.zeros(1, 2, dtype=F64), 2.0), 4, betas=[1.0]),
        TypeError, "base"),
    # kernels: wrong kinds and values
    "HMC: n_leapfrog=0": (lambda d: _hmc(step_size=0.1, n_leapfrog=0), ValueError, "n_leapfrog"),
    "HMC: n_leapfrog=2.5": (lambda d: _hmc(step_size=0.1, n_leapfrog=2.5), TypeError, "n_leapfrog"),
    "HMC: n_leapfrog=True": (lambda d: _hmc(step_size=0.1, n_leapfrog=True), TypeError, "n_leapfrog"),
    "HMC: step_size=-1": (lambda d: _hmc(step_size=-1.0), ValueError, "step_size"),
    "HMC: step_size=NaN": (lambda d: _hmc(step_size=NAN), ValueError, "step_size"),
    "HMC: step_size=inf": (lambda d: _hmc(step_size=INF), ValueError, "step_size"),
    "HMC: step_size='0.1'": (lambda d: _hmc(step_size="0.1"), TypeError, "step_size"),
    "HMC: jitter=-0.1": (lambda d: _hmc(step_size=0.1, jitter=-0.1), ValueError, "jitter"),
    "HMC: target not a Target": (
        lambda d: __import__("lecturekit.samplers.hmc", fromlist=["HMC"]).HMC("mixture", 0.1), TypeError, "target"),
    "HMC chain: positions of the wrong dimension": (
        lambda d: run_chains(_kernel("HMC", step_size=0.1), torch.zeros(2, 3), 2), ValueError, "position"),
    "HMC chain: integer positions": (
        lambda d: run_chains(_kernel("HMC", step_size=0.1), torch.zeros(2, 2, dtype=torch.long), 2),
        TypeError, "initial_position"),
    "HMC chain: meta positions": (
        lambda d: run_chains(_kernel("HMC", step_size=0.1), torch.zeros(2, 2, device=META), 2),
        ValueError, "initial_position"),
    "HMC chain: n_steps=0": (
        lambda d: run_chains(_kernel("HMC", step_size=0.1), torch.zeros(2, 2), 0), ValueError, "n_steps"),
    "MALA: step_size=0": (lambda d: _kernel("MALA", step_size=0.0), ValueError, "step_size"),
    "MALA: step_size tensor with NaN": (
        lambda d: _kernel("MALA", step_size=torch.tensor([0.1, NAN])), ValueError, "step_size"),
    "MALA: step_size of shape (2, 2)": (
        lambda d: _kernel("MALA", step_size=torch.ones(2, 2)), ValueError, "step_size"),
    # NeuTra
    "NeuTraTarget: flow not a Flow": (lambda d: _neutra(flow=nn.Linear(2, 2)), TypeError, "flow"),
    "NeuTraTarget: target not a Target": (lambda d: _neutra(target="mixture"), TypeError, "target"),
    "NeuTraTarget.log_prob: wrong dimension": (lambda d: _neutra().log_prob(torch.zeros(2, 3)), ValueError, "z"),
    "NeuTraTarget.log_prob: list": (lambda d: _neutra().log_prob([[0.0, 0.0]]), TypeError, "z"),
    "NeuTraTarget.log_prob: integer z": (
        lambda d: _neutra().log_prob(torch.zeros(2, 2, dtype=torch.long)), TypeError, "z"),
    # SMC
    "sequential_monte_carlo: n_particles=2.0": (
        lambda d: _smc_function("sequential_monte_carlo")(mixture, GaussianMixture(torch.zeros(1, 2), 2.0), 2.0),
        TypeError, "n_particles"),
    "sequential_monte_carlo: n_local_steps=-1": (lambda d: _smc(betas=[1.0], n_local_steps=-1), ValueError, "n_local_steps"),
    "sequential_monte_carlo: resample_threshold=1.5": (
        lambda d: _smc(betas=[1.0], resample_threshold=1.5), ValueError, "resample_threshold"),
    "sequential_monte_carlo: resample_threshold=NaN": (
        lambda d: _smc(betas=[1.0], resample_threshold=NAN), ValueError, "resample_threshold"),
    "sequential_monte_carlo: resampling='bogus'": (
        lambda d: _smc(betas=[1.0], resampling="bogus"), ValueError, "resampling"),
    "sequential_monte_carlo: target_cess=1.5": (lambda d: _smc(target_cess=1.5), ValueError, "target_cess"),
    "sequential_monte_carlo: target_cess=NaN": (lambda d: _smc(target_cess=NAN), ValueError, "target_cess"),
    "sequential_monte_carlo: decreasing betas": (lambda d: _smc(betas=[0.5, 0.2, 1.0]), ValueError, "betas"),
    "sequential_monte_carlo: NaN beta": (lambda d: _smc(betas=[NAN, 1.0]), ValueError, "betas"),
    "sequential_monte_carlo: base not a Proposal": (
        lambda d: _smc_function("sequential_monte_carlo")(mixture, "base", 4), TypeError, "base"),
    "sequential_monte_carlo: target not a Target": (
        lambda d: _smc_function("sequential_monte_carlo")("t", GaussianMixture(torch.zeros(1, 2)), 4),
        TypeError, "target"),
    "sequential_monte_carlo: dimensions differ": (
        lambda d: _smc_function("sequential_monte_carlo")(mixture, GaussianMixture(torch.zeros(1, 3)), 4),
        ValueError, "base"),
    # resampling
    "systematic_resample: NaN log-weights": (
        lambda d: _resample("systematic_resample")(torch.tensor([0.0, NAN])), ValueError, "log_weights"),
    "multinomial_resample: NaN log-weights": (
        lambda d: _resample("multinomial_resample")(torch.tensor([0.0, NAN])), ValueError, "log_weights"),
    "systematic_resample: n_samples=0": (
        lambda d: _resample("systematic_resample")(torch.zeros(3), 0), ValueError, "n_samples"),
    "systematic_resample: n_samples=1.5": (
        lambda d: _resample("systematic_resample")(torch.zeros(3), 1.5), TypeError, "n_samples"),
    "multinomial_resample: list": (lambda d: _resample("multinomial_resample")([0.0, 0.0]), TypeError, "log_weights"),
    "systematic_resample: 2-d log-weights": (
        lambda d: _resample("systematic_resample")(torch.zeros(2, 2)), ValueError, "log_weights"),
    "systematic_resample: all -inf": (
        lambda d: _resample("systematic_resample")(torch.full((3,), -INF)), ValueError, "log_weights"),
    # tempering
    "check_schedule: not ending at 1": (lambda d: _tempering("check_schedule")([0.2, 0.5]), ValueError, "betas"),
    "check_schedule: empty": (lambda d: _tempering("check_schedule")([]), ValueError, "betas"),
    "geometric_schedule: n_steps=2.5": (lambda d: _tempering("geometric_schedule")(2.5), TypeError, "n_steps"),
    "geometric_schedule: beta_min=NaN": (lambda d: _tempering("geometric_schedule")(5, beta_min=NAN), ValueError,
                                          "beta_min"),
    "TemperedPath: beta=1.5": (lambda d: _path(beta=1.5), ValueError, "beta"),
    "TemperedPath: beta=NaN": (lambda d: _path(beta=NAN), ValueError, "beta"),
    "TemperedPath: beta='0.5'": (lambda d: _path(beta="0.5"), TypeError, "beta"),
    "TemperedPath: target not a Target": (lambda d: _path(target="t", beta=0.5), TypeError, "target"),
    # diagnostics
    "rhat: list": (lambda d: rhat([[0.0, 1.0]]), TypeError, "chain"),
    "rhat: NaN in the chain": (lambda d: rhat(torch.tensor([[0.0, NAN, 1.0, 2.0]] * 2)), ValueError, "chain"),
    "mcmc_ess: method='bogus'": (lambda d: mcmc_ess(chains(), method="bogus"), ValueError, "method"),
    "mcse: method='bogus'": (lambda d: mcse(chains(), method="bogus"), ValueError, "method"),
    "ess_from_log_weights: NaN": (lambda d: ess_from_log_weights(torch.tensor([0.0, NAN])), ValueError, "log_weights"),
    "ess_from_log_weights: integer tensor": (
        lambda d: ess_from_log_weights(torch.zeros(3, dtype=torch.long)), TypeError, "log_weights"),
    "integrated_autocorr_time: c=-1": (lambda d: integrated_autocorr_time(chains()[0], c=-1.0), ValueError, "c"),
    "integrated_autocorr_time: c=NaN": (lambda d: integrated_autocorr_time(chains()[0], c=NAN), ValueError, "c"),
    "autocorrelation: integer chain": (
        lambda d: autocorrelation(torch.zeros(10, dtype=torch.long)), TypeError, "chain"),
    # lattice phi^4, 1D phi^4, broken phase, angles, radial velocity
    "Phi4Lattice: L=0": (lambda d: _mod("targets.phi4_lattice").Phi4Lattice(0, -4.0, 8.0), ValueError, "L"),
    "Phi4Lattice: L=2.5": (lambda d: _mod("targets.phi4_lattice").Phi4Lattice(2.5, -4.0, 8.0), TypeError, "L"),
    "Phi4Lattice: m2=NaN": (lambda d: _mod("targets.phi4_lattice").Phi4Lattice(4, NAN, 8.0), ValueError, "m2"),
    "Phi4Lattice: lam=NaN": (lambda d: _mod("targets.phi4_lattice").Phi4Lattice(4, -4.0, NAN), ValueError, "lam"),
    "Phi4Lattice: lam=-1": (lambda d: _mod("targets.phi4_lattice").Phi4Lattice(4, -4.0, -1.0), ValueError, "lam"),
    "Phi4Lattice: m2='1'": (lambda d: _mod("targets.phi4_lattice").Phi4Lattice(4, "1", 8.0), TypeError, "m2"),
    "Phi4Lattice.log_prob: wrong number of sites": (
        lambda d: _mod("targets.phi4_lattice").Phi4Lattice(2, -4.0, 8.0).log_prob(torch.zeros(3, 5)), ValueError, "x"),
    "albergo_from_del_debbio: beta=NaN": (
        lambda d: _mod("targets.phi4_lattice").albergo_from_del_debbio(NAN, 0.1), ValueError, "beta"),
    "del_debbio_from_albergo: lam=NaN": (
        lambda d: _mod("targets.phi4_lattice").del_debbio_from_albergo(-4.0, NAN), ValueError, "lam"),
    "magnetization: list": (lambda d: _mod("targets.phi4_lattice").magnetization([[0.0]]), TypeError, "phi"),
    "susceptibility: NaN field": (
        lambda d: _mod("targets.phi4_lattice").susceptibility(torch.full((4, 4), NAN)), ValueError, "phi"),
    "two_point_function: L=3 for 4 sites": (
        lambda d: _mod("targets.phi4_lattice").two_point_function(torch.zeros(5, 4), L=3), ValueError, "phi"),
    "susceptibility_along_chain: NaN chain": (
        lambda d: _mod("targets.phi4_lattice").susceptibility_along_chain(torch.full((20, 4), NAN)), ValueError, "chain"),
    "Phi4Chain: n_sites=0": (lambda d: _phi4_chain(n_sites=0), ValueError, "n_sites"),
    "field_mean: integer tensor": (
        lambda d: _mod("targets.phi4_chain").field_mean(torch.zeros(3, 4, dtype=torch.long)), TypeError, "x"),
    "site_value: site=2.5": (lambda d: _mod("targets.phi4_chain").site_value(torch.zeros(3, 4), 2.5), TypeError, "site"),
    "site_value: site=10 of 4": (lambda d: _mod("targets.phi4_chain").site_value(torch.zeros(3, 4), 10), ValueError, "site"),
    "mode_weights: NaN log-weights": (
        lambda d: _mod("estimates").mode_weights(torch.ones(3, 1), torch.tensor([0.0, NAN, 0.0])),
        ValueError, "log_weights"),
    "mode_weights: NaN membership": (
        lambda d: _mod("estimates").mode_weights(torch.full((3, 2), NAN)), ValueError, "membership"),
    "mode_weights: membership above 1": (
        lambda d: _mod("estimates").mode_weights(torch.full((3, 2), 2.0)), ValueError, "membership"),
    "mode_weights: boolean membership": (
        lambda d: _mod("estimates").mode_weights(torch.ones(3, 2, dtype=torch.bool)), TypeError, "membership"),
    "mode_weights: 1D membership": (lambda d: _mod("estimates").mode_weights(torch.ones(3)), ValueError, "membership"),
    "mode_weights: chains with log-weights": (
        lambda d: _mod("estimates").mode_weights(torch.ones(4, 3, 2), torch.zeros(4)), ValueError, "log_weights"),
    "mode_weights: one walker": (
        lambda d: _mod("estimates").mode_weights(torch.ones(4, 1, 2)), ValueError, "walkers"),
    "mode_weights: chain_error='walker'": (
        lambda d: _mod("estimates").mode_weights(torch.ones(4, 3, 2), chain_error="walker"), ValueError, "chain_error"),
    "mode_weights: log-weights of the wrong length": (
        lambda d: _mod("estimates").mode_weights(torch.ones(3, 2), torch.zeros(4)), ValueError, "log_weights"),
    "count_tunnellings: threshold=-1": (
        lambda d: _mod("broken_phase").count_tunnellings(torch.zeros(10, 2), -1.0), ValueError, "threshold"),
    "count_tunnellings: threshold=NaN": (
        lambda d: _mod("broken_phase").count_tunnellings(torch.zeros(10, 2), NAN), ValueError, "threshold"),
    "count_tunnellings: NaN m": (
        lambda d: _mod("broken_phase").count_tunnellings(torch.full((10, 2), NAN), 0.5), ValueError, "m"),
    "tunnelling_time: list": (lambda d: _mod("broken_phase").tunnelling_time([0.0, 1.0], 0.5), TypeError, "m"),
    "sign_weight: NaN m": (lambda d: _mod("broken_phase").sign_weight(torch.tensor([1.0, NAN])), ValueError, "m"),
    "sign_weight: empty m": (lambda d: _mod("broken_phase").sign_weight(torch.zeros(0)), ValueError, "m"),
    "angle_of: wrong last dimension": (lambda d: _mod("targets.angles").angle_of(torch.zeros(3, 3)), ValueError, "u"),
    "angle_of: integer tensor": (
        lambda d: _mod("targets.angles").angle_of(torch.zeros(3, 2, dtype=torch.long)), TypeError, "u"),
    "AngleAsVector: index=5 for dim 2": (lambda d: _mod("targets.angles").AngleAsVector(mixture, 5), ValueError, "index"),
    "AngleAsVector: index=0.5": (lambda d: _mod("targets.angles").AngleAsVector(mixture, 0.5), TypeError, "index"),
    "AngleAsVector: target not a Target": (lambda d: _mod("targets.angles").AngleAsVector("t", 0), TypeError, "target"),
    "radial_velocity: NaN times": (
        lambda d: _mod("targets.radial_velocity").radial_velocity(torch.tensor([NAN]), torch.zeros(1, 4)), ValueError, "t"),
    "radial_velocity: list times": (
        lambda d: _mod("targets.radial_velocity").radial_velocity([0.0], torch.zeros(1, 4)), TypeError, "t"),
    "interval_membership: list values": (
        lambda d: _mod("diagnostics").interval_membership([0.1], torch.tensor([0.0, 1.0])), TypeError, "values"),
    "interval_membership: NaN values": (
        lambda d: _mod("diagnostics").interval_membership(torch.tensor([NAN]), torch.tensor([0.0, 1.0])),
        ValueError, "values"),
    "no_planet_log_evidence: sigma_v0=-1": (
        lambda d: _mod("targets.radial_velocity").no_planet_log_evidence(
            _mod("targets.radial_velocity").simulate_observations(), sigma_v0=-1.0), ValueError, "sigma_v0"),
    "no_planet_log_evidence: data not RadialVelocityData": (
        lambda d: _mod("targets.radial_velocity").no_planet_log_evidence("data"), TypeError, "data"),
    # quadrature, symmetry
    "Z2Symmetrized: density not a module": (lambda d: _mod("flows.symmetry").Z2Symmetrized("p"), TypeError, "density"),
    "GridQuadrature: n_points=1": (lambda d: GridQuadrature(mixture, (-1, 1), (-1, 1), n_points=1), ValueError, "n_points"),
    "GridQuadrature: n_points=2.5": (
        lambda d: GridQuadrature(mixture, (-1, 1), (-1, 1), n_points=2.5), TypeError, "n_points"),
    "GridQuadrature: reversed xlim": (lambda d: GridQuadrature(mixture, (1, -1), (-1, 1)), ValueError, "xlim"),
    "GridQuadrature: NaN ylim": (lambda d: GridQuadrature(mixture, (-1, 1), (NAN, 1)), ValueError, "ylim"),
    "GridQuadrature: integer dtype": (
        lambda d: GridQuadrature(mixture, (-1, 1), (-1, 1), dtype=torch.long), TypeError, "dtype"),
    "simulate_observations: n_observations=0": (
        lambda d: _mod("targets.radial_velocity").simulate_observations(n_observations=0), ValueError, "n_observations"),
    "simulate_observations: sigma_obs=-1": (
        lambda d: _mod("targets.radial_velocity").simulate_observations(sigma_obs=-1.0), ValueError, "sigma_obs"),
    "simulate_observations: span=NaN": (
        lambda d: _mod("targets.radial_velocity").simulate_observations(span=NAN), ValueError, "span"),
}


def _mod(name: str) -> object:
    import importlib

    return importlib.import_module(f"lecturekit.{name}")


@pytest.mark.parametrize("case", list(HOLDOUT_CASES))
def test_holdout_bad_input_raises_a_clear_error(case: str, tmp_path: Path) -> None:
    call, error, name = HOLDOUT_CASES[case]
    with pytest.raises(error) as info:
        call(tmp_path)
    assert name in str(info.value), f"{case}: {str(info.value)!r} does not name {name!r}"


@pytest.mark.parametrize("case", list(SAMPLING_CASES))
def test_sampling_api_bad_input_raises_a_clear_error(case: str, tmp_path: Path) -> None:
    call, error, name = SAMPLING_CASES[case]
    with pytest.raises(error) as info:
        call(tmp_path)
    assert name in str(info.value), f"{case}: {str(info.value)!r} does not name {name!r}"
