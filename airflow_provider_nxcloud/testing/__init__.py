"""
Test helpers shipped with the provider: an NXCloud sandbox server, its client, a pytest fixture,
a seeder for the reconcile example's inbox and (``fault_campaign``) a fault-injection campaign.
"""

from __future__ import annotations

from airflow_provider_nxcloud.testing.client import SandboxClient
from airflow_provider_nxcloud.testing.inbox import seed_inbox
from airflow_provider_nxcloud.testing.sandbox import (
    DEFAULT_ACCESS_KEY,
    DEFAULT_ACCESS_SECRET,
    DEFAULT_APPKEY,
    DEFAULT_BUSINESS_PHONE,
    FAULT_KINDS,
    META_ERRORS,
    AccountLimit,
    Faults,
    InboundMessage,
    NxCloudSandbox,
    RequestRecord,
    meta_answer,
)

__all__ = [
    "DEFAULT_ACCESS_KEY",
    "DEFAULT_ACCESS_SECRET",
    "DEFAULT_APPKEY",
    "DEFAULT_BUSINESS_PHONE",
    "FAULT_KINDS",
    "META_ERRORS",
    "AccountLimit",
    "Faults",
    "InboundMessage",
    "NxCloudSandbox",
    "RequestRecord",
    "SandboxClient",
    "meta_answer",
    "seed_inbox",
]
