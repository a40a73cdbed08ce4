"""Training flows and the VAE: the one optimisation loop, its losses and trainers."""
