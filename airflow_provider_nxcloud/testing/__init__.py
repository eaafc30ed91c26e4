"""Test helpers shipped with the provider: an NXCloud sandbox server, its client and a pytest fixture."""

from __future__ import annotations

from airflow_provider_nxcloud.testing.client import SandboxClient
from airflow_provider_nxcloud.testing.sandbox import (
    DEFAULT_ACCESS_KEY,
    DEFAULT_ACCESS_SECRET,
    DEFAULT_BUSINESS_PHONE,
    FAULT_KINDS,
    META_ERRORS,
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
    "FAULT_KINDS",
    "META_ERRORS",
    "AccountLimit",
    "Faults",
    "InboundMessage",
    "NxCloudSandbox",
    "RequestRecord",
    "SandboxClient",
]
