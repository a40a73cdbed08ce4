r"""An angle sampled as an unconstrained 2-vector: exact, normalisable and smooth.

A density with an angle :math:`\phi \in [0, 2\pi)` among its coordinates cuts the circle
at :math:`\phi = 0`: a local MCMC step across the cut lands outside the support and is
rejected, and a flow on :math:`\mathbb{R}^d` has to model a mode that straddles the cut
as two half-modes at the two ends of the interval. Wrapping :math:`\phi` instead (a
periodic ``log_prob`` on :math:`\mathbb{R}`) gives a density that is not normalisable, and
a flow's density at the state would have to be summed over the images
:math:`\phi + 2\pi k`.

:class:`AngleAsVector` samples a vector :math:`u = (u_1, u_2) \in \mathbb{R}^2` in place
of the angle, with :math:`\phi(u) = \operatorname{atan2}(u_2, u_1) \bmod 2\pi`, and the
joint density (writing :math:`x_{\setminus\phi}` for the other coordinates)

.. math::

    \log \tilde p(x_{\setminus\phi}, u) = \log p\big(x_{\setminus\phi}, \phi(u)\big)
        - \tfrac12 |u|^2 .

In polar coordinates :math:`u = r(\cos\phi, \sin\phi)`, :math:`du = r\,dr\,d\phi`, and
:math:`\int_0^\infty r e^{-r^2/2}\,dr = 1`, so

.. math::

    \int \tilde p\, du = \int_0^{2\pi} p(x_{\setminus\phi}, \phi)\,d\phi\;
        \int_0^\infty r e^{-r^2/2}\, dr = \int_0^{2\pi} p(x_{\setminus\phi}, \phi)\,d\phi :

the angle's distribution, jointly with the other coordinates, is exactly :math:`p`'s,
the normalising constant (e.g. a posterior's evidence) is unchanged, and the radius
:math:`r = |u|` is an auxiliary variable with a Rayleigh distribution, independent of
everything else. The new target lives on :math:`\mathbb{R}^{d+1}` with no cut: it is as
smooth as :math:`p` is on the circle (continuous across :math:`\phi = 0` when :math:`p` is
periodic in :math:`\phi`, as a likelihood of a phase is), so local steps move freely
around the circle, and every kernel, including the flow-IMH ratio, applies unchanged to
the :math:`(d+1)`-dimensional state. This is Marsaglia's (Ann. Math. Stat. 43, 645, 1972)
auxiliary-variable construction of a point on a sphere, as Stan's ``unit_vector``
(Stan Reference Manual, "Unit vector") and the ``Angle`` transform of the ``exoplanet``
package (Foreman-Mackey et al., JOSS 6, 3285, 2021) use it. (``exoplanet`` can add a
term :math:`10\log|u|^2` that keeps the chain away from the origin; we do not, so the
normalisation stays exactly that of :math:`p`.)

**At the origin** the angle is undefined. :math:`u = 0` is one point, of measure zero, so
any value there leaves the distribution unchanged: we take :math:`\phi(0) = 0`
(whatever the signs of the zeros, with which ``torch.atan2`` returns 0 or
:math:`\pm\pi`), so ``log_prob`` is finite there if :math:`\phi = 0` is in
:math:`p`'s support. The score's angular part,
:math:`\partial_\phi\log p\;(-\sin\phi, \cos\phi)/r`, grows like :math:`1/r` near the
origin; at :math:`r = 0` (and wherever the division overflows) we set it to zero, so the
score is finite everywhere. MALA's and HMC's proposals use the score only as a drift, so a
modified drift on that null set leaves them exact; near the origin their proposals are
poor and rejected, but the Rayleigh radius puts little mass there
(:math:`P(r < \varepsilon) = 1 - e^{-\varepsilon^2/2} \approx \varepsilon^2/2`).

References:
    | Choosing a Point from the Surface of a Sphere (Marsaglia, 1972)
    | https://doi.org/10.1214/aoms/1177692644
    | Stan Reference Manual, version 2.33: Unit vector (Stan Development Team, 2023)
    | https://mc-stan.org/docs/2_33/reference-manual/unit-vector.html
    | exoplanet: Gradient-based probabilistic inference for exoplanet data & other astronomical time series (Foreman-Mackey et al., 2021)
    | https://doi.org/10.21105/joss.03285
"""

