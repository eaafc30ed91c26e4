"""Hostile and broken answers: each gives a clear error, the batch goes on or stops by the policy,
and no wait is unbounded.

Every case talks to a purpose-built server on 127.0.0.1 (``hostile_server.py``). Each call runs
under ``bounded()``: a hang fails the test instead of the suite. The batch checks use one worker,
so "stops" is observable as exactly one failed message and the rest not attempted.
"""

from __future__ import annotations

import contextlib
import json
import os
import select
import signal
import socket
import ssl
import time
import tracemalloc
from typing import TYPE_CHECKING, Any

import pytest

from airflow_provider_nxcloud.client.errors import (
    NxCloudApiError,
    NxCloudConfigError,
    NxCloudTransientError,
)
from airflow_provider_nxcloud.client.transport import MAX_RESPONSE_BYTES, PooledTransport
from airflow_provider_nxcloud.hooks.nxcloud import NxCloudHook
from tests.reliability.hostile_server import (
    NXCLOUD_OK,
    HostileServer,
    answer_big,
    answer_gzip,
    answer_json,
    answer_never,
    answer_redirect,
    answer_trickle,
    answer_trickle_headers,
    gzip_bomb,
    loopback_alias_available,
    self_signed_certificate,
)
from tests.support import bounded

if TYPE_CHECKING:
    from collections.abc import Iterator
    from pathlib import Path

    from airflow_provider_nxcloud.batch.results import BatchResult

PHONE = "8613800000000"
SECRET = "hostile-test-secret-7f3a9c"
IDS = [f"wamid.hostile{i}" for i in range(5)]
FAST_RETRIES = (0.01, 0.05)
# Every case below finishes in well under a second or two; this is only the hang detector.
BOUND_SECONDS = 15.0


def point_at(monkeypatch: pytest.MonkeyPatch, url: str, **extra: Any) -> None:
    conn = {
        "conn_type": "nxcloud",
        "host": url,
        "login": "hostile-test-key",
        "password": SECRET,
        "extra": {"business_phone": PHONE, "timeout": 2, "max_retries": 1, **extra},
    }
    monkeypatch.setenv("AIRFLOW_CONN_NXCLOUD_DEFAULT", json.dumps(conn))


def hook() -> NxCloudHook:
    return NxCloudHook(retry_wait=FAST_RETRIES)


def mark_one() -> Any:
    return bounded(BOUND_SECONDS, lambda: hook().mark_message_as_read(IDS[0]))


def mark_batch(max_workers: int = 1) -> BatchResult:
    return bounded(BOUND_SECONDS, lambda: hook().mark_messages_as_read(IDS, max_workers=max_workers))


def assert_batch_stopped(result: BatchResult, reason: str) -> None:
    """The abort policy: the first answer says every request would fail alike; nothing more is sent."""
    assert result.abort is not None
    assert reason in result.abort.reason
    assert [o.message.message_id for o in result.failed] == IDS[:1]
    assert [m.message_id for m in result.not_attempted] == IDS[1:]
    assert result.state == "failed"


def assert_batch_went_on(result: BatchResult, reason: str, *, retryable: bool = True) -> None:
    """A per-message failure: every message was tried and ends failed with the reason."""
    assert result.abort is None
    assert result.not_attempted == []
    assert sorted(o.message.message_id for o in result.failed) == IDS
    assert all(reason in o.reason for o in result.failed), result.failed[0].reason
    assert all((o.status == "retryable") is retryable for o in result.failed)
    assert result.state == ("failed_retryable" if retryable else "failed")


def one_line(error: BaseException) -> str:
    text = str(error)
    assert len(text.splitlines()) == 1, text
    assert SECRET not in text
    return text


# -- oversized bodies --


@pytest.mark.parametrize(
    "answer",
    [
        pytest.param(lambda: answer_big(10 << 20), id="10MB-content-length"),
        pytest.param(lambda: answer_big(10 << 20, chunked=True), id="10MB-chunked"),
        pytest.param(lambda: answer_gzip(gzip_bomb(500 << 20)), id="gzip-bomb-500MB-decoded"),
    ],
)
def test_oversized_body_is_cut_off_with_a_clear_error(
    monkeypatch: pytest.MonkeyPatch, figures: dict[str, Any], answer: Any
) -> None:
    with HostileServer(answer()) as server:
        point_at(monkeypatch, server.url)
        tracemalloc.start()
        try:
            started = time.monotonic()
            with pytest.raises(NxCloudApiError, match=r"response body exceeds 1048576 bytes") as raised:
                mark_one()
            elapsed = time.monotonic() - started
            peak = tracemalloc.get_traced_memory()[1]
        finally:
            tracemalloc.stop()
        assert not isinstance(raised.value, NxCloudTransientError), "a wrong URL does not heal"
        assert raised.value.http_status == 200
        assert len(server.requests) == 1, "not retried"
        # Reading 10 MB (or decoding 500 MB) would need that much; the bounded read needs ~1 MB.
        assert peak < 4 * MAX_RESPONSE_BYTES, f"peak {peak} bytes while reading"

        assert_batch_stopped(mark_batch(), "response body exceeds")
    figures["error"] = one_line(raised.value)
    figures["seconds"] = round(elapsed, 3)
    figures["peak_traced_bytes"] = peak


