"""What a run reports: the Markdown table, the JSON document and the machine it ran on."""

from __future__ import annotations

import json
import os
import platform
import sys
from importlib import metadata
from typing import TYPE_CHECKING, Any, TextIO

if TYPE_CHECKING:
    from pathlib import Path

    from benchmarks.measures import Row


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
