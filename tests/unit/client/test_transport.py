"""PooledTransport over real sockets on 127.0.0.1: answers, pooling, and failures mapped to typed errors."""

from __future__ import annotations

from typing import TYPE_CHECKING

import pytest

from airflow_provider_nxcloud.client.api import MARK_READ_PATH
from airflow_provider_nxcloud.client.errors import NxCloudConfigError, NxCloudTransientError
from airflow_provider_nxcloud.client.transport import PooledTransport
from tests.support import free_port

if TYPE_CHECKING:
    from airflow_provider_nxcloud.testing import NxCloudSandbox


def transport(base_url: str, **overrides: object) -> PooledTransport:
    options: dict[str, object] = {"proxies": {}, "verify": True, "timeout": 5.0, "pool_size": 2, **overrides}
    return PooledTransport(base_url=base_url, **options)  # type: ignore[arg-type]


def test_posts_the_exact_bytes_and_returns_status_headers_and_body(nxcloud_sandbox: NxCloudSandbox) -> None:
    body = b'{"not": "signed"}'
    answer = transport(nxcloud_sandbox.url).post(MARK_READ_PATH, {"Content-Type": "application/json"}, body)

    assert answer.status == 200
    assert answer.headers["content-type"] == "application/json"  # case-insensitive
    assert b'"code": 1001' in answer.body  # the sandbox saw no signed headers
    assert nxcloud_sandbox.requests[-1].body == body.decode()


def test_requests_reuse_one_keep_alive_connection(nxcloud_sandbox: NxCloudSandbox) -> None:
    pooled = transport(nxcloud_sandbox.url)
    for _ in range(5):
        pooled.post(MARK_READ_PATH, {}, b"{}")

    assert len({record.client_port for record in nxcloud_sandbox.requests}) == 1


def test_nothing_listening_is_transient() -> None:
    with pytest.raises(NxCloudTransientError, match="connection failed: NewConnectionError"):
        transport(f"http://127.0.0.1:{free_port()}").post(MARK_READ_PATH, {}, b"{}")


def test_a_missing_ca_bundle_is_a_configuration_error_naming_it() -> None:
    with pytest.raises(
        NxCloudConfigError, match=r"TLS settings for https://127\.0\.0\.1:9: .*no-such-ca\.pem"
    ):
        transport("https://127.0.0.1:9", verify="/nonexistent/no-such-ca.pem").post(MARK_READ_PATH, {}, b"{}")
