"""Durable marking over HTTP: a batch SIGKILLed midway, then run again, sends only what is left."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

from airflow_provider_nxcloud.batch import mark_messages
from airflow_provider_nxcloud.batch.checkpoint import FLUSH_INTERVAL_SECONDS
from airflow_provider_nxcloud.client import NxCloudClient
from airflow_provider_nxcloud.testing import DEFAULT_ACCESS_KEY, DEFAULT_ACCESS_SECRET, DEFAULT_BUSINESS_PHONE
from tests.support import wait_until

if TYPE_CHECKING:
    from airflow_provider_nxcloud.testing import NxCloudSandbox

pytestmark = pytest.mark.core


REPO = Path(__file__).resolve().parents[2]
COUNT, RATE, KILL_AFTER = 1000, 200, 400


class JsonFile:
    """A checkpoint in a JSON file, replaced whole on each write (as the docstring's example)."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def get(self, key: str) -> Any:
        return json.loads(self.path.read_text()).get(key) if self.path.exists() else None

    def set(self, key: str, value: Any) -> None:
        document = json.loads(self.path.read_text()) if self.path.exists() else {}
        temporary = self.path.with_suffix(".tmp")
        temporary.write_text(json.dumps({**document, key: value}))
        temporary.replace(self.path)


CHILD = """
import sys
from pathlib import Path
from airflow_provider_nxcloud.batch import mark_messages
from airflow_provider_nxcloud.client import NxCloudClient
from tests.integration.test_checkpoint_sandbox import JsonFile, client, message_ids
mark_messages(client(sys.argv[1]), message_ids(), checkpoint=JsonFile(Path(sys.argv[2])))
"""


def client(url: str) -> NxCloudClient:
    return NxCloudClient(
        access_key=DEFAULT_ACCESS_KEY,
        access_secret=DEFAULT_ACCESS_SECRET,
        base_url=url,
        business_phone=DEFAULT_BUSINESS_PHONE,
        max_requests_per_second=RATE,
    )


def message_ids() -> list[str]:
    return [f"wamid.k{n:04d}" for n in range(COUNT)]


def test_a_killed_batch_run_again_sends_only_what_is_left(
    nxcloud_sandbox: NxCloudSandbox, tmp_path: Path
) -> None:
    store = tmp_path / "checkpoint.json"
    child = subprocess.Popen(
        [sys.executable, "-c", CHILD, nxcloud_sandbox.url, str(store)],
        cwd=REPO,
        env={**os.environ, "PYTHONPATH": str(REPO)},
    )
    try:
        reached = wait_until(lambda: len(nxcloud_sandbox.requests) >= KILL_AFTER, timeout=60)
        assert reached, f"the child batch did not send {KILL_AFTER} requests within 60 s"
        child.send_signal(signal.SIGKILL)  # as the OOM killer would: no finally, no last flush
        child.wait(timeout=30)
    finally:
        if child.poll() is None:
            child.kill()
    killed_at = time.time()

    result = mark_messages(client(nxcloud_sandbox.url), message_ids(), checkpoint=JsonFile(store))

    assert result.state == "success"
    assert {m.message_id for m in result.marked} == set(message_ids())
    # By when each request was signed (its ``ts``), not by arrival: a request the child sent just
    # before the kill can reach the sandbox's handler after it.
    first = [r for r in nxcloud_sandbox.requests if int(r.headers["ts"]) < killed_at * 1000]
    second = [r for r in nxcloud_sandbox.requests if int(r.headers["ts"]) >= killed_at * 1000]
    assert len(first) < COUNT, "the child finished before it was killed"
    twice = {r.message_id for r in first} & {r.message_id for r in second}
    # What the child sent since its last flush: the last interval, and a write's time besides.
    last_seconds = [r for r in first if r.received_at >= killed_at - 2 * FLUSH_INTERVAL_SECONDS - 0.5]
    assert len(twice) <= len(last_seconds), f"{len(twice)} sent twice, {len(last_seconds)} in the last 2 s"
    assert result.counts()["marked_earlier"] == COUNT - len(second)
    assert len(second) == COUNT - len(first) + len(twice)
    assert set(nxcloud_sandbox.marked_ids()) == set(message_ids())
