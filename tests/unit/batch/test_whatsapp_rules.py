"""WhatsApp's rules of what a read marks (groups, same-second ties, usernames), over a fake client.

The property test's oracle is Meta's rules written apart from the code under test: from the raw
records and the ids the fake client answered 0 for, it derives what WhatsApp shows read.
"""

from __future__ import annotations

from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from airflow_provider_nxcloud.batch.options import BatchOptions
from tests.unit.batch.fakes import NOW, PHONE, FakeClient, failed, marked, record, run

# -- the measured cases --


def test_group_messages_are_sent_each_and_never_mark_the_one_to_one_thread() -> None:
    client = FakeClient()
    records = [
        record("dm1", age=40),
        record("dm2", age=30),
        record("g1", age=20, group_id="G1"),
        record("g2", age=10, group_id="G1"),
    ]

    result = run(records, client)

    assert sorted(client.sent) == ["dm2", "g1", "g2"]
    assert sorted(marked(result)) == ["dm1", "dm2", "g1", "g2"]
    assert result.conversations == 1


def test_a_failed_group_message_is_not_marked_by_a_newer_one() -> None:
    client = FakeClient({"g1": 9099})

    result = run([record("g1", age=20, group_id="G1"), record("g2", age=10, group_id="G1")], client)

    assert marked(result) == ["g2"]
    assert failed(result) == {"g1": (9099, "failed")}


def test_every_message_of_the_newest_second_is_sent() -> None:
    client = FakeClient()

    result = run([record("old", age=10), record("tie1"), record("tie2")], client)

    assert sorted(client.sent) == ["tie1", "tie2"]
    assert sorted(marked(result)) == ["old", "tie1", "tie2"]


def test_a_tied_message_that_fails_is_not_marked_by_its_twin() -> None:
    client = FakeClient({"tie1": 9099})

    result = run([record("old", age=10), record("tie1"), record("tie2")], client)

    assert sorted(marked(result)) == ["old", "tie2"]
    assert failed(result) == {"tie1": (9099, "failed")}


def test_the_fallback_to_an_older_second_sends_all_of_its_ties() -> None:
    client = FakeClient({"new": 9099})

    result = run([record("a", age=5), record("b", age=5), record("oldest", age=9), record("new")], client)

    assert sorted(client.sent) == ["a", "b", "new"]
    assert sorted(marked(result)) == ["a", "b", "oldest"]


def test_a_transient_tie_stays_retryable_while_its_marked_twin_marks_the_older() -> None:
    client = FakeClient({"tie1": -1})

    result = run([record("old", age=10), record("tie1"), record("tie2")], client)

    assert sorted(marked(result)) == ["old", "tie2"]
    assert failed(result) == {"tie1": (-1, "retryable")}


def test_username_customers_known_by_user_id_are_one_thread() -> None:
    client = FakeClient()
    records = [
        record(f"u{i}", customer=None, age=10 - i, from_user_id="BR.1502576394655843") for i in range(4)
    ]

    result = run(records, client)

    assert client.sent == ["u3"]
    assert len(marked(result)) == 4


def test_a_webhook_message_without_from_takes_the_one_contacts_user_id() -> None:
    client = FakeClient()
    payload = {
        "business_phone": PHONE,
        "contacts": [{"user_id": "BR.77", "profile": {"username": "ana"}}],
        "messages": [{"id": f"w{i}", "timestamp": str(NOW - 10 + i)} for i in range(3)],
    }

    result = run(payload, client)

    assert client.sent == ["w2"]
    assert sorted(marked(result)) == ["w0", "w1", "w2"]


def test_several_contacts_leave_messages_without_from_on_their_own() -> None:
    client = FakeClient()
    payload = {
        "business_phone": PHONE,
        "contacts": [{"user_id": "BR.1"}, {"user_id": "BR.2"}],
        "messages": [{"id": f"w{i}", "timestamp": str(NOW - 10 + i)} for i in range(3)],
    }

    run(payload, client)

    assert sorted(client.sent) == ["w0", "w1", "w2"]


# -- the property: no false success, and no more requests than the rules need --

CODES = st.sampled_from([0, 0, 0, 0, 9000, 9099, -1, 9006, 1003])
RECORDS = st.lists(
    st.tuples(
        st.integers(0, 25),  # id: repeats are duplicates
        st.sampled_from([PHONE, "8613900000001"]),
        st.sampled_from(
            [None, ("from", "a"), ("from", "b"), ("from_user_id", "BR.1"), ("from_user_id", "a")]
        ),
        st.sampled_from([None, None, "G1", "G2"]),  # group
        st.one_of(st.none(), st.integers(0, 3)),  # age in seconds: small, so ties are common
        st.booleans(),  # a bare id instead of a record
    ),
    max_size=30,
)


