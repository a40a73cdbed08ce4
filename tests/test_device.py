"""Device selection, seeding and timing."""

from __future__ import annotations

import random
import time

import numpy as np
import pytest
import torch

from lecturekit.checks import check_same_device
from lecturekit.device import (
    ENV_VARIABLE,
    SEED_OFFSET_VARIABLE,
    Timer,
    default_device,
    seed_everything,
    synchronize,
)


def test_default_device_honours_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(ENV_VARIABLE, "cpu")
    assert default_device() == torch.device("cpu")
    monkeypatch.setenv(ENV_VARIABLE, "  cpu ")
    assert default_device() == torch.device("cpu")


def test_default_device_without_override(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(ENV_VARIABLE, raising=False)
    expected = "cuda" if torch.cuda.is_available() else "mps" if torch.backends.mps.is_available() else "cpu"
    assert default_device().type == expected


@pytest.mark.parametrize("value", ["gpu", "cuda:x", "nonsense"])
def test_default_device_rejects_a_bad_value(monkeypatch: pytest.MonkeyPatch, value: str) -> None:
    monkeypatch.setenv(ENV_VARIABLE, value)
    with pytest.raises(ValueError, match=ENV_VARIABLE):
        default_device()


@pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has CUDA")
def test_default_device_refuses_missing_cuda(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(ENV_VARIABLE, "cuda")
    with pytest.raises(ValueError, match="not available"):
        default_device()


def test_seed_everything_reproduces_all_generators() -> None:
    def draw() -> tuple[float, float, torch.Tensor]:
        return random.random(), float(np.random.rand()), torch.randn(5)

    seed_everything(123)
    first = draw()
    seed_everything(123)
    second = draw()
    assert first[:2] == second[:2] and torch.equal(first[2], second[2])
    seed_everything(124)
    assert not torch.equal(draw()[2], first[2])


@pytest.mark.parametrize(("seed", "error"), [(-1, ValueError), (1.5, TypeError), ("0", TypeError), (True, TypeError)])
def test_seed_everything_rejects_bad_seeds(seed: object, error: type[Exception]) -> None:
    with pytest.raises(error, match="seed"):
        seed_everything(seed)


def test_timer_measures_wall_clock() -> None:
    with Timer("cpu") as timer:
        time.sleep(0.05)
    assert 0.05 <= timer.elapsed < 2.0
    with Timer() as quick:  # default device
        pass
    assert 0.0 <= quick.elapsed < timer.elapsed


def test_check_same_device_names_the_odd_one() -> None:
    assert check_same_device(a=torch.zeros(1), b=torch.zeros(2)) == torch.device("cpu")
    with pytest.raises(ValueError, match="b is on meta"):
        check_same_device(a=torch.zeros(1), b=torch.zeros(1, device="meta"))


def test_synchronize_is_harmless_on_cpu() -> None:
    synchronize("cpu")
    synchronize(torch.device("cpu"))


@pytest.mark.cuda
def test_cuda_default_device_seeding_and_timer(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(ENV_VARIABLE, raising=False)
    assert default_device().type == "cuda"
    monkeypatch.setenv(ENV_VARIABLE, "cuda:0")
    assert default_device() == torch.device("cuda:0")
    seed_everything(7)
    a = torch.randn(100, device="cuda")
    seed_everything(7)
    assert torch.equal(a, torch.randn(100, device="cuda"))
    x = torch.randn(2000, 2000, device="cuda")
    with Timer("cuda") as timer:
        x @ x
    assert timer.elapsed > 0
    synchronize("cuda")


def test_seed_offset_changes_every_seed_and_keeps_seeds_distinct(monkeypatch: pytest.MonkeyPatch) -> None:
    """``make claims`` relies on the offset: other draws for every seed, none shared with offset 0."""
    draws = {}
    for offset in ("", "1", "2"):
        monkeypatch.setenv(SEED_OFFSET_VARIABLE, offset)
        for seed in range(3):
            seed_everything(seed)
            draws[offset, seed] = torch.rand(4)
    values = list(draws.values())
    assert all(not torch.equal(a, b) for i, a in enumerate(values) for b in values[i + 1 :])
    monkeypatch.setenv(SEED_OFFSET_VARIABLE, "1")
    seed_everything(2)
    assert torch.equal(torch.rand(4), draws["1", 2])


@pytest.mark.parametrize("offset", ["-1", "x", "1.5"])
def test_seed_offset_rejects_bad_values(monkeypatch: pytest.MonkeyPatch, offset: str) -> None:
    monkeypatch.setenv(SEED_OFFSET_VARIABLE, offset)
    with pytest.raises(ValueError, match=SEED_OFFSET_VARIABLE):
        seed_everything(0)
