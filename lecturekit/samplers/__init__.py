"""Samplers: importance sampling, MCMC kernels (RW, MALA, HMC), flow-proposal MCMC, global-local and
adaptive flow-MCMC, resampling, AIS, SMC and annealed flow transport, annealed trainers, NeuTra, block-conditional flow proposals."""
