"""A resolver that never answers: a request for a host name still ends within its timeout.

The client runs in a child process with a mount namespace of its own (``unshare --mount``) in
which ``/etc/resolv.conf`` names a UDP socket on 127.x.y.z:53 held by this test, which reads the
queries and never replies, and ``/etc/nsswitch.conf`` says ``hosts: files dns`` (so no other
resolver, such as systemd-resolved, answers instead). glibc is told to wait 30 s per query.
Nothing of this reaches the machine's own files: the child's mounts are private to it.
"""

from __future__ import annotations

import json
import random
import shutil
import socket
import subprocess
import sys
import threading
from typing import TYPE_CHECKING, Any

import pytest

if TYPE_CHECKING:
    from collections.abc import Iterator
    from pathlib import Path

pytestmark = pytest.mark.core


TIMEOUT_SECONDS = 1.0
MARGIN_SECONDS = 0.5  # the bound: the timeout plus a small margin
CHILD_BOUND_SECONDS = 60.0  # the hang detector for the whole child (interpreter start included)
HOST = "api.nxcloud-silent-resolver.invalid"

# Two requests in a row: the second finds the first one's lookup still in flight and waits on it.
CHILD = """
import json, sys, threading, time
from airflow_provider_nxcloud.client.errors import NxCloudTransientError
from airflow_provider_nxcloud.client.transport import PooledTransport

url, timeout = sys.argv[1], float(sys.argv[2])
transport = PooledTransport(base_url=url, proxies={}, verify=True, timeout=timeout, pool_size=2)
attempts = []
for _ in range(2):
    started = time.monotonic()
    try:
        transport.post("/api/wa/markMessageAsRead", {}, b"{}")
        outcome = "answered"
    except NxCloudTransientError as error:
        outcome = str(error)
    attempts.append({"seconds": time.monotonic() - started, "outcome": outcome})
names = [thread.name for thread in threading.enumerate()]
print(json.dumps({"attempts": attempts, "threads": names}))
"""

# Bind-mount the two files over the system's in the child's own mount namespace, then run it.
NAMESPACED = (
    'mount --bind "$1" /etc/resolv.conf && mount --bind "$2" /etc/nsswitch.conf && shift 2 && exec "$@"'
)


class SilentResolver:
    """A UDP socket on 127.x.y.z:53 that counts the queries it receives and answers none."""

    def __init__(self) -> None:
        self.address = f"127.53.{random.randint(1, 254)}.{random.randint(1, 254)}"
        self.queries = 0
        self._socket = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self._socket.settimeout(0.1)  # so that the reader notices ``stop`` soon
        self._socket.bind((self.address, 53))
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._read, name="silent-resolver", daemon=True)
        self._thread.start()

    def _read(self) -> None:
        while not self._stop.is_set():
            try:
                self._socket.recvfrom(4096)
            except TimeoutError:
                continue
            self.queries += 1

    def close(self) -> None:
        self._stop.set()
        self._thread.join(timeout=5)
        self._socket.close()


@pytest.fixture
def silent_resolver() -> Iterator[SilentResolver]:
    if sys.platform != "linux" or shutil.which("unshare") is None:
        pytest.skip("needs Linux and unshare(1) for a resolv.conf of the child's own")
    probe = subprocess.run(
        ["unshare", "--mount", "true"], capture_output=True, text=True, timeout=30, check=False
    )
    if probe.returncode != 0:
        pytest.skip(f"the kernel refuses a mount namespace here (`unshare --mount`): {probe.stderr.strip()}")
    try:
        resolver = SilentResolver()
    except OSError as error:
        pytest.skip(f"cannot bind a resolver socket on a loopback address, port 53: {error}")
    try:
        yield resolver
    finally:
        resolver.close()


def test_a_resolver_that_never_answers_is_bounded_by_the_timeout(
    silent_resolver: SilentResolver, tmp_path: Path, figures: dict[str, Any]
) -> None:
    resolv_conf = tmp_path / "resolv.conf"
    resolv_conf.write_text(f"nameserver {silent_resolver.address}\noptions timeout:30 attempts:1\n")
    nsswitch_conf = tmp_path / "nsswitch.conf"
    nsswitch_conf.write_text("hosts: files dns\n")
    # Not even a proxy from the environment: the child itself must look the host name up.
    env = {"PATH": "/usr/sbin:/usr/bin:/sbin:/bin"}
    command = [
        "unshare", "--mount", "--propagation", "private", "sh", "-c", NAMESPACED, "sh",
        str(resolv_conf), str(nsswitch_conf),
        sys.executable, "-c", CHILD, f"https://{HOST}", str(TIMEOUT_SECONDS),
    ]  # fmt: skip
    try:
        child = subprocess.run(
            command, capture_output=True, text=True, env=env, timeout=CHILD_BOUND_SECONDS, check=False
        )
    except subprocess.TimeoutExpired:
        pytest.fail(
            f"the child's requests had not ended after {CHILD_BOUND_SECONDS:g} s: the lookup is unbounded"
        )
    assert child.returncode == 0, child.stderr
    report = json.loads(child.stdout)
    attempts = report["attempts"]
    figures["seconds"] = [round(attempt["seconds"], 3) for attempt in attempts]
    figures["error"] = attempts[0]["outcome"]
    figures["queries_seen_by_the_resolver"] = silent_resolver.queries

    assert silent_resolver.queries > 0, "the child's lookups never reached the silent resolver"
    expected = f"no complete answer within {TIMEOUT_SECONDS:g} s: timed out looking up {HOST}"
    for attempt in attempts:
        assert attempt["outcome"] == f"NXCloud request failed: {expected}"
        assert attempt["seconds"] < TIMEOUT_SECONDS + MARGIN_SECONDS, attempts
    # The second request waited on the first one's lookup instead of starting another thread.
    assert report["threads"].count("nxcloud-resolve") == 1, report["threads"]
