"""One request per conversation, measured: ``.venv/bin/python -m benchmarks.conversations [--quick]``.

A realistic inbox (10,000 messages from 2,000 customers, messages per customer geometric with
mean 5, fixed seed) through ``MarkWhatsAppReadOperator`` with its defaults against a sandbox in
its own process with 50 ms of latency, seeded with the same messages so that it reads a thread
as WhatsApp does. In a few threads the newest message was deleted before the run (the sandbox
does not know it: 9099), so the operator falls back to the next newest. Grouping on, then off,
side by side. Then the worst case, every message its own customer, on and off, alternating.

Prints Markdown table rows on stdout (progress on stderr); ``measure_conversations(quick)``
returns the same rows as dicts (the fields of ``run.py``'s ``Row``). Exit status 1 when a target
is missed.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import statistics
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from benchmarks.common import SandboxProcess, Stopwatch, Ticker, Timed, log
from benchmarks.report import row as report_row
from benchmarks.report import table_rows, take_stdout

LATENCY_MS = 50.0
CONN_ID = "nxcloud_bench_conversations"
PHONE_KEY = "business_phone"
SEED = 20261202
MEAN_PER_CUSTOMER = 5


@dataclass(frozen=True)
class Sizes:
    messages: int = 10_000
    customers: int = 2_000
    deleted_newest: int = 20  # threads whose newest message NXCloud no longer has: one fallback each
    worst_case: int = 10_000
    repeats: int = 3  # worst-case runs of each kind, alternating: the median resists one noisy run


FULL = Sizes()
QUICK = Sizes(messages=1_000, customers=200, deleted_newest=5, worst_case=1_000, repeats=1)


# -- the inboxes --


def realistic_inbox(sizes: Sizes, phone: str) -> tuple[list[dict[str, Any]], set[str]]:
    """Webhook records in arrival order, and the ids whose newest-of-thread was deleted."""
    rng = random.Random(SEED)
    counts = [_geometric(rng, MEAN_PER_CUSTOMER) for _ in range(sizes.customers)]
    # Geometric draws add up to about, not exactly, the size: even it out one message at a time.
    while sum(counts) != sizes.messages:
        customer = rng.randrange(sizes.customers)
        if sum(counts) > sizes.messages and counts[customer] > 1:
            counts[customer] -= 1
        elif sum(counts) < sizes.messages:
            counts[customer] += 1
    now = int(time.time())
    records: list[dict[str, Any]] = []
    newest: dict[str, str] = {}
    for customer, count in enumerate(counts):
        sender = f"4477009{customer:05d}"
        moment = now - rng.randrange(3600, 20 * 3600)  # a burst some time in the last day
        for n in range(count):
            moment += rng.randrange(1, 120)
            message_id = f"wamid.HBgMNDQ3NzAwOTAwMDAwFQIAEhgg{customer:05d}{n:03d}"
            records.append({"id": message_id, PHONE_KEY: phone, "from": sender, "timestamp": moment})
            if count > 1:
                newest[sender] = message_id
    records.sort(key=lambda r: r["timestamp"])  # an inbox read ORDER BY received_at
    deleted = set(rng.sample(sorted(newest.values()), sizes.deleted_newest))
    return records, deleted


def with_group_messages(records: list[dict[str, Any]], share: float, groups: int) -> list[dict[str, Any]]:
    """
    The same inbox with ``share`` of its messages (drawn with a fixed seed) sent in one of
    ``groups`` WhatsApp groups: each gets a ``group_id`` and keeps its sender, id and second.
    """
    rng = random.Random(SEED + 1)
    chosen = set(rng.sample(range(len(records)), round(share * len(records))))
    return [
        {**record, "group_id": f"120363{rng.randrange(groups):012d}"} if index in chosen else record
        for index, record in enumerate(records)
    ]


def _geometric(rng: random.Random, mean: float) -> int:
    """1, 2, 3, ... with P(k) = (1 - p)^(k - 1) p and p = 1 / mean."""
    count = 1
    while rng.random() >= 1 / mean:
        count += 1
    return count


def worst_case_inbox(count: int, phone: str, prefix: str) -> list[dict[str, Any]]:
    """Every message from its own customer: grouping has nothing to save, only costs."""
    now = int(time.time())
    return [
        {
            "id": f"wamid.HBgMOTk5{prefix}{n:07d}A",
            PHONE_KEY: phone,
            "from": f"1999{n:07d}",
            "timestamp": now - n,
        }
        for n in range(count)
    ]


# -- running the operator --


class _XComSink:
    """The task instance ``execute()`` pushes its result to before it raises (a failed batch)."""

    def __init__(self) -> None:
        self.value: dict[str, Any] | None = None

    def xcom_push(self, key: str, value: dict[str, Any]) -> None:
        self.value = value


def operator_run(records: list[dict[str, Any]], *, grouped: bool) -> dict[str, Any]:
    """``MarkWhatsAppReadOperator.execute`` with the operator's defaults; its XCom value."""
    from airflow_provider_nxcloud.operators.whatsapp import MarkWhatsAppReadOperator

    operator = MarkWhatsAppReadOperator(
        task_id="bench_conversations",
        message_ids=records,
        nxcloud_conn_id=CONN_ID,
        one_request_per_conversation=grouped,
    )
    sink = _XComSink()
    try:
        return operator.execute(context={"ti": sink})  # type: ignore[arg-type]
    except Exception:
        if sink.value is None:
            raise
        return sink.value  # the task failed (the deleted messages' 9099): its result was pushed