from __future__ import annotations

import math
import numbers

import torch
from torch import Tensor

from lecturekit.checks import check_int, check_number, check_points, check_tensor
from lecturekit.targets.base import Target

__all__ = ["AngleAsVector", "angle_of"]

TWO_PI = 2 * math.pi


def angle_of(u: Tensor) -> Tensor:
    r"""The angle :math:`\operatorname{atan2}(u_2, u_1) \bmod 2\pi \in [0, 2\pi)` of vectors ``u`` ``(..., 2)``.

    Returns shape ``(...)``; 0 at :math:`u = 0`, NaN where ``u`` has a NaN.

    >>> angle_of(torch.tensor([[1.0, 0.0], [0.0, 1.0], [0.0, -1.0], [0.0, 0.0]]))
    tensor([0.0000, 1.5708, 4.7124, 0.0000])
    """
    check_points(u, 2, "u")
    phi = torch.atan2(u[..., 1], u[..., 0])  # [-pi, pi]
    phi = torch.where(phi < 0, phi + TWO_PI, phi)
    # -tiny + 2 pi rounds to 2 pi (in float32 to a number above it): that angle is 0; and
    # atan2 of signed zeros is 0 or +-pi: the origin's angle is 0 whatever the signs
    at_zero = (phi >= TWO_PI) | ((u[..., 0] == 0) & (u[..., 1] == 0))
    return torch.where(at_zero, torch.zeros_like(phi), phi)


