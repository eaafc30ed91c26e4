"""NxCloudClient outside Airflow, over HTTP to the sandbox: what a script or webhook handler does."""

from __future__ import annotations

import time
from typing import TYPE_CHECKING

import pytest

from airflow_provider_nxcloud.batch import mark_messages
from airflow_provider_nxcloud.client import NxCloudApiError, NxCloudClient
from airflow_provider_nxcloud.hooks.nxcloud import NxCloudHook
from airflow_provider_nxcloud.testing import (
    DEFAULT_ACCESS_KEY,
    DEFAULT_ACCESS_SECRET,
    DEFAULT_BUSINESS_PHONE,
    Faults,
)

if TYPE_CHECKING:
    from airflow_provider_nxcloud.testing import NxCloudSandbox


def client_for(sandbox: NxCloudSandbox) -> NxCloudClient:
    return NxCloudClient(
        access_key=DEFAULT_ACCESS_KEY,
        access_secret=DEFAULT_ACCESS_SECRET,
        base_url=sandbox.url,
        business_phone=DEFAULT_BUSINESS_PHONE,
        retry_wait=(0.01, 0.05),
    )


def test_a_client_marks_a_message_with_a_verified_signature(nxcloud_sandbox: NxCloudSandbox) -> None:
    response = client_for(nxcloud_sandbox).mark_message_as_read("wamid.script1")

    assert response.code == 0
    assert nxcloud_sandbox.marked_ids() == {"wamid.script1"}


def test_a_refused_id_raises_with_the_code(nxcloud_sandbox: NxCloudSandbox) -> None:
    known = {
        "id": "wamid.known",
        "business_phone": DEFAULT_BUSINESS_PHONE,
        "from": "1555",
        "timestamp": int(time.time()),
    }
    nxcloud_sandbox.add_inbound([known])

    with pytest.raises(NxCloudApiError) as raised:
        client_for(nxcloud_sandbox).mark_message_as_read("wamid.unknown")
    assert raised.value.code == 9099


def test_the_client_counts_requests_retries_and_throttled_answers(nxcloud_sandbox: NxCloudSandbox) -> None:
    nxcloud_sandbox.set_faults(
        Faults(scripts={"wamid.n1": ["-1", "503"], "wamid.n2": ["429"]}, retry_after=0.01)
    )
    client = client_for(nxcloud_sandbox)

    for message_id in ("wamid.n1", "wamid.n2", "wamid.n3"):
        client.mark_message_as_read(message_id)

    assert (client.requests_sent, client.retries_sent, client.throttled_answers) == (6, 3, 1)
    assert len(nxcloud_sandbox.requests) == 6


def test_mark_messages_takes_the_client_and_defaults(nxcloud_sandbox: NxCloudSandbox) -> None:
    now = int(time.time())
    records = [{"id": f"wamid.s{i}", "from": "15550001", "timestamp": now - 10 + i} for i in range(3)]

    result = mark_messages(client_for(nxcloud_sandbox), records)

    assert result.state == "success"
    assert sorted(m.message_id for m in result.marked) == ["wamid.s0", "wamid.s1", "wamid.s2"]
    assert result.requests == 1  # one request for the conversation's newest


def test_the_hook_hands_out_one_client(nxcloud_sandbox: NxCloudSandbox) -> None:
    hook = NxCloudHook()

    assert hook.get_conn() is hook.client
    assert hook.client.settings.base_url == nxcloud_sandbox.url
    assert hook.mark_message_as_read("wamid.h1").code == 0
    assert hook.client.requests_sent == 1
