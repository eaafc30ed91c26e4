"""What WhatsApp reads, and Meta's errors, as the sandbox answers them over HTTP to plain signed requests."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from typing import TYPE_CHECKING, Any

import pytest

from airflow_provider_nxcloud.testing import (
    DEFAULT_ACCESS_SECRET,
    DEFAULT_BUSINESS_PHONE,
    META_ERRORS,
    AccountLimit,
    Faults,
    NxCloudSandbox,
    SandboxClient,
)
from airflow_provider_nxcloud.testing import meta_answer as documented_meta_answer
from tests.support import TRACE_ID, signed_mark

if TYPE_CHECKING:
    from collections.abc import Iterator
    from pathlib import Path

pytestmark = pytest.mark.core


PHONE = DEFAULT_BUSINESS_PHONE
NOW = int(time.time())
BSUID = "BR.1502576394655843"


def record(message_id: str, customer: str, timestamp: int | None, **extra: Any) -> dict[str, Any]:
    found: dict[str, Any] = {"id": message_id, "business_phone": PHONE, "from": customer, **extra}
    if timestamp is not None:
        found["timestamp"] = timestamp
    return found


def mark(url: str, message_id: str, *, secret: str = DEFAULT_ACCESS_SECRET) -> tuple[int, dict[str, Any]]:
    return signed_mark(url, PHONE, message_id, secret=secret)


def meta_answer(code: int, details: str | None = None) -> tuple[int, dict[str, Any]]:
    """The documented 9099 for Meta's ``code``, as ``mark`` returns it."""
    return 200, documented_meta_answer(code, details, fbtrace_id=TRACE_ID)


SUCCESS = (200, {"code": 0, "message": "Request succeeded", "data": None})


@pytest.fixture
def sandbox() -> Iterator[NxCloudSandbox]:
    with NxCloudSandbox() as running:
        yield running


# -- what is read --


def test_a_group_message_is_read_only_when_marked_and_apart_from_the_one_to_one_thread(
    sandbox: NxCloudSandbox,
) -> None:
    sandbox.add_inbound(
        [
            record("wamid.dm0", "15550001", NOW - 300),
            record("wamid.g0", "15550001", NOW - 240, group_id="120363000000000001"),
            record("wamid.g1", "15550002", NOW - 180, group_id="120363000000000001"),
            record("wamid.g2", "15550001", NOW - 120, group_id="120363000000000001"),
            record("wamid.dm1", "15550001", NOW - 60),
        ]
    )

    assert mark(sandbox.url, "wamid.g2") == SUCCESS
    assert sandbox.read_ids() == {"wamid.g2"}, "earlier group messages stay unread, the thread too"

    assert mark(sandbox.url, "wamid.dm1") == SUCCESS
    assert sandbox.read_ids() == {"wamid.g2", "wamid.dm1", "wamid.dm0"}, "the thread, not the group"

    assert mark(sandbox.url, "wamid.g0") == SUCCESS
    assert sandbox.read_ids() == {"wamid.g2", "wamid.dm1", "wamid.dm0", "wamid.g0"}


def test_a_message_of_the_same_second_is_not_read_through_another(sandbox: NxCloudSandbox) -> None:
    sandbox.add_inbound(
        [
            record("wamid.t0", "15550001", NOW - 1),
            record("wamid.t1", "15550001", NOW),
            record("wamid.t2", "15550001", NOW),  # seeded last: no newer for that
            record("wamid.other", "15550002", NOW - 60),
        ]
    )

    assert mark(sandbox.url, "wamid.t2") == SUCCESS
    assert sandbox.read_ids() == {"wamid.t2", "wamid.t0"}, "the tie has no known order: unread"
    assert mark(sandbox.url, "wamid.t1") == SUCCESS
    assert sandbox.read_ids() == {"wamid.t2", "wamid.t1", "wamid.t0"}, "marked itself, it is read"
    assert SandboxClient(sandbox.url).read_ids() == sandbox.read_ids(), "the control API says the same"


def test_a_message_without_a_timestamp_is_read_only_when_marked(sandbox: NxCloudSandbox) -> None:
    sandbox.add_inbound([record("wamid.u0", "15550001", None), record("wamid.u1", "15550001", NOW)])

    assert mark(sandbox.url, "wamid.u1") == SUCCESS
    assert sandbox.read_ids() == {"wamid.u1"}
    assert mark(sandbox.url, "wamid.u0") == SUCCESS
    assert sandbox.read_ids() == {"wamid.u0", "wamid.u1"}


