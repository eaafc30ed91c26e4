"""A worker dying mid-run: SIGKILL halfway through, and the next run finishes the job.

The reconcile example DAG (``example_dags/example_nxcloud_reconcile.py``) runs as its own
``airflow dags test`` process against a sandbox in this process (with latency, so marking 600
messages takes seconds) and an SQLite inbox. The inbox holds two messages from each of 300
customers, so the run sends one request per conversation and the sandbox (seeded with the inbox)
reads each thread as WhatsApp would. Once about half the messages are read on the sandbox,
the process group gets SIGKILL: no cleanup, no write-back, like a worker whose machine vanished.
A second run must leave every inbox message read, its ``read_at`` written exactly once (a
trigger on the inbox counts the writes), and the sandbox must have seen no id outside the inbox.
"""

from __future__ import annotations

import contextlib
import json
import signal
import sqlite3
import time
from typing import TYPE_CHECKING, Any

import pytest

from airflow_provider_nxcloud.testing import (
    DEFAULT_BUSINESS_PHONE,
    Faults,
    InboundMessage,
    NxCloudSandbox,
    seed_inbox,
)
from tests.conftest import load_dag_module
from tests.support import stop_process_group, wait_until

if TYPE_CHECKING:
    from collections.abc import Iterator
    from pathlib import Path

    from airflow_provider_nxcloud.testing.inbox import InboxRow
    from tests.reliability.conftest import AirflowProcess

pytestmark = [pytest.mark.airflow, pytest.mark.long]

DAG_ID = "example_nxcloud_reconcile"
MESSAGES = 600
PER_CUSTOMER = 2
LATENCY_SECONDS = 0.15  # 16 workers -> ~100 requests/s, 300 threads: the mark task lasts ~3 s
# Counts every write of read_at into an unread row, so "exactly once" is observable.
WRITE_COUNTER = """
CREATE TABLE read_writes (message_id VARCHAR(512), read_at VARCHAR(32));
CREATE TRIGGER count_read_writes AFTER UPDATE OF read_at ON whatsapp_inbox
WHEN NEW.read_at IS NOT NULL AND OLD.read_at IS NULL
BEGIN
    INSERT INTO read_writes VALUES (NEW.message_id, NEW.read_at);
END;
"""


@pytest.fixture
def inbox(tmp_path: Path) -> tuple[Path, list[InboxRow]]:
    path = tmp_path / "inbox.db"
    now = int(time.time())
    rows = [
        (
            f"wamid.HBgNODYxMzgwMDAwMDAwMBUCABEYEktJTEw{i:05d}A",
            DEFAULT_BUSINESS_PHONE,
            f"1555{i // PER_CUSTOMER:05d}",
            now - i,
        )
        for i in range(MESSAGES)
    ]
    with contextlib.closing(sqlite3.connect(path)) as db:
        seed_inbox(db, rows, ddl=load_dag_module(DAG_ID).INBOX_DDL)
        db.executescript(WRITE_COUNTER)  # counts updates only: the seeded rows are not writes
    return path, rows


@pytest.fixture
def slow_sandbox(inbox: tuple[Path, list[InboxRow]]) -> Iterator[NxCloudSandbox]:
    # Seeded with the inbox: any other id would be answered 9099, and is checked for anyway.
    seeded = [InboundMessage(*row) for row in inbox[1]]
    with NxCloudSandbox(inbound=seeded, faults=Faults(latency=LATENCY_SECONDS)) as sandbox:
        yield sandbox


def query(path: Path, sql: str) -> list[tuple[Any, ...]]:
    with contextlib.closing(sqlite3.connect(path)) as db:
        return db.execute(sql).fetchall()


