"""Hooks of the NXCloud provider."""
