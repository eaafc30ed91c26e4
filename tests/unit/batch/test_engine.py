"""The engine over a fake client: one request per conversation, fallbacks, aborts (pure logic).

Over HTTP against the sandbox: tests/integration/test_conversations_sandbox.py.
"""

from __future__ import annotations

import threading
from typing import TYPE_CHECKING, Any

import pytest

from airflow_provider_nxcloud.batch.options import BatchOptions
from airflow_provider_nxcloud.client.errors import NxCloudConfigError
from tests.support import wait_until
from tests.unit.batch.fakes import DAY, OTHER_PHONE, PHONE, RETRIES, FakeClient, failed, marked, record, run

if TYPE_CHECKING:
    from airflow_provider_nxcloud.batch.results import BatchResult

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


def test_a_stalled_business_number_holds_only_its_share_of_the_threads() -> None:
    # Number OTHER's requests hang (as behind Meta's 130429 limiter): the first number's
    # messages must all be marked meanwhile, by the threads that are not OTHER's share.
    release = threading.Event()

    class StallingClient(FakeClient):
        def mark_message_as_read(
            self, message_id: str, business_phone: str | None = None, **kw: Any
        ) -> object:
            if business_phone == OTHER_PHONE:
                release.wait(30)
            return super().mark_message_as_read(message_id, business_phone, **kw)

    client = StallingClient()
    messages = [
        *({"id": f"slow{i}", "business_phone": OTHER_PHONE} for i in range(8)),
        *({"id": f"fast{i}", "business_phone": PHONE} for i in range(8)),
    ]
    done: list[BatchResult] = []
    runner = threading.Thread(target=lambda: done.append(run(messages, client, max_workers=4)))
    runner.start()

    fast_sent = wait_until(lambda: sum(m.startswith("fast") for m in client.sent) == 8, timeout=20)
    release.set()
    runner.join(30)
    assert fast_sent, "the other number's messages waited behind the stalled number"
    assert done and len(done[0].marked) == 16
