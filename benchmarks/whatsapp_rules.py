"""WhatsApp's rules and Meta's throttles, measured: ``.venv/bin/python -m benchmarks.whatsapp_rules``.

``.venv/bin/python -m benchmarks.whatsapp_rules [--quick] [--only meta|groups|numbers]`` prints
Markdown table rows (measure | how | result | target | verdict) on stdout, progress on stderr;
exit status 1 when a target is missed. ``measure_whatsapp_rules(quick)`` returns the same rows as
dicts (the fields of ``report.Row``), for ``run.py``. Sandboxes in their own processes, 50 ms of
latency, the operator in this process with its defaults:

- **Meta-style account limit**: the adaptive row of ``benchmarks.adaptive`` (40/s, burst 5, 1,200
  ids, 32 workers) with the limit answered as WhatsApp's throughput limit comes through NXCloud,
  in the shape NXCloud documents: HTTP 200, code 9099, top-level message "WhatsApp error", Meta's
  130429 in ``data.error.code``; once as an integer (NXCloud's example), once as a string (its
  field table). The client reads 130429 as one business number's limit, so it is that number's
  adaptive limiter (not the client's) that slows down.
- **Realistic inbox with group messages**: ``benchmarks.conversations``' realistic inbox with 10 %
  of its messages turned into group messages (``group_id``), seeded in the sandbox: a group
  message is a unit of its own, so requests = one-to-one conversations + group messages, and
  every id reported marked must be read by the sandbox's WhatsApp rules (``read_ids()``).
- **Two business numbers, one throttled**: a batch over two numbers, only one of them limited by
  Meta's 130429 (``AccountLimit(business_phone=...)``); the other number's throughput, from the
  sandbox's request log, against the same batch with neither number limited.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from dataclasses import replace
from typing import Any

from airflow_provider_nxcloud.client.api import MARK_READ_PATH
from benchmarks.adaptive import BURST, LIMIT, WORKERS, Run
from benchmarks.common import SandboxProcess, Ticker, log, loopback_only, message_ids, private_airflow_home
from benchmarks.conversations import FULL as CONVERSATION_SIZES
from benchmarks.conversations import PHONE_KEY, QUICK, SEED, Sizes, realistic_inbox, with_group_messages
from benchmarks.report import row as report_row
from benchmarks.report import table_rows, take_stdout

LATENCY_MS = 50.0
CONN_ID = "nxcloud_bench_whatsapp_rules"
GROUP_SHARE = 0.10
GROUPS = 50  # the group messages are spread over this many groups
# Two numbers, the first one limited by WhatsApp in the throttled run.
THROTTLED_PHONE = "8613800000101"
OTHER_PHONE = "8613800000102"


class _XComSink:
    """The task instance ``execute()`` pushes its result to before it raises (a failed batch)."""

    def __init__(self) -> None:
        self.value: dict[str, Any] = {}

    def xcom_push(self, key: str, value: dict[str, Any]) -> None:
        self.value = value


def operator_run(messages: list[Any], **kwargs: Any) -> dict[str, Any]:
    """``MarkWhatsAppReadOperator.execute`` with 32 workers and otherwise its defaults; its XCom value."""
    from airflow_provider_nxcloud.operators.whatsapp import MarkWhatsAppReadOperator

    operator = MarkWhatsAppReadOperator(
        task_id="bench_whatsapp_rules",
        message_ids=messages,
        nxcloud_conn_id=CONN_ID,
        max_workers=WORKERS,
        **kwargs,
    )
    sink = _XComSink()
    try:
        return operator.execute(context={"ti": sink})  # type: ignore[typeddict-item]
    except Exception as error:  # not every id marked: the result was pushed before it raised
        if not sink.value:
            raise
        return {**sink.value, "error": str(error)}


def _client(sandbox: SandboxProcess) -> Any:
    from airflow_provider_nxcloud.testing import SandboxClient

    return SandboxClient(sandbox.url, timeout=120)


def _fresh(sandbox: SandboxProcess) -> Any:
    """Forget marks, reads and requests (reset() also drops the latency: set it again)."""
    client = _client(sandbox)
    client.reset()
    client.configure(faults={"latency": sandbox.latency_ms / 1000})
    return client


def _connect(sandbox: SandboxProcess) -> None:
    os.environ[f"AIRFLOW_CONN_{CONN_ID.upper()}"] = json.dumps(sandbox.connection)


# -- the account limit, answered as Meta's 130429 --


def measure_meta_limited(sandbox: SandboxProcess, ids_count: int, code_as: str = "int") -> dict[str, Any]:
    client = _fresh(sandbox)
    client.configure(faults={"latency": sandbox.latency_ms / 1000, "meta_code_as": code_as})
    client.set_rate_limit(LIMIT, burst=BURST, answer="meta")
    time.sleep(1 / LIMIT * BURST)  # the account bucket full again
    label = f"account limit 40/s, answered as Meta's 130429 (data.error.code as {code_as})"
    log(f"- {label}: {ids_count} ids, {WORKERS} workers")
    with Ticker(label):
        outcome = operator_run(message_ids(f"meta{code_as}", ids_count))
    run = Run(client.state()["requests"])
    client.set_rate_limit(None)
    codes = {(r["fault"], r["code"]) for r in client.state()["requests"] if r["fault"]}
    goodput = run.goodput(4.0)
    share = run.throttled_share()
    reported = len(outcome.get("marked", []))
    passed = goodput >= 0.9 * LIMIT and share <= 0.05 and run.marked == reported == ids_count
    return report_row(
        "meta_account_limit" + ("" if code_as == "int" else f"_{code_as}"),
        f"account limit, Meta-style throttles (`data.error.code` as {code_as})",
        f"{ids_count:,} ids, operator defaults, `max_workers={WORKERS}`, no cap; account {LIMIT:g}/s, "
        f'burst {BURST:g}, 50 ms, refused as NXCloud documents: HTTP 200, 9099 "WhatsApp error", '
        f"Meta's 130429 in `data.error` (code as {code_as}; slows the number's limiter)",
        f"goodput from the 5th s {goodput:.1f}/s = {goodput / LIMIT:.2f}x; {100 * share:.1f} % 130429 "
        f"({len(run.throttled)} of {run.total}; from the 5th s {100 * run.throttled_share(4.0):.1f} %); "
        f"{run.marked:,}/{ids_count:,} marked in the sandbox, {reported:,} reported"
        + ("" if codes <= {("rate_limit", 9099)} else f"; unexpected answers {sorted(codes)}"),
        ">= 0.9x, <= 5 % throttled, all marked",
        passed,
        goodput / LIMIT,
        goodput=goodput,
        throttled_share=share,
        throttled_share_after_4s=run.throttled_share(4.0),
        marked=run.marked,
        reported_marked=reported,
        error=outcome.get("error"),
    )


# -- the realistic inbox, 10 % group messages --


def measure_group_inbox(sandbox: SandboxProcess, sizes: Sizes) -> dict[str, Any]:
    phone = sandbox.connection["extra"][PHONE_KEY]
    # No deleted newest messages here: their fallbacks would blur the count this row checks.
    inbox, _ = realistic_inbox(replace(sizes, deleted_newest=0), phone)
    inbox = with_group_messages(inbox, GROUP_SHARE, GROUPS)
    client = _fresh(sandbox)
    client.add_inbound(inbox)
    group_messages = sum(1 for r in inbox if "group_id" in r)
    conversations = len({r["from"] for r in inbox if "group_id" not in r})
    label = "realistic inbox, 10 % group messages"
    log(f"- {label}: {len(inbox):,} messages, {group_messages:,} in groups, {conversations:,} threads")
    started = time.perf_counter()
    with Ticker(label):
        outcome = operator_run(inbox)
    seconds = time.perf_counter() - started
    requests = int(client.state(since=1 << 62)["request_count"])
    read = client.read_ids()
    reported = set(outcome.get("marked", []))
    not_read = reported - read
    counts = outcome.get("counts", {})
    expected = conversations + group_messages
    passed = (
        requests == counts.get("requests") == expected
        and counts.get("conversations") == conversations
        and not not_read
        and reported == {r["id"] for r in inbox}
    )
    return report_row(
        "groups_requests",
        "requests with group messages",
        f"the realistic inbox ({sizes.messages:,} messages, {sizes.customers:,} customers, seed {SEED}) "
        f"with {100 * GROUP_SHARE:g} % of its messages in {GROUPS} groups (`group_id`), seeded in the "
        f"sandbox, operator defaults and `max_workers={WORKERS}`, {LATENCY_MS:g} ms",
        f"{requests:,} requests = {conversations:,} one-to-one conversations + {group_messages:,} group "
        f"messages (expected {expected:,}); {len(reported):,}/{len(inbox):,} reported marked, "
        f"{len(reported & read):,} of them read by the sandbox's rules"
        + (f", **{len(not_read)} not read**" if not_read else "")
        + f"; {seconds:.1f} s",
        "requests = conversations + group messages; every id reported marked is read",
        passed,
        requests,
        conversations=conversations,
        group_messages=group_messages,
        counts=counts,
        reported_not_read=sorted(not_read)[:20],
        seconds=seconds,
    )


# -- two business numbers, one throttled --


def _numbers_batch(per_number: int) -> list[dict[str, Any]]:
    """Interleaved records of both numbers, each message its own customer (a unit of its own)."""
    now = int(time.time())
    records = []
    for n in range(per_number):
        for tag, phone in (("T", THROTTLED_PHONE), ("O", OTHER_PHONE)):
            message_id = f"wamid.HBgMNum{tag}{n:07d}A"
            records.append({"id": message_id, PHONE_KEY: phone, "from": f"1777{n:07d}", "timestamp": now})
    return records


def _number_pace(requests: list[dict[str, Any]], phone: str) -> tuple[float, float, int]:
    """A number's requests answered code 0 per second, from its first arrival to its last success."""
    mine = sorted(
        (r for r in requests if r["path"] == MARK_READ_PATH and r["business_phone"] == phone),
        key=lambda r: r["received_at"],
    )
    ok = [r["received_at"] for r in mine if r["code"] == 0]
    span = ok[-1] - mine[0]["received_at"] if ok else 0.0
    return (len(ok) / span if span > 0 else 0.0), span, sum(1 for r in mine if r["fault"])


