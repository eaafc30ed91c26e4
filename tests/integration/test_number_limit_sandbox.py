"""A rate limit on one business number, as WhatsApp's per-number throughput limit: over HTTP."""

from __future__ import annotations

import urllib.error
import urllib.request
from typing import TYPE_CHECKING, Any

import pytest

from airflow_provider_nxcloud.testing import (
    AccountLimit,
    NxCloudSandbox,
    SandboxClient,
    meta_answer,
)
from tests.support import TRACE_ID, signed_mark

if TYPE_CHECKING:
    from collections.abc import Iterator

pytestmark = pytest.mark.core


LIMITED = "8613800000001"
FREE = "8613800000002"
SUCCESS = (200, {"code": 0, "message": "Request succeeded", "data": None})
THROTTLED = (200, meta_answer(130429, fbtrace_id=TRACE_ID))


def mark(url: str, phone: str, message_id: str) -> tuple[int, dict[str, Any]]:
    return signed_mark(url, phone, message_id)


@pytest.fixture
def sandbox() -> Iterator[NxCloudSandbox]:
    with NxCloudSandbox(business_phones=[LIMITED, FREE]) as running:
        yield running


def test_a_number_limit_refuses_that_number_only(sandbox: NxCloudSandbox) -> None:
    # 0.01/s: the one token of the burst is all the test will ever get.
    sandbox.set_rate_limit(AccountLimit(per_second=0.01, burst=1, answer="meta", business_phone=LIMITED))

    assert mark(sandbox.url, LIMITED, "wamid.a0") == SUCCESS
    assert mark(sandbox.url, LIMITED, "wamid.a1") == THROTTLED
    assert [mark(sandbox.url, FREE, f"wamid.b{n}") for n in range(5)] == [SUCCESS] * 5, "the other passes"
    assert sandbox.marked_ids(LIMITED) == {"wamid.a0"}
    assert sandbox.marked_ids(FREE) == {f"wamid.b{n}" for n in range(5)}
    assert [(r.business_phone, r.fault) for r in sandbox.requests if r.fault] == [(LIMITED, "rate_limit")]


def test_the_control_api_sets_a_number_limit_and_back_to_the_whole_account(sandbox: NxCloudSandbox) -> None:
    client = SandboxClient(sandbox.url)
    client.set_rate_limit(0.01, burst=1, business_phone=LIMITED)
    assert mark(sandbox.url, LIMITED, "wamid.c0") == SUCCESS
    with pytest.raises(urllib.error.HTTPError) as refused:
        mark(sandbox.url, LIMITED, "wamid.c1")
    assert refused.value.code == 429
    assert mark(sandbox.url, FREE, "wamid.c2") == SUCCESS
    assert mark(sandbox.url, FREE, "wamid.c3") == SUCCESS

    client.set_rate_limit(0.01, burst=1)  # every number again: the bucket, empty, carries over

    with pytest.raises(urllib.error.HTTPError) as refused_too:
        mark(sandbox.url, FREE, "wamid.c4")
    assert refused_too.value.code == 429
