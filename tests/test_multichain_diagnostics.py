"""Multi-chain R-hat, ESS and MCSE (Vehtari et al. 2021) against ArviZ and against exact answers.

ArviZ (pinned in requirements/constraints.txt, installed by ``make setup`` as the ``tests``
extra) is the reference implementation; lecturekit follows the same algorithm step by step, so
the two agree to rounding error (1e-10 relative), not merely statistically.
"""

from __future__ import annotations

import math
import warnings

import numpy as np
import pytest
import torch

from lecturekit.diagnostics import ChainTooShortError, ConstantChainError, mcmc_ess, mcse, rhat
from lecturekit.samplers.mcmc import MALA, RandomWalkMetropolis, run_chains
from lecturekit.targets.toy import GaussianMixture, MullerBrown
from test_diagnostics import ar1  # stationary AR(1) chains with exact answers

with warnings.catch_warnings():
    warnings.simplefilter("ignore", FutureWarning)  # ArviZ announces its 1.0 refactor at import
    import arviz

REL = 1e-10


def arviz_diagnostics(chain: torch.Tensor) -> dict[str, float]:
    """ArviZ's numbers for one scalar quantity, chain of shape (n_steps, n_chains)."""
    draws = chain.double().numpy().T  # ArviZ wants (chain, draw)
    return {
        "rhat": float(arviz.rhat(draws)),
        "ess_bulk": float(arviz.ess(draws, method="bulk")),
        "ess_mean": float(arviz.ess(draws, method="mean")),
        "mcse_mean": float(arviz.mcse(draws, method="mean")),
    }


def ours(chain: torch.Tensor) -> dict[str, float]:
    return {
        "rhat": float(rhat(chain)),
        "ess_bulk": float(mcmc_ess(chain)),
        "ess_mean": float(mcmc_ess(chain, method="mean")),
        "mcse_mean": float(mcse(chain)),
    }


def assert_matches_arviz(chain: torch.Tensor) -> dict[str, float]:
    expected, got = arviz_diagnostics(chain), ours(chain)
    for key in expected:
        assert got[key] == pytest.approx(expected[key], rel=REL), (key, got[key], expected[key])
    return got


# --------------------------------------------------------------------------- against ArviZ


@pytest.mark.parametrize(("phi", "n_steps", "n_chains"), [(0.0, 1000, 4), (0.9, 4000, 4), (0.99, 1001, 3), (0.5, 9, 2)])
def test_ar1_chains_match_arviz(phi: float, n_steps: int, n_chains: int) -> None:
    assert_matches_arviz(ar1(phi, n_steps, n_chains))


def test_chains_that_disagree_match_arviz_and_are_flagged() -> None:
    # the example: N(0, 1) draws, four chains with means 0, 0, 5 and 5
    chain = torch.randn(20_000, 4, dtype=torch.float64) + torch.tensor([0.0, 0.0, 5.0, 5.0], dtype=torch.float64)
    got = assert_matches_arviz(chain)
    assert got["rhat"] > 1.5  # 1.73: far above the 1.01 threshold
    assert got["ess_bulk"] < 10  # 80,000 draws worth a handful
    # the MCSE sees the between-chain spread: the grand mean 2.5 is uncertain by ~ 5 / 2 / sqrt(4)
    assert got["mcse_mean"] > 1.0
    # the within-chain version measures each chain around its own mean and cannot see it
    assert float(mcse(chain, method="within_chain")) < 0.01


def test_ties_from_rejections_match_arviz() -> None:
    # Metropolis chains repeat values when they reject: ranks of ties are averaged
    chain = torch.randint(0, 3, (500, 4)).double()
    assert_matches_arviz(chain)


@pytest.mark.parametrize("kernel", ["rw", "mala"])
def test_real_sampler_output_matches_arviz(kernel: str) -> None:
    mixture = GaussianMixture(torch.tensor([[-2.0, 0.0], [2.0, 0.0]], dtype=torch.float64), 0.5)
    if kernel == "rw":
        sampler = RandomWalkMetropolis(mixture, step_size=1.0)
    else:
        sampler = MALA(mixture, step_size=0.2)
    result = run_chains(sampler, mixture.sample(4), n_steps=2000)
    for i in range(2):
        assert_matches_arviz(result.samples[..., i])
    # the (n_steps, n_chains, dim) form gives the same numbers per coordinate
    per_coordinate = rhat(result.samples)
    assert per_coordinate.shape == (2,)
    assert float(per_coordinate[1]) == pytest.approx(arviz_diagnostics(result.samples[..., 1])["rhat"], rel=REL)


def test_muller_brown_chains_stuck_in_different_wells_are_flagged() -> None:
    # beta = 0.2: barriers of ~20 kT; chains started in the two deepest wells never meet
    target = MullerBrown(beta=0.2)
    start = torch.tensor([MullerBrown.minima[0], MullerBrown.minima[1]], dtype=torch.float64).repeat(2, 1)
    samples = run_chains(RandomWalkMetropolis(target, step_size=0.1), start, n_steps=2000).samples
    got = assert_matches_arviz(samples[..., 1])
    # ranks of two fully separated halves: R-hat ~ 1.73 however far apart the wells are
    assert got["rhat"] > 1.5


