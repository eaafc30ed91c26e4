"""TLS that cannot work with these settings fails fast; a handshake cut short does not (loopback).

A certificate that does not verify: ``test_hostile_responses.py``; a handshake ended by EOF among
many: ``tests/integration/test_bad_day_sandbox.py``.
"""

from __future__ import annotations

import socket
import threading
from typing import TYPE_CHECKING

import pytest

from airflow_provider_nxcloud.client.errors import NxCloudApiError, NxCloudTransientError
from airflow_provider_nxcloud.client.transport import PooledTransport
from airflow_provider_nxcloud.testing.tls import self_signed_certificate, server_context
from tests.reliability.hostile_server import NXCLOUD_OK, HostileServer, loopback_alias_available

if TYPE_CHECKING:
    from collections.abc import Iterator
    from pathlib import Path

pytestmark = pytest.mark.core


def _post(url: str, verify: bool | str) -> None:
    transport = PooledTransport(base_url=url, proxies={}, verify=verify, timeout=5, pool_size=1)
    transport.post("/api/wa/markMessageAsRead", {}, b"{}")


@pytest.mark.skipif(not loopback_alias_available(), reason="needs 127.0.0.2 (Linux loopback)")
def test_a_hostname_the_certificate_does_not_name_is_a_configuration_error(tmp_path: Path) -> None:
    cert, key = self_signed_certificate(tmp_path)  # for localhost and 127.0.0.1 only
    with (
        HostileServer(NXCLOUD_OK, host="127.0.0.2", tls=server_context(cert, key)) as server,
        pytest.raises(NxCloudApiError, match="did not verify") as raised,
    ):
        _post(server.url, str(cert))
    assert "127.0.0.2" in str(raised.value)
    assert not isinstance(raised.value, NxCloudTransientError)
    assert server.requests == []


def test_https_to_a_plain_http_port_fails_fast_saying_so() -> None:
    with (
        HostileServer(NXCLOUD_OK) as server,
        pytest.raises(NxCloudApiError, match="not TLS at that address") as raised,
    ):
        _post(server.url.replace("http://", "https://"), True)
    assert not isinstance(raised.value, NxCloudTransientError)


@pytest.fixture
def resetting_server() -> Iterator[str]:
    """Reads the ClientHello, then resets the connection (RST), every time."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen()
    stop = threading.Event()

    def serve() -> None:
        while not stop.is_set():
            try:
                connection, _ = listener.accept()
            except OSError:
                return
            with connection:
                connection.recv(1 << 16)
                connection.setsockopt(
                    socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00"
                )

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    yield f"https://127.0.0.1:{listener.getsockname()[1]}"
    stop.set()
    listener.close()
    thread.join(timeout=5)


def test_a_reset_during_the_handshake_is_transient(resetting_server: str) -> None:
    with pytest.raises(NxCloudTransientError, match="connection"):
        _post(resetting_server, True)


def test_an_eof_during_the_handshake_is_transient(tmp_path: Path) -> None:
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen()

    def serve() -> None:
        connection, _ = listener.accept()
        with connection:
            connection.recv(1 << 16)
            connection.shutdown(socket.SHUT_WR)  # FIN, no close_notify
            connection.recv(1 << 16)

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    try:
        with pytest.raises(NxCloudTransientError, match="during the TLS handshake"):
            _post(f"https://127.0.0.1:{listener.getsockname()[1]}", True)
    finally:
        listener.close()
        thread.join(timeout=5)
