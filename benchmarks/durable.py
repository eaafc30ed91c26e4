"""Durable marking, measured: ``.venv/bin/python -m benchmarks.durable [--quick]``.

Against a sandbox in its own process (5 ms latency), through ``NxCloudClient`` and the batch
engine (no Airflow: the store is a dict that serialises each value to JSON, as a real store
does; Airflow's task state store adds its round trips in the flusher thread, not in the
workers'):

- the cost of checkpoints: 10,000 ids with and without a checkpoint, alternating, the median of
  each: throughput and this process's CPU per message (goal: within 5 %), and the bytes and
  writes that reached the store;
- a crash at 50 %: a child process marks 10,000 ids with a JSON-file checkpoint and is SIGKILLed
  once the sandbox has seen half of them; the requests of the next run, with the checkpoint and
  without it.

Prints the figures on stdout (progress on stderr). Exit status 1 when the 5 % goal is missed.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from airflow_provider_nxcloud.batch import mark_messages
from airflow_provider_nxcloud.batch.checkpoint import Progress
from airflow_provider_nxcloud.batch.messages import Message
from airflow_provider_nxcloud.batch.options import BatchOptions
from airflow_provider_nxcloud.batch.results import Outcome
from airflow_provider_nxcloud.client import NxCloudClient
from benchmarks.common import SandboxProcess, Stopwatch, log, loopback_only, message_ids

LATENCY_MS = 5.0
GOAL = 0.05


class Store(dict[str, Any]):
    """A dict as a checkpoint, counting the writes and the bytes of their JSON."""

    writes = 0
    bytes_written = 0

    def set(self, key: str, value: Any) -> None:
        text = json.dumps(value)
        self.writes += 1
        self.bytes_written += len(key) + len(text)
        self[key] = json.loads(text)


class JsonFile:
    """A checkpoint in a JSON file, replaced whole on each write."""

    def __init__(self, path: str) -> None:
        self.path = Path(path)

    def get(self, key: str) -> Any:
        return json.loads(self.path.read_text()).get(key) if self.path.exists() else None

    def set(self, key: str, value: Any) -> None:
        document = json.loads(self.path.read_text()) if self.path.exists() else {}
        temporary = self.path.with_suffix(".tmp")
        temporary.write_text(json.dumps({**document, key: value}))
        temporary.replace(self.path)


def client(sandbox_url: str, connection: dict[str, Any]) -> NxCloudClient:
    extra = connection.get("extra") or {}
    if isinstance(extra, str):
        extra = json.loads(extra)
    return NxCloudClient(
        access_key=connection["login"],
        access_secret=connection["password"],
        base_url=sandbox_url,
        business_phone=extra.get("business_phone"),
    )


def cost(sandbox: SandboxProcess, count: int, repeats: int) -> dict[str, Any]:
    ids = message_ids("D", count)
    runs: dict[str, list[tuple[float, float]]] = {"without": [], "with": []}
    stores: list[Store] = []
    mark_messages(client(sandbox.url, sandbox.connection), ids[: count // 4])  # warm-up, not measured
    for _ in range(repeats):
        for kind in ("without", "with"):
            store = Store() if kind == "with" else None
            with Stopwatch(sandbox) as watch:
                result = mark_messages(
                    client(sandbox.url, sandbox.connection), ids, options=BatchOptions(), checkpoint=store
                )
            assert result.state == "success", result.summary()
            timed = watch.result(count, len(result.marked))
            runs[kind].append((timed.per_second, timed.cpu_ms_per_message))
            log(f"{kind} checkpoint: {timed.per_second:.0f} msg/s, {timed.cpu_ms_per_message:.3f} ms CPU/msg")
            if store is not None:
                stores.append(store)
    rate = {k: statistics.median(r for r, _ in v) for k, v in runs.items()}
    cpu = {k: statistics.median(c for _, c in v) for k, v in runs.items()}
    return {
        "messages": count,
        "msg_per_s": rate,
        "cpu_ms_per_msg": cpu,
        "throughput_ratio": rate["with"] / rate["without"],
        "cpu_ratio": cpu["with"] / cpu["without"],
        "store_writes": stores[-1].writes,
        "store_bytes": stores[-1].bytes_written,
        "own_cpu_us_per_msg": own_cpu_us_per_message(count),
    }


def own_cpu_us_per_message(count: int, per_flush: int = 50) -> float:
    """The checkpoint's own work alone (digest, recording, encoding), steadier than a ratio of runs."""
    messages = [Message(message_id, "8613800000000") for message_id in message_ids("P", count)]
    outcomes: list[Outcome | None] = [Outcome(m, "marked", 0) for m in messages]
    started = time.process_time()
    progress = Progress(Store(), messages)
    for start in range(0, count, per_flush):  # a flush per 50 messages: more often than 1/s
        for index in range(start, min(count, start + per_flush)):
            progress.add([index], outcomes)
        progress.flush()
    return 1e6 * (time.process_time() - started) / count