# -- bodies that are not NXCloud JSON --


@pytest.mark.parametrize(
    "body",
    [
        pytest.param(b'{"code":0,"message":"\xff\xfe\xfd invalid utf-8"}', id="invalid-utf8"),
        pytest.param(b'{"message":"Request succeeded","data":null}', id="json-without-code"),
        pytest.param(b'{"code":null,"message":"?"}', id="code-null"),
        pytest.param(b'{"code":true,"message":"?"}', id="code-bool"),
        pytest.param(b'[{"code":0}]', id="json-array"),
        pytest.param(b"", id="empty-body"),
    ],
)
def test_unusable_body_is_retried_then_fails_that_message(
    monkeypatch: pytest.MonkeyPatch, figures: dict[str, Any], body: bytes
) -> None:
    with HostileServer(answer_json(body)) as server:
        point_at(monkeypatch, server.url)
        with pytest.raises(NxCloudTransientError, match=r"HTTP 200 without an NXCloud JSON code") as raised:
            mark_one()
        assert len(server.requests) == 2, "retried once (max_retries=1), then given up"

        assert_batch_went_on(mark_batch(), "without an NXCloud JSON code")
    figures["error"] = one_line(raised.value)


@pytest.mark.parametrize("code", ["0", " 0 ", 0.0])
def test_code_zero_as_a_string_or_float_is_success(
    monkeypatch: pytest.MonkeyPatch, code: str | float
) -> None:
    with HostileServer(answer_json({"code": code, "message": "Request succeeded", "data": None})) as server:
        point_at(monkeypatch, server.url)
        assert mark_one().code == 0

        result = mark_batch(max_workers=2)
    assert [m.message_id for m in result.marked] == IDS
    assert result.state == "success"


def test_string_permanent_code_fails_each_message_and_the_batch_goes_on(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    with HostileServer(answer_json({"code": "9000", "message": "Parameter exception"})) as server:
        point_at(monkeypatch, server.url)
        with pytest.raises(NxCloudApiError, match=r"NXCloud code 9000") as raised:
            mark_one()
        assert raised.value.code == 9000
        assert len(server.requests) == 1

        assert_batch_went_on(mark_batch(), "code 9000", retryable=False)


def test_string_transient_code_is_retried(monkeypatch: pytest.MonkeyPatch) -> None:
    with HostileServer(answer_json({"code": "-1", "message": "Request failed"})) as server:
        point_at(monkeypatch, server.url)
        with pytest.raises(NxCloudTransientError) as raised:
            mark_one()
        assert raised.value.code == -1
        assert len(server.requests) == 2


# -- redirects --


@pytest.fixture
def other_host() -> Iterator[HostileServer]:
    """Where a redirect points: another loopback host that must never see a request."""
    host = "127.0.0.2" if loopback_alias_available() else "localhost"
    with HostileServer(NXCLOUD_OK, host=host) as server:
        yield server


@pytest.mark.parametrize("status", [301, 302, 303, 307, 308])
def test_redirect_to_another_host_is_not_followed(
    monkeypatch: pytest.MonkeyPatch, figures: dict[str, Any], other_host: HostileServer, status: int
) -> None:
    target = f"{other_host.url}/api/wa/markMessageAsRead"
    with HostileServer(answer_redirect(target, status)) as server:
        point_at(monkeypatch, server.url)
        with pytest.raises(NxCloudApiError, match=r"redirected to .* not followed") as raised:
            mark_one()
        assert raised.value.http_status == status
        assert len(server.requests) == 1

        assert_batch_stopped(mark_batch(), "not followed")
    assert other_host.requests == [], "the signed request (and its accessKey) went to another host"
    figures["error"] = one_line(raised.value)


# -- TLS --


@pytest.fixture
def self_signed(tmp_path: Path) -> Iterator[tuple[HostileServer, Path]]:
    cert, key = self_signed_certificate(tmp_path)
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert, key)
    with HostileServer(NXCLOUD_OK, tls=context) as server:
        yield server, cert


