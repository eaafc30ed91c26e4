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
        (9002, "abort"),
        (9006, "abort"),
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
