"""Meta's errors passed through NXCloud as 9099, in the shape NXCloud documents (Meta's error in
``data.error``, its code an int or a string) and in the older text shape: throttles and transient
errors retried, freshly signed, slowing only what they name; the rest failed with Meta's words."""

from __future__ import annotations

import json
import logging
import time
from typing import TYPE_CHECKING

import pytest

from airflow_provider_nxcloud.batch import BatchOptions, mark_messages
from airflow_provider_nxcloud.client import NxCloudTransientError
from airflow_provider_nxcloud.client.errors import NxCloudApiError
from airflow_provider_nxcloud.testing import AccountLimit, Faults, NxCloudSandbox

if TYPE_CHECKING:
    from collections.abc import Iterator

    from airflow_provider_nxcloud.testing.state import MetaCodeAs

pytestmark = pytest.mark.core


THROTTLES = [4, 80007, 130429, 131056]
TRANSIENT = [2, 131000, 131016, 133004, 131057]
CODE_AS: list[MetaCodeAs] = ["int", "str"]


@pytest.fixture(params=CODE_AS)
def code_as(request: pytest.FixtureRequest) -> MetaCodeAs:
    """How the sandbox writes ``data.error.code``: NXCloud's example has an int, its table a String."""
    return request.param  # type: ignore[no-any-return]


@pytest.mark.parametrize("meta", THROTTLES)
def test_a_meta_throttle_is_retried_with_a_fresh_signature(
    nxcloud_sandbox: NxCloudSandbox, meta: int, code_as: MetaCodeAs
) -> None:
    nxcloud_sandbox.set_faults(
        Faults(scripts={"wamid.t1": [f"meta:{meta}", f"meta:{meta}"]}, meta_code_as=code_as)
    )

    assert nxcloud_sandbox.client().mark_message_as_read("wamid.t1").code == 0
    requests = nxcloud_sandbox.requests
    assert len(requests) == 3
    assert len({r.headers["sign"] for r in requests}) == 3
    assert nxcloud_sandbox.marked_ids() == {"wamid.t1"}


def test_metas_throttles_and_transient_errors_are_retried_until_marked(
    nxcloud_sandbox: NxCloudSandbox, code_as: MetaCodeAs, caplog: pytest.LogCaptureFixture
) -> None:
    codes = THROTTLES + TRANSIENT
    ids = [f"wamid.r{meta}" for meta in codes]
    scripts = {message_id: [f"meta:{meta}"] * 2 for message_id, meta in zip(ids, codes, strict=True)}
    nxcloud_sandbox.set_faults(Faults(scripts=scripts, meta_code_as=code_as))

    with caplog.at_level(logging.INFO):
        result = mark_messages(nxcloud_sandbox.client(), ids, options=BatchOptions(max_workers=3))

    assert (result.state, len(result.marked), result.requests) == ("success", len(codes), 3 * len(codes))
    assert nxcloud_sandbox.marked_ids() == set(ids)
    assert nxcloud_sandbox.state.snapshot()["faults_injected"] == {f"meta:{meta}": 2 for meta in codes}


@pytest.mark.parametrize("meta", TRANSIENT)
def test_metas_transient_errors_do_not_slow_the_client(
    nxcloud_sandbox: NxCloudSandbox, meta: int, code_as: MetaCodeAs, caplog: pytest.LogCaptureFixture
) -> None:
    nxcloud_sandbox.set_faults(Faults(scripts={"wamid.last": [f"meta:{meta}"] * 3}, meta_code_as=code_as))
    client = nxcloud_sandbox.client(logger=logging.getLogger("test.meta"))
    for index in range(5):  # a rate to cut from: nothing is cut before something was accepted
        client.mark_message_as_read(f"wamid.ok{index}")

    with caplog.at_level(logging.INFO, logger="test.meta"):
        assert client.mark_message_as_read("wamid.last").code == 0

    assert client.rate_limit_found is None
    assert "throttling" not in caplog.text, "neither the client's nor the number's limiter slowed down"
    assert caplog.text.count("retrying in") == 3