def _numbers_run(sandbox: SandboxProcess, batch: list[dict[str, Any]], label: str, *, limited: bool) -> Any:
    """One run of the batch, one number limited or neither: both numbers' paces and 130429s."""
    client = _fresh(sandbox)
    if limited:
        client.set_rate_limit(LIMIT, burst=BURST, answer="meta", business_phone=THROTTLED_PHONE)
        time.sleep(1 / LIMIT * BURST)  # the number's bucket full again
    log(f"- {label}: {len(batch):,} records, {WORKERS} workers")
    with Ticker(label):
        outcome = operator_run(batch)
    requests = client.state()["requests"]
    client.set_rate_limit(None)
    other, other_span, other_faults = _number_pace(requests, OTHER_PHONE)
    throttled, throttled_span, throttled_faults = _number_pace(requests, THROTTLED_PHONE)
    marked = len(outcome.get("marked", []))
    if marked != len(batch) or not {r["id"] for r in batch} <= client.read_ids():
        raise RuntimeError(f"{label}: {marked} of {len(batch)} marked")
    if other_faults:
        raise RuntimeError(f"{label}: the other number was throttled {other_faults} times")
    log(
        f"  other number {other:.0f}/s over {other_span:.1f} s; throttled number {throttled:.1f}/s "
        f"over {throttled_span:.1f} s, {throttled_faults} x 130429"
    )
    return {
        "other_per_s": other,
        "other_seconds": other_span,
        "throttled_per_s": throttled,
        "throttled_seconds": throttled_span,
        "throttled_answers": throttled_faults,
    }


