"""pytest fixture ``nxcloud_sandbox``: a running sandbox and ``nxcloud_default`` pointing at it.

Loaded automatically (entry point ``pytest11``) wherever this provider is installed.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import pytest

from airflow_provider_nxcloud.testing.sandbox import NxCloudSandbox

if TYPE_CHECKING:
    from collections.abc import Iterator


@pytest.fixture
def nxcloud_sandbox(
    request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch
) -> Iterator[NxCloudSandbox]:
    """A fresh sandbox on 127.0.0.1 with ``AIRFLOW_CONN_NXCLOUD_DEFAULT`` set to it.

    Indirect parameters are its arguments: ``@pytest.mark.parametrize("nxcloud_sandbox",
    [{"tls": True}], indirect=True)`` serves it over HTTPS.
    """
    with NxCloudSandbox(**getattr(request, "param", {})) as sandbox:
        monkeypatch.setenv("AIRFLOW_CONN_NXCLOUD_DEFAULT", sandbox.connection_json())
        yield sandbox