def test_username_users_threads_are_keyed_by_their_bsuid(sandbox: NxCloudSandbox) -> None:
    client = SandboxClient(sandbox.url)
    client.add_inbound(  # over the control API, as another process seeds it
        [
            {"id": "wamid.b0", "business_phone": PHONE, "from_user_id": BSUID, "timestamp": NOW - 120},
            {"id": "wamid.b1", "business_phone": PHONE, "from_user_id": BSUID, "timestamp": NOW - 60},
            {"id": "wamid.c0", "business_phone": PHONE, "from_user_id": "BR.77", "timestamp": NOW - 90},
            {"id": "wamid.p0", "business_phone": PHONE, "from": "15550001", "timestamp": NOW - 90},
        ]
    )

    assert mark(sandbox.url, "wamid.b1") == SUCCESS
    assert client.read_ids() == {"wamid.b0", "wamid.b1"}, "one thread per BSUID, apart from the others"
    assert [m.customer for m in sandbox.state.inbound.values()] == [BSUID, BSUID, "BR.77", "15550001"]


def test_an_inbound_record_needs_a_customer() -> None:
    with pytest.raises(ValueError, match="from or from_user_id"):
        NxCloudSandbox(inbound=[{"id": "wamid.x", "business_phone": PHONE, "timestamp": NOW}])


def test_reset_forgets_what_was_read(sandbox: NxCloudSandbox) -> None:
    sandbox.add_inbound([record("wamid.r0", "15550001", NOW - 60), record("wamid.r1", "15550001", NOW)])
    mark(sandbox.url, "wamid.r1")

    sandbox.reset()

    assert sandbox.read_ids() == set()


# -- Meta's errors --


def test_the_account_limit_answers_as_meta_when_told(sandbox: NxCloudSandbox) -> None:
    sandbox.set_rate_limit(AccountLimit(per_second=0.01, burst=2, answer="meta"))

    answers = [mark(sandbox.url, f"wamid.l{n}") for n in range(3)]

    assert answers == [SUCCESS, SUCCESS, meta_answer(130429)]
    assert sandbox.marked_ids() == {"wamid.l0", "wamid.l1"}
    assert [(r.fault, r.code) for r in sandbox.requests][-1] == ("rate_limit", 9099)


def test_the_control_api_sets_a_meta_style_limit_and_back(sandbox: NxCloudSandbox) -> None:
    client = SandboxClient(sandbox.url)
    client.set_rate_limit(0.01, burst=1, answer="meta")
    assert mark(sandbox.url, "wamid.m0") == SUCCESS
    assert mark(sandbox.url, "wamid.m1") == meta_answer(130429)

    client.set_rate_limit(0.01, burst=1)  # the default answer: HTTP 429

    with pytest.raises(urllib.error.HTTPError) as refused:
        mark(sandbox.url, "wamid.m2")
    assert refused.value.code == 429


def test_a_meta_style_limit_still_checks_the_signature_first(sandbox: NxCloudSandbox) -> None:
    sandbox.set_rate_limit(AccountLimit(per_second=0.01, burst=1, answer="meta"))
    mark(sandbox.url, "wamid.s0")

    status, answer = mark(sandbox.url, "wamid.s1", secret="wrong")

    assert (status, answer["code"]) == (200, 1003)
    assert sandbox.requests[-1].fault is None