def test_run_killed_halfway_is_finished_by_the_next_run(
    airflow_process: AirflowProcess,
    inbox: tuple[Path, list[InboxRow]],
    slow_sandbox: NxCloudSandbox,
    tmp_path: Path,
    figures: dict[str, Any],
) -> None:
    path, rows = inbox
    ids = [row[0] for row in rows]
    env = {
        "AIRFLOW_CONN_NXCLOUD_DEFAULT": slow_sandbox.connection_json(),
        "AIRFLOW_CONN_NXCLOUD_INBOX": json.dumps({"conn_type": "sqlite", "host": str(path)}),
    }

    started = time.monotonic()
    first = airflow_process.start(DAG_ID, env, tmp_path / "first-run.log")
    try:
        reached_half = wait_until(
            lambda: len(slow_sandbox.read_ids()) >= MESSAGES // 2 or first.poll() is not None, timeout=120
        )
        read_at_kill = len(slow_sandbox.read_ids())
    finally:
        stop_process_group(first, signal.SIGKILL)  # to the whole process group
    killed_after = time.monotonic() - started
    log = (tmp_path / "first-run.log").read_text(errors="replace")
    assert reached_half, f"half the messages were never read:\n{log[-3000:]}"
    assert first.returncode == -9, f"the first run ended on its own ({first.returncode}):\n{log[-3000:]}"
    assert MESSAGES // 2 <= read_at_kill < MESSAGES, read_at_kill
    assert query(path, "SELECT COUNT(*) FROM read_writes") == [(0,)], "the dead run wrote back"

    slow_sandbox.set_faults(Faults())  # the next run need not be slow
    started = time.monotonic()
    second = airflow_process.run(DAG_ID, env)
    second_seconds = time.monotonic() - started
    assert second.returncode == 0, second.stdout[-3000:] + second.stderr[-3000:]

    rows = query(path, "SELECT message_id, read_at, last_error FROM whatsapp_inbox")
    writes = query(path, "SELECT message_id, COUNT(*) FROM read_writes GROUP BY message_id")
    assert len(rows) == MESSAGES
    assert all(read_at is not None and last_error is None for _, read_at, last_error in rows), [
        row for row in rows if row[1] is None or row[2] is not None
    ][:5]
    assert sorted(writes) == sorted((m, 1) for m in ids), "read_at not written exactly once per message"
    assert slow_sandbox.read_ids() == set(ids)
    assert slow_sandbox.marked_ids() == set(ids[::PER_CUSTOMER]), "one request per thread: its newest"
    # A request the kill cut between its headers and its body (urllib3 sends them apart)
    # reaches the sandbox without a message id: it names no id and marks nothing.
    cut_off = [r for r in slow_sandbox.requests if r.message_id is None]
    assert all(r.code != 0 and len(r.body) < int(r.headers["Content-Length"]) for r in cut_off), cut_off
    seen = {r.message_id for r in slow_sandbox.requests if r.message_id is not None}
    assert seen <= set(ids), f"ids outside the inbox were sent: {sorted(seen - set(ids))[:5]}"
    assert all(r.code != 9099 for r in slow_sandbox.requests)

    counts = slow_sandbox.mark_counts
    figures.update(
        {
            "inbox_messages": MESSAGES,
            "killed_after_seconds": round(killed_after, 1),
            "customers": MESSAGES // PER_CUSTOMER,
            "read_when_killed": read_at_kill,
            "second_run_seconds": round(second_seconds, 1),
            # The dead run's marks (with the requests it had in flight when killed, which the
            # sandbox still answered), done again by the next run: harmless for WhatsApp.
            "marked_again_by_the_next_run": sum(1 for n in counts.values() if n == 2),
            "marked_more_than_twice": sum(1 for n in counts.values() if n > 2),
            "rows_read": sum(1 for _, read_at, _ in rows if read_at),
            "read_at_writes_per_row": sorted({n for _, n in writes}),
            "ids_outside_inbox_sent": len(seen - set(ids)),
            "requests_cut_off_by_the_kill": len(cut_off),
            "requests": len(slow_sandbox.requests),
        }
    )
