"""Shared pytest set-up.

- Tests marked ``@pytest.mark.cuda`` are skipped when no CUDA device is present.
- ``device``: parametrises a test over ``cpu`` and (marked ``cuda``) ``cuda``.
- Every test starts from ``seed_everything(0)`` so results do not depend on test order,
  and runs on one CPU thread.
- ``f64``: make a float64 tensor; ``z_score``: (estimate - exact) / standard error.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator

import pytest
import torch

from lecturekit.device import seed_everything

CUDA_AVAILABLE = torch.cuda.is_available()


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if CUDA_AVAILABLE:
        return
    skip = pytest.mark.skip(reason="needs a CUDA device")
    for item in items:
        if item.get_closest_marker("cuda") is not None:
            item.add_marker(skip)


@pytest.fixture(params=["cpu", pytest.param("cuda", marks=pytest.mark.cuda)])
def device(request: pytest.FixtureRequest) -> torch.device:
    """A device to run on: the CPU always, CUDA when present."""
    return torch.device(request.param)


@pytest.fixture(autouse=True)
def _seed_every_test() -> None:
    seed_everything(0)


@pytest.fixture(autouse=True)
def _one_thread() -> Iterator[None]:
    """Run each test on one CPU thread: the small tensors here gain nothing from more,
    and with ``pytest -n 2`` on two cores extra threads oversubscribe them (~10x slower)."""
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(previous)


@pytest.fixture
def f64() -> Callable[..., torch.Tensor]:
    """``f64(data, device=None)``: a float64 tensor."""

    def make(data: object, device: torch.device | str | None = None) -> torch.Tensor:
        return torch.as_tensor(data, dtype=torch.float64, device=device)

    return make


@pytest.fixture
def z_score() -> Callable[[torch.Tensor, torch.Tensor, torch.Tensor], torch.Tensor]:
    """``z_score(estimate, exact, standard_error)``, elementwise, on the CPU in float64."""

    def z(estimate: torch.Tensor, exact: torch.Tensor, standard_error: torch.Tensor) -> torch.Tensor:
        estimate, exact, standard_error = (torch.as_tensor(t).detach().cpu().double() for t in (estimate, exact, standard_error))
        return (estimate - exact) / standard_error

    return z