def test_cli_takes_a_meta_style_limit_and_lists_meta_kinds(tmp_path: Path) -> None:
    usage = subprocess.run(
        [sys.executable, "-m", "airflow_provider_nxcloud.testing", "--help"],
        capture_output=True, text=True, timeout=60, check=True,
    )  # fmt: skip
    assert "--rate-answer" in usage.stdout and "meta:130429" in usage.stdout
    assert "--meta-shape" in usage.stdout and "--meta-code-as" in usage.stdout
    inbound = tmp_path / "inbound.json"
    inbound.write_text(
        json.dumps(
            [
                {"id": "wamid.cli0", "business_phone": PHONE, "from_user_id": BSUID, "timestamp": NOW - 60},
                {"id": "wamid.cli1", "business_phone": PHONE, "from_user_id": BSUID, "timestamp": NOW},
                record("wamid.grp", BSUID, NOW - 90, group_id="120363000000000001"),
            ]
        )
    )
    process = subprocess.Popen(
        [sys.executable, "-m", "airflow_provider_nxcloud.testing", "--port", "0",
         "--inbound-file", str(inbound),
         "--rate-limit", "0.01", "--rate-burst", "1", "--rate-answer", "meta", "--meta-code-as", "str"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        assert process.stdout is not None
        url = process.stdout.readline().split()[-1]  # printed once it listens

        assert mark(url, "wamid.cli1") == SUCCESS
        assert mark(url, "wamid.cli0") == (
            200,
            documented_meta_answer(130429, code_as="str", fbtrace_id=TRACE_ID),
        )
        assert SandboxClient(url).read_ids() == {"wamid.cli0", "wamid.cli1"}, "not the group's"
        process.send_signal(signal.SIGINT)
        assert process.wait(timeout=10) == 0
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()


def test_scripted_meta_codes_are_answered_in_turn_then_success(sandbox: NxCloudSandbox) -> None:
    throttles = [4, 80007, 130429, 131056]
    sandbox.add_inbound([record("wamid.e0", "15550001", NOW - 60), record("wamid.e1", "15550001", NOW)])
    sandbox.set_faults(Faults(scripts={"wamid.e1": [f"meta:{code}" for code in throttles]}))

    answers = [mark(sandbox.url, "wamid.e1") for _ in range(len(throttles) + 1)]

    assert answers == [*(meta_answer(code) for code in throttles), SUCCESS]
    assert answers[2][1]["message"] == "WhatsApp error"
    assert answers[2][1]["data"]["error"]["message"] == "(#130429) Rate limit hit"
    assert sandbox.read_ids() == {"wamid.e0", "wamid.e1"}, "read only once it succeeded"
    assert sandbox.mark_counts == {(PHONE, "wamid.e1"): 1}
    assert sandbox.state.snapshot()["faults_injected"] == {f"meta:{code}": 1 for code in throttles}


def test_a_fixed_meta_code_is_answered_forever_over_the_control_api(sandbox: NxCloudSandbox) -> None:
    SandboxClient(sandbox.url).configure(
        faults={"codes": {"wamid.gone": "meta:131009", "wamid.bad": "meta:100"}}
    )

    assert [mark(sandbox.url, "wamid.gone") for _ in range(3)] == [meta_answer(131009)] * 3
    assert mark(sandbox.url, "wamid.bad") == (
        200,
        {
            "code": 9099,
            "message": "WhatsApp error",
            "data": {
                "error": {
                    "code": 100,
                    "message": "(#100) Invalid parameter",
                    "type": "OAuthException",
                    "fbtrace_id": TRACE_ID,
                    "error_data": {"messaging_product": "whatsapp", "details": "Invalid parameter"},
                }
            },
        },
    ), "NXCloud's documented example, field for field"
    assert mark(sandbox.url, "wamid.fine") == SUCCESS
    assert sandbox.marked_ids() == {"wamid.fine"}


def test_a_meta_rate_draws_meta_errors(sandbox: NxCloudSandbox) -> None:
    sandbox.set_faults(Faults(rates={"meta:131056": 1.0}))

    assert mark(sandbox.url, "wamid.p0") == meta_answer(131056)
    assert META_ERRORS[131056] == "(Business Account, Consumer Account) pair rate limit hit"


def test_every_9099_can_be_written_in_the_older_text_shape_or_with_a_string_code(
    sandbox: NxCloudSandbox,
) -> None:
    sandbox.add_inbound([record("wamid.k0", "15550002", NOW)])
    client = SandboxClient(sandbox.url)
    client.configure(faults={"meta_shape": "text", "codes": {"wamid.k0": "meta:131009"}})

    assert mark(sandbox.url, "wamid.k0") == (
        200,
        {"code": 9099, "message": "(#131009) Parameter value is not valid", "data": None},
    )
    assert mark(sandbox.url, "wamid.nobody") == (
        200,
        {"code": 9099, "message": "(#131009) Parameter value is not valid: message_id wamid.nobody not found",
         "data": None},
    )  # fmt: skip

    client.configure(faults={"meta_code_as": "str"})
    sandbox.reset()  # keeps how a 9099 is written

    status, answer = mark(sandbox.url, "wamid.nobody")
    assert (status, answer["message"], answer["data"]["error"]["code"]) == (200, "WhatsApp error", "131009")
    assert answer["data"]["error"]["error_data"]["details"] == "message_id wamid.nobody not found"
    with pytest.raises(ValueError, match="meta_shape is documented or text"):
        Faults(meta_shape="json")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="meta_code_as is int or str"):
        Faults(meta_code_as="float")  # type: ignore[arg-type]


def test_unknown_meta_codes_are_refused() -> None:
    with pytest.raises(ValueError, match="meta:131047"):
        Faults(scripts={"wamid.1": ["meta:131047"]})
    with pytest.raises(ValueError, match="meta:1"):
        Faults(codes={"wamid.1": "meta:1"})
    with pytest.raises(ValueError, match="http429 or meta"):
        AccountLimit(per_second=1, answer="teapot")  # type: ignore[arg-type]
