"""lecturekit: the small PyTorch library behind the course
"Sampling physical states with generative models".

Layout (each concept in one file named after it; import from the module that defines a name,
package ``__init__`` files re-export nothing). Lower layers never import higher ones, and
``tests/test_import_layers.py`` checks it:

1. :mod:`lecturekit.checks`        argument checks shared by every module, and their convention
2. :mod:`lecturekit.device`        default device, seeding, CUDA-synchronised timing;
   :mod:`lecturekit.progress`      progress bars that the book and the tests can silence
3. :mod:`lecturekit.diagnostics`   effective sample sizes, autocorrelation times, R-hat, mode occupancy
4. :mod:`lecturekit.estimates`     ``Estimate`` (value, standard error), the self-normalised estimators, ``mode_weights``;
   :mod:`lecturekit.distributions` tractable densities used as bases and proposals: standard, diagonal
   and tridiagonal-precision Gaussians;
   :mod:`lecturekit.broken_phase`  tunnelling times and sign weights of a magnetisation series
5. :mod:`lecturekit.targets`       what is sampled

   - ``base``            the ``Target`` base class and the ``Proposal`` protocol
   - ``toy``             Müller-Brown, Gaussian mixtures
   - ``counting``        ``CountingTarget``, a target that counts its evaluations
   - ``tempering``       the tempered path from a base to the target, temperature schedules
   - ``angles``          an angle coordinate sampled as an unconstrained 2-vector
   - ``phi4_lattice``    2D lattice phi^4 and its observables
   - ``phi4_chain``      1D phi^4 field, its transfer-matrix reference and informed bases
   - ``radial_velocity`` the exoplanet example: posterior, synthetic data, exact period marginal
6. :mod:`lecturekit.quadrature`    exact 2D reference answers by grid quadrature
7. :mod:`lecturekit.flows`         normalizing flows

   - ``core``            transforms, masks, affine couplings, ``Flow``, ``real_nvp``
   - ``lattice``         checkerboard couplings with periodic conv nets, ``lattice_flow``
   - ``equivariant``     Z2-equivariant lattice flows
   - ``symmetry``        Z2-symmetrised densities as proposals
   - ``io``              ``save_flow``, ``load_flow``
8. :mod:`lecturekit.training`      training

   - ``loop``            the optimisation loop, its losses (ML, reverse KL, Boltzmann generator) and trainers
   - ``tilt_start``      reverse KL that first breaks a Z2 symmetry with a tilt
   - ``vae``             a small variational auto-encoder
9. :mod:`lecturekit.samplers`      sampling algorithms

   - ``importance``      importance sampling
   - ``mcmc``            the ``Kernel`` protocol, random-walk Metropolis, MALA, ``run_chains``
   - ``hmc``             Hamiltonian Monte Carlo
   - ``flow_mcmc``       flow independence Metropolis-Hastings
   - ``adaptive``        global-local and adaptive flow-MCMC
   - ``neutra``          NeuTra: MCMC in a flow's latent space
   - ``conditional``     block-conditional flows as Metropolis-within-Gibbs proposals
   - ``resampling``      multinomial and systematic resampling
   - ``smc``             AIS, SMC, annealed flow transport, CRAFT
   - ``annealing``       annealed variational inference and annealed data sets (trainers that run MCMC)
10. :mod:`lecturekit.plotting`     energy contours, traces, density heatmaps

Convention (every public function follows it):

- **Argument order**: the target first, then the proposal or base, then the flow or kernel, then
  counts, then settings: ``importance_sample(target, proposal, n)``,
  ``sequential_monte_carlo(target, base, n_particles)``, ``TemperedPath(target, base, beta)``.
  A trainer of one model takes the model it changes in place first, then the target or the
  data: ``train_reverse_kl(flow, target, n_steps)``, ``train_max_likelihood(flow, data, n_steps)``,
  ``train_vae(vae, data, n_steps)``, ``annealed_reverse_kl(flow, target, betas, n_steps)``;
  ``train_craft`` trains SMC's flows and keeps SMC's order.
- **Counts**: ``n`` for draws from a distribution's own ``sample(n)`` (the ``Proposal`` protocol),
  ``n_particles`` for SMC particles, ``n_chains`` / ``n_walkers`` for parallel chains,
  ``n_steps`` for optimisation or MCMC steps (``n_train_steps`` for the training steps inside
  each step or stage of a sampler that also trains; ``n_training`` and ``n_production`` for
  the two phases of ``adaptive_flow_mcmc``), ``batch_size`` for a training batch, ``n_samples``
  for Monte Carlo draws inside a loss or estimate.
- **Local MCMC moves** inside a larger sampler (global-local, annealing, SMC, CRAFT) are
  ``n_local_steps`` steps of the kernel ``make_local_kernel(target)``: always a factory from
  the (possibly tempered) target to a :class:`~lecturekit.samplers.mcmc.Kernel`, ``None`` for
  the sampler's default MALA. Kernel *classes* that compose kernels
  (:class:`~lecturekit.samplers.adaptive.GlobalLocalKernel`) take the kernel instance itself.
- **Estimates with an error** are :class:`lecturekit.estimates.Estimate` ``(value, stderr, tau)``,
  ``tau`` (a chain's autocorrelation time) ``None`` where the estimator has none;
  the self-normalised estimator is :func:`lecturekit.estimates.reweighted_expectation` (one
  public form; ``ImportanceResult.expectation`` returns its ``Estimate``).
- **Mode weights** with their errors come from one function,
  :func:`lecturekit.estimates.mode_weights` ``(membership, log_weights=None, chain_error="walkers")
  -> Estimate``, for independent, importance-weighted or chain samples (the chains' error from the
  walkers' spread or, ``chain_error="ess"``, from the multi-chain ESS); :func:`lecturekit.diagnostics.interval_membership`
  assigns samples to the modes between cut points. The weight of the positive sign of a
  magnetisation, :func:`lecturekit.broken_phase.sign_weight`, is also an ``Estimate``, with the
  MCSE of the multi-chain ESS (chains stuck on one sign widen it).
- **Trainers** (``train_*``, ``annealed_reverse_kl``, ``annealed_data_sets``) return one type,
  :class:`lecturekit.training.loop.TrainingHistory` ``(losses, ess, extras)``: the loss of every
  step, the Kish ESS fraction of every step that draws flow samples (else empty), and a dict of
  what the trainer records besides (its docstring lists the keys). Their keywords follow one
  order: the counts (``n_steps``, ``batch_size``), ``lr``, the trainer's own settings, then
  ``max_grad_norm``, ``weight_decay``, ``lr_schedule``, ``progress``. Samplers that also train
  return their sampler's result, the losses in it (``AdaptiveHistory.losses``,
  ``SMCResult.transport_losses``).
- **Kish's effective sample size** is computed in one place,
  :func:`lecturekit.diagnostics.ess_from_log_weights` (the training loop uses its unchecked core).
- **Bad arguments** raise at once through :mod:`lecturekit.checks`: ``TypeError`` for a wrong
  type, dtype or device, ``ValueError`` for a wrong value or shape, the message naming the argument.

"""

__version__ = "0.1.0"
