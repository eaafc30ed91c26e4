"""``classify`` and ``read_meta_error``: the one place that says what NXCloud's answer means."""

from __future__ import annotations

import re

import pytest

from airflow_provider_nxcloud.client.api import (
    CONFIGURATION_CODES,
    META_THROTTLES,
    META_TRANSIENT,
    NUMBER_CODES,
    TRANSIENT_CODES,
    CodeKey,
    MetaError,
    classify,
    explain,
    read_meta_error,
    setting_for,
)


@pytest.mark.parametrize(
    ("code", "meaning"),
    [
        (0, "marked"),
        (-1, "transient"),
        (9001, "transient"),
        (1003, "abort"),
        (1004, "abort"),
        (1099, "abort"),
        (9003, "abort"),
        (9004, "abort"),
        (9005, "abort"),
        (9002, "number"),
        (9006, "number"),
        (9007, "transient"),
        (None, "abort"),
        (9000, "message"),
        (9099, "message"),
        (4242, "message"),
    ],
)
def test_each_code_has_one_meaning(code: int | None, meaning: str) -> None:
    assert classify(code).meaning == meaning


def test_every_meaning_comes_with_a_hint_for_the_log() -> None:
    assert "Access Secret" in classify(1003).hint
    assert classify(4242).hint == "unknown NXCloud code"
    assert "authentication" in classify(1042).hint


@pytest.mark.parametrize(
    ("meta", "scope"),
    [(4, "account"), (80007, "account"), (130429, "business_phone"), (131056, "customer")],
)
def test_metas_throttles_passed_through_as_9099_are_transient(meta: int, scope: str) -> None:
    meaning = classify(9099, f"(#{meta}) Rate limit hit")

    assert (meaning.meaning, meaning.throttle) == ("transient", scope)


@pytest.mark.parametrize(
    "message", ["(#131009) Parameter value is not valid", "(#100) Invalid parameter", "no code", ""]
)
def test_other_meta_errors_stay_failures_of_the_message(message: str) -> None:
    meaning = classify(9099, message)

    assert (meaning.meaning, meaning.throttle) == ("message", None)


def test_a_meta_code_means_nothing_outside_9099() -> None:
    assert classify(9000, "(#130429) Rate limit hit").meaning == "message"


def test_metas_transient_errors_are_retried_without_slowing_down() -> None:
    for meta in (2, 131000, 131016, 133004, 131057):
        meaning = classify(9099, "WhatsApp error", meta=meta)

        assert (meaning.meaning, meaning.throttle) == ("transient", None), meta


def test_metas_code_decides_over_the_text_of_the_message() -> None:
    assert classify(9099, "(#130429) Rate limit hit", meta=131009).meaning == "message"
    assert classify(9099, "WhatsApp error", meta=130429).throttle == "business_phone"


# -- Meta's error in a 9099, every plausible shape --

DOCUMENTED = {
    "error": {
        "code": 131009,
        "message": "(#131009) Parameter value is not valid",
        "type": "OAuthException",
        "fbtrace_id": "AmCuD7sOjcEDetBNhlT2cJm",
        "error_data": {"messaging_product": "whatsapp", "details": "message_id wamid.x not found"},
    }
}


def with_code(code: object) -> dict[str, object]:
    return {"error": {**DOCUMENTED["error"], "code": code}}


def test_the_documented_shape_is_read_whole() -> None:
    meta = read_meta_error(9099, "WhatsApp error", DOCUMENTED)

    assert meta == MetaError(
        131009,
        "(#131009) Parameter value is not valid",
        "message_id wamid.x not found",
        "AmCuD7sOjcEDetBNhlT2cJm",
    )
    assert str(meta) == (
        "Meta 131009: (#131009) Parameter value is not valid; details: message_id wamid.x not found"
    )
    assert "AmCuD7" not in str(meta), "the trace id is for the log, not the result"


