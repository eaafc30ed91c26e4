"""Benchmarks of the provider, run from the repository root: ``python -m benchmarks.run``."""
