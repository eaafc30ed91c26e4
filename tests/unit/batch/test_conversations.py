"""One request per conversation: the grouping and the fallback rules, with a fake client (pure logic).

The fake answers from a table of codes per message id and counts requests as the hook does (a
transient code costs ``1 + RETRIES`` requests, like the hook's retries). Over HTTP against the
sandbox: tests/integration/test_conversations_sandbox.py.
"""

from __future__ import annotations

import threading
import time
from typing import TYPE_CHECKING, Any

import pytest

from airflow_provider_nxcloud.batch.conversations import units_to_send
from airflow_provider_nxcloud.batch.engine import mark_messages
from airflow_provider_nxcloud.batch.messages import Message, normalise_messages
from airflow_provider_nxcloud.batch.options import BatchOptions
from airflow_provider_nxcloud.client.api import classify, is_auth_code
from airflow_provider_nxcloud.client.errors import (
    NxCloudApiError,
    NxCloudAuthError,
    NxCloudConfigError,
    NxCloudTransientError,
)

if TYPE_CHECKING:
    from collections.abc import Mapping

    from airflow_provider_nxcloud.batch.results import BatchResult

PHONE = "8613800000000"
OTHER_PHONE = "8613900000001"
NOW = int(time.time())
DAY = 86_400
RETRIES = 2
NO_OVERRIDES: dict[int, bool] = {}


class FakeClient:
    """A ``MarkReadClient`` that answers from ``codes`` (default 0) and records what was sent."""

    business_phone = PHONE
    rate_limit_found = None  # never throttled

    def __init__(self, codes: dict[str, int] | None = None) -> None:
        self.codes = codes or {}
        self.sent: list[str] = []
        self.sent_keys: list[tuple[str, str | None]] = []
        self._requests = 0
        self._lock = threading.Lock()

    @property
    def requests_sent(self) -> int:
        return self._requests

    def ready_for_threads(self, workers: int) -> None:
        pass

    def cancel(self) -> None:
        pass

    def mark_message_as_read(
        self,
        message_id: str,
        business_phone: str | None = None,
        *,
        retry_overrides: Mapping[int, bool] = NO_OVERRIDES,
    ) -> object:
        code = self.codes.get(message_id, 0)
        transient = retry_overrides.get(code, classify(code).meaning == "transient")
        with self._lock:
            self.sent.append(message_id)
            self.sent_keys.append((message_id, business_phone))
            self._requests += 1 + RETRIES if transient else 1
        if code == 0:
            return None
        if transient:
            raise NxCloudTransientError("still failing after retries", code=code)
        if is_auth_code(code):
            raise NxCloudAuthError("invalid signature", code=code)
        raise NxCloudApiError(f"answer {code} for {message_id}", code=code)


def record(message_id: str, customer: str | None = "15550001", age: int = 0, **extra: Any) -> dict[str, Any]:
    fields: dict[str, Any] = {"id": message_id, "business_phone": PHONE, "timestamp": NOW - age, **extra}
    if customer is not None:
        fields["from"] = customer
    return fields


def run(messages: Any, client: FakeClient, **options: Any) -> BatchResult:
    return mark_messages(client, messages, options=BatchOptions(**options))


def marked(result: BatchResult) -> list[str]:
    return [m.message_id for m in result.marked]


def failed(result: BatchResult) -> dict[str, tuple[int | None, str]]:
    return {o.message.message_id: (o.code, o.status) for o in result.failed}


# -- grouping --


def test_a_thread_is_one_unit_newest_first_and_the_rest_stay_alone() -> None:
    messages = [
        Message("old", PHONE, 100, "a"),
        Message("bare", PHONE),
        Message("new", PHONE, 300, "a"),
        Message("no-time", PHONE, None, "a"),
        Message("mid", PHONE, 200, "a"),
        Message("other-number", OTHER_PHONE, 400, "a"),
    ]

    units, conversations = units_to_send(messages, grouped=True)

    assert units == [[[2], [4], [0]], [[1]], [[3]], [[5]]]
    assert conversations == 2  # (PHONE, a) and (OTHER_PHONE, a): a thread is per business number


def test_messages_of_one_second_share_a_tier_whatever_the_input_order() -> None:
    messages = [
        Message("first", PHONE, 100, "a"),
        Message("second", PHONE, 100, "a"),
        Message("old", PHONE, 50, "a"),
    ]

    assert units_to_send(messages, grouped=True)[0] == [[[0, 1], [2]]]


def test_a_group_message_is_a_unit_of_its_own_apart_from_the_one_to_one_thread() -> None:
    messages = [
        Message("dm1", PHONE, 100, "a"),
        Message("g1", PHONE, 200, "a", group_id="G1"),
        Message("g2", PHONE, 300, "a", group_id="G1"),
        Message("dm2", PHONE, 150, "a"),
    ]

    units, conversations = units_to_send(messages, grouped=True)

    assert units == [[[3], [0]], [[1]], [[2]]]
    assert conversations == 1


def test_not_grouped_every_message_is_its_own_unit_and_conversations_are_still_counted() -> None:
    messages = [Message("x", PHONE, 1, "a"), Message("y", PHONE, 2, "a"), Message("z", PHONE)]

    assert units_to_send(messages, grouped=False) == ([[[0]], [[1]], [[2]]], 1)


def test_an_empty_or_blank_customer_is_no_conversation() -> None:
    batch = normalise_messages(
        [record("a", customer=""), record("b", customer="  "), record("c", customer=" 1555 ")],
        default_business_phone=PHONE,
    )

    assert [m.customer for m in batch.messages] == [None, None, "1555"]


# -- the rules --


