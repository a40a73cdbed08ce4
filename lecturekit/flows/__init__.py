"""Normalizing flows: the core (couplings, Real NVP), lattice and equivariant flows, symmetrisation, storage."""
