"""Reliability under faults, full size: ``.venv/bin/python -m benchmarks.reliability``.

10,000 ids through ``MarkWhatsAppReadOperator.execute`` (the code path of a DAG task) with
every default (8 workers, 5 retries, 0.5-30 s backoff, 30 s timeout) against an in-process
NXCloud sandbox that injects, per request as it arrives: 10 % code -1, 5 % code 9001, 5 % HTTP
503, 2 % HTTP 429 with ``Retry-After: 1``, 2 % dropped connections, 1 % HTML error page with
status 200 and 1 % answers slower than the timeout (32 s). Whatever the first run leaves failed
or not attempted is run again, as the next scheduled run would.

Checked against the sandbox's own record (exit status 1 if any fails): every id in exactly one
of marked/skipped/failed/not_attempted; every id reported marked was marked; no id marked or
sent that was not in the input; >= 99.9 % marked by the first run, the rest failed with a
reason and marked by the second; every retry with a fresh ``ts`` and signature. The figures
go to stdout and to ``benchmarks/results/reliability-<date>.json``. The default run takes
about a quarter of an hour: that is the backoff and the slow answers, measured, not overhead.
``--ids 1000 --timeout 1 --fast-backoff`` is the quick test's size and settings (~10 s).

The campaign itself is ``airflow_provider_nxcloud/testing/fault_campaign.py``, shared with the
quick test in ``tests/reliability/``.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from datetime import datetime, timezone
from importlib import metadata
from pathlib import Path
from typing import Any

from benchmarks.common import log, loopback_only, private_airflow_home
from benchmarks.config import RESULTS_DIR


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--ids", type=int, default=10_000, help="how many ids (default 10,000)")
    parser.add_argument("--mode", choices=["rates", "scripted"], default="rates")
    parser.add_argument("--seed", type=int, default=12)
    parser.add_argument("--timeout", type=float, help="connection timeout in s (default: the hook's 30)")
    parser.add_argument("--fast-backoff", action="store_true", help="10-50 ms between retries")
    parser.add_argument("--results", type=Path, default=RESULTS_DIR, help="where the JSON goes")
    parser.add_argument("--verbose", action="store_true", help="keep Airflow's INFO logs (every retry)")
    args = parser.parse_args(argv)

    with private_airflow_home("nxcloud-reliability-airflow-"):
        os.environ.setdefault("AIRFLOW__CORE__LOAD_EXAMPLES", "False")
        if not args.verbose:  # ~3,500 "retrying" lines otherwise
            os.environ["AIRFLOW__LOGGING__LOGGING_LEVEL"] = "WARNING"
        loopback_only()
        from airflow_provider_nxcloud.testing.fault_campaign import run_campaign
        from airflow_provider_nxcloud.testing.fault_mix import CampaignConfig

        config = CampaignConfig(
            count=args.ids,
            mode=args.mode,
            seed=args.seed,
            timeout=args.timeout,
            retry_wait=(0.01, 0.05) if args.fast_backoff else None,
        )
        timeout = config.effective_timeout
        log(f"reliability: {args.ids} ids, faults {config.rates} ({args.mode}), timeout {timeout:g} s")
        started = time.monotonic()
        report = run_campaign(config, os.environ.__setitem__, progress=log)
    wall = round(time.monotonic() - started, 1)

    document: dict[str, Any] = {
        "benchmark": "reliability",
        "date": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "full_size": args.ids >= 10_000 and args.timeout is None and not args.fast_backoff,
        "wall_seconds": wall,
        "fault_rates": config.rates,
        "retry_after_seconds": config.retry_after,
        "figures": report.figures,
        "violations": report.violations,
        "environment": {
            "python": platform.python_version(),
            "apache-airflow": metadata.version("apache-airflow"),
            "airflow-provider-nxcloud": metadata.version("airflow-provider-nxcloud"),
            "cpus": os.cpu_count(),
            "platform": platform.platform(),
        },
    }
    text = json.dumps(document, indent=2) + "\n"
    print(text, end="")
    if document["full_size"]:
        args.results.mkdir(parents=True, exist_ok=True)
        path = args.results / f"reliability-{datetime.now(timezone.utc):%Y-%m-%d}.json"
        path.write_text(text, encoding="utf-8")
        log(f"written to {path}")
    if report.violations:
        log("BROKEN PROMISES:\n  " + "\n  ".join(report.violations))
        return 1
    log(f"all promises held ({wall} s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