CHILD = """
import sys
from benchmarks.durable import JsonFile, client, message_ids_for
from airflow_provider_nxcloud.batch import mark_messages
import json
mark_messages(client(sys.argv[1], json.loads(sys.argv[2])), message_ids_for(int(sys.argv[3])),
              checkpoint=JsonFile(sys.argv[4]))
"""


def message_ids_for(count: int) -> list[str]:
    return message_ids("K", count)


def crash(sandbox: SandboxProcess, count: int) -> dict[str, Any]:
    from airflow_provider_nxcloud.testing import SandboxClient

    control = SandboxClient(sandbox.url)

    def seen() -> int:
        return int(control.state(since=1 << 62)["request_count"])

    figures: dict[str, Any] = {"messages": count}
    with tempfile.TemporaryDirectory() as directory:
        path = os.path.join(directory, "checkpoint.json")
        control.reset()
        child = subprocess.Popen(
            [sys.executable, "-c", CHILD, sandbox.url, json.dumps(sandbox.connection), str(count), path]
        )
        deadline = time.monotonic() + 300
        while seen() < count // 2:
            if child.poll() is not None or time.monotonic() > deadline:
                child.kill()
                raise RuntimeError("the child batch ended or stalled before half its requests")
            time.sleep(0.01)
        child.send_signal(signal.SIGKILL)
        child.wait(timeout=30)
        figures["sent_before_kill"] = before = seen()
        for kind, checkpoint in (("with", JsonFile(path)), ("without", None)):
            start = seen()
            result = mark_messages(
                client(sandbox.url, sandbox.connection), message_ids_for(count), checkpoint=checkpoint
            )
            assert result.state == "success", result.summary()
            figures[f"requests_after_{kind}"] = seen() - start
            log(f"after the crash, {kind} durable: {figures[f'requests_after_{kind}']} requests")
        figures["sent_twice_with"] = figures["requests_after_with"] - (count - before)
    return figures


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="2,000 ids, one run each")
    args = parser.parse_args()
    count, repeats = (2_000, 1) if args.quick else (10_000, 3)
    loopback_only()
    with SandboxProcess(latency_ms=LATENCY_MS, request_log=True) as sandbox:
        measured = cost(sandbox, count, repeats)
        crashed = crash(sandbox, count)
    print(f"| checkpoints, {count} ids | without | with | ratio |")
    print("|---|---|---|---|")
    rate, cpu = measured["msg_per_s"], measured["cpu_ms_per_msg"]
    print(
        f"| throughput (msg/s) | {rate['without']:.0f} | {rate['with']:.0f} "
        f"| {measured['throughput_ratio']:.3f} |"
    )
    print(
        f"| CPU per message (ms) | {cpu['without']:.3f} | {cpu['with']:.3f} | {measured['cpu_ratio']:.3f} |"
    )
    print(f"| store: writes, bytes | | {measured['store_writes']}, {measured['store_bytes']} B | |")
    own = measured["own_cpu_us_per_msg"]
    share = own / (1000 * cpu["without"])
    print(f"| the checkpoint's own CPU per message | | {own:.1f} us | {share:.2%} of the CPU per message |")
    print()
    print(f"| crash at 50 % of {count} ids | requests of the next run |")
    print("|---|---|")
    print(f"| sent before the SIGKILL | {crashed['sent_before_kill']} |")
    print(
        f"| next run, durable | {crashed['requests_after_with']} ({crashed['sent_twice_with']} sent twice) |"
    )
    print(f"| next run, not durable | {crashed['requests_after_without']} |")
    missed = measured["throughput_ratio"] < 1 - GOAL or measured["cpu_ratio"] > 1 + GOAL
    return 1 if missed else 0


if __name__ == "__main__":
    sys.exit(main())
