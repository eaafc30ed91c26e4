"""Helpers shared by the test folders: Airflow in a child process, free ports, bounded waits."""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import pytest

if TYPE_CHECKING:
    from collections.abc import Callable, Iterator

T = TypeVar("T")


def bounded(seconds: float, call: Callable[[], T]) -> T:
    """``call()``, failing the test if it has not returned within ``seconds`` (a hang detector).

    The call runs in a daemon thread; a stuck one is abandoned (the fixtures that started its
    server free it at teardown), so a hang fails one test instead of the whole run.
    """
    outcome: dict[str, Any] = {}

    def run() -> None:
        try:
            outcome["value"] = call()
        except BaseException as error:  # handed to the test's thread below
            outcome["error"] = error

    thread = threading.Thread(target=run, name="bounded-call", daemon=True)
    thread.start()
    thread.join(seconds)
    if thread.is_alive():
        pytest.fail(f"still waiting after {seconds:g} s: this wait is not bounded")
    if "error" in outcome:
        raise outcome["error"]
    return outcome["value"]  # type: ignore[no-any-return]


@contextlib.contextmanager
def alarm(seconds: float, what: str) -> Iterator[None]:
    """Fail the test if the block has not ended within ``seconds``, in the test's own thread.

    For calls that must run in the main thread, where ``bounded()``'s helper thread would not do:
    Airflow 2's operators refuse ``execute()`` from a thread other than the one that imported them.
    """

    def expired(signum: int, frame: object) -> None:
        pytest.fail(f"still waiting after {seconds:g} s for {what}: this wait is not bounded")

    previous = signal.signal(signal.SIGALRM, expired)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


def wait_until(condition: Callable[[], bool], *, timeout: float, interval: float = 0.02) -> bool:
    """Poll an observable condition until it holds or ``timeout`` passes; True when it held."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(interval)
    return condition()


def airflow_executable() -> Path:
    """The ``airflow`` script of the interpreter running the tests (the project's venv)."""
    path = Path(sys.executable).with_name("airflow")
    if not path.exists():
        pytest.fail(f"no airflow script next to {sys.executable}; install apache-airflow in this venv")
    return path


def isolated_airflow_env(home: Path, **settings: str) -> dict[str, str]:
    """The current environment minus every AIRFLOW* variable, pointed at ``home`` (sqlite).

    Nothing AIRFLOW* is inherited: the test session's own home, config and ``AIRFLOW_CONN_*``
    connections must not leak into the child; ``settings`` adds what it should see.
    """
    dags = home / "dags"
    dags.mkdir(parents=True, exist_ok=True)
    env = {name: value for name, value in os.environ.items() if not name.startswith("AIRFLOW")}
    env.update(
        AIRFLOW_HOME=str(home),
        AIRFLOW__CORE__DAGS_FOLDER=str(dags),
        AIRFLOW__CORE__LOAD_EXAMPLES="False",
        AIRFLOW__DATABASE__SQL_ALCHEMY_CONN=f"sqlite:///{home / 'airflow.db'}",
    )
    env.update(settings)
    return env


def run_airflow(
    *args: str, env: dict[str, str], cwd: Path | None = None, check: bool = True, timeout: float = 180
) -> subprocess.CompletedProcess[str]:
    """The ``airflow`` CLI in a child process; ``check`` fails the test with its output."""
    result = subprocess.run(
        [str(airflow_executable()), *args],
        env=env,
        cwd=cwd,
        capture_output=True,
        text=True,
        stdin=subprocess.DEVNULL,
        timeout=timeout,  # only stops a hung command from hanging the suite
        check=False,
    )
    if check and result.returncode != 0:
        pytest.fail(
            f"`airflow {' '.join(args)}` exited {result.returncode}\n"
            f"--- stdout ---\n{result.stdout}\n--- stderr ---\n{result.stderr}"
        )
    return result


def migrate_airflow_db(env: dict[str, str]) -> None:
    run_airflow("db", "migrate", env=env)


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def stop_process_group(
    process: subprocess.Popen[bytes], sig: int = signal.SIGTERM, grace_seconds: float = 20
) -> None:
    """Signal the group ``process`` leads (started with a new session); SIGKILL after the grace."""
    if process.poll() is not None:
        return
    with contextlib.suppress(ProcessLookupError):  # the whole group ended on its own meanwhile
        os.killpg(process.pid, sig)
    try:
        process.wait(timeout=grace_seconds)
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)
        process.wait(timeout=grace_seconds)


def signed_mark(
    url: str, phone: str, message_id: str, *, secret: str | None = None
) -> tuple[int, dict[str, Any]]:
    """One signed ``markMessageAsRead`` sent as a client sends it, without the client's retries:
    (HTTP status, NXCloud's answer). ``secret`` defaults to the sandbox's. A Meta error's
    ``fbtrace_id``, new on every answer, is checked present and replaced by ``TRACE_ID``."""
    import json
    import urllib.request

    from airflow_provider_nxcloud.client.api import (
        MARK_READ_PATH,
        READ_ACTION,
        WHATSAPP_BIZ_TYPE,
        mark_read_body,
    )
    from airflow_provider_nxcloud.client.signing import serialise_body, signed_headers
    from airflow_provider_nxcloud.testing import DEFAULT_ACCESS_KEY, DEFAULT_ACCESS_SECRET

    body = serialise_body(mark_read_body(phone, message_id))
    headers = signed_headers(
        access_key=DEFAULT_ACCESS_KEY,
        action=READ_ACTION,
        biz_type=WHATSAPP_BIZ_TYPE,
        ts_ms=int(time.time() * 1000),
        body=body,
        access_secret=secret or DEFAULT_ACCESS_SECRET,
        algorithm="md5",
    )
    request = urllib.request.Request(url + MARK_READ_PATH, data=body, headers=headers, method="POST")
    with urllib.request.urlopen(request, timeout=10) as response:
        status, document = response.status, json.loads(response.read())
    error = (document.get("data") or {}).get("error")
    if isinstance(error, dict):
        assert isinstance(error.get("fbtrace_id"), str) and error["fbtrace_id"], "a Meta error has a trace id"
        error["fbtrace_id"] = TRACE_ID
    return status, document


# What ``signed_mark`` puts in place of a Meta error's fbtrace_id.
TRACE_ID = "<fbtrace_id>"
