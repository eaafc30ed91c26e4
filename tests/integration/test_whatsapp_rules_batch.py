"""WhatsApp's rules end to end: the batch over HTTP against a sandbox that reads as WhatsApp does.

Each case is one of the issue's measured false successes or wasted requests. What the batch
reports marked must be exactly what the sandbox shows read.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any

import pytest

from airflow_provider_nxcloud.hooks.nxcloud import NxCloudHook
from airflow_provider_nxcloud.testing import DEFAULT_BUSINESS_PHONE, Faults, NxCloudSandbox

if TYPE_CHECKING:
    from collections.abc import Iterator

PHONE = DEFAULT_BUSINESS_PHONE
NOW = int(time.time())


def message(message_id: str, age: int, **fields: Any) -> dict[str, Any]:
    return {"id": message_id, "business_phone": PHONE, "timestamp": NOW - age, **fields}


@pytest.fixture
def sandbox(monkeypatch: pytest.MonkeyPatch) -> Iterator[NxCloudSandbox]:
    with NxCloudSandbox() as running:
        monkeypatch.setenv("AIRFLOW_CONN_NXCLOUD_DEFAULT", running.connection_json(max_retries=1))
        yield running


def mark(sandbox: NxCloudSandbox, inbox: list[dict[str, Any]]) -> tuple[set[str], set[str]]:
    """(ids reported marked, ids the sandbox shows read) after marking ``inbox``."""
    sandbox.add_inbound(inbox)
    result = NxCloudHook(retry_wait=(0.01, 0.05)).mark_messages_as_read(inbox)
    return {m.message_id for m in result.marked}, sandbox.read_ids()


def test_group_messages_are_marked_each_apart_from_the_thread(sandbox: NxCloudSandbox) -> None:
    inbox = [
        message("dm1", 40, **{"from": "15550001"}),
        message("dm2", 30, **{"from": "15550001"}),
        message("g1", 20, **{"from": "15550001", "group_id": "G1"}),
        message("g2", 10, **{"from": "15550001", "group_id": "G1"}),
    ]

    reported, read = mark(sandbox, inbox)

    assert reported == read == {"dm1", "dm2", "g1", "g2"}
    assert sorted(r.message_id for r in sandbox.requests) == ["dm2", "g1", "g2"]


def test_a_tie_in_the_newest_second_is_sent_each(sandbox: NxCloudSandbox) -> None:
    inbox = [message(m, age, **{"from": "15550001"}) for m, age in (("old", 10), ("tie1", 0), ("tie2", 0))]

    reported, read = mark(sandbox, inbox)

    assert reported == read == {"old", "tie1", "tie2"}
    assert len(sandbox.requests) == 2


def test_a_failed_tie_is_reported_failed_and_stays_unread(sandbox: NxCloudSandbox) -> None:
    sandbox.set_faults(Faults(codes={"tie1": "meta:131009"}))
    inbox = [message(m, age, **{"from": "15550001"}) for m, age in (("old", 10), ("tie1", 0), ("tie2", 0))]

    reported, read = mark(sandbox, inbox)

    assert reported == read == {"old", "tie2"}


def test_username_customers_are_one_request(sandbox: NxCloudSandbox) -> None:
    inbox = [message(f"u{i}", 10 - i, from_user_id="BR.1502576394655843") for i in range(4)]

    reported, read = mark(sandbox, inbox)

    assert reported == read == {"u0", "u1", "u2", "u3"}
    assert [r.message_id for r in sandbox.requests] == ["u3"]
