"""Annealed variational inference and annealed data sets: bookkeeping, reuse of the training loops,
and the schedule checks (the mode-recovery comparisons are in chapter 12 and its figures)."""

from __future__ import annotations

import pytest
import torch

from lecturekit.samplers.annealing import annealed_data_sets, annealed_reverse_kl
from lecturekit.flows.core import real_nvp
from lecturekit.samplers.mcmc import RandomWalkMetropolis
from lecturekit.targets.toy import GaussianMixture


def two_modes() -> GaussianMixture:
    return GaussianMixture(torch.tensor([[1.0, 1.0], [-1.0, -1.0]]), 0.1, torch.tensor([0.25, 0.75]))


def test_annealed_reverse_kl_trains_at_each_temperature_in_turn() -> None:
    flow = real_nvp(2, n_layers=2, hidden=(16,))
    run = annealed_reverse_kl(flow, two_modes(), [0.2, 0.5, 1.0], [5, 5, 10], batch_size=32)
    assert run.extras == {"betas": [0.2, 0.5, 1.0], "n_steps": [5, 5, 10]} and len(run.losses) == len(run.ess) == 20
    assert all(0 < e <= 1 for e in run.ess)
    with pytest.raises(ValueError, match="one entry per temperature"):
        annealed_reverse_kl(flow, two_modes(), [0.5, 1.0], [5, 5, 5])
    with pytest.raises(ValueError, match="increasing"):
        annealed_reverse_kl(flow, two_modes(), [0.5, 0.2, 1.0], 5)


def test_annealed_data_sets_samples_each_temperature_then_fits_the_flow() -> None:
    flow = real_nvp(2, n_layers=2, hidden=(16,))
    start = torch.randn(16, 2)
    run = annealed_data_sets(flow, two_modes(), [0.1, 1.0], start, n_steps=10, n_train_steps=4,
                             make_local_kernel=lambda t: RandomWalkMetropolis(t, 0.1), n_local_steps=2,
                             batch_size=32, burn_in=2)
    extras = run.extras
    assert extras["betas"] == [0.1, 1.0] and extras["n_steps"] == [4, 4] and len(run.losses) == 8 and run.ess == []
    assert [s.shape for s in extras["samples"]] == [(10, 16, 2), (10, 16, 2)]
    assert all(0 <= a <= 1 for a in extras["global_acceptance"])
    assert len(extras["flow_states"]) == 2
    assert all(torch.equal(v, flow.state_dict()[k]) for k, v in extras["flow_states"][1].items())
    with pytest.raises(ValueError, match="burn_in"):
        annealed_data_sets(flow, two_modes(), [1.0], start, n_steps=3, n_train_steps=1, burn_in=3)
