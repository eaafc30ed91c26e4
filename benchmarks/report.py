"""What a run reports: the Markdown table, the JSON document and the machine it ran on."""

from __future__ import annotations

import json
import os
import platform
import sys
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
from importlib import metadata
from typing import TYPE_CHECKING, Any, TextIO

from benchmarks.config import CEILING, LATENCY_MS, WORKERS

if TYPE_CHECKING:
    from pathlib import Path

    from benchmarks.config import Sizes

# The table's order; a row whose key is not listed follows these, in the order it was measured.
TABLE_ORDER = [
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


@dataclass
class Row:
    """One line of the table; ``value`` and ``details`` are for the JSON."""

    key: str
    measure: str
    how: str
    result: str
    target: str
    passed: bool
    value: float
    details: dict[str, Any] = field(default_factory=dict)


def row(
    key: str, measure: str, how: str, result: str, target: str, passed: bool, value: float, **details: Any
) -> dict[str, Any]:
    """A ``Row`` as the measures that run on their own return it (``run.py`` reads it back)."""
    return asdict(Row(key, measure, how, result, target, passed, value, details))


def table_rows(rows: list[dict[str, Any]]) -> str:
    """A measure's rows as Markdown table lines, for the measures that run on their own."""
    return "\n".join(
        f"| {r['measure']} | {r['how']} | {r['result']} | {r['target']} | "
        f"{'pass' if r['passed'] else '**MISSED**'} |"
        for r in rows
    )


def in_table_order(rows: list[Row]) -> list[Row]:
    return sorted(
        rows, key=lambda row: TABLE_ORDER.index(row.key) if row.key in TABLE_ORDER else len(TABLE_ORDER)
    )


def machine() -> dict[str, Any]:
    model = "unknown"
    with open("/proc/cpuinfo", encoding="utf-8") as handle:
        for line in handle:
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    with open("/proc/meminfo", encoding="ascii") as handle:
        memory_kib = int(handle.readline().split()[1])

    def version(name: str) -> str:
        try:
            return metadata.version(name)
        except metadata.PackageNotFoundError:
            return "not installed"

    return {
        "cpu": model,
        "cores": os.cpu_count(),
        "memory_gib": round(memory_kib / 1024**2, 1),
        "os": platform.platform(),
        "python": platform.python_version(),
        "packages": {
            name: version(name)
            for name in ("apache-airflow", "requests", "urllib3", "tenacity", "apache-airflow-providers-http")
        },
    }


def table(rows: list[Row]) -> str:
    lines = ["| measure | how | result | target | |", "|---|---|---|---|---|"]
    for row in rows:
        verdict = "pass" if row.passed else "**MISSED**"
        lines.append(f"| {row.measure} | {row.how} | {row.result} | {row.target} | {verdict} |")
    return "\n".join(lines)


def write_json(path: Path, document: dict[str, Any]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_suffix(".tmp.json")
    temporary.write_text(json.dumps(document, indent=2) + "\n", encoding="utf-8")
    temporary.replace(path)


def take_stdout() -> TextIO:
    """Keep stdout for the table alone: Airflow's loggers print to stdout, send them to stderr."""
    sys.stdout.flush()
    table_out = os.fdopen(os.dup(1), "w", encoding="utf-8")
    os.dup2(2, 1)
    return table_out


def document(
    rows: list[Row], context: dict[str, Any], sizes: Sizes, *, quick: bool, seconds: float
) -> dict[str, Any]:
    """Everything the JSON holds: when, where, with what settings, and the rows in table order."""
    rows = in_table_order(rows)
    return {
        "date": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "quick": quick,
        "seconds": round(seconds, 1),
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


def save(document: dict[str, Any], results: Path) -> None:
    """``latest.json`` always; a full run is also kept under its date."""
    write_json(results / "latest.json", document)
    if not document["quick"]:
        day = datetime.fromisoformat(document["date"]).date().isoformat()
        write_json(results / f"{day}.json", document)


def show(document: dict[str, Any], notes: list[str], out: TextIO) -> None:
    print(document["table"], file=out)
    print("\n" + " ".join([*notes, f"{document['seconds']} s in all."]), file=out)
    out.flush()