@pytest.mark.parametrize("meta", [130429, 131057])
def test_a_meta_error_that_outlasts_the_retries_ends_retryable(
    nxcloud_sandbox: NxCloudSandbox, meta: int, code_as: MetaCodeAs
) -> None:
    nxcloud_sandbox.set_faults(Faults(codes={"wamid.busy": f"meta:{meta}"}, meta_code_as=code_as))

    result = mark_messages(nxcloud_sandbox.client(max_retries=2), ["wamid.busy", "wamid.ok"])

    assert [m.message_id for m in result.marked] == ["wamid.ok"]
    (failed,) = result.failed
    assert (failed.status, failed.code, failed.meta_code) == ("retryable", 9099, meta)
    assert f"Meta {meta}: (#{meta})" in failed.reason
    assert result.state == "failed_retryable"
    entry = result.to_dict()["failed"][0]
    assert (entry["retryable"], entry["meta_code"]) == (True, meta)
    assert f"failed: Meta {meta} x 1" in result.describe_failure()


def test_an_unknown_id_fails_for_good_with_what_meta_said(
    nxcloud_sandbox: NxCloudSandbox, code_as: MetaCodeAs, caplog: pytest.LogCaptureFixture
) -> None:
    nxcloud_sandbox.set_faults(Faults(codes={"wamid.gone": "meta:131009"}, meta_code_as=code_as))

    with caplog.at_level(logging.WARNING):
        result = mark_messages(nxcloud_sandbox.client(), ["wamid.gone", "wamid.ok"])

    assert [m.message_id for m in result.marked] == ["wamid.ok"]
    (failed,) = result.failed
    assert (failed.status, failed.code, failed.meta_code) == ("failed", 9099, 131009)
    assert "(#131009) Parameter value is not valid" in failed.reason, "Meta's text"
    assert "One or more parameter values are invalid" in failed.reason, "Meta's error_data.details"
    assert result.state == "failed"
    assert len([r for r in nxcloud_sandbox.requests if r.message_id == "wamid.gone"]) == 1, "not retried"
    document = result.to_dict()
    assert document["failed"][0]["meta_code"] == 131009
    # Support's trace id goes to the task log, and nowhere in the result.
    (logged,) = [r.getMessage() for r in caplog.records if "fbtrace_id" in r.getMessage()]
    trace_id = logged.rsplit("fbtrace_id ", 1)[1].split()[0]
    assert "wamid.gone" in logged and "Meta 131009" in logged and trace_id
    assert trace_id not in json.dumps(document) and trace_id not in result.describe_failure()


def test_a_seeded_sandbox_answers_an_unknown_id_as_meta_131009(code_as: MetaCodeAs) -> None:
    faults = Faults(meta_code_as=code_as)
    with (
        NxCloudSandbox(message_ids=["wamid.known"], faults=faults) as sandbox,
        pytest.raises(NxCloudApiError) as raised,
    ):
        sandbox.client().mark_message_as_read("wamid.nobody")

    assert not isinstance(raised.value, NxCloudTransientError)
    assert (raised.value.code, raised.value.meta_code) == (9099, 131009)
    assert "message_id wamid.nobody not found" in str(raised.value)
    assert raised.value.fbtrace_id


def test_code_actions_skip_what_whatsapp_no_longer_knows_and_still_retry_its_throttles(
    nxcloud_sandbox: NxCloudSandbox, code_as: MetaCodeAs
) -> None:
    nxcloud_sandbox.set_faults(
        Faults(
            codes={"wamid.gone": "meta:131009"},
            scripts={"wamid.busy": ["meta:130429", "meta:131000"]},
            meta_code_as=code_as,
        )
    )
    options = BatchOptions(code_actions={"meta:131009": "skip"})

    result = mark_messages(nxcloud_sandbox.client(), ["wamid.gone", "wamid.busy"], options=options)

    assert [m.message_id for m in result.marked] == ["wamid.busy"]
    (skipped,) = result.skipped
    assert (skipped.message.message_id, skipped.meta_code) == ("wamid.gone", 131009)
    assert result.to_dict()["skipped"][0]["meta_code"] == 131009
    assert result.state == "success"


