r"""A small variational auto-encoder (Kingma & Welling, ICLR 2014) for low-dimensional data.

A latent-variable model pushes a simple prior through a *stochastic* decoder,

.. math::

    z \sim p(z) = \mathcal{N}(0, I_k), \qquad
    x \mid z \sim p_\theta(x \mid z) = \mathcal{N}\big(\mu_\theta(z), \operatorname{diag}\sigma_\theta(z)^2\big),

by default with a learned constant noise level :math:`\sigma_\theta` (see :class:`VAE`), so its
density is a marginal over the latent variable,

.. math::

    p_\theta(x) = \int p_\theta(x \mid z)\, p(z)\, \mathrm{d}z ,

which has no closed form when :math:`\mu_\theta, \sigma_\theta` are neural networks.
A Gaussian encoder :math:`q_\phi(z \mid x) = \mathcal{N}(m_\phi(x), \operatorname{diag} s_\phi(x)^2)`
gives the evidence lower bound (ELBO) used for training,

.. math::

    \log p_\theta(x) \ge \mathcal{L}(x) = \mathbb{E}_{q_\phi(z\mid x)}[\log p_\theta(x\mid z)]
    - \mathrm{KL}\big(q_\phi(z\mid x)\,\|\,p(z)\big),

and an importance-sampled estimate of :math:`\log p_\theta(x)` with :math:`K` encoder samples
(the importance-weighted bound of Burda, Grosse & Salakhutdinov, ICLR 2016),

.. math::

    \mathcal{L}_K(x) = \mathbb{E}\Big[\log \frac{1}{K}\sum_{k=1}^K w_k\Big],\qquad
    w_k = \frac{p_\theta(x\mid z_k)\, p(z_k)}{q_\phi(z_k\mid x)},\quad z_k \sim q_\phi(\cdot\mid x),

with :math:`\mathcal{L} = \mathcal{L}_1 \le \mathcal{L}_K \le \mathcal{L}_{K+1} \le \log p_\theta(x)` and
:math:`\mathcal{L}_K \to \log p_\theta(x)` as :math:`K\to\infty`. For a latent dimension of one or two,
:meth:`VAE.log_prob_grid` computes the marginal by quadrature, which gives the reference.

:func:`train_vae` maximises the ELBO with Adam, the KL term switched on gradually over the
first steps (KL annealing, Bowman et al. 2016; Sønderby et al. 2016).

References:
    | Auto-Encoding Variational Bayes (Kingma & Welling, 2014)
    | https://arxiv.org/abs/1312.6114
    | Importance Weighted Autoencoders (Burda et al., 2016)
    | https://arxiv.org/abs/1509.00519
    | Generating Sentences from a Continuous Space (Bowman et al., 2016)
    | https://arxiv.org/abs/1511.06349
    | Ladder Variational Autoencoders (Sønderby et al., 2016)
    | https://arxiv.org/abs/1602.02282
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
from torch import Tensor, nn

from lecturekit.checks import (
    check_int,
    check_matches_module,
    check_module_class,
    check_number,
    check_points,
    check_positive_int,
    check_widths,
)
from lecturekit.flows.core import mlp
from lecturekit.progress import progress_bar
from lecturekit.training.loop import TrainingHistory

__all__ = ["VAE", "train_vae"]

_LOG_2PI = math.log(2 * math.pi)


def _diag_normal_log_prob(x: Tensor, mean: Tensor, log_std: Tensor) -> Tensor:
    r""":math:`\sum_i \log\mathcal{N}(x_i; \mu_i, \sigma_i^2)` over the last axis (broadcasting)."""
    return (-0.5 * ((x - mean) * torch.exp(-log_std)) ** 2 - log_std - 0.5 * _LOG_2PI).sum(-1)


class VAE(nn.Module):
    r"""Variational auto-encoder with Gaussian encoder, Gaussian decoder and a standard normal prior.

    The encoder outputs a mean and a log standard deviation,
    :math:`x \mapsto (m_\phi(x), \log s_\phi(x))`, of size ``latent_dim`` each. The decoder outputs
    the mean :math:`\mu_\theta(z)`; its noise level :math:`\log\sigma_\theta` is one learned number
    per data coordinate (default), or a second network output when ``heteroscedastic=True``.
    A constant decoder noise forces the model to explain the data through :math:`z` rather than
    through a broad :math:`\sigma_\theta(z)`, which on 2D toy data trains much faster.
    With ``hidden=()`` a network is a single linear layer, which makes the linear-Gaussian
    model (exact marginal and posterior) a special case, used by the tests.

    ``data_dim`` is the dimension :math:`d` of the data and ``latent_dim`` the dimension
    :math:`k` of the latent variable. Encoder and decoder are fully connected networks with
    hidden layers of widths ``hidden`` and an ``activation`` (a module class) between linear
    layers; ``heteroscedastic`` says whether the decoder's noise level depends on :math:`z`.

    >>> vae = VAE(data_dim=2, latent_dim=1)
    >>> vae.sample(5).shape
    torch.Size([5, 2])
    >>> x = torch.randn(3, 2)
    >>> vae.elbo(x).shape, vae.log_prob_estimate(x, n_samples=10).shape, vae.log_prob_grid(x).shape
    (torch.Size([3]), torch.Size([3]), torch.Size([3]))
    """

    def __init__(
        self,
        data_dim: int = 2,
        latent_dim: int = 2,
        hidden: Sequence[int] = (64, 64),
        activation: type[nn.Module] = nn.SiLU,
        heteroscedastic: bool = False,
    ) -> None:
        super().__init__()
        self.data_dim = check_positive_int(data_dim, "data_dim")
        self.latent_dim = check_positive_int(latent_dim, "latent_dim")
        hidden = check_widths(hidden, "hidden")
        check_module_class(activation, "activation")
        self.encoder = mlp(data_dim, 2 * latent_dim, hidden, activation, zero_last=False)
        if not isinstance(heteroscedastic, bool):
            raise TypeError(f"heteroscedastic must be a bool, got {type(heteroscedastic).__name__}")
        self.heteroscedastic = heteroscedastic
        self.decoder = mlp(latent_dim, (2 if heteroscedastic else 1) * data_dim, hidden, activation, zero_last=False)
        # log sigma of the decoder when it does not depend on z
        self.decoder_log_std = None if heteroscedastic else nn.Parameter(torch.zeros(data_dim))

    # ------------------------------------------------------------------ networks
    def _check_input(self, x: Tensor, dim: int, name: str) -> None:
        check_points(x, dim, name)
        check_matches_module(x, self, name, "the VAE")

    def encode(self, x: Tensor) -> tuple[Tensor, Tensor]:
        r"""Encoder parameters :math:`(m_\phi(x), \log s_\phi(x))`, each of shape ``(..., latent_dim)``."""
        self._check_input(x, self.data_dim, "x")
        mean, log_std = self.encoder(x).chunk(2, dim=-1)
        return mean, log_std

    def decode(self, z: Tensor) -> tuple[Tensor, Tensor]:
        r"""Decoder parameters :math:`(\mu_\theta(z), \log\sigma_\theta(z))`, each of shape ``(..., data_dim)``."""
        self._check_input(z, self.latent_dim, "z")
        if self.heteroscedastic:
            mean, log_std = self.decoder(z).chunk(2, dim=-1)
            return mean, log_std
        mean = self.decoder(z)
        return mean, self.decoder_log_std.expand_as(mean)

    @staticmethod
    def prior_log_prob(z: Tensor) -> Tensor:
        r""":math:`\log p(z) = \log\mathcal{N}(z; 0, I)`, shape ``(...)``."""
        return (-0.5 * z**2 - 0.5 * _LOG_2PI).sum(-1)

    def log_likelihood(self, x: Tensor, z: Tensor) -> Tensor:
        r""":math:`\log p_\theta(x \mid z)`; ``x`` ``(..., data_dim)`` and ``z`` ``(..., latent_dim)`` broadcast."""
        self._check_input(x, self.data_dim, "x")
        mean, log_std = self.decode(z)
        return _diag_normal_log_prob(x, mean, log_std)

    # ------------------------------------------------------------------ bounds
    def elbo_terms(self, x: Tensor, n_samples: int = 1) -> tuple[Tensor, Tensor]:
        r"""The two terms of the ELBO per point: reconstruction and KL, each of shape ``(n,)``.

        .. math::

            \frac{1}{S}\sum_{s=1}^{S} \log p_\theta(x \mid z_s), \quad z_s = m_\phi(x) + s_\phi(x)\odot\epsilon_s,
            \qquad
            \mathrm{KL}\big(\mathcal{N}(m, s^2)\,\|\,\mathcal{N}(0, I)\big)
            = \tfrac12\sum_j (m_j^2 + s_j^2 - 1 - 2\log s_j),

        with the reparametrisation trick (gradients flow to encoder and decoder).
        """
        check_positive_int(n_samples, "n_samples")
        self._check_input(x, self.data_dim, "x")
        if x.dim() != 2:
            raise ValueError(f"x must have shape (n, {self.data_dim}), got {tuple(x.shape)}")
        mean, log_std = self.encode(x)
        eps = torch.randn((n_samples, *mean.shape), dtype=mean.dtype, device=mean.device)
        z = mean + torch.exp(log_std) * eps
        reconstruction = self.log_likelihood(x, z).mean(0)
        kl = 0.5 * (mean**2 + torch.exp(2 * log_std) - 1 - 2 * log_std).sum(-1)
        return reconstruction, kl

    def elbo(self, x: Tensor, n_samples: int = 1) -> Tensor:
        r"""Evidence lower bound per point, shape ``(n,)``: an unbiased estimate of

        .. math::

            \mathcal{L}(x) = \mathbb{E}_{q_\phi(z\mid x)}[\log p_\theta(x\mid z)]
            - \mathrm{KL}\big(q_\phi(z\mid x)\,\|\,p(z)\big) \le \log p_\theta(x),

        from ``n_samples`` reparametrised encoder draws and the KL in closed form (:meth:`elbo_terms`).
        The gap is :math:`\mathrm{KL}(q_\phi(z\mid x)\,\|\,p_\theta(z\mid x))`.
        """
        reconstruction, kl = self.elbo_terms(x, n_samples)
        return reconstruction - kl

    def log_weights(self, x: Tensor, n_samples: int, chunk_size: int = 2**18) -> Tensor:
        r"""Importance log-weights :math:`\log w_k = \log p_\theta(x\mid z_k) + \log p(z_k) - \log q_\phi(z_k\mid x)`.

        ``z_k`` are drawn from the encoder, reparametrised. Returns shape ``(n_samples, n)``.
        The decoder is evaluated on about ``chunk_size`` latent points at a time to bound memory.
        """
        check_positive_int(n_samples, "n_samples")
        check_positive_int(chunk_size, "chunk_size")
        self._check_input(x, self.data_dim, "x")
        if x.dim() != 2:
            raise ValueError(f"x must have shape (n, {self.data_dim}), got {tuple(x.shape)}")
        mean, log_std = self.encode(x)
        per_chunk = max(1, chunk_size // max(1, x.shape[0]))
        chunks = []
        for start in range(0, n_samples, per_chunk):
            k = min(per_chunk, n_samples - start)
            eps = torch.randn((k, *mean.shape), dtype=mean.dtype, device=mean.device)
            z = mean + torch.exp(log_std) * eps
            log_q = (-0.5 * eps**2 - log_std - 0.5 * _LOG_2PI).sum(-1)
            chunks.append(self.log_likelihood(x, z) + self.prior_log_prob(z) - log_q)
        return torch.cat(chunks, dim=0)

    def log_prob_estimate(self, x: Tensor, n_samples: int = 100, chunk_size: int = 2**18) -> Tensor:
        r"""Importance-sampled estimate of :math:`\log p_\theta(x)` with ``n_samples`` encoder draws, shape ``(n,)``.

        .. math::

            \hat{\mathcal{L}}_K(x) = \log \frac{1}{K} \sum_{k=1}^{K} w_k
            = \operatorname{logsumexp}_k(\log w_k) - \log K .

        :math:`\exp\hat{\mathcal{L}}_K` is unbiased for :math:`p_\theta(x)`; by Jensen its expectation
        :math:`\mathcal{L}_K` (the IWAE bound, Burda et al. 2016) lies below :math:`\log p_\theta(x)`,
        increases with :math:`K` and converges to it.
        """
        log_w = self.log_weights(x, n_samples, chunk_size)
        return torch.logsumexp(log_w, dim=0) - math.log(n_samples)

    def log_prob_grid(self, x: Tensor, n_grid: int | None = None, bound: float = 6.0, chunk_size: int = 2**20) -> Tensor:
        r"""The marginal :math:`\log p_\theta(x)` by quadrature over the latent space (``latent_dim`` 1 or 2).

        .. math::

            p_\theta(x) \approx \sum_j p_\theta(x \mid z_j)\, p(z_j)\, \Delta^k,

        a midpoint rule on a regular grid of ``n_grid`` points per axis covering
        :math:`[-b, b]^k`, cell volume :math:`\Delta^k`. The prior mass outside the box
        (about :math:`2\cdot 10^{-9}` per axis for :math:`b = 6`) is neglected; the grid must resolve
        the posterior :math:`p_\theta(z \mid x)` (check by refining it). Defaults: 2000 points (1D) or 200 per axis (2D).
        This brute-force marginalisation is what becomes impossible in high latent dimension.
        """
        if self.latent_dim > 2:
            raise ValueError(f"log_prob_grid needs latent_dim 1 or 2, this VAE has latent_dim={self.latent_dim}")
        if n_grid is None:
            n_grid = 2000 if self.latent_dim == 1 else 200
        check_positive_int(n_grid, "n_grid")
        check_positive_int(chunk_size, "chunk_size")
        check_number(bound, "bound", positive=True)
        self._check_input(x, self.data_dim, "x")
        if x.dim() != 2:
            raise ValueError(f"x must have shape (n, {self.data_dim}), got {tuple(x.shape)}")
        step = 2 * bound / n_grid
        axis = -bound + step * (torch.arange(n_grid, dtype=x.dtype, device=x.device) + 0.5)
        z = torch.cartesian_prod(*([axis] * self.latent_dim)).reshape(-1, self.latent_dim)
        mean, log_std = self.decode(z)  # the decoder runs once per grid point, not per (x, z) pair
        # log N(x; mu_j, sigma_j^2) = -1/2 sum_i (x_i^2 - 2 x_i mu_ji + mu_ji^2) / sigma_ji^2 + const_j:
        # two matrix products per chunk of points instead of an (n, grid, data_dim) tensor
        precision = torch.exp(-2 * log_std)  # (grid, data_dim)
        const = (
            self.prior_log_prob(z)
            + self.latent_dim * math.log(step)
            - 0.5 * (mean**2 * precision).sum(-1)
            - log_std.sum(-1)
            - 0.5 * self.data_dim * _LOG_2PI
        )
        weights = torch.cat([-0.5 * precision, mean * precision], dim=-1).T  # (2 data_dim, grid)
        rows = max(1, chunk_size // z.shape[0])
        out = [torch.logsumexp(torch.addmm(const, torch.cat([xs**2, xs], -1), weights), dim=-1) for xs in x.split(rows)]
        return torch.cat(out)

    # ------------------------------------------------------------------ sampling
    @torch.no_grad()
    def sample(self, n: int) -> Tensor:
        r"""Draw ``n`` samples :math:`z \sim p(z)`, :math:`x \sim p_\theta(x\mid z)`; shape ``(n, data_dim)``."""
        check_positive_int(n, "n")
        param = next(self.parameters())
        z = torch.randn(n, self.latent_dim, dtype=param.dtype, device=param.device)
        mean, log_std = self.decode(z)
        return mean + torch.exp(log_std) * torch.randn_like(mean)


def train_vae(
    vae: VAE,
    data: Tensor,
    n_steps: int,
    batch_size: int = 256,
    lr: float = 3e-3,
    kl_warmup: int = 0,
    n_samples: int = 1,
    progress: bool = False,
) -> TrainingHistory:
    r"""Fit ``vae`` to ``data`` by maximising the ELBO with Adam (Kingma & Welling 2014).

    Each step draws a mini-batch (with replacement) and takes one gradient step on

    .. math::

        -\frac{1}{B}\sum_{i=1}^{B} \Big(\mathbb{E}_q[\log p_\theta(x_i\mid z)]
        - \lambda_t\, \mathrm{KL}\big(q_\phi(z\mid x_i)\,\|\,p(z)\big)\Big),
        \qquad \lambda_t = \min(1, t / T_{\mathrm{warmup}}),

    i.e. the KL term is switched on linearly over the first ``kl_warmup`` steps ("KL annealing",
    Bowman et al. 2016; Sønderby et al. 2016), which keeps the decoder from ignoring :math:`z`
    early on; afterwards the objective is the ELBO itself. The mini-batches have ``batch_size``
    points :math:`B`, the expectation is estimated with ``n_samples`` reparametrised encoder
    draws per point (:meth:`VAE.elbo_terms`), and the learning rate decays from ``lr`` to zero
    on a cosine schedule (Loshchilov & Hutter, ICLR 2017). ``data`` (shape ``(N, data_dim)``) is
    moved to the VAE's device and dtype; a ``tqdm.auto`` progress bar runs when ``progress`` is
    true. Returns a :class:`~lecturekit.training.loop.TrainingHistory` whose ``losses`` are the negative
    mean ELBO (:math:`\lambda = 1`) of every mini-batch (``ess`` and ``extras`` are empty).

    Example:
        >>> from lecturekit.training.vae import VAE, train_vae
        >>> _ = torch.manual_seed(0)
        >>> data = torch.randn(500, 1) * torch.tensor([1.0, 0.5]) + 0.1 * torch.randn(500, 2)  # near a line
        >>> vae = VAE(data_dim=2, latent_dim=1, hidden=(16,))
        >>> history = train_vae(vae, data, n_steps=60, batch_size=64, lr=1e-2)
        >>> len(history.losses)
        60
        >>> sum(history.losses[-10:]) < sum(history.losses[:10])  # the negative ELBO went down
        True

    References:
        | Auto-Encoding Variational Bayes (Kingma & Welling, 2014)
        | https://arxiv.org/abs/1312.6114
        | Generating Sentences from a Continuous Space (Bowman et al., 2016)
        | https://arxiv.org/abs/1511.06349
        | Ladder Variational Autoencoders (Sønderby et al., 2016)
        | https://arxiv.org/abs/1602.02282
        | Adam: A Method for Stochastic Optimization (Kingma & Ba, 2015)
        | https://arxiv.org/abs/1412.6980
    """
    if not isinstance(vae, VAE):
        raise TypeError(f"vae must be a VAE, got {type(vae).__name__}")
    check_points(data, vae.data_dim, "data")
    if data.dim() != 2 or data.shape[0] == 0:
        raise ValueError(f"data must have shape (N, {vae.data_dim}) with N >= 1, got {tuple(data.shape)}")
    if not bool(torch.all(torch.isfinite(data))):
        raise ValueError("data must be finite")
    check_positive_int(n_steps, "n_steps")
    check_positive_int(batch_size, "batch_size")
    check_positive_int(n_samples, "n_samples")
    check_int(kl_warmup, "kl_warmup", minimum=0)
    check_number(lr, "lr", positive=True)
    param = next(vae.parameters())
    data = data.to(device=param.device, dtype=param.dtype)
    optimizer = torch.optim.Adam(vae.parameters(), lr=lr)
    schedule = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=n_steps)
    history: list[Tensor] = []
    vae.train()
    for step in progress_bar(n_steps, progress, desc="VAE"):
        batch = data[torch.randint(data.shape[0], (batch_size,), device=data.device)]
        reconstruction, kl = vae.elbo_terms(batch, n_samples)
        weight = min(1.0, step / kl_warmup) if kl_warmup > 0 else 1.0
        loss = -(reconstruction - weight * kl).mean()
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        schedule.step()
        history.append((kl - reconstruction).mean().detach())
    vae.eval()
    return TrainingHistory(torch.stack(history).tolist(), [], {})
