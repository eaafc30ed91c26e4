"""NxCloudHook over real HTTP against the sandbox on 127.0.0.1."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING

import pytest

from airflow_provider_nxcloud.client.errors import NxCloudApiError, NxCloudAuthError, NxCloudTransientError
from airflow_provider_nxcloud.client.signing import compute_sign
from airflow_provider_nxcloud.hooks.nxcloud import NxCloudHook
from airflow_provider_nxcloud.testing import DEFAULT_BUSINESS_PHONE, Faults, NxCloudSandbox

if TYPE_CHECKING:
    from airflow_provider_nxcloud.testing import RequestRecord

FAST_RETRIES = (0.01, 0.05)


def fast_hook(**kwargs: object) -> NxCloudHook:
    return NxCloudHook(retry_wait=FAST_RETRIES, **kwargs)  # type: ignore[arg-type]


def use_connection(monkeypatch: pytest.MonkeyPatch, sandbox: NxCloudSandbox, **changes: object) -> None:
    conn = json.loads(sandbox.connection_json())
    extra = changes.pop("extra", {})
    conn.update(changes)
    conn["extra"].update(extra)
    monkeypatch.setenv("AIRFLOW_CONN_NXCLOUD_DEFAULT", json.dumps(conn))


def signature_is_valid(record: RequestRecord, secret: str) -> bool:
    signed = {name: record.headers[name] for name in ("accessKey", "action", "bizType", "ts")}
    algorithm = record.headers.get("algorithm", "md5")
    return record.headers["sign"] == compute_sign(signed, record.body.encode(), secret, algorithm)  # type: ignore[arg-type]


def test_marks_a_message_with_the_documented_request(nxcloud_sandbox: NxCloudSandbox) -> None:
    response = NxCloudHook().mark_message_as_read("wamid.HBgL1")

    assert (response.code, response.message, response.http_status) == (0, "Request succeeded", 200)
    assert nxcloud_sandbox.marked_ids(DEFAULT_BUSINESS_PHONE) == {"wamid.HBgL1"}
    (request,) = nxcloud_sandbox.requests
    assert request.headers["bizType"] == "2"
    assert request.headers["action"] == "read"
    assert request.headers["Content-Type"] == "application/json"
    assert "algorithm" not in request.headers
    assert json.loads(request.body) == {
        "business_phone": DEFAULT_BUSINESS_PHONE,
        "messaging_product": "whatsapp",
        "message_id": "wamid.HBgL1",
        "status": "read",
    }
    assert signature_is_valid(request, nxcloud_sandbox.state.access_secret)


def test_sha256_signatures(nxcloud_sandbox: NxCloudSandbox, monkeypatch: pytest.MonkeyPatch) -> None:
    use_connection(monkeypatch, nxcloud_sandbox, extra={"algorithm": "sha256"})

    NxCloudHook().mark_message_as_read("wamid.sha")

    assert nxcloud_sandbox.requests[0].headers["algorithm"] == "sha256"
    assert nxcloud_sandbox.marked_ids() == {"wamid.sha"}


def test_wrong_secret_is_1003_after_exactly_one_request(
    nxcloud_sandbox: NxCloudSandbox, monkeypatch: pytest.MonkeyPatch
) -> None:
    use_connection(monkeypatch, nxcloud_sandbox, password="wrong-secret-value")

    with pytest.raises(NxCloudAuthError, match="check the connection's Access Secret") as raised:
        fast_hook().mark_message_as_read("wamid.1")

    assert raised.value.code == 1003
    assert len(nxcloud_sandbox.requests) == 1
    assert "wrong-secret-value" not in str(raised.value)


def test_unknown_access_key_is_1005(nxcloud_sandbox: NxCloudSandbox, monkeypatch: pytest.MonkeyPatch) -> None:
    use_connection(monkeypatch, nxcloud_sandbox, login="someone-else")

    with pytest.raises(NxCloudAuthError, match="check the Access Key") as raised:
        fast_hook().mark_message_as_read("wamid.1")
    assert raised.value.code == 1005


def test_transient_code_then_success_resigns_each_attempt(nxcloud_sandbox: NxCloudSandbox) -> None:
    nxcloud_sandbox.set_faults(Faults(scripts={"wamid.retry": ["-1"]}))

    fast_hook().mark_message_as_read("wamid.retry")

    first, second = nxcloud_sandbox.requests
    assert (first.code, second.code) == (-1, 0)
    assert first.headers["ts"] != second.headers["ts"]
    assert first.headers["sign"] != second.headers["sign"]
    assert signature_is_valid(second, nxcloud_sandbox.state.access_secret)


@pytest.mark.parametrize("fault", ["-1", "9001", "500", "503", "429", "drop", "html"])
def test_every_transient_kind_is_retried(nxcloud_sandbox: NxCloudSandbox, fault: str) -> None:
    nxcloud_sandbox.set_faults(Faults(scripts={"wamid.t": [fault, fault]}, retry_after=0.05))

    assert fast_hook().mark_message_as_read("wamid.t").code == 0
    assert [r.fault for r in nxcloud_sandbox.requests] == [fault, fault, None]


def test_retry_after_is_honoured(nxcloud_sandbox: NxCloudSandbox) -> None:
    nxcloud_sandbox.set_faults(Faults(scripts={"wamid.r": ["429"]}, retry_after=0.3))

    fast_hook().mark_message_as_read("wamid.r")

    first, second = nxcloud_sandbox.requests
    assert second.received_at - first.received_at >= 0.3


def test_persistent_html_page_names_status_and_snippet(nxcloud_sandbox: NxCloudSandbox) -> None:
    nxcloud_sandbox.set_faults(Faults(rates={"html": 1.0}))

    with pytest.raises(NxCloudTransientError, match=r"HTTP 200 without an NXCloud JSON code: <html><head>"):
        fast_hook(max_retries=2).mark_message_as_read("wamid.h")
    assert len(nxcloud_sandbox.requests) == 3


@pytest.mark.parametrize(
    ("code", "error"), [(9000, NxCloudApiError), (9002, NxCloudApiError), (9006, NxCloudApiError)]
)
def test_permanent_codes_are_not_retried(nxcloud_sandbox: NxCloudSandbox, code: int, error: type) -> None:
    nxcloud_sandbox.set_faults(Faults(codes={"wamid.p": code}))

    with pytest.raises(error) as raised:
        fast_hook().mark_message_as_read("wamid.p")

    assert raised.value.code == code
    assert not isinstance(raised.value, NxCloudTransientError)
    assert len(nxcloud_sandbox.requests) == 1


def test_unknown_business_phone_is_9002(nxcloud_sandbox: NxCloudSandbox) -> None:
    with pytest.raises(NxCloudApiError, match="fix the business_phone") as raised:
        fast_hook().mark_message_as_read("wamid.1", business_phone="8610000000000")
    assert raised.value.code == 9002


def test_clock_skew_is_corrected_once_and_remembered(nxcloud_sandbox: NxCloudSandbox) -> None:
    nxcloud_sandbox.set_clock_skew(5 * 60 * 1000)
    hook = fast_hook()

    hook.mark_message_as_read("wamid.skew1")
    hook.mark_message_as_read("wamid.skew2")

    assert [r.code for r in nxcloud_sandbox.requests] == [1004, 0, 0]
    assert nxcloud_sandbox.marked_ids() == {"wamid.skew1", "wamid.skew2"}


def test_connection_reused_across_requests(nxcloud_sandbox: NxCloudSandbox) -> None:
    hook = fast_hook()
    for i in range(20):
        hook.mark_message_as_read(f"wamid.pool{i}")

    assert len({r.client_port for r in nxcloud_sandbox.requests}) == 1


def test_batch_shares_a_pool_sized_to_the_workers(nxcloud_sandbox: NxCloudSandbox) -> None:
    result = fast_hook().mark_messages_as_read([f"wamid.b{i}" for i in range(200)], max_workers=4)

    assert result.state == "success"
    assert len(nxcloud_sandbox.marked_ids()) == 200
    assert len({r.client_port for r in nxcloud_sandbox.requests}) <= 4


def test_connection_test_accepts_good_credentials(nxcloud_sandbox: NxCloudSandbox) -> None:
    assert NxCloudHook().test_connection() == (True, "Credentials accepted")


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"password": "nope"}, "Access Secret"),
        ({"login": "nope"}, "Access Key"),
    ],
)
def test_connection_test_reports_refused_credentials(
    nxcloud_sandbox: NxCloudSandbox, monkeypatch: pytest.MonkeyPatch, change: dict[str, str], message: str
) -> None:
    use_connection(monkeypatch, nxcloud_sandbox, **change)

    ok, text = NxCloudHook().test_connection()

    assert not ok
    assert message in text
    assert "nope" not in text


def test_connection_test_reports_unreachable_host(monkeypatch: pytest.MonkeyPatch) -> None:
    with NxCloudSandbox() as sandbox:
        conn = sandbox.connection_json(max_retries=0)
    monkeypatch.setenv("AIRFLOW_CONN_NXCLOUD_DEFAULT", conn)  # the sandbox is gone: nothing listens

    ok, text = NxCloudHook().test_connection()

    assert not ok
    assert "connection failed" in text