def test_self_signed_certificate_is_refused_by_default(
    monkeypatch: pytest.MonkeyPatch, figures: dict[str, Any], self_signed: tuple[HostileServer, Path]
) -> None:
    server, _ = self_signed
    point_at(monkeypatch, server.url)

    with pytest.raises(NxCloudApiError, match=r"TLS certificate of 127\.0\.0\.1 did not verify") as raised:
        mark_one()
    assert "self-signed certificate" in str(raised.value)
    assert "verify extra" in str(raised.value)  # the fix
    assert not isinstance(raised.value, NxCloudTransientError)

    assert_batch_stopped(mark_batch(), "did not verify")
    assert server.requests == [], "no HTTP request (so no signed headers) crossed an unverified TLS link"
    figures["error"] = one_line(raised.value)


@pytest.mark.filterwarnings("ignore::urllib3.exceptions.InsecureRequestWarning")
def test_self_signed_certificate_is_accepted_with_verify_false(
    monkeypatch: pytest.MonkeyPatch, self_signed: tuple[HostileServer, Path]
) -> None:
    server, _ = self_signed
    point_at(monkeypatch, server.url, verify=False)

    assert mark_one().code == 0
    assert len(server.requests) == 1
    assert server.requests[0].headers["accessKey"] == "hostile-test-key"


def test_self_signed_certificate_is_accepted_as_a_ca_bundle(
    monkeypatch: pytest.MonkeyPatch, self_signed: tuple[HostileServer, Path]
) -> None:
    server, cert = self_signed
    point_at(monkeypatch, server.url, verify=str(cert))

    assert mark_one().code == 0
    assert mark_batch(max_workers=2).state == "success"


def test_tls_by_host_name_sends_it_as_sni_and_verifies_it(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    # The deadline's connections connect to resolved addresses; TLS must still see the name.
    cert, key = self_signed_certificate(tmp_path)  # valid for localhost and 127.0.0.1
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert, key)
    names: list[str | None] = []
    context.sni_callback = lambda _socket, name, _context: names.append(name)
    with HostileServer(NXCLOUD_OK, tls=context) as server:
        point_at(monkeypatch, server.url.replace("127.0.0.1", "localhost"), verify=str(cert))
        assert mark_one().code == 0
    assert names == ["localhost"]


# -- plain http to a remote host --


