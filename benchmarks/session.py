"""One benchmark run's surroundings: a private Airflow home, loopback only, one sandbox at a time."""

from __future__ import annotations

import json
import os
from contextlib import ExitStack
from typing import TYPE_CHECKING, Any

from benchmarks.common import SandboxProcess, loopback_only, private_airflow_home
from benchmarks.runners import warm_up

if TYPE_CHECKING:
    from types import TracebackType

    from benchmarks.config import SandboxSpec, Sizes


class Session:
    """
    What every measure gets: the sizes, a sandbox by spec, and where to put figures beside the table.

    Used as a context manager: on exit the sandbox is stopped and the Airflow home removed, also
    when a measure fails or the run is interrupted.
    """

    def __init__(self, sizes: Sizes) -> None:
        self.sizes = sizes
        self.context: dict[str, Any] = {}  # the JSON's "context": figures no row holds
        self.notes: list[str] = []  # sentences printed under the table
        self._stack = ExitStack()
        self._sandbox_stack = ExitStack()  # the running sandbox's exit
        self._running: tuple[SandboxSpec, SandboxProcess] | None = None
        self._warm = False

    def __enter__(self) -> Session:
        self._stack.enter_context(private_airflow_home("nxcloud-bench-airflow-"))
        loopback_only()
        self._stack.enter_context(self._sandbox_stack)
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self._stack.close()

    def sandbox(self, spec: SandboxSpec) -> SandboxProcess:
        """
        The sandbox ``spec`` describes, its connections in the environment. A different spec
        stops the running one first: on two cores, one sandbox process at a time beside the client.
        """
        if self._running is not None and self._running[0] == spec:
            return self._running[1]
        self._running = None
        self._sandbox_stack.close()
        sandbox = SandboxProcess(latency_ms=spec.latency_ms, request_log=spec.request_log)
        self._running = (spec, self._sandbox_stack.enter_context(sandbox))
        port = int(sandbox.url.rsplit(":", 1)[1])
        os.environ[f"AIRFLOW_CONN_{spec.conn_id.upper()}"] = json.dumps(sandbox.connection)
        os.environ[f"AIRFLOW_CONN_{spec.http_conn_id.upper()}"] = json.dumps(
            {"conn_type": "http", "host": "127.0.0.1", "port": port, "schema": "http"}
        )
        if not self._warm:
            warm_up(sandbox, spec.conn_id)
            self._warm = True
        return sandbox