def test_only_the_newest_is_sent_and_the_whole_thread_is_marked() -> None:
    client = FakeClient()
    messages = [record("m2", age=20), record("m3", age=10), record("m1", age=30), "bare"]

    result = run(messages, client)

    assert client.sent == ["m3", "bare"] or client.sent == ["bare", "m3"]
    assert marked(result) == ["m2", "m3", "m1", "bare"]  # input order, as without grouping
    assert result.counts()["requests"] == 2
    assert result.counts()["conversations"] == 1
    assert result.marked_with_newer == 2
    assert result.state == "success"
    assert "2 requests saved" in result.describe_requests()


def test_a_deleted_newest_falls_back_to_the_next_newest() -> None:
    client = FakeClient({"m3": 9099})

    result = run([record("m1", age=30), record("m2", age=20), record("m3", age=10)], client)

    assert client.sent == ["m3", "m2"]
    assert marked(result) == ["m1", "m2"]
    assert failed(result) == {"m3": (9099, "failed")}
    assert "answer 9099 for m3" in result.failed[0].reason, "the failed message keeps its own reason"
    assert result.state == "failed", "a permanent failure still fails the task"


def test_each_message_of_a_thread_that_fails_keeps_its_own_code() -> None:
    client = FakeClient({"m3": 9099, "m2": 9000, "m1": 4242})

    result = run([record("m1", age=30), record("m2", age=20), record("m3", age=10)], client)

    assert client.sent == ["m3", "m2", "m1"]
    assert failed(result) == {"m1": (4242, "failed"), "m2": (9000, "failed"), "m3": (9099, "failed")}
    assert result.counts()["requests"] == 3


def test_a_code_mapped_to_skip_or_fail_moves_on_to_the_next_newest() -> None:
    client = FakeClient({"m3": 9006, "m2": -1})

    result = run(
        [record("m1", age=30), record("m2", age=20), record("m3", age=10)],
        client,
        code_actions={9006: "skip", -1: "fail"},
    )

    assert client.sent == ["m3", "m2", "m1"]
    assert [(o.message.message_id, o.code) for o in result.skipped] == [("m3", 9006)]
    assert failed(result) == {"m2": (-1, "failed")}
    assert marked(result) == ["m1"]


def test_a_transient_failure_leaves_the_thread_failed_and_retryable() -> None:
    client = FakeClient({"m3": -1})

    result = run([record("m1", age=30), record("m2", age=20), record("m3", age=10)], client)

    assert client.sent == ["m3"], "older messages are not sent after a transient failure"
    assert failed(result) == {"m1": (-1, "retryable"), "m2": (-1, "retryable"), "m3": (-1, "retryable")}
    assert all("not sent: m3" in o.reason for o in result.failed if o.message.message_id != "m3")
    assert result.state == "failed_retryable"
    assert result.counts()["requests"] == 1 + RETRIES, "retries are requests too"


def test_a_permanent_failure_then_a_transient_one() -> None:
    client = FakeClient({"m3": 9099, "m2": 9001})

    result = run([record("m1", age=30), record("m2", age=20), record("m3", age=10)], client)

    assert failed(result) == {"m1": (9001, "retryable"), "m2": (9001, "retryable"), "m3": (9099, "failed")}


def test_an_abort_inside_a_thread_leaves_the_rest_not_attempted() -> None:
    client = FakeClient({"a3": 9099, "a2": 1003})
    thread_a = [record("a1", "A", age=30), record("a2", "A", age=20), record("a3", "A", age=10)]
    thread_b = [record("b1", "B", age=30), record("b2", "B", age=20)]

    result = run([*thread_a, *thread_b], client, max_workers=1)

    assert client.sent == ["a3", "a2"]
    assert failed(result) == {"a3": (9099, "failed"), "a2": (1003, "aborted")}
    assert result.abort is not None and result.abort.message.message_id == "a2"
    # Nothing was sent for them and nothing is known: the next run sends them.
    assert [m.message_id for m in result.not_attempted] == ["a1", "b1", "b2"]
    assert result.state == "failed"


def test_too_old_messages_are_skipped_before_grouping() -> None:
    client = FakeClient()
    messages = [record("old", age=40 * DAY), record("fresh1", age=20), record("fresh2", age=10)]

    result = run(messages, client)

    assert client.sent == ["fresh2"]
    assert marked(result) == ["fresh1", "fresh2"]
    assert [o.message.message_id for o in result.skipped] == ["old"]


def test_records_without_customer_or_timestamp_are_sent_on_their_own() -> None:
    client = FakeClient()
    messages = [record("no-from", customer=None), {"id": "no-time", "from": "15550001"}, "bare"]

    result = run(messages, client)

    assert sorted(client.sent) == ["bare", "no-from", "no-time"]
    assert result.counts()["conversations"] == 0
    assert result.marked_with_newer == 0


def test_opting_out_sends_one_request_per_message() -> None:
    client = FakeClient({"m3": 9099})
    messages = [record("m1", age=30), record("m2", age=20), record("m3", age=10)]

    result = run(messages, client, one_request_per_conversation=False, max_workers=1)

    assert client.sent == ["m1", "m2", "m3"]
    assert marked(result) == ["m1", "m2"]
    assert result.counts()["requests"] == 3
    assert result.counts()["conversations"] == 1


def test_grouping_is_on_by_default_and_the_flag_is_checked() -> None:
    assert BatchOptions().one_request_per_conversation is True
    assert BatchOptions().one_request_per_conversation is True
    with pytest.raises(NxCloudConfigError, match="one_request_per_conversation must be True or False"):
        BatchOptions(one_request_per_conversation="no")


# -- for any input --


def test_without_an_age_limit_old_messages_are_sent() -> None:
    client = FakeClient()

    result = run([record("ancient", age=400 * DAY)], client, max_message_age_days=None)

    assert client.sent == ["ancient"]
    assert marked(result) == ["ancient"]