# --------------------------------------------------------------------------- exact answers


def test_mcse_of_ar1_is_calibrated() -> None:
    # 64 independent repetitions of 4 AR(1) chains: the mean MCSE against the spread of the means
    phi, n_steps = 0.8, 2000
    chains = ar1(phi, n_steps, 4 * 64).reshape(n_steps, 64, 4)
    errors = torch.stack([mcse(chains[:, r]) for r in range(64)])
    exact = math.sqrt((1 / (1 - phi**2)) * (1 + phi) / (1 - phi) / (4 * n_steps))
    spread = float(chains.mean((0, 2)).std())  # sd of 64 grand means; its own relative sd ~ 9 %
    assert float(errors.mean()) == pytest.approx(exact, rel=0.05)
    assert spread == pytest.approx(exact, rel=0.3)


def test_rhat_of_agreeing_chains_is_near_one_and_shapes_follow_the_input() -> None:
    chain = torch.randn(4000, 4, 3, dtype=torch.float64)
    values = rhat(chain)
    assert values.shape == (3,)
    assert bool((values < 1.01).all()), values
    assert rhat(chain[:, :, 0]).shape == ()
    assert rhat(chain[:, 0, 0]).shape == ()  # one chain: its two halves are compared
    assert mcmc_ess(chain).shape == (3,)
    assert mcse(chain).shape == (3,)


def test_rhat_sees_a_drift_within_one_chain() -> None:
    drifting = torch.linspace(0, 5, 2000, dtype=torch.float64) + torch.randn(2000, dtype=torch.float64)
    assert float(rhat(drifting)) > 1.1


def test_low_precision_chains_are_upcast() -> None:
    chain = torch.randn(1000, 4)
    assert float(rhat(chain.half())) == pytest.approx(float(rhat(chain)), rel=1e-2)
    assert rhat(chain.half()).dtype == torch.float32
    assert float(mcse(chain.bfloat16(), method="within_chain")) == pytest.approx(float(mcse(chain, method="within_chain")), rel=5e-2)


def test_chains_that_never_move() -> None:
    with pytest.raises(ConstantChainError, match="single value"):
        rhat(torch.ones(100, 4))
    # each chain constant, but at different values: infinitely far from agreeing
    assert math.isinf(float(rhat(torch.arange(4.0).repeat(100, 1))))


def test_within_chain_version_keeps_its_rules() -> None:
    short = ar1(0.95, 300, 4)
    with pytest.raises(ChainTooShortError):
        mcmc_ess(short, method="within_chain")
    assert float(mcmc_ess(short, method="within_chain", min_length_factor=1)) > 0
    assert float(mcmc_ess(short)) > 0  # the multi-chain estimate does not refuse
    with pytest.raises(ValueError, match="min_length_factor"):
        mcmc_ess(short, min_length_factor=1)  # only meaningful for the within-chain window
    with pytest.raises(ValueError, match="method"):
        mcse(short, method="bulk")
    assert np.isfinite(float(mcse(short, method="within_chain", min_length_factor=1)))


def _iid_signs_split_half_and_half(n_steps: int, n_chains: int, seed: int) -> torch.Tensor:
    """iid +-1 draws with exactly as many +1 as -1 overall, so the median is 0 and |x - median| is constant."""
    generator = torch.Generator().manual_seed(seed)
    signs = torch.ones(n_steps * n_chains, dtype=torch.float64)
    signs[: signs.numel() // 2] = -1.0
    return signs[torch.randperm(signs.numel(), generator=generator)].reshape(n_steps, n_chains)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_rhat_of_two_valued_iid_chains_is_the_bulk_value_like_arviz(seed: int) -> None:
    """The tail R-hat is 0/0 there; it must not turn the result into NaN (NaN > 1.01 is False)."""
    chain = _iid_signs_split_half_and_half(400, 4, seed)
    got = float(rhat(chain))
    assert got == pytest.approx(arviz_diagnostics(chain)["rhat"], rel=REL)
    assert got < 1.05


@pytest.mark.parametrize(
    "chain",
    [
        torch.cat([torch.zeros(50, 4), torch.ones(50, 4)]).double(),  # every chain jumps once, half way
        torch.tensor([0.0, 0.0, 1.0, 1.0], dtype=torch.float64).expand(100, 4).clone(),  # constant chains
    ],
    ids=["split-half-and-half", "constant-chains-0011"],
)
def test_rhat_of_stuck_chains_is_huge_not_nan_like_arviz(chain: torch.Tensor) -> None:
    """ArviZ returns about 1e16 (a division by a rounding error); we return +inf. Neither passes 1.01."""
    got = float(rhat(chain))
    assert not math.isnan(got) and got > 1e6
    assert arviz_diagnostics(chain)["rhat"] > 1e6