@pytest.mark.parametrize(
    ("data", "message", "code"),
    [
        (with_code(130429), "WhatsApp error", 130429),
        (with_code("130429"), "WhatsApp error", 130429),
        (with_code(" 130429 "), "WhatsApp error", 130429),
        (with_code(130429.0), "WhatsApp error", 130429),
        # Not a number: the (#code) of Meta's message stands in.
        (with_code("abc"), "WhatsApp error", 131009),
        (with_code(True), "WhatsApp error", 131009),
        (with_code(None), "WhatsApp error", 131009),
        ({"error": {"message": "(#4) Application request limit reached"}}, "WhatsApp error", 4),
        # The older shape, or a gateway: Meta's text in the top-level message.
        (None, "(#130429) Rate limit hit", 130429),
        ({}, "(#80007) Rate limit issues", 80007),
        ({"error": None}, "(#131056) pair rate limit hit", 131056),
        ({"error": "oops"}, "(#2) Service temporarily unavailable", 2),
        ("not an object", "(#131000) Something went wrong", 131000),
        # data.error.code wins over a message that says otherwise.
        (with_code("130429"), "(#131009) Parameter value is not valid", 130429),
    ],
)
def test_metas_code_is_read_from_where_it_can_be(data: object, message: str, code: int) -> None:
    meta = read_meta_error(9099, message, data)

    assert meta is not None and meta.code == code


def test_the_text_shape_keeps_metas_text_as_the_reason() -> None:
    meta = read_meta_error(9099, "(#130429) Rate limit hit", None)

    assert meta == MetaError(130429, "(#130429) Rate limit hit")


@pytest.mark.parametrize(
    ("data", "message"),
    [(None, "WhatsApp error"), ({}, ""), ({"error": {}}, "WhatsApp error"), ({"error": {"code": "abc"}}, "")],
)
def test_a_9099_without_metas_code_has_none(data: object, message: str) -> None:
    meta = read_meta_error(9099, message, data)

    assert meta is None or meta.code is None
    assert classify(9099, message, meta=None).meaning == "message"


def test_only_a_9099_carries_a_meta_error() -> None:
    assert read_meta_error(9000, "(#130429) Rate limit hit", DOCUMENTED) is None


def test_a_meta_key_wins_over_the_9099_key() -> None:
    table: dict[CodeKey, str] = {9099: "skip", "meta:130429": "retry"}

    assert setting_for(table, 9099, 130429) == "retry"
    assert setting_for(table, 9099, 131009) == "skip"
    assert setting_for(table, 9099, None) == "skip"
    assert setting_for({"meta:130429": "retry"}, 9000, 130429) is None, "Meta keys are for 9099 only"
    assert setting_for(table, None, None) is None


def test_the_explanation_says_what_meta_said_and_what_to_do() -> None:
    meta = read_meta_error(9099, "WhatsApp error", DOCUMENTED)

    text = explain(9099, "WhatsApp error", meta)

    assert text.startswith("Meta 131009: (#131009) Parameter value is not valid; details: message_id")
    assert "WhatsApp does not know this message id" in text
    assert explain(9000, "Parameter exception", None) == (
        "Parameter exception (parameter exception: the message id or another field is invalid)"
    )


def _outcome_rows() -> list[str]:
    """The first cell (the answer) of each row of the operator page's outcomes table."""
    from tests.docs import DOCS

    page = (DOCS / "operators" / "mark_read.rst").read_text()
    table = page.split(".. _mark-read-outcomes:")[1].split(".. _mark-read-meta-errors:")[0]
    return [row.split("\n     - ")[0] for row in table.split("\n   * - ")[1:]]


@pytest.mark.parametrize(
    ("marker", "codes"),
    [
        ("9001", TRANSIENT_CODES),
        ("131056", {*META_THROTTLES, *META_TRANSIENT}),
        ("9005", CONFIGURATION_CODES),
        ("9002", NUMBER_CODES),
    ],
)
def test_the_outcomes_table_names_the_codes_classify_knows(marker: str, codes: set[int]) -> None:
    # The docs list codes that api.py defines: a code added here must reach the table's row.
    (row,) = [r for r in _outcome_rows() if re.search(rf"(?<![\d-]){marker}(?!\d)", r)]
    named = {int(n) for n in re.findall(r"(?<![\d.])-?\d+(?![\d.])", row)}
    assert set(codes) <= named, f"the outcomes table's row for {marker} misses {set(codes) - named}"
