"""Apache Airflow provider for NXCloud's WhatsApp API."""

from __future__ import annotations

__version__ = "0.1.0"
