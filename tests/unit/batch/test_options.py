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
        marked=[Message("m", "1"), Message("o", "1")],
        marked_via={Message("o", "1"): Message("m", "1")},
        skipped=[Outcome(Message("s", "1"), "skipped", 9006, "unbound")],
        failed=[
            Outcome(Message("f", "1"), "failed", 9000, "bad id"),
            Outcome(Message("g", "1"), "failed", 9099, "Meta 131009: gone", meta_code=131009),
        ],
        not_attempted=[Message("n", "1")],
        duplicates=2,
        requests=3,
        conversations=1,
    )

    assert result.to_dict() == {
        "marked": ["m", "o"],
        "marked_with_newer": {"o": "m"},
        "skipped": [
            {"message_id": "s", "business_phone": "1", "code": 9006, "meta_code": None, "reason": "unbound"}
        ],
        "failed": [
            {"message_id": "f", "business_phone": "1", "code": 9000, "meta_code": None, "reason": "bad id",
             "retryable": False},
            {"message_id": "g", "business_phone": "1", "code": 9099, "meta_code": 131009,
             "reason": "Meta 131009: gone", "retryable": False},
        ],
        "not_attempted": ["n"],
        "counts": {
            "total": 6, "marked": 2, "skipped": 1, "failed": 2, "not_attempted": 1, "duplicates": 2,
            "requests": 3, "conversations": 1, "marked_earlier": 0, "typing_indicators": 0,
            "marked_with_newer": 1,
        },
    }  # fmt: skip


def test_a_meta_code_can_be_keyed_apart_from_the_throttles() -> None:
    options = BatchOptions(code_actions={"meta:131009": "skip"})

    assert options.decide(9099, transient=False, meta_code=131009) == "skipped"
    assert options.decide(9099, transient=True, meta_code=130429) == "retryable", "throttles stay retried"
    assert options.decide(9099, transient=False, meta_code=100) == "failed"
    assert options.decide(9000, transient=False, meta_code=131009) == "failed", "Meta keys are for 9099"
    assert options.retry_overrides == {"meta:131009": False}


def test_a_meta_key_wins_over_a_9099_key() -> None:
    options = BatchOptions(code_actions={9099: "skip", "meta:130429": "retry"})

    assert options.decide(9099, transient=True, meta_code=130429) == "retryable"
    assert options.decide(9099, transient=False, meta_code=131009) == "skipped"


def test_metas_transient_codes_are_retryable_by_default() -> None:
    assert BatchOptions().decide(9099, transient=False, meta_code=131057) == "retryable"


def test_meta_keys_are_normalised() -> None:
    assert validate_code_actions({" META:131009 ": "skip", "meta: 100": "fail"}) == {
        "meta:131009": "skip",
        "meta:100": "fail",
    }


@pytest.mark.parametrize(
    ("value", "error"),
    [
        (
            {"meta:abc": "skip"},
            r"""code_actions: key 'meta:abc' is not a Meta code; use "meta:" and digits""",
        ),
        ({"meta:": "skip"}, r"key 'meta:' is not a Meta code"),
        ({"meta:131009": "ignore"}, r"code_actions\['meta:131009'\]: 'ignore' is not an action"),
        ({"abc": "skip"}, r'not an NXCloud code; use ints like 9006, or "meta:131009" for a Meta code'),
    ],
)
def test_bad_meta_keys(value: object, error: str) -> None:
    with pytest.raises(NxCloudConfigError, match=error):
        validate_code_actions(value)


def test_failures_are_grouped_by_metas_code() -> None:
    throttled = [
        Outcome(
            Message(f"t{n}", "1"),
            "retryable",
            9099,
            "Meta 130429: (#130429) Rate limit hit",
            meta_code=130429,
        )
        for n in range(3)
    ]
    bad = Outcome(Message("b", "1"), "failed", 9000, "bad id")
    result = BatchResult(marked=[Message("m", "1")], failed=[*throttled, bad])

    assert result.summary() == (
        "5 messages: 1 marked, 0 skipped, 4 failed (Meta 130429 x 3, code 9000 x 1), 0 not attempted, "
        "0 duplicates"
    )
    assert result.describe_failure().startswith(
        "4 messages failed: Meta 130429 x 3, code 9000 x 1. First: t0: Meta 130429: (#130429) Rate limit hit."
    )


def test_failures_without_an_nxcloud_code_are_not_called_code_none() -> None:
    # An outage (HTTP 503, the network) and TLS settings give no NXCloud code: the summary and
    # the failure's message must not say "code None".
    down = [
        Outcome(Message(f"d{n}", "1"), "retryable", None, "HTTP 503: Service Unavailable") for n in range(2)
    ]
    result = BatchResult(failed=down, not_attempted=[Message("n", "1")])
    assert "no NXCloud code x 2" in result.summary()
    assert "None" not in result.describe_failure()

    tls = Outcome(Message("t", "1"), "aborted", None, "the TLS certificate of api did not verify")
    aborted = BatchResult(failed=[tls], abort=tls)
    assert aborted.describe_failure().startswith(
        "Stopped sending after message t (business phone 1, no NXCloud code): the TLS certificate"
    )
    coded = Outcome(Message("a", "1"), "aborted", 1003, "Invalid signature")
    assert (
        BatchResult(failed=[coded], abort=coded)
        .describe_failure()
        .startswith("Stopped sending after message a (business phone 1, code 1003): Invalid signature.")
    )