@pytest.fixture
def no_network(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Record (and refuse) any name lookup or connection attempt, at the socket level."""
    attempts: list[str] = []

    def refuse(*args: Any, **kwargs: Any) -> Any:
        attempts.append(repr(args[:2]))
        raise AssertionError("a connection was about to be made")

    monkeypatch.setattr(socket, "getaddrinfo", refuse)
    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket.socket, "connect_ex", refuse)
    return attempts


@pytest.mark.parametrize(
    "conn",
    [
        {"host": "http://api2.nxcloud.com"},
        {"host": "http://10.1.2.3:8080"},
        {"host": "http://localhost.attacker.example"},
        {"host": "http://127.0.0.1.nip.io"},
        {"host": "http://[2001:db8::1]:8080"},
        {"host": "HTTP://API2.NXCLOUD.COM"},
        {"host": "api2.nxcloud.com", "schema": "http"},
    ],
    ids=lambda conn: conn["host"] + (f"+schema={conn['schema']}" if "schema" in conn else ""),
)
def test_plain_http_to_a_remote_host_is_refused_before_sending(
    monkeypatch: pytest.MonkeyPatch, figures: dict[str, Any], no_network: list[str], conn: dict[str, str]
) -> None:
    document = {"conn_type": "nxcloud", "login": "k", "password": SECRET, "extra": {"business_phone": PHONE}}
    monkeypatch.setenv("AIRFLOW_CONN_NXCLOUD_DEFAULT", json.dumps({**document, **conn}))

    with pytest.raises(NxCloudConfigError, match=r"plain http:// to .* use https://") as raised:
        mark_one()
    with pytest.raises(NxCloudConfigError, match=r"plain http://"):
        mark_batch()
    assert no_network == []
    figures["error"] = one_line(raised.value)


# -- stalls --


def test_server_that_never_answers_is_bounded_by_the_timeout(
    monkeypatch: pytest.MonkeyPatch, figures: dict[str, Any]
) -> None:
    with HostileServer(answer_never) as server:
        point_at(monkeypatch, server.url, timeout=0.3, max_retries=1)
        started = time.monotonic()
        with pytest.raises(
            NxCloudTransientError,
            match=r"no complete answer within 0.3 s: timed out waiting for the answer's headers$",
        ) as raised:
            mark_one()
        elapsed = time.monotonic() - started
        assert len(server.requests) == 2

        assert_batch_went_on(mark_batch(max_workers=5), "timed out")
    assert 0.6 <= elapsed < 3, elapsed
    figures["error"] = one_line(raised.value)
    figures["seconds_for_2_attempts"] = round(elapsed, 3)


def test_answer_trickling_in_is_bounded_by_the_timeout(
    monkeypatch: pytest.MonkeyPatch, figures: dict[str, Any]
) -> None:
    # 400 bytes at one per 50 ms: each byte beats the 0.3 s socket timeout, the whole takes 20 s.
    body = json.dumps({"code": 0, "message": "x" * 370, "data": None}).encode()
    with HostileServer(answer_trickle(body, 0.05)) as server:
        point_at(monkeypatch, server.url, timeout=0.3, max_retries=1)
        started = time.monotonic()
        with pytest.raises(
            NxCloudTransientError,
            match=r"no complete answer within 0.3 s: timed out reading the answer's body$",
        ) as raised:
            mark_one()
        elapsed = time.monotonic() - started
        assert len(server.requests) == 2
    assert elapsed < 3, elapsed
    figures["error"] = one_line(raised.value)
    figures["seconds_for_2_attempts"] = round(elapsed, 3)


@pytest.mark.parametrize("scheme", ["http", "https"])
def test_headers_trickling_in_are_bounded_by_the_timeout(
    monkeypatch: pytest.MonkeyPatch, figures: dict[str, Any], tmp_path: Path, scheme: str
) -> None:
    # ~4 KB of headers at one byte per 50 ms: each beats the 0.3 s socket timeout, the whole
    # would take over 3 minutes. Over TLS every byte is a TLS record of its own.
    tls, verify = None, None
    if scheme == "https":
        cert, key = self_signed_certificate(tmp_path)
        tls = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        tls.load_cert_chain(cert, key)
        verify = str(cert)
    with HostileServer(answer_trickle_headers(0.05), tls=tls) as server:
        point_at(
            monkeypatch, server.url, timeout=0.3, max_retries=1, **({"verify": verify} if verify else {})
        )
        started = time.monotonic()
        with pytest.raises(
            NxCloudTransientError,
            match=r"no complete answer within 0.3 s: timed out waiting for the answer's headers$",
        ) as raised:
            mark_one()
        elapsed = time.monotonic() - started
        assert len(server.requests) == 2, "retried once, then given up"

        # The connections that were cut are not reused: the next answer arrives whole.
        server.answer = NXCLOUD_OK
        assert mark_one().code == 0
    assert elapsed < 3, elapsed
    figures["error"] = one_line(raised.value)
    figures["seconds_for_2_attempts"] = round(elapsed, 3)


def test_a_forked_child_gets_a_watchdog_of_its_own(figures: dict[str, Any]) -> None:
    # Airflow forks task processes; the parent's watchdog thread does not cross a fork.
    with HostileServer(answer_trickle_headers(0.05)) as server:
        transport = PooledTransport(base_url=server.url, proxies={}, verify=True, timeout=0.3, pool_size=2)
        with pytest.raises(NxCloudTransientError, match="no complete answer"):
            bounded(BOUND_SECONDS, lambda: transport.post("/api/wa/markMessageAsRead", {}, b"{}"))
        read_end, write_end = os.pipe()
        pid = os.fork()
        if pid == 0:  # the child: one more request, its outcome through the pipe, nothing else
            try:
                started = time.monotonic()
                try:
                    transport.post("/api/wa/markMessageAsRead", {}, b"{}")
                    outcome = "answered"
                except NxCloudTransientError as error:
                    outcome = str(error)
                report = {"seconds": time.monotonic() - started, "outcome": outcome}
                os.write(write_end, json.dumps(report).encode())
            finally:
                os._exit(0)
        os.close(write_end)
        try:
            if not select.select([read_end], [], [], BOUND_SECONDS)[0]:
                pytest.fail(f"the forked child's request had not ended after {BOUND_SECONDS:g} s")
            report = json.loads(os.read(read_end, 4096))
        finally:
            os.close(read_end)
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
            os.waitpid(pid, 0)
    assert "no complete answer within 0.3 s" in report["outcome"]
    figures["child_seconds"] = round(report["seconds"], 3)


# -- Retry-After --


def test_unparseable_retry_after_is_ignored_not_a_crash(monkeypatch: pytest.MonkeyPatch) -> None:
    with HostileServer(answer_json(b"busy", 503, Retry_After="soon-ish")) as server:
        point_at(monkeypatch, server.url)
        with pytest.raises(NxCloudTransientError, match=r"HTTP 503: busy"):
            mark_one()
        assert len(server.requests) == 2
