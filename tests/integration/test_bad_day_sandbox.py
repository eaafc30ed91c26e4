"""A bad day against the sandbox over real HTTP(S): TLS hiccups, a misconfigured number, the Test button.

The outage itself (every answer 503, every connection refused) is in tests/reliability/test_outage.py.
"""

from __future__ import annotations

import json
import time
from typing import TYPE_CHECKING

import pytest

from airflow_provider_nxcloud.batch import mark_messages
from airflow_provider_nxcloud.batch.options import BatchOptions
from airflow_provider_nxcloud.hooks.nxcloud import TEST_MESSAGE_ID, TEST_TIMEOUT, NxCloudHook
from airflow_provider_nxcloud.testing import AccountLimit, Faults, NxCloudSandbox
from tests.reliability.hostile_server import HostileServer, answer_never
from tests.support import bounded

if TYPE_CHECKING:
    from pathlib import Path

    from airflow_provider_nxcloud.testing.state import ThrottleAnswer

PHONE, OTHER = "8613800000000", "8613900000001"
TLS = pytest.mark.parametrize("nxcloud_sandbox", [{"tls": True}], indirect=True)


@pytest.mark.parametrize("answer", ["http429", "meta"])
def test_an_account_limit_is_the_limiter_s_job_not_the_retry_budget_s(
    nxcloud_sandbox: NxCloudSandbox, answer: ThrottleAnswer, caplog: pytest.LogCaptureFixture
) -> None:
    # Without the adaptive limiter (which would soon stop the refusals) 8 workers keep running
    # into a 20/s limit: many more refusals than the budget's 50, none of them an outage.
    nxcloud_sandbox.set_rate_limit(AccountLimit(per_second=20, burst=5, answer=answer))
    ids = [f"wamid.limit{i}" for i in range(200)]
    client = nxcloud_sandbox.client(retry_wait=(0.05, 0.2), adaptive_rate=False, max_retries=50)

    result = bounded(120, lambda: mark_messages(client, ids, options=BatchOptions(max_workers=8)))

    refused = sum(r.fault == "rate_limit" for r in nxcloud_sandbox.requests)
    assert refused > 100, refused  # counted as failures, they would have exhausted the budget
    assert result.state == "success", result.describe_failure()
    assert "retry budget exhausted" not in caplog.text


@TLS
def test_a_handshake_ended_by_eof_is_retried_and_every_id_is_marked(nxcloud_sandbox: NxCloudSandbox) -> None:
    # A new handshake per request (as behind a recycling load balancer), 1 in 20 ended after
    # the ClientHello with a FIN and no close_notify: the client sees SSLEOFError.
    nxcloud_sandbox.set_faults(Faults(handshake_eof=0.05, close_connections=True, seed=22))
    ids = [f"wamid.tls{i}" for i in range(300)]
    client = nxcloud_sandbox.client()  # verify: the sandbox's own certificate

    result = bounded(120, lambda: mark_messages(client, ids))

    assert nxcloud_sandbox.url.startswith("https://")
    assert result.state == "success", result.describe_failure()
    assert nxcloud_sandbox.marked_ids() == set(ids)
    assert nxcloud_sandbox.state.handshakes_ended >= 5  # ~15 expected: the fault was met


@TLS
def test_a_certificate_that_does_not_verify_fails_fast_without_retries(
    nxcloud_sandbox: NxCloudSandbox,
) -> None:
    client = nxcloud_sandbox.client(verify=True)  # the system's CAs: the sandbox's is not among them

    started = time.monotonic()
    result = mark_messages(client, [f"wamid.cert{i}" for i in range(50)])

    assert time.monotonic() - started < 5
    # One request each for the messages the threads had started, none retried, then no more.
    assert client.requests_sent == len(result.failed) <= 8
    assert result.state == "failed"
    assert result.abort is not None
    assert "did not verify" in result.abort.reason
    assert "verify extra" in result.abort.reason
    assert len(result.not_attempted) == 50 - len(result.failed)
    assert nxcloud_sandbox.requests == []  # no request got through the handshake


