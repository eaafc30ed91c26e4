"""Shared pieces of the benchmarks: their Airflow surroundings, the sandbox process, CPU clocks,
ids and a progress ticker.
"""

from __future__ import annotations

import json
import os
import queue
import resource
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from collections.abc import Iterator
    from types import TracebackType

STARTUP_TIMEOUT_SECONDS = 60.0


def log(text: str) -> None:
    """Progress goes to stderr so that stdout holds only the table."""
    print(text, file=sys.stderr, flush=True)


@contextmanager
def private_airflow_home(prefix: str) -> Iterator[None]:
    """A throwaway AIRFLOW_HOME: no secrets backend or config of the machine's own Airflow is used."""
    home = tempfile.mkdtemp(prefix=prefix)
    os.environ["AIRFLOW_HOME"] = home
    try:
        yield
    finally:
        shutil.rmtree(home, ignore_errors=True)


def loopback_only() -> None:
    """Never route the sandbox's requests through a proxy from the environment."""
    no_proxy = ",".join(filter(None, [os.environ.get("NO_PROXY", ""), "127.0.0.1", "localhost"]))
    os.environ["NO_PROXY"] = os.environ["no_proxy"] = no_proxy


def process_cpu_seconds() -> float:
    """user + sys CPU of this whole process (every thread), in seconds."""
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def message_ids(prefix: str, count: int) -> list[str]:
    """Distinct ids shaped like real WhatsApp ids (``wamid.`` + ~50 base64-ish characters)."""
    return [f"wamid.HBgNODYxMzgwMDAwMDAwMBUCABEYEj{prefix}{index:08d}A" for index in range(count)]


@dataclass
class SandboxProcess:
    """
    ``python -m airflow_provider_nxcloud.testing`` in its own process (its own interpreter lock).

    Always used as a context manager: the process is terminated (then killed) on exit, also
    when the benchmark fails or is interrupted.
    """

    latency_ms: float
    request_log: bool = False
    url: str = ""
    connection: dict[str, Any] = field(default_factory=dict)
    _process: subprocess.Popen[bytes] | None = None
    _stderr: Any = None

    def __enter__(self) -> SandboxProcess:
        command = [
            sys.executable,
            "-m",
            "airflow_provider_nxcloud.testing",
            "--port",
            "0",
            "--latency-ms",
            f"{self.latency_ms:g}",
        ]
        if not self.request_log:
            command.append("--no-request-log")
        self._stderr = tempfile.TemporaryFile()
        self._process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=self._stderr)
        try:
            lines = self._first_lines(2)
            self.url = lines[0].split()[-1]
            _, _, value = lines[1].partition("=")
            self.connection = json.loads(value.strip().strip("'"))
        except BaseException:
            self.__exit__(None, None, None)
            raise
        return self

    def _first_lines(self, count: int) -> list[str]:
        # readline() could block forever on a sandbox that hangs at start-up: read in a thread.
        assert self._process is not None and self._process.stdout is not None
        stdout = self._process.stdout
        lines: queue.Queue[bytes] = queue.Queue()

        def read() -> None:
            for _ in range(count):
                lines.put(stdout.readline())

        reader = threading.Thread(target=read, daemon=True)
        reader.start()
        deadline = time.monotonic() + STARTUP_TIMEOUT_SECONDS
        found: list[str] = []
        while len(found) < count:
            try:
                line = lines.get(timeout=max(0.1, deadline - time.monotonic()))
            except queue.Empty:
                raise RuntimeError("the sandbox did not start within 60 s") from None
            if not line:
                self._stderr.seek(0)
                raise RuntimeError(f"the sandbox exited: {self._stderr.read().decode(errors='replace')}")
            found.append(line.decode().strip())
        return found

    @property
    def pid(self) -> int:
        assert self._process is not None
        return self._process.pid

    def cpu_seconds(self) -> float:
        """user + sys CPU the sandbox process has used so far."""
        with open(f"/proc/{self.pid}/stat", encoding="ascii") as handle:
            fields = handle.read().rsplit(")", 1)[1].split()
        ticks = int(fields[11]) + int(fields[12])  # utime, stime (fields 14 and 15 of stat)
        return ticks / os.sysconf("SC_CLK_TCK")

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        process, self._process = self._process, None
        if process is not None:
            process.terminate()
            try:
                process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(timeout=10)
            if process.stdout is not None:
                process.stdout.close()
        if self._stderr is not None:
            self._stderr.close()
            self._stderr = None


class Ticker:
    """Prints ``<label>: <elapsed> s`` (and a count when given) every few seconds while it runs."""

    def __init__(self, label: str, total: int | None = None, every: float = 5.0) -> None:
        self.label = label
        self.total = total
        self.every = every
        self.done = 0  # updated by the measured code when it can count cheaply
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="bench-progress", daemon=True)
        self._started = 0.0

    def _run(self) -> None:
        while not self._stop.wait(self.every):
            elapsed = time.monotonic() - self._started
            if self.total and self.done:
                rate = self.done / elapsed
                log(f"  ... {self.label}: {self.done}/{self.total} in {elapsed:.0f} s ({rate:.0f} msg/s)")
            else:
                log(f"  ... {self.label}: {elapsed:.0f} s")

    def __enter__(self) -> Ticker:
        self._started = time.monotonic()
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()


@dataclass
class Timed:
    """Wall time and CPU (this process, and the sandbox's) of one measured run."""

    count: int
    seconds: float
    cpu_seconds: float
    sandbox_cpu_seconds: float
    ok: int

    @property
    def per_second(self) -> float:
        return self.ok / self.seconds if self.seconds > 0 else 0.0

    @property
    def cpu_ms_per_message(self) -> float:
        return 1000 * self.cpu_seconds / self.count if self.count else 0.0

    @property
    def sandbox_cpu_ms_per_message(self) -> float:
        return 1000 * self.sandbox_cpu_seconds / self.count if self.count else 0.0

    def as_dict(self) -> dict[str, float]:
        return {
            "messages": self.count,
            "ok": self.ok,
            "seconds": round(self.seconds, 3),
            "msg_per_s": round(self.per_second, 1),
            "cpu_ms_per_msg": round(self.cpu_ms_per_message, 3),
            "sandbox_cpu_ms_per_msg": round(self.sandbox_cpu_ms_per_message, 3),
        }


class Stopwatch:
    """Context manager measuring wall time, this process's CPU and the sandbox's CPU."""

    def __init__(self, sandbox: SandboxProcess) -> None:
        self.sandbox = sandbox
        self.seconds = self.cpu = self.sandbox_cpu = 0.0

    def __enter__(self) -> Stopwatch:
        self._sandbox0 = self.sandbox.cpu_seconds()
        self._cpu0 = process_cpu_seconds()
        self._t0 = time.perf_counter()
        return self

    def __exit__(self, *exc: object) -> None:
        self.seconds = time.perf_counter() - self._t0
        self.cpu = process_cpu_seconds() - self._cpu0
        self.sandbox_cpu = self.sandbox.cpu_seconds() - self._sandbox0

    def result(self, count: int, ok: int) -> Timed:
        return Timed(count, self.seconds, self.cpu, self.sandbox_cpu, ok)