def _records(items: list[tuple[Any, ...]]) -> list[Any]:
    out: list[Any] = []
    for number, phone, customer, group, age, bare in items:
        if bare:
            out.append({"id": f"wamid.{number}", "business_phone": phone})
            continue
        fields: dict[str, Any] = {"id": f"wamid.{number}", "business_phone": phone}
        if customer is not None:
            fields[customer[0]] = customer[1]
        if group is not None:
            fields["group_id"] = group
        if age is not None:
            fields["timestamp"] = NOW - age
        out.append(fields)
    return out


def whatsapp_reads(
    records: list[dict[str, Any]], answered_zero: set[tuple[str, str]]
) -> set[tuple[str, str]]:
    """Meta's rules: a marked message is read, and so is every strictly earlier message of its
    one-to-one conversation (business phone, customer), never a group message nor a tie."""
    first: dict[tuple[str, str], dict[str, Any]] = {}
    for fields in records:
        first.setdefault((fields["id"], fields["business_phone"]), fields)

    def thread(fields: dict[str, Any]) -> tuple[str, str] | None:
        customer = fields.get("from") or fields.get("from_user_id")
        if "group_id" in fields or customer is None or "timestamp" not in fields:
            return None
        return fields["business_phone"], customer

    markers = [fields for key, fields in first.items() if key in answered_zero]
    read = {(fields["id"], fields["business_phone"]) for fields in markers}
    for fields in first.values():
        own = thread(fields)
        if own is not None and any(
            thread(marker) == own and fields["timestamp"] < marker["timestamp"] for marker in markers
        ):
            read.add((fields["id"], fields["business_phone"]))
    return read


def units_needed(records: list[dict[str, Any]]) -> int:
    """Requests the rules need when every answer is 0: each one-to-one thread's newest second
    (all of its messages), and every other message alone."""
    first: dict[tuple[str, str], dict[str, Any]] = {}
    for fields in records:
        first.setdefault((fields["id"], fields["business_phone"]), fields)
    threads: dict[tuple[str, str], list[int]] = {}
    alone = 0
    for fields in first.values():
        customer = fields.get("from") or fields.get("from_user_id")
        if "group_id" in fields or customer is None or "timestamp" not in fields:
            alone += 1
        else:
            threads.setdefault((fields["business_phone"], customer), []).append(fields["timestamp"])
    return alone + sum(times.count(max(times)) for times in threads.values())


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    items=RECORDS,
    codes=st.dictionaries(st.integers(0, 25).map(lambda n: f"wamid.{n}"), CODES),
    code_actions=st.sampled_from([None, {9099: "skip"}, {9006: "skip", -1: "fail"}, {9000: "retry"}]),
    grouped=st.booleans(),
    workers=st.integers(1, 4),
)
def test_no_id_is_reported_marked_that_whatsapp_does_not_read(
    items: list[tuple[Any, ...]],
    codes: dict[str, int],
    code_actions: dict[int, Any] | None,
    grouped: bool,
    workers: int,
) -> None:
    records = _records(items)
    client = FakeClient(codes)

    result = run(
        records,
        client,
        max_workers=workers,
        code_actions=code_actions,
        one_request_per_conversation=grouped,
    )

    answered_zero = {(i, str(phone)) for i, phone in client.sent_keys if codes.get(i, 0) == 0}
    truly_read = whatsapp_reads(records, answered_zero)
    reported = {(m.message_id, m.business_phone) for m in result.marked}
    assert reported <= truly_read, "reported marked, but WhatsApp does not show it read"
    fallbacks = sum(1 for message_id in client.sent if codes.get(message_id, 0) != 0)
    distinct = {(r["id"], r["business_phone"]) for r in records}
    assert len(client.sent) <= (units_needed(records) + fallbacks if grouped else len(distinct))
    assert result.counts()["requests"] == client.requests_sent
    if result.abort is None:
        # Nothing lost: every distinct id comes out once, and what WhatsApp read is reported so
        # (an id whose thread was read through a newer message is reported marked, not failed).
        # Only a number that answered 9002/9006 leaves ids unsent, each with its number's reason.
        stopped = result.not_attempted_reasons
        assert all(m.business_phone in stopped for m in result.not_attempted)
        out = [
            *marked(result),
            *(o.message.message_id for o in [*result.skipped, *result.failed]),
            *(m.message_id for m in result.not_attempted),
        ]
        assert sorted(out) == sorted(
            r["id"] for r in {(r["id"], r["business_phone"]): r for r in records}.values()
        )


def test_grouping_off_sends_every_message_and_reports_only_its_own_answer() -> None:
    client = FakeClient({"b": 9099})

    result = run([record("a", age=5), record("b")], client, one_request_per_conversation=False)

    assert sorted(client.sent) == ["a", "b"]
    assert marked(result) == ["a"]
    assert BatchOptions(one_request_per_conversation=False).one_request_per_conversation is False
