"""Test helpers shipped with the provider: an NXCloud sandbox server, its client and a pytest fixture."""

from __future__ import annotations

from airflow_provider_nxcloud.testing.client import SandboxClient
from airflow_provider_nxcloud.testing.sandbox import (
    DEFAULT_ACCESS_KEY,
    DEFAULT_ACCESS_SECRET,
    DEFAULT_BUSINESS_PHONE,
    AccountLimit,
    Faults,
    InboundMessage,
    NxCloudSandbox,
    RequestRecord,
)

__all__ = [
    "DEFAULT_ACCESS_KEY",
    "DEFAULT_ACCESS_SECRET",
    "DEFAULT_BUSINESS_PHONE",
    "AccountLimit",
    "Faults",
    "InboundMessage",
    "NxCloudSandbox",
    "RequestRecord",
    "SandboxClient",
]