def measure_two_numbers(sandbox: SandboxProcess, per_number: int, repeats: int) -> dict[str, Any]:
    # Seeded: the sandbox learns both numbers and reads by WhatsApp's rules.
    batch = _numbers_batch(per_number)
    _client(sandbox).add_inbound(batch)
    figures: dict[str, list[dict[str, float]]] = {"free": [], "throttled": []}
    for repeat in range(repeats):
        for kind in ("free", "throttled") if repeat % 2 == 0 else ("throttled", "free"):
            figures[kind].append(
                _numbers_run(sandbox, batch, f"two numbers, {kind} {repeat + 1}", limited=kind == "throttled")
            )
    # The contrast: the other number's ids first. If its pace holds then, the client's limiters
    # slow only the throttled number, and what slows the other one in the interleaved batch is the
    # workers: they take units in input order and wait in the throttled number's limiter.
    other_first = sorted(batch, key=lambda r: r[PHONE_KEY] != OTHER_PHONE)
    figures["other_first"] = [_numbers_run(sandbox, other_first, "two numbers, other first", limited=True)]
    free = max(f["other_per_s"] for f in figures["free"])
    throttled = max(f["other_per_s"] for f in figures["throttled"])
    ratio = throttled / free if free else 0.0
    limited_pace = max(f["throttled_per_s"] for f in figures["throttled"])
    first = figures["other_first"][0]["other_per_s"]
    return report_row(
        "numbers_throttled_one",
        "two numbers, one throttled by Meta",
        f"{per_number:,} ids on each of two business numbers, interleaved, operator defaults and "
        f"`max_workers={WORKERS}`, {LATENCY_MS:g} ms; one number limited to {LIMIT:g}/s (burst {BURST:g}) "
        "answered as 130429, vs. neither limited; the other number's successes per second over its own "
        f"span, best of {repeats} alternating",
        f"the other number {ratio:.2f}x its pace with neither throttled ({throttled:.0f} vs {free:.0f}/s); "
        f"the throttled one {limited_pace:.1f}/s = {limited_pace / LIMIT:.2f}x its limit; with the other "
        f"number's ids first in the input, {first / free:.2f}x ({first:.0f}/s)",
        ">= 0.8x (near its unthrottled pace)",
        ratio >= 0.8,
        ratio,
        figures=figures,
    )


