"""A bad day stays bounded, measured: ``.venv/bin/python -m benchmarks.bad_day [--quick]``.

Issue 22's failures as they come, each against an in-process sandbox on 127.0.0.1 (what is
measured is requests and seconds of waiting, not throughput), the operator or hook with its
defaults:

- **Outage, HTTP 503**: every answer 503; 20,000 ids (2,000 with ``--quick``) through
  ``MarkWhatsAppReadOperator.execute``, default settings (8 workers, 5 retries, 0.5-30 s
  backoff). Before the retry budget: 64 ids took 135 s and 384 requests, 6 per id (the issue).
- **Outage, connection refused**: the same against a port where nothing listens.
- **TLS handshakes ended by EOF**: the sandbox over HTTPS closing each connection after its
  answer, 1 handshake in 20 ended after the ClientHello with a FIN; 300 ids, verify set to its
  certificate. Before: 25 marked, 1 failed, 274 not attempted (the issue).
- **One number of two answered 9006**: 200 records alternating between the numbers. Before: 1 of
  the healthy number's 100 marked (the issue).
- **Test button against 503, and against a server that never answers** (connection timeout
  60 s): seconds until ``test_connection`` returns. Before: 17 s against 503 (the issue).

Prints Markdown table rows on stdout (progress on stderr); ``measure_bad_day(quick)`` returns the
same rows as dicts (the fields of ``report.Row``). Exit status 1 when a target is missed.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from typing import Any

from benchmarks.common import log, loopback_only, private_airflow_home
from benchmarks.report import row, table_rows, take_stdout

OUTAGE_IDS, QUICK_OUTAGE_IDS = 20_000, 2_000
OUTAGE_SECONDS, OUTAGE_REQUESTS = 60.0, 500
TLS_IDS, TLS_EOF_SHARE = 300, 0.05
PHONE, OTHER = "8613800000000", "8613900000001"
TEST_BUTTON_SECONDS = 15.0


def _outage(kind: str, count: int) -> dict[str, Any]:
    from airflow_provider_nxcloud.testing import Faults, NxCloudSandbox
    from airflow_provider_nxcloud.testing.fault_campaign import CONN_ID, execute_operator
    from airflow_provider_nxcloud.testing.fault_mix import campaign_ids

    sandbox = NxCloudSandbox(faults=Faults(rates={"503": 1.0})).start()
    os.environ[f"AIRFLOW_CONN_{CONN_ID.upper()}"] = sandbox.connection_json()
    if kind == "refused":
        sandbox.stop()  # nothing listens on its port any more
    try:
        started = time.monotonic()
        state, result = execute_operator(campaign_ids(count), retry_wait=None)
        seconds = time.monotonic() - started
    finally:
        sandbox.stop()
    counts = result["counts"]
    retryable = all(entry["retryable"] for entry in result["failed"]) and state == "up_for_retry"
    passed = seconds <= OUTAGE_SECONDS and counts["requests"] <= OUTAGE_REQUESTS and retryable
    label = "every answer HTTP 503" if kind == "503" else "every connection refused"
    return row(
        f"outage_{kind}",
        f"outage: {label}",
        f"{count:,} ids, operator defaults; task state {state}",
        f"{seconds:.1f} s, {counts['requests']} requests ({counts['requests'] / count:.4f} per id; "
        f"6 per id without the budget), {counts['not_attempted']:,} not attempted",
        f"<= {OUTAGE_SECONDS:g} s, <= {OUTAGE_REQUESTS} requests, retryable",
        passed,
        seconds,
        requests=counts["requests"],
        counts=counts,
        state=state,
    )


def _tls() -> dict[str, Any]:
    from airflow_provider_nxcloud.batch import mark_messages
    from airflow_provider_nxcloud.testing import Faults, NxCloudSandbox

    ids = [f"wamid.bench.tls{i}" for i in range(TLS_IDS)]
    faults = Faults(handshake_eof=TLS_EOF_SHARE, close_connections=True, seed=22)
    with NxCloudSandbox(tls=True, faults=faults) as sandbox:
        client = sandbox.client(retry_wait=(0.5, 30.0))  # the defaults' backoff
        started = time.monotonic()
        result = mark_messages(client, ids)
        seconds = time.monotonic() - started
        marked = len(sandbox.marked_ids())
        ended = sandbox.state.handshakes_ended
    return row(
        "tls_eof",
        "TLS: 1 handshake in 20 ended by EOF",
        f"{TLS_IDS} ids over HTTPS, a handshake per request, verify = the sandbox's certificate",
        f"{marked}/{TLS_IDS} marked in {seconds:.1f} s, {ended} handshakes ended, "
        f"{client.requests_sent} requests ({client.requests_sent / TLS_IDS:.3f} per id)",
        f"{TLS_IDS}/{TLS_IDS} marked",
        marked == TLS_IDS and result.state == "success",
        marked,
        handshakes_ended=ended,
        requests=client.requests_sent,
        seconds=seconds,
    )


def _bad_number() -> dict[str, Any]:
    from airflow_provider_nxcloud.batch import mark_messages
    from airflow_provider_nxcloud.testing import Faults, NxCloudSandbox

    records = [{"id": f"wamid.bench.n{i}", "business_phone": OTHER if i % 2 else PHONE} for i in range(200)]
    codes: dict[str, int | str] = {r["id"]: 9006 for r in records if r["business_phone"] == OTHER}
    with NxCloudSandbox(business_phones=[PHONE, OTHER], faults=Faults(codes=codes)) as sandbox:
        result = mark_messages(sandbox.client(), records)
        healthy = len(sandbox.marked_ids(PHONE))
        to_bad = sum(r.business_phone == OTHER for r in sandbox.requests)
    return row(
        "bad_number",
        "one number of two answered 9006",
        "200 records alternating between two numbers, client defaults",
        f"healthy number {healthy}/100 marked; bad number: {to_bad} requests, "
        f"{len(result.not_attempted)} not attempted with the reason; state {result.state}",
        "100/100 of the healthy number marked",
        healthy == 100 and result.state == "failed",
        healthy,
        requests_to_bad_number=to_bad,
    )


def _test_button(kind: str) -> dict[str, Any]:
    from airflow_provider_nxcloud.hooks.nxcloud import NxCloudHook
    from airflow_provider_nxcloud.testing import Faults, NxCloudSandbox

    faults = Faults(rates={"503": 1.0}) if kind == "503" else Faults(rates={"slow": 1.0}, slow_seconds=120)
    with NxCloudSandbox(faults=faults) as sandbox:
        os.environ["AIRFLOW_CONN_NXCLOUD_DEFAULT"] = sandbox.connection_json(timeout=60)
        started = time.monotonic()
        ok, text = NxCloudHook().test_connection()
        seconds = time.monotonic() - started
        requests = len(sandbox.requests)
    label = "answers only HTTP 503" if kind == "503" else "never answers in time (timeout 60 s)"
    return row(
        f"test_button_{kind}",
        f"Test button: server {label}",
        "NxCloudHook.test_connection()",
        f"{seconds:.2f} s, returned {ok}: {text}",
        f"<= {TEST_BUTTON_SECONDS:g} s, False",
        seconds <= TEST_BUTTON_SECONDS and not ok,
        seconds,
        requests_answered=requests,
    )


def measure_bad_day(quick: bool) -> list[dict[str, Any]]:
    count = QUICK_OUTAGE_IDS if quick else OUTAGE_IDS
    rows = []
    for name, measure in [
        ("outage 503", lambda: _outage("503", count)),
        ("outage refused", lambda: _outage("refused", count)),
        ("TLS EOF", _tls),
        ("bad number", _bad_number),
        ("Test button 503", lambda: _test_button("503")),
        ("Test button silent", lambda: _test_button("silent")),
    ]:
        log(f"bad day: {name} ...")
        rows.append(measure())
        log(f"bad day: {name}: {rows[-1]['result']}")
    return rows


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--quick", action="store_true", help="2,000 ids in the outages: a smoke test")
    parser.add_argument("--json", action="store_true", help="the rows as JSON instead of a table")
    args = parser.parse_args(argv)
    loopback_only()
    table_out = take_stdout()
    with private_airflow_home("nxcloud-bench-bad-day-"):
        os.environ["AIRFLOW__LOGGING__LOGGING_LEVEL"] = "WARNING"  # not every retry
        rows = measure_bad_day(args.quick)
    print(json.dumps(rows, indent=1) if args.json else table_rows(rows), file=table_out, flush=True)
    return 0 if all(r["passed"] for r in rows) else 1


if __name__ == "__main__":
    sys.exit(main())
