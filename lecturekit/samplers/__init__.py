"""Samplers: importance sampling, vectorised Metropolis-Hastings MCMC (RW, MALA, HMC),
flow-proposal MCMC, global-local and adaptive flow-MCMC, resampling, AIS, SMC and annealed
flow transport, NeuTra (MCMC in a flow's latent space)."""

from .adaptive import (
    AdaptiveHistory,
    AdaptiveResult,
    GlobalLocalInfo,
    GlobalLocalKernel,
    adaptive_flow_mcmc,
    global_local_mcmc,
)

from .flow_mcmc import (
    FlowIndependenceMetropolis,
    independence_log_acceptance_ratio,
    lognormal_independence_acceptance,
)
from .hmc import HMC
from .importance import (
    Estimate,
    ImportanceResult,
    Proposal,
    importance_sample,
    log_partition_estimate,
    reweighted_expectation,
    self_normalized_expectation,
)
from .mcmc import (
    MALA,
    ChainResult,
    Kernel,
    MCMCState,
    RandomWalkMetropolis,
    StepInfo,
    check_target_device,
    metropolis_accept,
    metropolis_update,
    run_chains,
)
from .resampling import multinomial_resample, systematic_resample
from .smc import (
    CountingTarget,
    CRAFTHistory,
    SMCResult,
    annealed_importance_sampling,
    conditional_ess,
    flow_transport_smc,
    incremental_log_weights,
    log_partition_from_genealogy,
    next_inverse_temperature,
    sequential_monte_carlo,
    train_craft,
)
from .neutra import NeuTraTarget

__all__ = [
    "HMC",
    "CRAFTHistory",
    "CountingTarget",
    "SMCResult",
    "annealed_importance_sampling",
    "conditional_ess",
    "flow_transport_smc",
    "incremental_log_weights",
    "log_partition_from_genealogy",
    "multinomial_resample",
    "next_inverse_temperature",
    "sequential_monte_carlo",
    "systematic_resample",
    "train_craft",
    "MALA",
    "AdaptiveHistory",
    "AdaptiveResult",
    "GlobalLocalInfo",
    "GlobalLocalKernel",
    "adaptive_flow_mcmc",
    "global_local_mcmc",
    "ChainResult",
    "Estimate",
    "FlowIndependenceMetropolis",
    "ImportanceResult",
    "Kernel",
    "MCMCState",
    "NeuTraTarget",
    "Proposal",
    "RandomWalkMetropolis",
    "StepInfo",
    "check_target_device",
    "importance_sample",
    "independence_log_acceptance_ratio",
    "lognormal_independence_acceptance",
    "log_partition_estimate",
    "metropolis_accept",
    "metropolis_update",
    "reweighted_expectation",
    "run_chains",
    "self_normalized_expectation",
]
