"""One request per conversation over HTTP, against a sandbox that knows the customers' threads."""

from __future__ import annotations

import time
import urllib.error
from typing import Any

import pytest

from airflow_provider_nxcloud.hooks.nxcloud import NxCloudHook
from airflow_provider_nxcloud.testing import DEFAULT_BUSINESS_PHONE, Faults, NxCloudSandbox, SandboxClient

PHONE = DEFAULT_BUSINESS_PHONE
NOW = int(time.time())


def thread(customer: str, count: int, *, prefix: str | None = None) -> list[dict[str, Any]]:
    """``count`` messages from ``customer``, oldest first, a minute apart."""
    prefix = prefix or f"wamid.{customer}-"
    return [
        {"id": f"{prefix}{n}", "business_phone": PHONE, "from": customer, "timestamp": NOW - 60 * (count - n)}
        for n in range(count)
    ]


@pytest.fixture
def inbox() -> list[dict[str, Any]]:
    return [*thread("15550001", 5), *thread("15550002", 3), *thread("15550003", 1)]


@pytest.fixture
def seeded(inbox: list[dict[str, Any]], monkeypatch: pytest.MonkeyPatch) -> Any:
    with NxCloudSandbox(inbound=inbox) as sandbox:
        monkeypatch.setenv("AIRFLOW_CONN_NXCLOUD_DEFAULT", sandbox.connection_json())
        yield sandbox


def ids(records: list[dict[str, Any]]) -> set[str]:
    return {r["id"] for r in records}


def test_one_request_per_conversation_reads_every_thread(
    seeded: NxCloudSandbox, inbox: list[dict[str, Any]]
) -> None:
    result = NxCloudHook().mark_messages_as_read(inbox)

    assert result.state == "success"
    assert {r.message_id for r in seeded.requests} == {
        "wamid.15550001-4",
        "wamid.15550002-2",
        "wamid.15550003-0",
    }
    assert seeded.read_ids() == ids(inbox), "what the customers see: every message read"
    assert sorted(m.message_id for m in result.marked) == sorted(ids(inbox))
    counts = result.counts()
    assert (counts["requests"], counts["conversations"]) == (3, 3) == (len(seeded.requests), 3)


def test_the_result_says_which_newer_message_marked_each_id(monkeypatch: pytest.MonkeyPatch) -> None:
    threads = {customer: thread(customer, 4) for customer in ("15550011", "15550012", "15550013")}
    inbox = [record for records in threads.values() for record in records]
    with NxCloudSandbox(inbound=inbox) as sandbox:
        monkeypatch.setenv("AIRFLOW_CONN_NXCLOUD_DEFAULT", sandbox.connection_json())

        document = NxCloudHook().mark_messages_as_read(inbox).to_dict()

        newest = {records[-1]["id"]: records for records in threads.values()}
        assert {r.message_id for r in sandbox.requests} == set(newest)
        assert sorted(document["marked"]) == sorted(ids(inbox))
        assert document["marked_with_newer"] == {
            r["id"]: newest_id for newest_id, records in newest.items() for r in records[:-1]
        }
        assert document["counts"]["marked_with_newer"] == 9
        assert (document["counts"]["requests"], document["counts"]["marked"]) == (3, 12)
        assert sandbox.read_ids() == ids(inbox)


def test_a_deleted_newest_message_cannot_leave_its_thread_unread(
    inbox: list[dict[str, Any]], monkeypatch: pytest.MonkeyPatch
) -> None:
    deleted = "wamid.15550001-4"
    with NxCloudSandbox(inbound=[r for r in inbox if r["id"] != deleted]) as sandbox:
        monkeypatch.setenv("AIRFLOW_CONN_NXCLOUD_DEFAULT", sandbox.connection_json())

        result = NxCloudHook().mark_messages_as_read(inbox)

        assert [(f.message.message_id, f.code) for f in result.failed] == [(deleted, 9099)]
        assert "not found" in result.failed[0].reason
        assert sandbox.read_ids() == ids(inbox) - {deleted}
        assert result.counts()["requests"] == 4 == len(sandbox.requests)


