"""lecturekit: the small PyTorch library behind the course
"Sampling physical states with generative models".

Modules (one concept each):

- :mod:`lecturekit.device`      default device, seeding, CUDA-synchronised timing
- :mod:`lecturekit.targets`     Boltzmann targets: Müller-Brown, Gaussian mixtures
- :mod:`lecturekit.samplers`    importance sampling (log Z, reweighting), random-walk Metropolis, MALA,
                                flow independent Metropolis-Hastings
- :mod:`lecturekit.diagnostics` effective sample sizes, autocorrelation times
- :mod:`lecturekit.plotting`    energy contours, traces, density heatmaps
- :mod:`lecturekit.vae`         a small variational auto-encoder (Section 2.1)
- :mod:`lecturekit.distributions` base measures for flows: standard, diagonal and tridiagonal-precision Gaussians
- :mod:`lecturekit.flows`       Real NVP: affine couplings, masks, flows, save/load
- :mod:`lecturekit.phi4_chain`  1D phi^4 field (flonaco's convention), its transfer-matrix reference, informed bases
- :mod:`lecturekit.symmetry`    Z2-symmetrised densities as proposals
- :mod:`lecturekit.training`    training flows: maximum likelihood, reverse KL, Boltzmann generators
- :mod:`lecturekit.progress`    progress bars that the book and the tests can silence
- :mod:`lecturekit.quadrature`  exact 2D reference answers by grid quadrature
"""

__version__ = "0.1.0"
