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
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

from benchmarks import measures, report
from benchmarks.adaptive import measure_adaptive
from benchmarks.bad_day import measure_bad_day
from benchmarks.config import FULL, QUICK, RESULTS_DIR
from benchmarks.conversations import measure_conversations
from benchmarks.deadline import measure_deadline
from benchmarks.session import Session
from benchmarks.whatsapp_rules import measure_whatsapp_rules

if TYPE_CHECKING:
    from collections.abc import Callable


def _own_sandboxes(measure: Callable[[bool], list[dict[str, Any]]]) -> Callable[[Session], list[report.Row]]:
    """A measure that starts its own sandboxes (it also runs alone: ``python -m benchmarks.<name>``)."""
    return lambda session: [report.Row(**row) for row in measure(session.sizes is QUICK)]


# In the order they run; the table has its own order (report.TABLE_ORDER).
MEASURES: list[Callable[[Session], list[report.Row]]] = [
    measures.import_cost,  # first: fresh interpreters, before any sandbox runs
    measures.throughput,
    measures.vs_sequential,
    measures.default_settings,
    measures.rate_cap,
    measures.memory,
    _own_sandboxes(measure_conversations),
    _own_sandboxes(measure_adaptive),
    _own_sandboxes(measure_deadline),
    _own_sandboxes(measure_whatsapp_rules),
    _own_sandboxes(measure_bad_day),
]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--quick", action="store_true", help="small sizes: a smoke test, not a result")
    parser.add_argument("--results", type=Path, default=RESULTS_DIR, help="where the JSON goes")
    args = parser.parse_args(argv)
    sizes = QUICK if args.quick else FULL
    table_out = report.take_stdout()
    started = time.monotonic()
    rows: list[report.Row] = []
    with Session(sizes) as session:
        for measure in MEASURES:
            rows.extend(measure(session))
    seconds = time.monotonic() - started
    document = report.document(rows, session.context, sizes, quick=args.quick, seconds=seconds)
    report.save(document, args.results)
    report.show(document, session.notes, table_out)
    return 0 if all(row.passed for row in rows) else 1


if __name__ == "__main__":
    sys.exit(main())
