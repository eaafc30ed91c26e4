from __future__ import annotations

from datetime import datetime, timezone
from typing import Any

import pytest

from airflow_provider_nxcloud.batch.messages import Message, normalise_messages
from airflow_provider_nxcloud.client.errors import NxCloudConfigError

PHONE = "8613800000000"
NOW = 1_770_000_000.0
DAY = 86_400


def ids(value: Any, **kwargs: Any) -> list[tuple[str, str]]:
    batch = normalise_messages(value, default_business_phone=PHONE, now=NOW, **kwargs)
    return [(m.message_id, m.business_phone) for m in batch.messages]


@pytest.mark.parametrize(
    "value",
    [
        ["a", "b"],
        ("a", "b"),
        [["a"], ["b"]],
        [["a", None], None, [[["b"]]]],
        '["a", "b"]',
        "['a', 'b']",
        "('a', 'b')",
        [{"id": "a"}, {"message_id": "b"}],
    ],
)
def test_accepted_shapes_flatten_to_the_same_messages(value: Any) -> None:
    assert ids(value) == [("a", PHONE), ("b", PHONE)]


def test_set_input_is_accepted() -> None:
    assert sorted(ids({"b", "a"})) == [("a", PHONE), ("b", PHONE)]


def test_single_id_string_and_trimming() -> None:
    assert ids("  wamid.1 ") == [("wamid.1", PHONE)]


@pytest.mark.parametrize("value", [None, [], "", "[]", [[], None]])
def test_nothing_to_do(value: Any) -> None:
    assert ids(value) == []


def test_webhook_payload_takes_its_business_phone() -> None:
    payload = {
        "merchant_phone": "+86 138-0000-0001",
        "messaging_product": "whatsapp",
        "contacts": [{"wa_id": "15550001", "profile": {"name": "A"}}],
        "messages": [
            {"id": "wamid.w1", "from": "15550001", "timestamp": str(int(NOW)), "type": "text"},
            {"id": "wamid.w2", "from": "15550001", "timestamp": int(NOW), "business_phone": "8613800000002"},
        ],
    }
    batch = normalise_messages([payload], now=NOW)

    assert batch.messages == [
        Message("wamid.w1", "8613800000001", int(NOW), "15550001"),
        Message("wamid.w2", "8613800000002", int(NOW), "15550001"),
    ]


def test_record_phone_beats_operator_default() -> None:
    assert ids([{"id": "a", "business_phone": "8613800000009"}, "b"]) == [
        ("a", "8613800000009"),
        ("b", PHONE),
    ]


def test_duplicates_are_sent_once_and_counted() -> None:
    batch = normalise_messages(["a", "a ", {"id": "a"}, "b"], default_business_phone=PHONE)

    assert [m.message_id for m in batch.messages] == ["a", "b"]
    assert batch.duplicates == 2


def test_same_id_on_two_business_phones_is_two_messages() -> None:
    value = [{"id": "a", "business_phone": "8613800000001"}, {"id": "a", "business_phone": "8613800000002"}]

    assert len(normalise_messages(value).messages) == 2


def test_old_messages_are_set_aside_not_sent() -> None:
    records = [
        {"id": "fresh", "timestamp": NOW - 29 * DAY},
        {"id": "old", "timestamp": str(int(NOW - 31 * DAY))},
        {"id": "old_ms", "timestamp": int((NOW - 40 * DAY) * 1000)},
        {"id": "old_dt", "timestamp": datetime.fromtimestamp(NOW - 90 * DAY, tz=timezone.utc)},
        {"id": "no_ts"},
    ]
    batch = normalise_messages(records, default_business_phone=PHONE, now=NOW)

    assert [m.message_id for m in batch.messages] == ["fresh", "no_ts"]
    assert [m.message_id for m in batch.too_old] == ["old", "old_ms", "old_dt"]


def test_age_check_can_be_disabled() -> None:
    old = [{"id": "old", "timestamp": NOW - 400 * DAY}]

    assert ids(old, max_age_days=None) == [("old", PHONE)]


def test_fallback_phone_is_looked_up_once_and_only_when_needed() -> None:
    calls: list[int] = []

    def lookup() -> str:
        calls.append(1)
        return PHONE

    normalise_messages([{"id": "a", "business_phone": PHONE}], fallback_business_phone=lookup)
    assert calls == []
    batch = normalise_messages(["a", "b", "c"], fallback_business_phone=lookup)
    assert calls == [1]
    assert {m.business_phone for m in batch.messages} == {PHONE}


@pytest.mark.parametrize(
    ("value", "error"),
    [
        (["a", 42], r"^message_ids\[1\]: expected a message id string or a record with 'id', got int 42$"),
        ([["a", ["b", 3.5]]], r"^message_ids\[0\]\[1\]\[1\]: expected .* got float 3.5$"),
        (["a", ""], r"^message_ids\[1\]: empty message id"),
        ([{"name": "x"}], r"^message_ids\[0\]: record has no 'id' or 'message_id' \(keys: \['name'\]\)$"),
        ([{"id": 7}], r"^message_ids\[0\]\.id: expected a message id string, got int 7$"),
        (["a b"], r"^message_ids\[0\]: message id 'a b' contains whitespace"),
        (["x" * 600], r"^message_ids\[0\]: message id has 600 characters"),
        ([{"id": "a", "timestamp": "yesterday"}], r"^message_ids\[0\]\.timestamp: expected Unix seconds"),
        ([{"id": "a", "business_phone": "call me"}], r"^message_ids\[0\]\.business_phone: 'call me' is not"),
        ("[1, 2", r"^message_ids: the string '\[1, 2' looks like a list but is neither JSON"),
        ({"messages": [{"id": "a"}, 5]}, r"^message_ids\.messages\[1\]: expected"),
        (b"abc", r"^message_ids: expected .* got bytes"),
    ],
)
def test_bad_input_gives_one_line_error_naming_position(value: Any, error: str) -> None:
    with pytest.raises(NxCloudConfigError, match=error) as raised:
        normalise_messages(value, default_business_phone=PHONE)
    assert "\n" not in str(raised.value)


def test_missing_business_phone_is_an_input_error() -> None:
    with pytest.raises(
        NxCloudConfigError, match=r"^message_ids\[0\]: no business_phone; set it on the record"
    ):
        normalise_messages(["a"], fallback_business_phone=lambda: None)


def test_one_bad_item_rejects_the_whole_input_before_anything() -> None:
    good_then_bad = [*(f"id{i}" for i in range(1000)), None, {"id": None}]

    with pytest.raises(NxCloudConfigError, match=r"message_ids\[1001\]"):
        normalise_messages(good_then_bad, default_business_phone=PHONE)


def test_deep_nesting_does_not_overflow_the_stack() -> None:
    value: Any = "deep"
    for _ in range(5000):
        value = [value]

    assert ids(value) == [("deep", PHONE)]
