"""lecturekit: the small PyTorch library behind the course
"Sampling physical states with generative models".

Modules (one concept each):

- :mod:`lecturekit.device`      default device, seeding, CUDA-synchronised timing
- :mod:`lecturekit.targets`     Boltzmann targets: Müller-Brown, Gaussian mixtures
- :mod:`lecturekit.samplers`    importance sampling, random-walk Metropolis, MALA
- :mod:`lecturekit.diagnostics` effective sample sizes, autocorrelation times, R-hat
- :mod:`lecturekit.plotting`    energy contours, traces, density heatmaps
- :mod:`lecturekit.vae`         a small variational auto-encoder (Section 2.1)
- :mod:`lecturekit.distributions` base measures for flows: standard and diagonal Gaussians
- :mod:`lecturekit.flows`       Real NVP: affine couplings, masks, flows, save/load
- :mod:`lecturekit.training`    maximum-likelihood (forward KL) training of flows
- :mod:`lecturekit.progress`    progress bars that the book and the tests can silence
- :mod:`lecturekit.quadrature`  exact 2D reference answers by grid quadrature
- :mod:`lecturekit.checks`      argument checks shared by every module, and their convention
"""

__version__ = "0.1.0"