def test_the_older_text_shape_still_classifies(nxcloud_sandbox: NxCloudSandbox) -> None:
    nxcloud_sandbox.set_faults(
        Faults(
            meta_shape="text",
            codes={"wamid.gone": "meta:131009"},
            scripts={f"wamid.t{meta}": [f"meta:{meta}"] for meta in THROTTLES + TRANSIENT},
        )
    )
    ids = ["wamid.gone", *(f"wamid.t{meta}" for meta in THROTTLES + TRANSIENT)]

    result = mark_messages(nxcloud_sandbox.client(), ids)

    assert len(result.marked) == len(THROTTLES + TRANSIENT)
    (failed,) = result.failed
    assert (failed.status, failed.meta_code) == ("failed", 131009)
    assert "Meta 131009: (#131009) Parameter value is not valid" in failed.reason


@pytest.mark.parametrize(("meta", "slows_every_request"), [(80007, True), (4, True), (130429, False)])
def test_only_account_wide_throttles_slow_the_whole_client(
    nxcloud_sandbox: NxCloudSandbox, meta: int, slows_every_request: bool, code_as: MetaCodeAs
) -> None:
    # 130429 slows its business number only (a limiter of its own), so the client's rate stays.
    nxcloud_sandbox.set_faults(Faults(scripts={"wamid.last": [f"meta:{meta}"]}, meta_code_as=code_as))
    client = nxcloud_sandbox.client()
    for index in range(5):  # a rate to cut from: nothing is cut before something was accepted
        client.mark_message_as_read(f"wamid.ok{index}")

    client.mark_message_as_read("wamid.last")

    assert (client.rate_limit_found is not None) is slows_every_request


LIMIT = 40.0


@pytest.fixture
def limited_sandbox(code_as: MetaCodeAs) -> Iterator[NxCloudSandbox]:
    faults = Faults(latency=0.05, meta_code_as=code_as)
    limit = AccountLimit(per_second=LIMIT, burst=5, answer="meta")
    with NxCloudSandbox(faults=faults, rate_limit=limit) as sandbox:
        yield sandbox


def test_an_account_limit_answered_as_documented_130429_is_found(limited_sandbox: NxCloudSandbox) -> None:
    # benchmarks/whatsapp_rules.py measures this at full size (1,200 ids) against the >= 0.9x,
    # <= 5 % target. Here a smaller batch and loose bounds for a shared machine: the 32 workers'
    # first burst against a burst of 5 is 11-15 % of this batch's requests before any limiter
    # knows of a limit (measured), so the share is counted from the 2nd second on (0-1 %).
    ids = [f"wamid.lim{n}" for n in range(240)]

    started = time.monotonic()
    result = mark_messages(
        limited_sandbox.client(retry_wait=(0.5, 8.0)), ids, options=BatchOptions(max_workers=32)
    )
    elapsed = time.monotonic() - started

    assert result.state == "success", result.describe_failure()
    assert limited_sandbox.marked_ids() == set(ids)
    requests = limited_sandbox.requests
    first = min(r.received_at for r in requests)
    steady = [r for r in requests if r.received_at - first >= 2.0]
    throttled = [r for r in steady if r.fault == "rate_limit"]
    assert {r.code for r in requests if r.fault == "rate_limit"} == {9099}
    assert len(throttled) <= 0.05 * len(steady), f"{len(throttled)} of {len(steady)} throttled from the 2nd s"
    # Measured 28-38/s with three other test runs on the machine.
    assert len(ids) / elapsed >= 0.5 * LIMIT, f"{len(ids) / elapsed:.1f}/s against a {LIMIT:g}/s limit"


def test_older_messages_left_unsent_behind_a_meta_throttle_carry_its_code(
    nxcloud_sandbox: NxCloudSandbox,
) -> None:
    nxcloud_sandbox.set_faults(Faults(codes={"wamid.new": "meta:130429"}))
    now = int(time.time())
    thread = [
        {"id": "wamid.old", "from": "15550001", "timestamp": now - 60},
        {"id": "wamid.new", "from": "15550001", "timestamp": now},
    ]

    result = mark_messages(nxcloud_sandbox.client(max_retries=1), thread)

    assert {(o.message.message_id, o.status, o.meta_code) for o in result.failed} == {
        ("wamid.new", "retryable", 130429),
        ("wamid.old", "retryable", 130429),
    }
    assert result.describe_failure().startswith("2 messages failed: Meta 130429 x 2.")
