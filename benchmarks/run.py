"""Benchmarks of airflow-provider-nxcloud against the sandbox: ``.venv/bin/python -m benchmarks.run``.

Runs every measure of benchmarks/README.md against NXCloud sandboxes on 127.0.0.1 (separate
processes, so client and server do not share an interpreter lock) with 50 ms of injected latency,
prints one Markdown table on stdout (progress and logs go to stderr) and writes it as JSON to
``benchmarks/results/latest.json`` and, for full runs, ``benchmarks/results/<date>.json``.
Comparisons run side by side in the same run and are reported as ratios. Exit status 1 when a
target is missed. ``--quick`` runs small sizes in about a minute, as a smoke test.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import tempfile
import time
from dataclasses import asdict
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from benchmarks.common import SandboxProcess
from benchmarks.config import (
    BENCH_CONN,
    BENCH_FAST_CONN,
    BENCH_HTTP_CONN,
    BENCH_LOGGED_CONN,
    CEILING,
    FULL,
    HERE,
    LATENCY_MS,
    QUICK,
    WORKERS,
)
from benchmarks.measures import (
    Row,
    measure_against_latency,
    measure_imports,
    measure_memory,
    measure_rate_cap,
)
from benchmarks.report import machine, table, take_stdout, write_json


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--quick", action="store_true", help="small sizes: a smoke test, not a result")
    parser.add_argument("--results", type=Path, default=HERE / "results", help="where the JSON goes")
    args = parser.parse_args(argv)
    sizes = QUICK if args.quick else FULL
    table_out = take_stdout()
    started = time.monotonic()
    airflow_home = tempfile.mkdtemp(prefix="nxcloud-bench-airflow-")
    # A private AIRFLOW_HOME: no secrets backend or config of the machine's own Airflow is used.
    os.environ["AIRFLOW_HOME"] = airflow_home
    # Only loopback traffic: never route the sandbox's requests through an environment proxy.
    no_proxy = ",".join(filter(None, [os.environ.get("NO_PROXY", ""), "127.0.0.1", "localhost"]))
    os.environ["NO_PROXY"] = os.environ["no_proxy"] = no_proxy
    rows: list[Row] = []
    context: dict[str, Any] = {}
    try:
        rows.append(measure_imports(sizes))
        with SandboxProcess(latency_ms=LATENCY_MS) as sandbox:
            os.environ[f"AIRFLOW_CONN_{BENCH_CONN.upper()}"] = json.dumps(sandbox.connection)
            port = int(sandbox.url.rsplit(":", 1)[1])
            os.environ[f"AIRFLOW_CONN_{BENCH_HTTP_CONN.upper()}"] = json.dumps(
                {"conn_type": "http", "host": "127.0.0.1", "port": port, "schema": "http"}
            )
            latency_rows, context = measure_against_latency(sandbox, sizes)
            rows.extend(latency_rows)
        with SandboxProcess(latency_ms=LATENCY_MS, request_log=True) as logged:
            os.environ[f"AIRFLOW_CONN_{BENCH_LOGGED_CONN.upper()}"] = json.dumps(logged.connection)
            rows.append(measure_rate_cap(logged, sizes))
        with SandboxProcess(latency_ms=0) as fast:
            os.environ[f"AIRFLOW_CONN_{BENCH_FAST_CONN.upper()}"] = json.dumps(fast.connection)
            rows.append(measure_memory(fast, sizes, dict(os.environ)))
    finally:
        shutil.rmtree(airflow_home, ignore_errors=True)

    order = [
        "batch_throughput",
        "vs_hand_written",
        "vs_http_hook",
        "vs_raw_client",
        "rate_cap",
        "cpu_per_message",
        "memory",
        "import_cost",
        "default_settings",
    ]
    rows.sort(key=lambda row: order.index(row.key))
    now = datetime.now(timezone.utc)
    document = {
        "date": now.isoformat(timespec="seconds"),
        "quick": args.quick,
        "seconds": round(time.monotonic() - started, 1),
        "machine": machine(),
        "setup": {
            "latency_ms": LATENCY_MS,
            "workers": WORKERS,
            "ceiling_msg_per_s": CEILING,
            **asdict(sizes),
        },
        "context": context,
        "rows": [asdict(row) for row in rows],
        "table": table(rows),
    }
    write_json(args.results / "latest.json", document)
    if not args.quick:
        write_json(args.results / f"{now.date().isoformat()}.json", document)
    print(table(rows), file=table_out)
    print(
        f"\nraw client: {100 * context['raw_client_share_of_ceiling']:.1f} % of {CEILING:.0f} msg/s; "
        f"one request takes {context['round_trip_ms']} ms, so {WORKERS} workers can reach "
        f"{context['effective_ceiling_msg_per_s']} msg/s. During the batch the benchmark process "
        f"used {context['operator_process_cores']:.2f} of a core and the sandbox "
        f"{context['sandbox_process_cores']:.2f}. {document['seconds']} s in all.",
        file=table_out,
    )
    table_out.flush()
    return 0 if all(row.passed for row in rows) else 1


if __name__ == "__main__":
    sys.exit(main())
