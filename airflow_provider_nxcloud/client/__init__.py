"""NXCloud's API in plain Python: signing, transport, responses, retries, rate limits, errors.

Imports no Airflow. ``from airflow_provider_nxcloud.client import NxCloudClient`` marks messages
from a script, a webhook handler or a notebook with the hook's signing, retries and rate control.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from airflow_provider_nxcloud.client.errors import (
    NxCloudApiError,
    NxCloudAuthError,
    NxCloudConfigError,
    NxCloudError,
    NxCloudRetryBudgetError,
    NxCloudTransientError,
)

if TYPE_CHECKING:
    from airflow_provider_nxcloud.client.client import NxCloudClient
    from airflow_provider_nxcloud.client.responses import NxCloudResponse

# The client pulls in requests and tenacity: loaded on first use, so that DAG files and provider
# discovery, which import the light modules of this package, never pay for them.
_LAZY = {
    "NxCloudClient": "airflow_provider_nxcloud.client.client",
    "NxCloudResponse": "airflow_provider_nxcloud.client.responses",
}


def __getattr__(name: str) -> Any:
    if name not in _LAZY:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    import importlib

    value = getattr(importlib.import_module(_LAZY[name]), name)
    globals()[name] = value
    return value


__all__ = [
    "NxCloudApiError",
    "NxCloudAuthError",
    "NxCloudClient",
    "NxCloudConfigError",
    "NxCloudError",
    "NxCloudResponse",
    "NxCloudRetryBudgetError",
    "NxCloudTransientError",
]