def measure_whatsapp_rules(quick: bool, only: str | None = None) -> list[dict[str, Any]]:
    """Every row of this benchmark (``quick``: small sizes, a smoke test); the caller sets AIRFLOW_HOME."""
    rows: list[dict[str, Any]] = []
    if only in (None, "meta", "groups"):
        with SandboxProcess(latency_ms=LATENCY_MS, request_log=True) as sandbox:
            _connect(sandbox)
            operator_run(message_ids("warm", 64))  # Airflow's first connection lookup, not measured
            if only in (None, "meta"):
                for code_as in ("int", "str"):
                    rows.append(measure_meta_limited(sandbox, 400 if quick else 1_200, code_as))
                    log(f"  {rows[-1]['result']}")
            if only in (None, "groups"):
                # Last on this sandbox: once seeded, it answers 9099 to any id it was not given.
                rows.append(measure_group_inbox(sandbox, QUICK if quick else CONVERSATION_SIZES))
                log(f"  {rows[-1]['result']}")
    if only in (None, "numbers"):
        with SandboxProcess(latency_ms=LATENCY_MS, request_log=True) as sandbox:
            _connect(sandbox)
            rows.append(measure_two_numbers(sandbox, 200 if quick else 600, 1 if quick else 2))
            log(f"  {rows[-1]['result']}")
    return rows


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--quick", action="store_true", help="small sizes: a smoke test, not a result")
    parser.add_argument("--only", choices=("meta", "groups", "numbers"), help="run one measure")
    args = parser.parse_args(argv)
    loopback_only()
    table_out = take_stdout()
    with private_airflow_home("nxcloud-bench-rules-"):
        rows = measure_whatsapp_rules(args.quick, args.only)
    print(table_rows(rows), file=table_out, flush=True)
    return 0 if all(r["passed"] for r in rows) else 1


if __name__ == "__main__":
    sys.exit(main())
