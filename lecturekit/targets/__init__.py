"""Targets: the base classes and every density the samplers sample."""
