"""
Scenario 1: the shipped reconcile example, unchanged, in ``airflow standalone``.

The real scheduler, dag-processor, api-server and triggerer with the LocalExecutor; the DAG is
unpaused and triggered through the REST API, and tasks run in worker processes under the task
SDK supervisor. Once with PostgreSQL as the metadata DB and the inbox (Postgres provider), once
with the default SQLite for both, as a new user starts.
"""

from __future__ import annotations

import json
import runpy
import sqlite3
import time
from typing import TYPE_CHECKING, Any

import pytest

from airflow_provider_nxcloud.testing import seed_inbox
from tests.deployment.servers import (
    ACCESS_SECRET,
    PHONES,
    REPO,
    Airflow,
    airflow_env,
    copy_dag,
    files_containing,
    services,
    start_postgres,
    start_sandbox,
)

if TYPE_CHECKING:
    from collections.abc import Callable
    from pathlib import Path

    from airflow_provider_nxcloud.testing.inbox import InboxRow

pytestmark = pytest.mark.deployment

DAG_ID = "example_nxcloud_reconcile"
DAY = 86_400
FRESH, TOO_OLD, REFUSED = 240, 30, 30


def inbox_rows() -> tuple[list[InboxRow], set[str], set[str], set[str]]:
    """Fresh messages across two business phones, some older than 30 days, some unknown to NXCloud."""
    now = int(time.time())
    rows: list[InboxRow] = []
    fresh, old, refused = set(), set(), set()
    for n in range(FRESH + TOO_OLD + REFUSED):
        phone = PHONES[n % 2]
        if n < FRESH:
            message_id, received = f"wamid.FRESH{n:05d}", now - 60 * (n % 600)
            fresh.add(message_id)
        elif n < FRESH + TOO_OLD:
            message_id, received = f"wamid.OLD{n:05d}", now - 31 * DAY - n
            old.add(message_id)
        else:
            message_id, received = f"wamid.GONE{n:05d}", now - 120
            refused.add(message_id)
        rows.append((message_id, phone, f"1555000{n:04d}", received))
    return rows, fresh, old, refused


class Inbox:
    """The example's table, through the same DB-API the example's hook uses."""

    def __init__(self, connect: Callable[[], Any]) -> None:
        self.connect = connect

    def seed(self, rows: list[InboxRow], ddl: str) -> None:
        conn = self.connect()
        try:
            seed_inbox(conn, rows, ddl=ddl)
        finally:
            conn.close()

    def execute(self, sql: str) -> list[tuple[Any, ...]]:
        conn = self.connect()
        try:
            cursor = conn.cursor()
            cursor.execute(sql)
            found = list(cursor.fetchall()) if cursor.description else []
            conn.commit()
            return found
        finally:
            conn.close()

    def state(self) -> dict[str, tuple[Any, Any]]:
        rows = self.execute("SELECT message_id, read_at, last_error FROM whatsapp_inbox")
        return {message_id: (read_at, error) for message_id, read_at, error in rows}