class AngleAsVector(Target):
    r"""``target`` with its angle coordinate ``index`` sampled as a 2-vector (see the module docstring).

    ``target`` is any :class:`~lecturekit.targets.base.Target` whose coordinate ``index`` is an
    angle with support in :math:`[0, 2\pi)` (values of ``target`` outside that interval are
    never queried). The wrapped target has ``dim = target.dim + 1``: coordinates
    ``index`` and ``index + 1`` hold :math:`u = r(\cos\phi, \sin\phi)` and the others follow
    in their order, so a coordinate after the angle moves up by one. Its ``log_prob`` is
    :math:`\log p(x) - |u|^2/2` with :math:`x` = :meth:`to_angle` (y), normalised exactly
    when :math:`p` is. :meth:`from_angle` maps points of ``target`` to points of this one.

    >>> from lecturekit.targets.radial_velocity import RadialVelocityPosterior, simulate_observations
    >>> posterior = RadialVelocityPosterior(simulate_observations())
    >>> vector = AngleAsVector(posterior, index=2)
    >>> vector.dim, vector.names
    (5, ('v0', 'K', 'r cos phi0', 'r sin phi0', 'ln P'))
    >>> y = vector.from_angle(posterior.data.truth, radius=1.0)
    >>> torch.allclose(vector.to_angle(y), posterior.data.truth)
    True
    >>> bool(torch.isclose(vector.log_prob(y), posterior.log_prob(posterior.data.truth) - 0.5))
    True
    """

    def __init__(self, target: Target, index: int) -> None:
        if not isinstance(target, Target):
            raise TypeError(f"target must be a lecturekit Target, got {type(target).__name__}")
        index = check_int(index, "index", minimum=0)
        if index >= target.dim:
            raise ValueError(f"index must be a coordinate of target, in [0, {target.dim - 1}], got {index}")
        self.target = target
        self.index = index
        self.dim = target.dim + 1
        self.beta = 1.0  # log_prob is target.log_prob - |u|^2 / 2, whatever target's beta
        names = getattr(target, "names", None)
        if names is not None:
            name = names[index]
            self.names = (*names[:index], f"r cos {name}", f"r sin {name}", *names[index + 1 :])

    # ------------------------------------------------------------------ coordinates

    def to_angle(self, y: Tensor) -> Tensor:
        r"""The point of ``target``, ``(..., dim - 1)``: :math:`u` in ``y`` ``(..., dim)`` replaced by :math:`\phi(u)`."""
        check_points(y, self.dim, "y")
        i = self.index
        phi = angle_of(y[..., i : i + 2]).unsqueeze(-1)
        return torch.cat([y[..., :i], phi, y[..., i + 2 :]], dim=-1)

    def from_angle(
        self, x: Tensor, radius: float | Tensor | None = None, generator: torch.Generator | None = None
    ) -> Tensor:
        r"""A point of this target, ``(..., dim)``, for each point ``x`` ``(..., dim - 1)`` of ``target``.

        The angle :math:`\phi` = ``x[..., index]`` becomes :math:`u = r(\cos\phi, \sin\phi)`.
        ``radius`` is :math:`r`: a positive number, or a tensor of positive values of shape
        ``x.shape[:-1]``; ``None`` (the default) draws it from the Rayleigh distribution,
        :math:`r = |g|`, :math:`g \sim \mathcal N(0, I_2)` (with ``generator``, on ``x``'s device, if given), so
        that exact draws of ``target`` become exact draws of this target (e.g. walkers
        started from a prior).
        """
        check_points(x, self.target.dim, "x")
        if radius is None:
            if generator is not None and not isinstance(generator, torch.Generator):
                raise TypeError(f"generator must be a torch.Generator, got {type(generator).__name__}")
            g = torch.randn((*x.shape[:-1], 2), generator=generator, dtype=x.dtype, device=x.device)
            r = torch.linalg.vector_norm(g, dim=-1)
        elif isinstance(radius, Tensor):
            r = check_tensor(radius, "radius")
            if r.shape != x.shape[:-1]:
                raise ValueError(f"radius must have shape {tuple(x.shape[:-1])} (x's points), got {tuple(r.shape)}")
            if not bool(((r > 0) & torch.isfinite(r)).all()):
                raise ValueError("radius must be positive and finite")
            r = r.to(x)
        elif isinstance(radius, numbers.Real) and not isinstance(radius, bool):
            r = check_number(radius, "radius", positive=True)
        else:
            raise TypeError(f"radius must be a positive number, a tensor or None, got {type(radius).__name__}")
        i = self.index
        phi = x[..., i]
        u = torch.stack([r * torch.cos(phi), r * torch.sin(phi)], dim=-1)
        return torch.cat([x[..., :i], u, x[..., i + 1 :]], dim=-1)

    # ------------------------------------------------------------------ density

    def log_prob(self, y: Tensor) -> Tensor:
        r""":math:`\log p(x) - |u|^2/2`, with :math:`x` = :meth:`to_angle` (``y``) and :math:`u` = ``y[..., index:index + 2]``."""
        x = self.to_angle(y)
        u = y[..., self.index : self.index + 2]
        return self.target.log_prob(x) - 0.5 * u.square().sum(-1)

    def energy(self, y: Tensor) -> Tensor:
        return -self.log_prob(y)

    def log_prob_and_score(self, y: Tensor) -> tuple[Tensor, Tensor]:
        r"""Log-density and its gradient by the chain rule through ``target.log_prob_and_score``.

        With :math:`s = \nabla_x\log p` at :math:`x` = :meth:`to_angle` (``y``) and
        :math:`\partial\phi/\partial u = (-u_2, u_1)/r^2 = (-\sin\phi, \cos\phi)/r`,

        .. math::

            \nabla_u \log\tilde p = s_\phi\,\frac{(-\sin\phi, \cos\phi)}{r} - u ,

        and the other coordinates' entries are :math:`s`'s. The angular term is set to
        zero at :math:`r = 0`, where :math:`\phi` is undefined, and wherever it overflows.
        """
        y = y.detach()
        x = self.to_angle(y)
        i = self.index
        u = y[..., i : i + 2]
        log_prob_x, score_x = self.target.log_prob_and_score(x)
        phi = x[..., i]
        r = torch.linalg.vector_norm(u, dim=-1)
        angular = torch.where(r > 0, score_x[..., i] / r, torch.zeros_like(r))
        angular = torch.where(torch.isinf(angular), torch.zeros_like(angular), angular)
        score_u = angular.unsqueeze(-1) * torch.stack([-torch.sin(phi), torch.cos(phi)], dim=-1) - u
        score = torch.cat([score_x[..., :i], score_u, score_x[..., i + 1 :]], dim=-1)
        return log_prob_x - 0.5 * u.square().sum(-1), score