def test_a_number_answered_9006_stops_only_itself(nxcloud_sandbox: NxCloudSandbox) -> None:
    nxcloud_sandbox.state.business_phones.add(OTHER)
    records = [{"id": f"wamid.n{i}", "business_phone": OTHER if i % 2 else PHONE} for i in range(200)]
    unbound = {r["id"]: 9006 for r in records if r["business_phone"] == OTHER}
    nxcloud_sandbox.set_faults(Faults(codes=dict(unbound)))

    result = NxCloudHook().mark_messages_as_read(records)

    healthy = {r["id"] for r in records if r["business_phone"] == PHONE}
    assert nxcloud_sandbox.marked_ids(PHONE) == healthy
    assert {m.message_id for m in result.marked} == healthy
    assert {o.code for o in result.failed} == {9006}
    assert {m.business_phone for m in result.not_attempted} == {OTHER}
    assert len(result.failed) + len(result.not_attempted) == 100
    assert "not bound to any application" in result.to_dict()["not_attempted_reasons"][OTHER]
    assert result.state == "failed"
    # The requests for the bad number: those in flight when its first answer came, no more.
    assert sum(r.business_phone == OTHER for r in nxcloud_sandbox.requests) <= 8


def test_the_test_button_names_the_business_phone_on_9002(
    nxcloud_sandbox: NxCloudSandbox, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(
        "AIRFLOW_CONN_NXCLOUD_DEFAULT", nxcloud_sandbox.connection_json(business_phone="8619999999999")
    )

    ok, text = NxCloudHook().test_connection()

    assert not ok
    assert "8619999999999" in text and "9002" in text


def test_the_test_button_checks_the_appkey(
    nxcloud_sandbox: NxCloudSandbox, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A wrong appkey passed the Test button and failed the first typing_indicator task (9003).
    assert NxCloudHook().test_connection()[0]
    (request,) = nxcloud_sandbox.requests
    assert request.path == "/api/wa/typingIndicator"  # the one request whose body carries the appkey

    monkeypatch.setenv("AIRFLOW_CONN_NXCLOUD_DEFAULT", nxcloud_sandbox.connection_json(appkey="not-the-app"))
    ok, text = NxCloudHook().test_connection()

    assert not ok
    assert "appkey" in text and "9003" in text
    assert "not-the-app" not in text


def test_the_test_button_without_an_appkey_marks_read_only(
    nxcloud_sandbox: NxCloudSandbox, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("AIRFLOW_CONN_NXCLOUD_DEFAULT", nxcloud_sandbox.connection_json(appkey=None))

    assert NxCloudHook().test_connection() == (True, "Credentials accepted")
    assert [r.path for r in nxcloud_sandbox.requests] == ["/api/wa/markMessageAsRead"]


@pytest.mark.parametrize("meta", ["meta:80007", "meta:131000"])
def test_a_meta_throttle_or_outage_on_the_test_request_still_means_the_keys_were_accepted(
    nxcloud_sandbox: NxCloudSandbox, meta: str
) -> None:
    # 9099 is Meta's answer, passed on by an NXCloud that checked the keys first: a WhatsApp
    # throttle or hiccup is not "could not get an answer from NXCloud".
    nxcloud_sandbox.set_faults(Faults(codes={TEST_MESSAGE_ID: meta}))

    ok, text = NxCloudHook().test_connection()

    assert ok, text
    assert f"Meta {meta.removeprefix('meta:')}" in text
    assert len(nxcloud_sandbox.requests) == 1


def test_the_test_button_does_not_retry_a_503(
    nxcloud_sandbox: NxCloudSandbox, monkeypatch: pytest.MonkeyPatch
) -> None:
    nxcloud_sandbox.set_faults(Faults(rates={"503": 1.0}))

    ok, text = bounded(15, NxCloudHook().test_connection)

    assert not ok
    assert "HTTP 503" in text
    assert len(nxcloud_sandbox.requests) == 1


def test_the_test_button_gives_up_on_a_silent_server_within_its_own_timeout(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    with HostileServer(answer_never) as server:
        connection = {"conn_type": "nxcloud", "host": server.url, "login": "k", "password": "s"}
        connection["extra"] = {"business_phone": PHONE, "timeout": 60}  # the Test button does not wait that
        monkeypatch.setenv("AIRFLOW_CONN_NXCLOUD_DEFAULT", json.dumps(connection))
        started = time.monotonic()

        ok, text = bounded(TEST_TIMEOUT + 5, NxCloudHook().test_connection)

        assert not ok
        assert time.monotonic() - started < TEST_TIMEOUT + 2
        assert f"no complete answer within {TEST_TIMEOUT:g} s" in text
        assert len(server.requests) == 1
