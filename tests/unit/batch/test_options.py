from __future__ import annotations

import pytest

from airflow_provider_nxcloud.batch.messages import Message
from airflow_provider_nxcloud.batch.options import BatchOptions, validate_code_actions
from airflow_provider_nxcloud.batch.results import BatchResult, Outcome
from airflow_provider_nxcloud.client.errors import NxCloudConfigError

MESSAGE = Message("wamid.1", "8613800000000")


@pytest.mark.parametrize(
    ("code", "transient", "status"),
    [
        (0, False, "marked"),
        (-1, True, "retryable"),
        (9001, True, "retryable"),
        (None, True, "retryable"),  # HTTP 429/5xx, network, timeouts
        (1001, False, "aborted"),
        (1003, False, "aborted"),
        (1004, False, "aborted"),
        (1099, False, "aborted"),
        (9002, False, "number_aborted"),
        (9003, False, "aborted"),
        (9004, False, "aborted"),
        (9005, False, "aborted"),
        (9006, False, "number_aborted"),
        (9007, True, "retryable"),
        (None, False, "aborted"),  # redirect, 404, TLS: the same for every message
        (9000, False, "failed"),
        (9099, False, "failed"),
        (4242, False, "failed"),
    ],
)
def test_default_policy_table(code: int | None, transient: bool, status: str) -> None:
    assert BatchOptions().decide(code, transient=transient) == status


def test_code_actions_override_the_policy() -> None:
    options = BatchOptions(code_actions={9006: "skip", 9099: "retry", -1: "fail"})

    assert options.decide(9006, transient=False) == "skipped"
    assert options.decide(9099, transient=False) == "retryable"
    assert options.decide(-1, transient=False) == "failed"
    assert options.decide(9000, transient=False) == "failed"


def test_overrides_decide_what_the_client_retries() -> None:
    options = BatchOptions(code_actions={9000: "retry", -1: "fail", 9006: "skip"})

    assert options.retry_overrides == {9000: True, -1: False, 9006: False}


def test_code_actions_accept_string_codes_from_json() -> None:
    assert validate_code_actions({"9006": "skip", "-1": "fail"}) == {9006: "skip", -1: "fail"}


@pytest.mark.parametrize(
    ("value", "error"),
    [
        ({9006: "ignore"}, r"code_actions\[9006\]: 'ignore' is not an action; use 'retry', 'skip' or 'fail'"),
        ({"abc": "skip"}, r"code_actions: key 'abc' is not an NXCloud code"),
        ({True: "skip"}, r"code_actions: key True is not an NXCloud code"),
        ({0: "skip"}, r"code 0 means marked"),
        (["9006"], r"code_actions must be a dict"),
    ],
)
def test_bad_code_actions(value: object, error: str) -> None:
    with pytest.raises(NxCloudConfigError, match=error):
        validate_code_actions(value)


def outcome(status: str, code: int | None = None) -> Outcome:
    return Outcome(MESSAGE, status, code, "reason")  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("result", "state"),
    [
        (BatchResult(), "skipped"),
        (BatchResult(skipped=[outcome("skipped", 9006)]), "skipped"),
        (BatchResult(marked=[MESSAGE], skipped=[outcome("skipped")]), "success"),
        (BatchResult(marked=[MESSAGE], failed=[outcome("retryable", -1)]), "failed_retryable"),
        (BatchResult(marked=[MESSAGE], failed=[outcome("retryable", -1), outcome("failed", 9000)]), "failed"),
        (BatchResult(failed=[outcome("aborted", 1003)], abort=outcome("aborted", 1003)), "failed"),
    ],
)
def test_batch_state(result: BatchResult, state: str) -> None:
    assert result.state == state


def test_result_dict_lists_every_message_once() -> None:
    result = BatchResult(
        marked=[Message("m", "1")],
        skipped=[Outcome(Message("s", "1"), "skipped", 9006, "unbound")],
        failed=[Outcome(Message("f", "1"), "failed", 9000, "bad id")],
        not_attempted=[Message("n", "1")],
        duplicates=2,
        requests=3,
        conversations=1,
    )

    assert result.to_dict() == {
        "marked": ["m"],
        "skipped": [{"message_id": "s", "business_phone": "1", "code": 9006, "reason": "unbound"}],
        "failed": [
            {"message_id": "f", "business_phone": "1", "code": 9000, "reason": "bad id", "retryable": False}
        ],
        "not_attempted": ["n"],
        "counts": {
            "total": 4, "marked": 1, "skipped": 1, "failed": 1, "not_attempted": 1, "duplicates": 2,
            "requests": 3, "conversations": 1, "marked_earlier": 0,
        },
    }  # fmt: skip
