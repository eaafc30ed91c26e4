"""Provider metadata: the single source of the ``nxcloud`` connection form.

Airflow 3.2+ renders the form from ``conn-fields``/``ui-field-behaviour`` below; the hook's
``get_connection_form_widgets``/``get_ui_field_behaviour`` (Airflow 2.x) are derived from the same
dictionaries so the two cannot drift. The defaults shown are the client's (``client/config.py``).
Keep this module free of heavy imports: Airflow loads it for every provider discovery.
"""

from __future__ import annotations

from typing import Any

from airflow_provider_nxcloud import __version__
from airflow_provider_nxcloud.client.api import DEFAULT_BASE_URL
from airflow_provider_nxcloud.client.config import (
    DEFAULT_ADAPTIVE_RATE,
    DEFAULT_ALGORITHM,
    DEFAULT_MAX_RETRIES,
    DEFAULT_TIMEOUT,
    DEFAULT_VERIFY,
)
from airflow_provider_nxcloud.client.signing import ALGORITHMS

CONN_TYPE = "nxcloud"
DEFAULT_CONN_ID = "nxcloud_default"
HOOK_NAME = "NXCloud"

CONN_FIELDS: dict[str, dict[str, Any]] = {
    "business_phone": {
        "label": "Business phone",
        "description": "Default merchant WhatsApp number with country code, digits only (8613800000000).",
        "schema": {"type": ["string", "null"]},
    },
    "appkey": {
        "label": "WhatsApp appkey",
        "description": "The NXCloud WhatsApp application's appkey; needed only to show a typing indicator.",
        "schema": {"type": ["string", "null"]},
    },
    "algorithm": {
        "label": "Signature algorithm",
        "description": "md5 (NXCloud's default) or sha256.",
        "schema": {"type": ["string", "null"], "enum": list(ALGORITHMS), "default": DEFAULT_ALGORITHM},
    },
    "timeout": {
        "label": "Timeout (seconds)",
        "description": "Per-request connect and read timeout.",
        "schema": {"type": ["number", "null"], "default": DEFAULT_TIMEOUT},
    },
    "verify": {
        "label": "Verify TLS certificate",
        "schema": {"type": ["boolean", "null"], "default": DEFAULT_VERIFY},
    },
    "max_requests_per_second": {
        "label": "Max requests per second",
        "description": (
            "Rate cap of each task try using this connection (all its workers, retries included), "
            "not of all tasks together: a pool of N slots allows N times it. Empty means no cap."
        ),
        "schema": {"type": ["number", "null"]},
    },
    "adaptive_rate": {
        "label": "Adapt to NXCloud's rate limit",
        "description": "When NXCloud throttles (HTTP 429), slow down to just under the limit it allows.",
        "schema": {"type": ["boolean", "null"], "default": DEFAULT_ADAPTIVE_RATE},
    },
    "max_retries": {
        "label": "Max retries",
        "description": "Retries of transient failures (code -1/9001, HTTP 429/5xx, network).",
        "schema": {"type": ["integer", "null"], "default": DEFAULT_MAX_RETRIES},
    },
}

UI_FIELD_BEHAVIOUR: dict[str, Any] = {
    "hidden-fields": ["port", "schema"],
    "relabeling": {"host": "API base URL", "login": "Access Key", "password": "Access Secret"},
    "placeholders": {
        "host": DEFAULT_BASE_URL,
        "login": "your NXCloud accessKey",
        "business_phone": "8613800000000",
    },
}


def get_provider_info() -> dict[str, Any]:
    return {
        "package-name": "airflow-provider-nxcloud",
        "name": "NXCloud",
        "description": "Mark inbound WhatsApp messages as read through NXCloud's signed HTTP API.",
        "versions": [__version__],
        "connection-types": [
            {
                "connection-type": CONN_TYPE,
                "hook-class-name": "airflow_provider_nxcloud.hooks.nxcloud.NxCloudHook",
                "hook-name": HOOK_NAME,
                "conn-fields": CONN_FIELDS,
                "ui-field-behaviour": UI_FIELD_BEHAVIOUR,
            }
        ],
        "hooks": [
            {
                "integration-name": "NXCloud",
                "python-modules": ["airflow_provider_nxcloud.hooks.nxcloud"],
            }
        ],
        "operators": [
            {
                "integration-name": "NXCloud",
                "python-modules": ["airflow_provider_nxcloud.operators.whatsapp"],
            }
        ],
    }
