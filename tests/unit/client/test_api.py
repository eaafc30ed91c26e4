"""``classify``: the one place that says what NXCloud's answer means."""

from __future__ import annotations

import pytest

from airflow_provider_nxcloud.client.api import classify


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
