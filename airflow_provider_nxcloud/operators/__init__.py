"""Operators of the NXCloud provider."""
