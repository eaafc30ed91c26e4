"""The typing indicator over HTTP against the sandbox: NXCloud's ``typingIndicator`` endpoint."""

from __future__ import annotations

import hashlib
import json
import logging
import time
from typing import TYPE_CHECKING

import pytest

from airflow_provider_nxcloud.client.api import READ_ACTION, TYPING_INDICATOR_PATH, WHATSAPP_BIZ_TYPE
from airflow_provider_nxcloud.client.errors import NxCloudApiError, NxCloudConfigError
from airflow_provider_nxcloud.hooks.nxcloud import NxCloudHook
from airflow_provider_nxcloud.testing import (
    DEFAULT_ACCESS_KEY,
    DEFAULT_ACCESS_SECRET,
    DEFAULT_APPKEY,
    DEFAULT_BUSINESS_PHONE,
    Faults,
    SandboxClient,
)

if TYPE_CHECKING:
    from airflow_provider_nxcloud.testing import NxCloudSandbox

PHONE = DEFAULT_BUSINESS_PHONE


def without_appkey(monkeypatch: pytest.MonkeyPatch, sandbox: NxCloudSandbox) -> None:
    conn = json.loads(sandbox.connection_json())
    del conn["extra"]["appkey"]
    monkeypatch.setenv("AIRFLOW_CONN_NXCLOUD_DEFAULT", json.dumps(conn))


def test_the_signed_request_and_body_are_the_documented_bytes(nxcloud_sandbox: NxCloudSandbox) -> None:
    response = NxCloudHook().mark_message_as_read("wamid.HBgLtyping", typing_indicator=True)

    assert (response.code, response.message) == (0, "Request succeeded")
    (request,) = nxcloud_sandbox.requests
    assert request.path == "/api/wa/typingIndicator"
    expected_body = (
        '{"appkey":"sandbox-appkey","business_phone":"8613800000000","messaging_product":"whatsapp",'
        '"message_id":"wamid.HBgLtyping","status":"read","typing_indicator":{"type":"text"}}'
    )
    assert request.body == expected_body
    assert {name: request.headers[name] for name in ("accessKey", "bizType", "action", "Content-Type")} == {
        "accessKey": DEFAULT_ACCESS_KEY, "bizType": "2", "action": "read", "Content-Type": "application/json",
    }  # fmt: skip
    # NXCloud's documented string to sign, built by hand rather than by the signing module.
    signed = (
        f"accessKey={DEFAULT_ACCESS_KEY}&action=read&bizType=2&ts={request.headers['ts']}"
        f"&body={expected_body}&accessSecret={DEFAULT_ACCESS_SECRET}"
    )
    assert request.headers["sign"] == hashlib.md5(signed.encode()).hexdigest()
    assert abs(int(request.headers["ts"]) - time.time() * 1000) < 60_000


def test_typing_marks_like_mark_read_and_is_recorded(nxcloud_sandbox: NxCloudSandbox) -> None:
    now = int(time.time())
    thread = [
        {"id": f"wamid.t{n}", "business_phone": PHONE, "from": "15550001", "timestamp": now - 60 * n}
        for n in range(3)
    ]
    nxcloud_sandbox.add_inbound(thread)

    NxCloudHook().mark_message_as_read("wamid.t0", typing_indicator=True)

    assert nxcloud_sandbox.marked_ids() == {"wamid.t0"}
    assert nxcloud_sandbox.read_ids() == {"wamid.t0", "wamid.t1", "wamid.t2"}
    assert nxcloud_sandbox.typing_shown() == ["wamid.t0"]
    # A plain mark-read shows none.
    NxCloudHook().mark_message_as_read("wamid.t1")
    assert nxcloud_sandbox.typing_shown(PHONE) == ["wamid.t0"]
    # Over the control API, as a test in another process reads it.
    assert SandboxClient(nxcloud_sandbox.url).typing_shown() == ["wamid.t0"]


