"""Smoke tests for lecturekit.plotting with the Agg backend: figures, artists, bad input."""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402
import torch  # noqa: E402
from matplotlib.collections import PathCollection  # noqa: E402
from matplotlib.contour import ContourSet  # noqa: E402
from matplotlib.image import AxesImage  # noqa: E402

from lecturekit.plotting import (  # noqa: E402
    plot_density,
    plot_energy_contours,
    plot_samples,
    plot_traces,
    plot_trajectory,
)
from lecturekit.targets.base import Target
from lecturekit.targets.toy import GaussianMixture, MullerBrown  # noqa: E402


@pytest.fixture(autouse=True)
def close_figures():
    yield
    plt.close("all")


class DiskWell(Target):
    """Harmonic well restricted to the unit disk (energy +inf outside)."""

    dim = 2

    def energy(self, x: torch.Tensor) -> torch.Tensor:
        r2 = x.pow(2).sum(-1)
        return torch.where(r2 < 1, r2, torch.full_like(r2, float("inf")))


def _contour_sets(ax):
    return [c for c in ax.collections if isinstance(c, ContourSet)]


# ---------------------------------------------------------------- energy contours


def test_energy_contours_filled_clipped_and_framed():
    ax = plot_energy_contours(MullerBrown(), levels=12, max_energy=50.0)
    (cs,) = _contour_sets(ax)
    assert cs.filled
    assert len(cs.levels) == 12
    assert cs.levels[0] == pytest.approx(-146.7, abs=0.5)  # the deepest minimum, on a 200 x 200 grid
    assert cs.levels[-1] == pytest.approx(50.0)  # clipped at max_energy
    assert ax.get_xlim() == (-1.8, 1.2) and ax.get_ylim() == (-0.4, 2.1)


def test_energy_contours_lines_on_given_axes_with_explicit_levels():
    _, ax = plt.subplots()
    levels = [-140.0, -100.0, -60.0, -20.0]
    out = plot_energy_contours(MullerBrown(), ax=ax, levels=levels, filled=False, grid_size=40)
    assert out is ax
    (cs,) = _contour_sets(ax)
    assert not cs.filled
    np.testing.assert_allclose(cs.levels, levels)


def test_energy_contours_default_clip_is_below_the_walls():
    ax = plot_energy_contours(MullerBrown(), grid_size=50)
    (cs,) = _contour_sets(ax)
    assert cs.levels[-1] < 500.0  # the grid's maximum is ~4400; the default clip keeps the basins readable


def test_energy_contours_float64_mixture_and_infinite_energy():
    gm = GaussianMixture(torch.tensor([[1.0, 1.0], [-1.0, -1.0]], dtype=torch.float64), 0.1)
    ax = plot_energy_contours(gm, xlim=(-2, 2), ylim=(-2, 2), grid_size=30)
    assert len(_contour_sets(ax)) == 1
    ax = plot_energy_contours(DiskWell(), xlim=(-1.5, 1.5), ylim=(-1.5, 1.5), grid_size=30)
    (cs,) = _contour_sets(ax)
    assert np.all(np.isfinite(cs.levels))


@pytest.mark.parametrize(
    "kwargs, error",
    [
        ({"xlim": (1.0, -1.0)}, ValueError),
        ({"ylim": (0.0,)}, ValueError),
        ({"levels": 1}, ValueError),
        ({"grid_size": 1}, ValueError),
        ({"max_energy": -500.0}, ValueError),
        ({"max_energy": float("nan")}, ValueError),
    ],
)
def test_energy_contours_bad_arguments(kwargs, error):
    with pytest.raises(error):
        plot_energy_contours(MullerBrown(), grid_size=kwargs.pop("grid_size", 20), **kwargs)


def test_energy_contours_bad_target():
    with pytest.raises(TypeError, match="target"):
        plot_energy_contours(lambda x: x)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="two-dimensional"):
        plot_energy_contours(GaussianMixture(torch.zeros(1, 3)))


# ---------------------------------------------------------------- samples


def test_samples_one_scatter_with_every_point():
    x = torch.randn(2, 50, 2, requires_grad=True)  # leading axes are flattened; grads are detached
    ax = plot_samples(x, color="red")
    (scatter,) = [c for c in ax.collections if isinstance(c, PathCollection)]
    assert scatter.get_offsets().shape == (100, 2)


def test_samples_weights_set_size_and_draw_heaviest_last():
    x = torch.randn(30, 2)
    w = torch.rand(30)
    w[7] = 5.0
    ax = plot_samples(x, weights=w / w.sum())
    (scatter,) = ax.collections
    sizes = scatter.get_sizes()
    assert sizes.shape == (30,) and sizes.argmax() == 29 and sizes.min() < sizes.max()
    np.testing.assert_allclose(scatter.get_offsets()[-1], x[7].numpy())


@pytest.mark.parametrize(
    "samples, weights, error",
    [
        (torch.randn(10, 3), None, ValueError),
        (torch.randn(10), None, ValueError),
        (np.zeros((10, 2)), None, TypeError),
        (torch.randn(10, 2), torch.ones(9), ValueError),
        (torch.randn(10, 2), -torch.ones(10), ValueError),
        (torch.randn(10, 2), torch.zeros(10), ValueError),
        (torch.randn(10, 2), torch.full((10,), float("nan")), ValueError),
    ],
)
def test_samples_bad_input(samples, weights, error):
    with pytest.raises(error):
        plot_samples(samples, weights=weights)


