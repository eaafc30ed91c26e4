"""One HTTP answer -> NxCloudResponse or a typed error: every branch, without a server."""

from __future__ import annotations

import email.utils
import json

import pytest
from requests.structures import CaseInsensitiveDict

from airflow_provider_nxcloud.client.api import TRANSIENT_CODES, CodeKey
from airflow_provider_nxcloud.client.errors import NxCloudApiError, NxCloudTransientError
from airflow_provider_nxcloud.client.responses import (
    MAX_RETRY_AFTER_SECONDS,
    interpret,
    parse_code,
    retry_after_seconds,
    server_time,
)
from airflow_provider_nxcloud.client.transport import HttpAnswer

NO_OVERRIDES: dict[CodeKey, bool] = {}


def answer(status: int, body: bytes, **headers: str) -> HttpAnswer:
    return HttpAnswer(status, CaseInsensitiveDict({k.replace("_", "-"): v for k, v in headers.items()}), body)


def test_code_zero_is_a_response_with_the_server_time() -> None:
    date = email.utils.formatdate(1_700_000_000, usegmt=True)
    response = interpret(answer(200, b'{"code": 0, "message": "ok", "data": null}', Date=date), NO_OVERRIDES)

    assert (response.code, response.message, response.http_status) == (0, "ok", 200)
    assert response.server_time == 1_700_000_000


def test_a_permanent_code_is_returned_for_the_caller_to_judge() -> None:
    assert interpret(answer(200, b'{"code": 9099, "message": "gone"}'), NO_OVERRIDES).code == 9099


@pytest.mark.parametrize("code", sorted(TRANSIENT_CODES))
def test_retry_codes_raise_transient(code: int) -> None:
    with pytest.raises(NxCloudTransientError) as raised:
        interpret(answer(200, b'{"code": %d, "message": "busy"}' % code), NO_OVERRIDES)
    assert raised.value.code == code


def test_codes_the_user_retries_are_transient_too() -> None:
    with pytest.raises(NxCloudTransientError):
        interpret(answer(200, b'{"code": 9000}'), {9000: True})


@pytest.mark.parametrize("status", [429, 500, 502, 503])
def test_throttling_and_server_errors_are_transient_with_retry_after(status: int) -> None:
    with pytest.raises(NxCloudTransientError) as raised:
        interpret(answer(status, b"Too Many Requests", Retry_After="2"), NO_OVERRIDES)
    assert (raised.value.http_status, raised.value.retry_after) == (status, 2.0)
    assert "Too Many Requests" in str(raised.value)


def test_redirects_are_refused_with_where_they_lead() -> None:
    with pytest.raises(NxCloudApiError, match="redirected to https://elsewhere/, not followed") as raised:
        interpret(answer(302, b"", Location="https://elsewhere/"), NO_OVERRIDES)
    assert not isinstance(raised.value, NxCloudTransientError)


def test_a_page_that_is_not_nxcloud_json_is_transient_when_200_and_final_when_4xx() -> None:
    with pytest.raises(NxCloudTransientError, match="HTTP 200 without an NXCloud JSON code: <html>"):
        interpret(answer(200, b"<html>proxy</html>"), NO_OVERRIDES)
    with pytest.raises(NxCloudApiError, match="HTTP 404 without an NXCloud JSON code") as raised:
        interpret(answer(404, b"Not Found"), NO_OVERRIDES)
    assert not isinstance(raised.value, NxCloudTransientError)


@pytest.mark.parametrize("status", [408, 425])
def test_request_timeout_and_too_early_without_json_are_transient(status: int) -> None:
    with pytest.raises(NxCloudTransientError, match=f"HTTP {status} without an NXCloud JSON code"):
        interpret(answer(status, b"Request Timeout"), NO_OVERRIDES)


@pytest.mark.parametrize(
    ("value", "code"),
    [
        (0, 0),
        ("0", 0),
        (" 9099 ", 9099),
        (9001.0, 9001),
        (True, None),
        (1.5, None),
        ("x", None),
        (None, None),
    ],
)
def test_parse_code(value: object, code: int | None) -> None:
    assert parse_code(value) == code


@pytest.mark.parametrize(
    ("header", "seconds"),
    [
        (None, None),
        ("", None),
        ("3", 3.0),
        ("-5", 0.0),
        ("nan", 0.0),
        ("99999", MAX_RETRY_AFTER_SECONDS),
        ("inf", MAX_RETRY_AFTER_SECONDS),
        ("soon", None),
        ("Mon, 32 Foo 20xx 99:99:99 GMT", None),
        ("Fri, 01 Jan 2100 00:00:00 GMT", MAX_RETRY_AFTER_SECONDS),
        ("Thu, 01 Jan 1970 00:00:00 GMT", 0.0),
    ],
)
def test_retry_after_seconds(header: str | None, seconds: float | None) -> None:
    assert retry_after_seconds(header) == seconds


def test_retry_after_as_an_http_date_counts_from_now() -> None:
    import time

    seconds = retry_after_seconds(email.utils.formatdate(time.time() + 30, usegmt=True))

    assert seconds is not None and 25 <= seconds <= 30


def test_server_time_ignores_what_is_not_a_date() -> None:
    assert server_time(None) is None
    assert server_time("yesterday") is None


def documented_9099(meta: object, text: str) -> bytes:
    error = {
        "code": meta,
        "message": text,
        "type": "OAuthException",
        "fbtrace_id": "AmCuD7sOjcEDetBNhlT2cJm",
        "error_data": {
            "messaging_product": "whatsapp",
            "details": "Cloud API message throughput has been reached",
        },
    }
    return json.dumps({"code": 9099, "message": "WhatsApp error", "data": {"error": error}}).encode()


@pytest.mark.parametrize("meta", [130429, "130429"])
def test_a_documented_meta_throttle_is_transient_and_carries_metas_fields(meta: object) -> None:
    with pytest.raises(NxCloudTransientError) as raised:
        interpret(answer(200, documented_9099(meta, "(#130429) Rate limit hit")), NO_OVERRIDES)

    error = raised.value
    assert (error.code, error.meta_code, error.fbtrace_id, error.throttle) == (
        9099, 130429, "AmCuD7sOjcEDetBNhlT2cJm", "business_phone"
    )  # fmt: skip
    assert "Meta 130429: (#130429) Rate limit hit; details: Cloud API message throughput" in str(error)
    assert "AmCuD7" not in str(error), "the trace id goes to the log only"


def test_a_permanent_meta_error_is_returned_with_metas_error() -> None:
    response = interpret(answer(200, documented_9099("131009", "(#131009) Parameter value is not valid")), {})

    assert response.code == 9099
    assert response.meta is not None and response.meta.code == 131009


def test_a_meta_override_wins_over_the_9099_one() -> None:
    body = documented_9099(131009, "(#131009) Parameter value is not valid")
    with pytest.raises(NxCloudTransientError):
        interpret(answer(200, body), {9099: False, "meta:131009": True})
    assert (
        interpret(answer(200, documented_9099(130429, "")), {9099: True, "meta:130429": False}).code == 9099
    )