def test_transient_answers_are_retried_on_the_same_endpoint(nxcloud_sandbox: NxCloudSandbox) -> None:
    nxcloud_sandbox.set_faults(Faults(scripts={"wamid.retry": ["-1", "503", "meta:130429"]}))

    NxCloudHook(retry_wait=(0.01, 0.05)).mark_message_as_read("wamid.retry", typing_indicator=True)

    assert [(r.path, r.code) for r in nxcloud_sandbox.requests] == [
        (TYPING_INDICATOR_PATH, -1), (TYPING_INDICATOR_PATH, None), (TYPING_INDICATOR_PATH, 9099),
        (TYPING_INDICATOR_PATH, 0),
    ]  # fmt: skip
    assert nxcloud_sandbox.typing_shown() == ["wamid.retry"]


def test_a_meta_error_fails_the_message_with_metas_text(nxcloud_sandbox: NxCloudSandbox) -> None:
    nxcloud_sandbox.set_faults(Faults(codes={"wamid.gone": "meta:131009"}))

    with pytest.raises(NxCloudApiError, match=r"\(#131009\) Parameter value is not valid") as raised:
        NxCloudHook().mark_message_as_read("wamid.gone", typing_indicator=True)

    assert raised.value.code == 9099
    assert nxcloud_sandbox.typing_shown() == []


def test_the_sandbox_refuses_a_wrong_appkey_and_an_incomplete_body(nxcloud_sandbox: NxCloudSandbox) -> None:
    client = nxcloud_sandbox.client(appkey="not-the-appkey", max_retries=0)
    with pytest.raises(NxCloudApiError, match="application does not exist") as wrong:
        client.mark_message_as_read("wamid.1", typing_indicator=True)
    assert wrong.value.code == 9003

    body = {"appkey": DEFAULT_APPKEY, "business_phone": PHONE, "messaging_product": "whatsapp",
            "message_id": "wamid.2", "status": "read"}  # fmt: skip
    with pytest.raises(NxCloudApiError, match="typing_indicator is required") as incomplete:
        client.call(TYPING_INDICATOR_PATH, action=READ_ACTION, biz_type=WHATSAPP_BIZ_TYPE, body=body)
    assert incomplete.value.code == 9000

    assert nxcloud_sandbox.marked_ids() == set()


def test_a_batch_shows_typing_once_per_thread_through_the_hook(nxcloud_sandbox: NxCloudSandbox) -> None:
    now = int(time.time())
    inbox = [
        {"id": f"wamid.b{n}", "business_phone": PHONE, "from": f"1555000{n % 2}", "timestamp": now - n}
        for n in range(6)
    ]
    nxcloud_sandbox.add_inbound(inbox)

    result = NxCloudHook().mark_messages_as_read(inbox, typing_indicator=True)

    assert result.state == "success"
    assert result.counts()["typing_indicators"] == 2
    assert sorted(nxcloud_sandbox.typing_shown()) == ["wamid.b0", "wamid.b1"]  # each thread's newest
    assert nxcloud_sandbox.read_ids() == {r["id"] for r in inbox}


def test_without_an_appkey_nothing_is_sent(
    nxcloud_sandbox: NxCloudSandbox, monkeypatch: pytest.MonkeyPatch
) -> None:
    without_appkey(monkeypatch, nxcloud_sandbox)

    with pytest.raises(NxCloudConfigError, match="connection's appkey extra"):
        NxCloudHook().mark_messages_as_read(["wamid.1"], typing_indicator=True)
    with pytest.raises(NxCloudConfigError, match="connection's appkey extra"):
        NxCloudHook().mark_message_as_read("wamid.1", typing_indicator=True)

    assert nxcloud_sandbox.requests == []


def test_the_appkey_is_never_logged(
    nxcloud_sandbox: NxCloudSandbox, caplog: pytest.LogCaptureFixture
) -> None:
    nxcloud_sandbox.set_faults(
        Faults(scripts={"wamid.log1": ["-1", "meta:130429"]}, codes={"wamid.log2": 9003})
    )
    caplog.set_level(logging.DEBUG)

    hook = NxCloudHook(retry_wait=(0.01, 0.05))
    result = hook.mark_messages_as_read(["wamid.log1", "wamid.log2"], typing_indicator=True, max_workers=1)

    assert [r.code for r in nxcloud_sandbox.requests if r.message_id == "wamid.log1"] == [-1, 9099, 0]
    assert caplog.records, "retries and the abort were logged"
    assert DEFAULT_APPKEY not in caplog.text
    assert DEFAULT_APPKEY not in repr(hook.settings) + json.dumps(result.to_dict())
