"""Apache Airflow provider for NXCloud's WhatsApp API."""

from __future__ import annotations

__version__ = "0.1.0"  # the only place it is written: pyproject.toml reads it (tool.hatch.version)
