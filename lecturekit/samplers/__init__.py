"""Samplers: importance sampling, vectorised Metropolis-Hastings MCMC, flow-proposal MCMC,
global-local and adaptive flow-MCMC, NeuTra (MCMC in a flow's latent space)."""

from .adaptive import (
    AdaptiveHistory,
    AdaptiveResult,
    GlobalLocalInfo,
    GlobalLocalKernel,
    adaptive_flow_mcmc,
    global_local_mcmc,
)

from .flow_mcmc import FlowIndependenceMetropolis, independence_log_acceptance_ratio
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
from .neutra import NeuTraTarget

__all__ = [
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
    "log_partition_estimate",
    "metropolis_accept",
    "metropolis_update",
    "reweighted_expectation",
    "run_chains",
    "self_normalized_expectation",
]
