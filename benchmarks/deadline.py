"""Nothing outlives its deadline, measured: ``.venv/bin/python -m benchmarks.deadline [--quick]``.

A batch of 10,000 requests (1,000 with ``--quick``) through one ``PooledTransport`` (timeout
1 s, 128 threads sharing its pool of 128 connections) against a server in its own process where
every answer is slow or trickles, in turn: the whole answer after 0.3-0.7 s (in time), the whole
answer after 2 s (too late), the headers one byte every 0.1 s, or the headers at once and then
the body one byte every 0.1 s. Each request is timed by the thread that sends it, from ``post``
to its return or error. The row: the longest request against timeout + 1 s; besides, every
request ends answered or with the deadline's error, and none of the late or trickling ones is
taken for an answer.

Prints a Markdown table row on stdout (progress on stderr); ``measure_deadline(quick)`` returns
the same rows as dicts (the fields of ``run.py``'s ``Row``). Exit status 1 when the target is missed.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import subprocess
import sys
import threading
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from benchmarks.common import Ticker, log

TIMEOUT_SECONDS = 1.0
MARGIN_SECONDS = 1.0  # the bound: timeout + 1 s
WORKERS = 128
TRICKLE_INTERVAL = 0.1
KINDS = ("slow in time", "too late", "trickled headers", "trickled body")
STARTUP_TIMEOUT_SECONDS = 60.0


# -- the server (its own process: ``python -m benchmarks.deadline --serve``) --


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    timeout = 30  # a client gone quiet frees its thread
    BODY = json.dumps({"code": 0, "message": "Request succeeded", "data": None}).encode()

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def do_POST(self) -> None:
        index = int(self.rfile.read(int(self.headers.get("Content-Length") or 0)) or 0)
        kind = KINDS[index % len(KINDS)]
        try:
            if kind == "slow in time":
                time.sleep(random.uniform(0.3, 0.7) * TIMEOUT_SECONDS)
                self._whole()
            elif kind == "too late":
                time.sleep(2 * TIMEOUT_SECONDS)
                self._whole()
            elif kind == "trickled headers":
                head = b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nX-Pad: " + b"p" * 200
                self._trickle(head + b"\r\nContent-Length: %d\r\n\r\n" % len(self.BODY) + self.BODY)
            else:
                head = b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 200\r\n\r\n"
                self.wfile.write(head)
                self.wfile.flush()
                self._trickle(self.BODY.ljust(200))
        except OSError:  # the client ended the request at its deadline: what is measured
            self.close_connection = True

    def _whole(self) -> None:
        self.wfile.write(
            b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n%s"
            % (len(self.BODY), self.BODY)
        )
        self.wfile.flush()

    def _trickle(self, data: bytes) -> None:
        for index in range(len(data)):
            self.wfile.write(data[index : index + 1])
            self.wfile.flush()
            time.sleep(TRICKLE_INTERVAL)


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    request_queue_size = 1024  # 128 clients reconnecting at once after their deadlines


def serve() -> None:
    server = _Server(("127.0.0.1", 0), _Handler)
    print(f"port {server.server_address[1]}", flush=True)
    server.serve_forever()


class ServerProcess:
    """The server above in a process of its own (its own interpreter lock), always terminated."""

    def __enter__(self) -> ServerProcess:
        self._process = subprocess.Popen(
            [sys.executable, "-m", "benchmarks.deadline", "--serve"], stdout=subprocess.PIPE
        )
        lines: list[bytes] = []
        assert self._process.stdout is not None
        reader = threading.Thread(target=lambda: lines.append(self._process.stdout.readline()), daemon=True)  # type: ignore[union-attr]
        reader.start()
        reader.join(STARTUP_TIMEOUT_SECONDS)
        if not lines or not lines[0].startswith(b"port "):
            self.__exit__()
            raise RuntimeError(f"the deadline server did not start within {STARTUP_TIMEOUT_SECONDS:g} s")
        self.url = f"http://127.0.0.1:{int(lines[0].split()[1])}"
        return self

    def __exit__(self, *exc: object) -> None:
        self._process.terminate()
        try:
            self._process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self._process.kill()
            self._process.wait(timeout=10)


# -- the client --


def run_batch(url: str, count: int) -> list[tuple[str, float, str]]:
    """(kind, seconds, outcome) of each request: outcome ``answered``, ``deadline`` or the error."""
    from airflow_provider_nxcloud.client.errors import NxCloudError
    from airflow_provider_nxcloud.client.transport import PooledTransport

    transport = PooledTransport(
        base_url=url, proxies={}, verify=True, timeout=TIMEOUT_SECONDS, pool_size=WORKERS
    )

    def one(index: int) -> tuple[str, float, str]:
        started = time.monotonic()
        try:
            answer = transport.post("/deadline", {"Content-Type": "application/json"}, str(index).encode())
            outcome = "answered" if answer.status == 200 and answer.body.startswith(b"{") else "garbled"
        except NxCloudError as error:
            outcome = "deadline" if "no complete answer within" in str(error) else str(error)
        ticker.done += 1
        return KINDS[index % len(KINDS)], time.monotonic() - started, outcome

    with Ticker("deadline batch", total=count) as ticker, ThreadPoolExecutor(WORKERS) as pool:
        return list(pool.map(one, range(count)))


def measure_deadline(quick: bool) -> list[dict[str, Any]]:
    count = 1_000 if quick else 10_000
    with ServerProcess() as server:
        started = time.monotonic()
        results = run_batch(server.url, count)
        seconds = time.monotonic() - started
    durations = sorted(duration for _, duration, _ in results)
    longest, p99 = durations[-1], durations[int(0.99 * (len(durations) - 1))]
    outcomes = Counter(f"{kind}: {outcome}" for kind, _, outcome in results)
    by_kind = {kind: round(max(duration for k, duration, _ in results if k == kind), 3) for kind in KINDS}
    unexpected = {key: n for key, n in outcomes.items() if not key.endswith((": answered", ": deadline"))}
    taken_for_answers = sum(
        n for key, n in outcomes.items() if key.endswith(": answered") and not key.startswith("slow")
    )
    bound = TIMEOUT_SECONDS + MARGIN_SECONDS
    in_time = outcomes["slow in time: answered"]
    passed = longest <= bound and not unexpected and not taken_for_answers
    log(f"deadline batch: {count} requests in {seconds:.1f} s; longest {longest:.3f} s; {dict(outcomes)}")
    return [
        {
            "key": "deadline",
            "measure": "deadline per request",
            "how": (
                f"{count:,} requests through one transport, {WORKERS} threads, timeout "
                f"{TIMEOUT_SECONDS:g} s; every answer slow (0.3-0.7 s, or 2 s) or trickling "
                f"(headers, or body, a byte per {TRICKLE_INTERVAL:g} s)"
            ),
            "result": (
                f"longest {longest:.2f} s (p99 {p99:.2f} s); {in_time} of {count // len(KINDS)} "
                f"in-time answers arrived, the rest ended by the deadline"
            ),
            "target": f"longest <= timeout + {MARGIN_SECONDS:g} s ({bound:g} s); no late answer taken",
            "passed": passed,
            "value": round(longest, 3),
            "details": {
                "seconds": round(seconds, 1),
                "p99_seconds": round(p99, 3),
                "longest_by_kind": by_kind,
                "outcomes": dict(outcomes),
                "unexpected": unexpected,
            },
        }
    ]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--quick", action="store_true", help="1,000 requests: a smoke test, not a result")
    parser.add_argument("--serve", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.serve:
        serve()
        return 0
    no_proxy = ",".join(filter(None, [os.environ.get("NO_PROXY", ""), "127.0.0.1", "localhost"]))
    os.environ["NO_PROXY"] = os.environ["no_proxy"] = no_proxy
    rows = measure_deadline(args.quick)
    for row in rows:
        verdict = "pass" if row["passed"] else "**MISSED**"
        print(f"| {row['measure']} | {row['how']} | {row['result']} | {row['target']} | {verdict} |")
    return 0 if all(row["passed"] for row in rows) else 1


if __name__ == "__main__":
    sys.exit(main())