def _sandbox_client(sandbox: SandboxProcess) -> Any:
    from airflow_provider_nxcloud.testing import SandboxClient

    return SandboxClient(sandbox.url, timeout=120)


def _reset(sandbox: SandboxProcess) -> None:
    """Forget marks, reads and requests (not the inbound messages); reset() also drops the latency."""
    client = _sandbox_client(sandbox)
    client.reset()
    client.configure(faults={"latency": sandbox.latency_ms / 1000})


@dataclass
class Run:
    label: str
    timed: Timed
    counts: dict[str, int]
    sandbox_requests: int
    read: set[str]


def measured_run(sandbox: SandboxProcess, records: list[dict[str, Any]], label: str, *, grouped: bool) -> Run:
    _reset(sandbox)
    log(f"- {label}: operator defaults, {len(records):,} records, one_request_per_conversation={grouped}")
    with Ticker(label), Stopwatch(sandbox) as watch:
        outcome = operator_run(records, grouped=grouped)
    client = _sandbox_client(sandbox)
    requests = int(client.state(since=1 << 62)["request_count"])
    run = Run(
        label,
        watch.result(len(records), len(outcome["marked"])),
        outcome["counts"],
        requests,
        client.read_ids(),
    )
    if run.counts["requests"] != requests:
        raise RuntimeError(
            f"{label}: the operator counted {run.counts['requests']} requests, the sandbox saw {requests}"
        )
    log(
        f"  {run.timed.seconds:.1f} s, {requests:,} requests, {run.timed.cpu_ms_per_message:.3f} ms CPU/msg, "
        f"{run.timed.per_second:.0f} msg/s"
    )
    return run


def grouping_step_us_per_message(records: list[dict[str, Any]], phone: str, repeats: int = 20) -> float:
    """CPU of ``units_to_send(grouped=True)`` alone, per message: all the grouping adds on the way in."""
    from airflow_provider_nxcloud.batch.conversations import units_to_send
    from airflow_provider_nxcloud.batch.messages import normalise_messages

    messages = normalise_messages(records, default_business_phone=phone).messages
    times = []
    for _ in range(repeats):
        started = time.process_time()
        units_to_send(messages, grouped=True)
        times.append(time.process_time() - started)
    return 1e6 * statistics.median(times) / len(messages)


# -- the measures --


