"""Grid quadrature against targets with exact answers."""

from __future__ import annotations

import math

import pytest
import torch

from lecturekit.quadrature import GridQuadrature
from lecturekit.targets.toy import GaussianMixture, MullerBrown


def test_normalised_mixture_has_log_partition_zero_and_exact_moments() -> None:
    mixture = GaussianMixture(
        torch.tensor([[1.0, 1.0], [-1.0, -1.0]], dtype=torch.float64), 0.1, torch.tensor([0.25, 0.75], dtype=torch.float64)
    )
    quad = GridQuadrature(mixture, (-4, 4), (-4, 4), n_points=(801, 601))
    assert quad.points.shape == (801 * 601, 2)
    assert abs(quad.log_partition()) < 1e-9
    assert torch.allclose(quad.expectation(quad.points), mixture.mean(), atol=1e-9)
    centred = quad.points - mixture.mean()
    second_moments = quad.expectation(centred[:, :, None] * centred[:, None, :])
    assert torch.allclose(second_moments, mixture.covariance(), atol=1e-9)
    assert float(quad.probabilities().sum()) == pytest.approx(1.0, abs=1e-12)


def test_unnormalised_target_gets_its_log_partition() -> None:
    # N(0, sigma^2 I) written as exp(-|x|^2 / (2 sigma^2)) without its constant: Z = 2 pi sigma^2.
    class Unnormalised(GaussianMixture):
        def log_prob(self, x: torch.Tensor) -> torch.Tensor:
            return super().log_prob(x) + math.log(2 * math.pi * 0.5)

    quad = GridQuadrature(Unnormalised(torch.zeros(1, 2, dtype=torch.float64), 0.5), (-6, 6), (-6, 6), 500)
    assert quad.log_partition() == pytest.approx(math.log(2 * math.pi * 0.5), abs=1e-9)


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"xlim": (1.0, -1.0)}, "xlim"),
        ({"ylim": (0.0,)}, "ylim"),
        ({"n_points": 1}, "n_points"),
        ({"n_points": (100,)}, "n_points"),
    ],
)
def test_bad_grids_are_refused(kwargs: dict, match: str) -> None:
    arguments = {"xlim": (-1, 1), "ylim": (-1, 1), "n_points": 10} | kwargs
    with pytest.raises(ValueError, match=match):
        GridQuadrature(MullerBrown(), **arguments)


@pytest.mark.parametrize(("kwargs", "match"), [({"n_points": (10, 2.5)}, "n_points"), ({"dtype": torch.int64}, "dtype")])
def test_grids_of_the_wrong_type_are_refused(kwargs: dict, match: str) -> None:
    arguments = {"xlim": (-1, 1), "ylim": (-1, 1), "n_points": 10} | kwargs
    with pytest.raises(TypeError, match=match):
        GridQuadrature(MullerBrown(), **arguments)


def test_only_2d_targets() -> None:
    with pytest.raises(ValueError, match="target"):
        GridQuadrature(GaussianMixture(torch.zeros(1, 3)), (-1, 1), (-1, 1))
