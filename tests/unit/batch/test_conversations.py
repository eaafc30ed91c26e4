"""Messages -> units: conversations, groups and same-second tiers (pure logic)."""

from __future__ import annotations

from airflow_provider_nxcloud.batch.conversations import units_to_send
from airflow_provider_nxcloud.batch.messages import Message, normalise_messages
from tests.unit.batch.fakes import OTHER_PHONE, PHONE, record

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