def test_a_transient_failure_leaves_the_thread_for_the_next_run(
    seeded: NxCloudSandbox, inbox: list[dict[str, Any]]
) -> None:
    seeded.set_faults(Faults(scripts={"wamid.15550002-2": ["503", "503"]}))
    hook = NxCloudHook(max_retries=1, retry_wait=(0.0, 0.0))

    result = hook.mark_messages_as_read(inbox)

    assert result.state == "failed_retryable"
    assert sorted(f.message.message_id for f in result.failed) == sorted(ids(thread("15550002", 3)))
    assert all(f.status == "retryable" for f in result.failed)
    assert seeded.read_ids() == ids(inbox) - ids(thread("15550002", 3))
    assert result.counts()["requests"] == 4 == len(seeded.requests), "the retry is a request too"

    again = hook.mark_messages_as_read([r for r in inbox if r["from"] == "15550002"])

    assert again.state == "success"
    assert seeded.read_ids() == ids(inbox)


def test_opting_out_sends_one_request_per_message(
    seeded: NxCloudSandbox, inbox: list[dict[str, Any]]
) -> None:
    result = NxCloudHook().mark_messages_as_read(inbox, one_request_per_conversation=False)

    assert result.state == "success"
    assert seeded.marked_ids() == ids(inbox) == seeded.read_ids()
    assert result.counts()["requests"] == len(inbox) == len(seeded.requests)
    assert result.counts()["conversations"] == 3


def test_the_operator_groups_by_default_and_opts_out(
    seeded: NxCloudSandbox, inbox: list[dict[str, Any]]
) -> None:
    from airflow_provider_nxcloud.operators.whatsapp import MarkWhatsAppReadOperator

    grouped = MarkWhatsAppReadOperator(task_id="mark", message_ids=inbox).execute(context={})
    assert grouped["counts"]["requests"] == 3
    seeded.reset()

    one_each = MarkWhatsAppReadOperator(
        task_id="mark", message_ids=inbox, one_request_per_conversation=False
    ).execute(context={})

    assert one_each["counts"]["requests"] == len(inbox)
    assert one_each["marked"] == grouped["marked"], "the same result, in the same shape"


def test_the_task_log_says_how_many_requests_grouping_saved(
    seeded: NxCloudSandbox, inbox: list[dict[str, Any]], capfd: pytest.CaptureFixture[str]
) -> None:
    from airflow_provider_nxcloud.operators.whatsapp import MarkWhatsAppReadOperator

    MarkWhatsAppReadOperator(task_id="mark", message_ids=inbox).execute(context={})

    # The task logger writes through Airflow's structlog set-up, to the output, not to caplog.
    output = capfd.readouterr()
    assert (
        "NXCloud: 3 requests (retries included) for 3 conversations; 6 requests saved by marking "
        "messages through a newer one of their conversation"
    ) in output.out + output.err


# -- the sandbox's conversations --


def test_marking_one_message_reads_the_earlier_ones_of_its_conversation_only(
    seeded: NxCloudSandbox,
) -> None:
    hook = NxCloudHook()

    hook.mark_message_as_read("wamid.15550001-2")

    assert seeded.marked_ids() == {"wamid.15550001-2"}
    assert seeded.read_ids() == {"wamid.15550001-0", "wamid.15550001-1", "wamid.15550001-2"}
    hook.mark_message_as_read("wamid.15550001-0")  # an older one changes nothing
    assert seeded.read_ids() == {"wamid.15550001-0", "wamid.15550001-1", "wamid.15550001-2"}


def test_a_seeded_sandbox_answers_9099_for_an_unknown_id(seeded: NxCloudSandbox) -> None:
    from airflow_provider_nxcloud.client.errors import NxCloudApiError

    with pytest.raises(NxCloudApiError) as error:
        NxCloudHook().mark_message_as_read("wamid.never-sent")

    assert error.value.code == 9099
    assert seeded.read_ids() == set()


def test_the_control_api_seeds_and_reads_conversations(inbox: list[dict[str, Any]], monkeypatch: Any) -> None:
    other_phone = "8613900000001"
    with NxCloudSandbox() as sandbox:
        monkeypatch.setenv("AIRFLOW_CONN_NXCLOUD_DEFAULT", sandbox.connection_json())
        client = SandboxClient(sandbox.url)
        client.add_inbound(inbox)
        client.add_inbound([{**inbox[0], "business_phone": other_phone}])  # its phone becomes known

        NxCloudHook().mark_messages_as_read([*inbox, {**inbox[0], "business_phone": other_phone}])

        assert client.read_ids() == ids(inbox)
        assert client.read_ids(business_phone=other_phone) == {inbox[0]["id"]}
        client.reset()
        assert client.read_ids() == set(), "reset forgets what was read, not the inbound messages"
        with pytest.raises(urllib.error.HTTPError, match="400"):
            client.add_inbound([{"id": "wamid.x", "from": "1"}])
