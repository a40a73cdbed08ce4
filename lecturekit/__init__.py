"""lecturekit: the small PyTorch library behind the course
"Sampling physical states with generative models".

Modules (one concept each):

- :mod:`lecturekit.device`      default device, seeding, CUDA-synchronised timing
- :mod:`lecturekit.targets`     Boltzmann targets: Müller-Brown, Gaussian mixtures
- :mod:`lecturekit.samplers`    importance sampling (log Z, reweighting), random-walk Metropolis, MALA,
                                flow independent Metropolis-Hastings, global-local and adaptive flow-MCMC,
                                resampling, AIS, SMC and annealed flow transport
- :mod:`lecturekit.tempering`   the tempered path from a base to the target
- :mod:`lecturekit.annealing`   annealed variational inference and annealed data sets
- :mod:`lecturekit.diagnostics` effective sample sizes, autocorrelation times, R-hat
- :mod:`lecturekit.plotting`    energy contours, traces, density heatmaps
- :mod:`lecturekit.vae`         a small variational auto-encoder (Section 2.1)
- :mod:`lecturekit.distributions` base measures for flows: standard, diagonal and tridiagonal-precision Gaussians
- :mod:`lecturekit.flows`       Real NVP: affine couplings, masks, flows, save/load
- :mod:`lecturekit.lattice_flows` checkerboard couplings with periodic conv nets, for lattice fields
- :mod:`lecturekit.phi4_lattice`  2D lattice phi^4 (two parameterisations) and its observables
- :mod:`lecturekit.phi4_chain`  1D phi^4 field (flonaco's convention), its transfer-matrix reference, informed bases
- :mod:`lecturekit.symmetry`    Z2-symmetrised densities as proposals
- :mod:`lecturekit.training`    training flows: maximum likelihood, reverse KL, Boltzmann generators
- :mod:`lecturekit.progress`    progress bars that the book and the tests can silence
- :mod:`lecturekit.quadrature`  exact 2D reference answers by grid quadrature
- :mod:`lecturekit.radial_velocity` the exoplanet example: posterior, synthetic data, exact period marginal
- :mod:`lecturekit.angles`      an angle coordinate sampled as an unconstrained 2-vector (no cut, exact)
- :mod:`lecturekit.checks`      argument checks shared by every module, and their convention
"""

__version__ = "0.1.0"
