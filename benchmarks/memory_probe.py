"""Peak memory of one big batch, run by ``run.py`` in a fresh process so nothing else is counted.

Prints one JSON line. The baseline is taken after the imports and after the input records exist
(they are the upstream task's XCom value, handed to the operator, not memory the provider
allocates); the peak is the kernel's high-water mark (``VmHWM``), reset at the baseline.
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import resource
import time

from benchmarks.common import message_ids

RESULT_MARKER = "MEMORY_PROBE_RESULT "


def _status_kib(name: str) -> int:
    with open("/proc/self/status", encoding="ascii") as handle:
        for line in handle:
            if line.startswith(name + ":"):
                return int(line.split()[1])
    raise RuntimeError(f"/proc/self/status has no {name}")


def _reset_peak() -> bool:
    # Writing 5 to clear_refs resets VmHWM to the current RSS (Linux >= 4.0).
    try:
        with open("/proc/self/clear_refs", "w", encoding="ascii") as handle:
            handle.write("5")
    except OSError:
        return False
    return True


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--conn-id", required=True)
    parser.add_argument("--count", type=int, required=True)
    parser.add_argument("--workers", type=int, default=32)
    args = parser.parse_args()

    from airflow_provider_nxcloud.operators.whatsapp import MarkWhatsAppReadOperator

    gc.collect()
    after_imports = _status_kib("VmRSS")
    now = int(time.time())
    # Records shaped like NXCloud's inbound webhook messages, as an upstream task hands them over.
    records = [
        {"id": message_id, "from": "8613912345678", "timestamp": str(now - index % 3600), "type": "text",
         "text": {"body": "hello"}}
        for index, message_id in enumerate(message_ids("m", args.count))
    ]  # fmt: skip
    operator = MarkWhatsAppReadOperator(
        task_id="bench_memory", message_ids=records, nxcloud_conn_id=args.conn_id, max_workers=args.workers
    )
    gc.collect()
    baseline = _status_kib("VmRSS")
    exact_peak = _reset_peak()

    started = time.perf_counter()
    outcome = operator.execute(context={})
    seconds = time.perf_counter() - started

    peak = _status_kib("VmHWM") if exact_peak else resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    # Airflow logs to stdout too: the marker tells run.py which line is ours.
    print(
        RESULT_MARKER
        + json.dumps(
            {
                "messages": args.count,
                "marked": len(outcome["marked"]),
                "seconds": round(seconds, 2),
                "after_imports_mb": round(after_imports / 1024, 1),
                "input_records_mb": round((baseline - after_imports) / 1024, 1),
                "baseline_mb": round(baseline / 1024, 1),
                "peak_mb": round(peak / 1024, 1),
                "delta_mb": round((peak - baseline) / 1024, 1),
                "peak_method": "VmHWM reset at baseline" if exact_peak else "ru_maxrss (process lifetime)",
                "pid": os.getpid(),
            }
        ),
        flush=True,
    )


if __name__ == "__main__":
    main()