@pytest.mark.parametrize("database", ["postgres", "sqlite"])
def test_reconcile(database: str, tmp_path: Path, figure: Callable[[str, object], None]) -> None:
    rows, fresh, old, refused = inbox_rows()
    ddl = runpy.run_path(str(REPO / "example_dags" / f"{DAG_ID}.py"))["INBOX_DDL"]
    with services(tmp_path) as running:
        sandbox = start_sandbox(running, business_phones=PHONES, message_ids=sorted(fresh | old))
        home = tmp_path / "airflow"
        if database == "postgres":
            postgres = start_postgres(running)
            postgres.create_database("airflow")
            postgres.create_database("inbox")
            metadata = postgres.url("airflow", "postgresql+psycopg2")
            inbox_conn = postgres.url("inbox")  # URI form, as the README gives it
            inbox = Inbox(lambda: postgres.connect("inbox"))
        else:
            metadata = f"sqlite:///{home / 'airflow.db'}"
            path = tmp_path / "inbox.db"
            inbox_conn = json.dumps({"conn_type": "sqlite", "host": str(path)})
            inbox = Inbox(lambda: sqlite3.connect(path))
        inbox.seed(rows, ddl)
        env = airflow_env(
            home,
            metadata,
            AIRFLOW_CONN_NXCLOUD_DEFAULT=sandbox.connection_json(),
            AIRFLOW_CONN_NXCLOUD_INBOX=inbox_conn,
        )
        copy_dag(home, DAG_ID)
        airflow = Airflow(env)
        airflow.api = running.start("airflow-standalone", ["airflow", "standalone"], env=env, cwd=home)
        airflow.wait_healthy(timeout=300)
        airflow.wait_dag(DAG_ID)

        # Unpausing a scheduled DAG with catchup=False starts its latest interval at once.
        airflow.unpause(DAG_ID)
        airflow.api.wait_for("scheduling the unpaused DAG", lambda: bool(airflow.runs(DAG_ID)), timeout=120)
        first = airflow.runs(DAG_ID)[0]["dag_run_id"]
        # The run's state is its leaf's: write_back, which records the outcome whatever it was.
        assert airflow.wait_run(DAG_ID, first, timeout=300) == "success"
        states = {ti["task_id"]: ti for ti in airflow.task_instances(DAG_ID, first)}
        assert {task: ti["state"] for task, ti in states.items()} == {
            "fetch_unread": "success",
            "mark_read": "failed",  # refused ids fail the task, without Airflow retries
            "write_back": "success",  # all_done: it records the outcome anyway
        }
        assert states["mark_read"]["try_number"] == 1
        result = airflow.xcom(DAG_ID, first, "mark_read")
        assert result["counts"] == {
            "total": len(rows), "marked": FRESH, "skipped": TOO_OLD, "failed": REFUSED,
            "not_attempted": 0, "duplicates": 0,
            # Each seeded row has a customer of its own: one conversation, one request per row sent.
            "requests": FRESH + REFUSED, "conversations": FRESH + REFUSED, "marked_earlier": 0,
            "typing_indicators": 0, "marked_with_newer": 0,
        }  # fmt: skip

        requests = sandbox.requests()
        sent = [(r["business_phone"], r["message_id"]) for r in requests]
        counts = sandbox.mark_counts()
        expected_marks = {(phone, m) for m, phone, _, _ in rows if m in fresh}
        assert set(counts) == expected_marks
        assert set(counts.values()) == {1}
        assert not {m for _, m in sent} & old, "too-old messages must never be sent"
        assert sorted(m for _, m in sent if m in refused) == sorted(refused)
        after_first = inbox.state()
        assert {m for m, (read_at, _) in after_first.items() if read_at} == fresh
        assert all(error is None for m, (_, error) in after_first.items() if m in fresh)
        assert all("code 9099" in after_first[m][1] for m in refused)
        assert all(after_first[m][1].startswith("skipped:") for m in old)

        second = airflow.trigger(DAG_ID)
        assert airflow.wait_run(DAG_ID, second, timeout=300) == "success"
        assert {ti["task_id"]: ti["state"] for ti in airflow.task_instances(DAG_ID, second)} == {
            "fetch_unread": "success",
            "mark_read": "skipped",  # nothing left to mark
            "write_back": "success",
        }
        second_requests = len(sandbox.requests()) - len(requests)
        assert second_requests == 0
        assert inbox.state() == after_first, "read_at and last_error are written once"

        logs = home / "logs"
        task_logs = list(logs.rglob("task_id=mark_read/**/*.log"))
        assert task_logs, f"no task log under {logs}"
        assert "NXCloud:" in "".join(p.read_text() for p in task_logs)
        assert files_containing(logs, ACCESS_SECRET) == []

    figure("metadata DB / inbox", f"{database} / {database}")
    figure("ids marked (sandbox)", f"{len(counts)} of {FRESH} fresh ({TOO_OLD} old unsent, {REFUSED} 9099)")
    figure("requests of the second run", second_requests)
    figure("log files with the secret", f"0 of {sum(1 for p in logs.rglob('*') if p.is_file())}")