def measure_conversations(quick: bool) -> list[dict[str, Any]]:
    """Both measures against one sandbox process; the caller provides AIRFLOW_HOME and NO_PROXY."""
    sizes = QUICK if quick else FULL
    rows: list[dict[str, Any]] = []
    with SandboxProcess(latency_ms=LATENCY_MS, request_log=True) as sandbox:
        os.environ[f"AIRFLOW_CONN_{CONN_ID.upper()}"] = json.dumps(sandbox.connection)
        phone = sandbox.connection["extra"][PHONE_KEY]
        inbox, deleted = realistic_inbox(sizes, phone)
        worst = worst_case_inbox(sizes.worst_case, phone, "W")
        warm = worst_case_inbox(64, phone, "X")
        client = _sandbox_client(sandbox)
        client.add_inbound([r for r in inbox if r["id"] not in deleted])
        client.add_inbound(worst + warm)
        threads = {r["from"] for r in inbox}
        seeded = {r["id"] for r in inbox} - deleted

        # Warm-up, not measured: Airflow's first connection lookup initialises its settings.
        measured_run(sandbox, warm, "warm-up", grouped=True)

        grouped = measured_run(sandbox, inbox, "realistic inbox, grouped", grouped=True)
        ungrouped = measured_run(sandbox, inbox, "realistic inbox, one request per message", grouped=False)
        expected_requests = len(threads) + len(deleted)
        requests_ok = grouped.counts["requests"] == expected_requests and grouped.counts[
            "conversations"
        ] == len(threads)
        per_customer = sizes.messages / sizes.customers
        rows.append(
            report_row(
                "conversations_requests",
                "requests per conversation",
                f"{sizes.messages:,} messages from {sizes.customers:,} customers (geometric, mean "
                f"{MEAN_PER_CUSTOMER}, seed {SEED}), operator defaults, {LATENCY_MS:g} ms latency; the "
                f"newest message of {len(deleted)} threads deleted (9099: one fallback each)",
                f"{grouped.counts['requests']:,} requests = {len(threads):,} conversations + "
                f"{len(deleted)} fallbacks (one request per message: {ungrouped.counts['requests']:,})",
                "requests = conversations + fallbacks",
                requests_ok,
                grouped.counts["requests"],
                grouped=grouped.counts,
                ungrouped=ungrouped.counts,
                messages_per_customer=per_customer,
            )
        )
        ratio = grouped.timed.seconds / ungrouped.timed.seconds
        all_read = grouped.read == seeded == ungrouped.read
        rows.append(
            report_row(
                "conversations_wall_time",
                "one request per conversation",
                "wall time of the grouped run / the same inbox with `one_request_per_conversation=False`; "
                "every seeded message read in the sandbox after each",
                f"{ratio:.2f}x ({grouped.timed.seconds:.1f} vs {ungrouped.timed.seconds:.1f} s); "
                f"{len(grouped.read & seeded):,} of {len(seeded):,} read"
                + ("" if all_read else " **unread left**"),
                "<= 0.25x, every thread read",
                ratio <= 0.25 and all_read,
                ratio,
                grouped=grouped.timed.as_dict(),
                ungrouped=ungrouped.timed.as_dict(),
            )
        )

        on: list[Run] = []
        off: list[Run] = []
        for repeat in range(sizes.repeats):
            # Alternating, and which goes first too, so that a drift in the machine's load hits
            # both kinds alike.
            for grouped_run in (False, True) if repeat % 2 == 0 else (True, False):
                kind = "grouped" if grouped_run else "one request per message"
                label = f"worst case {repeat + 1}, {kind}"
                (on if grouped_run else off).append(measured_run(sandbox, worst, label, grouped=grouped_run))
        for run in on + off:
            if run.timed.ok != len(worst) or not {r["id"] for r in worst} <= run.read:
                raise RuntimeError(f"{run.label}: {run.timed.ok} of {len(worst)} marked")
        cpu_on = statistics.median(r.timed.cpu_ms_per_message for r in on)
        cpu_off = statistics.median(r.timed.cpu_ms_per_message for r in off)
        rate_on = statistics.median(r.timed.per_second for r in on)
        rate_off = statistics.median(r.timed.per_second for r in off)
        step_us = grouping_step_us_per_message(worst, phone)
        cpu_ratio = cpu_on / cpu_off
        rows.append(
            report_row(
                "conversations_worst_cpu",
                "worst case: CPU per message",
                f"{sizes.worst_case:,} messages, each its own customer, grouped vs. not, operator defaults; "
                f"user+sys CPU of this process / messages, median of {sizes.repeats} alternating runs each",
                f"{cpu_ratio:.3f}x ({cpu_on:.3f} vs {cpu_off:.3f} ms); the grouping step alone: "
                f"{step_us:.2f} us/msg = {100 * step_us / 1000 / cpu_off:.2f} % of it",
                "<= 1.05x",
                cpu_ratio <= 1.05,
                cpu_ratio,
                grouped=[r.timed.as_dict() for r in on],
                ungrouped=[r.timed.as_dict() for r in off],
                grouping_step_us_per_message=step_us,
            )
        )
        rate_ratio = rate_on / rate_off
        rows.append(
            report_row(
                "conversations_worst_throughput",
                "worst case: throughput",
                "the same runs: messages per second, grouped / not",
                f"{rate_ratio:.3f}x ({rate_on:.1f} vs {rate_off:.1f} msg/s)",
                ">= 0.98x (nothing lost, within the noise of latency-bound runs)",
                rate_ratio >= 0.98,
                rate_ratio,
            )
        )
    return rows


# -- output --


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--quick", action="store_true", help="small sizes: a smoke test, not a result")
    parser.add_argument("--json", type=Path, help="also write the rows here")
    args = parser.parse_args(argv)
    rows_out = take_stdout()
    airflow_home = tempfile.mkdtemp(prefix="nxcloud-bench-conversations-")
    # A private AIRFLOW_HOME, and loopback traffic never routed through an environment proxy.
    os.environ["AIRFLOW_HOME"] = airflow_home
    no_proxy = ",".join(filter(None, [os.environ.get("NO_PROXY", ""), "127.0.0.1", "localhost"]))
    os.environ["NO_PROXY"] = os.environ["no_proxy"] = no_proxy
    started = time.monotonic()
    try:
        rows = measure_conversations(args.quick)
    finally:
        shutil.rmtree(airflow_home, ignore_errors=True)
    if args.json:
        args.json.write_text(json.dumps(rows, indent=2) + "\n", encoding="utf-8")
    print(table_rows(rows), file=rows_out)
    print(
        f"\n{time.monotonic() - started:.0f} s in all; load average {os.getloadavg()[0]:.1f}", file=rows_out
    )
    rows_out.flush()
    return 0 if all(row["passed"] for row in rows) else 1


if __name__ == "__main__":
    sys.exit(main())
