"""Samplers: importance sampling and vectorised Metropolis-Hastings MCMC (RW, MALA, HMC)."""

from .hmc import HMC
from .importance import ImportanceResult, Proposal, importance_sample, self_normalized_expectation
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

__all__ = [
    "HMC",
    "MALA",
    "ChainResult",
    "ImportanceResult",
    "Kernel",
    "MCMCState",
    "Proposal",
    "RandomWalkMetropolis",
    "StepInfo",
    "check_target_device",
    "importance_sample",
    "metropolis_accept",
    "metropolis_update",
    "run_chains",
    "self_normalized_expectation",
]