# ---------------------------------------------------------------- traces and trajectories


def test_traces_lines_per_shown_chain_and_coordinate():
    ax = plot_traces(torch.randn(100, 6, 2), max_chains=4)
    assert len(ax.get_lines()) == 4 * 2
    assert [t.get_text() for t in ax.get_legend().get_texts()] == ["$x_0$", "$x_1$"]
    ax = plot_traces(torch.randn(100, 3), labels=["a", "b", "c"])
    assert len(ax.get_lines()) == 3
    assert len(ax.get_lines()[0].get_xdata()) == 100


@pytest.mark.parametrize(
    "samples, kwargs",
    [
        (torch.randn(100), {}),
        (torch.randn(100, 2, 2, 2), {}),
        (torch.randn(0, 2), {}),
        (torch.randn(100, 2), {"labels": ["only one"]}),
        (torch.randn(100, 2), {"labels": "ab"}),
        (torch.randn(100, 2), {"max_chains": 0}),
    ],
)
def test_traces_bad_input(samples, kwargs):
    with pytest.raises(ValueError):
        plot_traces(samples, **kwargs)


def test_trajectory_one_line_per_chain_plus_starts():
    ax = plot_trajectory(torch.randn(20, 5, 2), max_chains=3)
    assert len(ax.get_lines()) == 3 + 1
    with pytest.raises(ValueError, match="two-dimensional"):
        plot_trajectory(torch.randn(20, 5, 3))


# ---------------------------------------------------------------- density


def test_density_heatmap_peaks_at_the_mode():
    gm = GaussianMixture(torch.tensor([[0.5, -0.5]]), 0.05)
    ax = plot_density(gm.log_prob, xlim=(-1, 1), ylim=(-1, 1), grid_size=41)
    (image,) = ax.get_images()
    assert isinstance(image, AxesImage)
    data = np.asarray(image.get_array())
    assert data.shape == (41, 41) and data.max() == pytest.approx(1.0)
    row, col = np.unravel_index(data.argmax(), data.shape)
    assert (row, col) == (10, 30)  # origin="lower": row indexes y = -0.5, column x = 0.5


def test_density_accepts_minus_inf_and_plain_functions():
    ax = plot_density(DiskWell().log_prob, xlim=(-2, 2), ylim=(-2, 2), grid_size=20)
    data = np.asarray(ax.get_images()[0].get_array())
    assert data[0, 0] == 0.0 and data.max() == pytest.approx(1.0)
    plot_density(lambda x: -x.pow(2).sum(-1), xlim=(-1, 1), ylim=(-1, 1), grid_size=10)


class BufferGaussian(torch.nn.Module):
    """A module whose only tensor is a float64 buffer: plot_density must evaluate it in float64."""

    def __init__(self) -> None:
        super().__init__()
        self.register_buffer("mean", torch.tensor([0.25, 0.0], dtype=torch.float64))

    def log_prob(self, x: torch.Tensor) -> torch.Tensor:
        assert x.dtype == torch.float64 and x.device == self.mean.device
        return -(x - self.mean).pow(2).sum(-1)


def test_density_follows_the_dtype_of_the_module_it_belongs_to():
    ax = plot_density(BufferGaussian().log_prob, xlim=(-1, 1), ylim=(-1, 1), grid_size=9)
    data = np.asarray(ax.get_images()[0].get_array())
    assert np.unravel_index(data.argmax(), data.shape) == (4, 5)  # x = 0.25 is column 5 of 9 on [-1, 1]


@pytest.mark.parametrize(
    "fn, error",
    [
        ("not callable", TypeError),
        (lambda x: x, ValueError),  # wrong shape
        (lambda x: torch.full(x.shape[:1], float("nan")), ValueError),
        (lambda x: torch.full(x.shape[:1], float("-inf")), ValueError),
        (lambda x: torch.full(x.shape[:1], float("inf")), ValueError),
    ],
)
def test_density_bad_log_prob(fn, error):
    with pytest.raises(error):
        plot_density(fn, xlim=(-1, 1), ylim=(-1, 1), grid_size=10)


def test_density_bad_limits():
    with pytest.raises(ValueError, match="xlim"):
        plot_density(lambda x: -x.pow(2).sum(-1), xlim=(0, 0), ylim=(-1, 1))


@pytest.mark.cuda
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_cuda_inputs_are_moved_to_cpu():
    gm = GaussianMixture(torch.tensor([[0.0, 0.0]], device="cuda"), 0.5)
    ax = plot_energy_contours(gm, xlim=(-1, 1), ylim=(-1, 1), grid_size=20)
    plot_density(gm.log_prob, xlim=(-1, 1), ylim=(-1, 1), ax=ax, grid_size=20)
    x = gm.sample(50)
    plot_samples(x, ax=ax, weights=torch.rand(50, device="cuda"))
    plot_traces(x.reshape(25, 2, 2))
