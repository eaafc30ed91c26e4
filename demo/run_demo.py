"""
The demo: the reconcile example DAG in a real Airflow against the NXCloud sandbox.

Starts the sandbox on 127.0.0.1, seeds an SQLite inbox with realistic inbound messages (and the
sandbox with the same messages, so it knows each customer's thread as WhatsApp does), runs
``airflow dags test example_nxcloud_reconcile`` twice in a throwaway AIRFLOW_HOME, and prints
what was marked, skipped and failed next to what the sandbox shows read, and how many requests
that took (one per conversation). Leaves nothing running.

With ``AIRFLOW_CONN_NXCLOUD_DEFAULT`` already set (real credentials) it talks to NXCloud
instead, and with ``AIRFLOW_CONN_NXCLOUD_INBOX`` set it reads your inbox instead of seeding one.
"""

from __future__ import annotations

import contextlib
import json
import os
import runpy
import shutil
import sqlite3
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import TYPE_CHECKING

from airflow_provider_nxcloud.testing import InboundMessage, NxCloudSandbox, seed_inbox

if TYPE_CHECKING:
    from airflow_provider_nxcloud.testing.inbox import InboxRow

REPO = Path(__file__).resolve().parent.parent
DAG_ID = "example_nxcloud_reconcile"
PHONES = ("8613800000000", "8613900000001", "85290000002")
CUSTOMERS = ("15550001111", "447700900222", "5511988887777", "919800000333")
UNKNOWN_ID = "wamid.DEMO-deleted-before-reconcile"
DAY = 86_400


def demo_inbox() -> tuple[list[InboxRow], set[str]]:
    """
    Realistic inbound messages: 3 business phones, 4 customers, so 12 conversations of 3; 4
    messages too old; 1 unknown id, the newest of its thread (deleted before the run).
    """
    now = int(time.time())
    rows: list[InboxRow] = []
    for n in range(36):
        phone, customer = PHONES[n % len(PHONES)], CUSTOMERS[n % len(CUSTOMERS)]
        age = 35 * DAY + n * 60 if n % 9 == 8 else 60 + n * 300  # every 9th is older than 30 days
        rows.append((f"wamid.DEMO{n:04d}{customer[-4:]}", phone, customer, now - age))
    rows.append((UNKNOWN_ID, PHONES[0], CUSTOMERS[0], now))
    known_ids = {row[0] for row in rows if row[0] != UNKNOWN_ID}
    return rows, known_ids


def fresh_ids(rows: list[InboxRow], known_ids: set[str]) -> set[str]:
    """The messages the DAG can mark: known to NXCloud and at most 30 days old."""
    fresh_after = time.time() - 30 * DAY
    return {
        message_id
        for message_id, _, _, received in rows
        if message_id in known_ids and received > fresh_after
    }


def run_dag(env: dict[str, str], run: int) -> int:
    print(f"\n--- airflow dags test {DAG_ID} (run {run}) ---", flush=True)
    started = time.monotonic()
    completed = subprocess.run(
        [str(Path(sys.executable).with_name("airflow")), "dags", "test", DAG_ID],
        env=env,
        capture_output=True,
        text=True,
    )
    log = Path(env["AIRFLOW_HOME"]) / f"dags-test-run{run}.log"
    log.write_text(completed.stdout + completed.stderr)
    for line in (completed.stdout + completed.stderr).splitlines():
        if "NXCloud:" in line or "Stopped sending" in line or "message failed" in line:
            print("   ", line.split("] ", 1)[-1][:160])
    with sqlite3.connect(Path(env["AIRFLOW_HOME"]) / "airflow.db") as db:
        states = db.execute(
            "SELECT task_id, state FROM task_instance WHERE run_id = "
            "(SELECT run_id FROM dag_run ORDER BY id DESC LIMIT 1) ORDER BY start_date"
        ).fetchall()
    print("    tasks:", ", ".join(f"{task_id} {state}" for task_id, state in states))
    print(f"    exit code {completed.returncode} in {time.monotonic() - started:.1f} s", flush=True)
    return completed.returncode


def summarise(inbox: Path) -> set[str]:
    with sqlite3.connect(inbox) as db:
        read = {m for (m,) in db.execute("SELECT message_id FROM whatsapp_inbox WHERE read_at IS NOT NULL")}
        errors = db.execute(
            "SELECT message_id, last_error FROM whatsapp_inbox WHERE last_error IS NOT NULL ORDER BY 1"
        ).fetchall()
        unread = db.execute(
            "SELECT COUNT(*) FROM whatsapp_inbox WHERE read_at IS NULL AND last_error IS NULL"
        ).fetchone()[0]
    print(f"\nInbox: {len(read)} read, {len(errors)} with a recorded reason, {unread} still unread")
    for message_id, reason in errors:
        print(f"    {message_id}: {reason[:110]}")
    return read


def main() -> int:
    home = Path(tempfile.mkdtemp(prefix="nxcloud-demo-"))
    dags = home / "dags"
    dags.mkdir()
    shutil.copy(REPO / "example_dags" / f"{DAG_ID}.py", dags)
    env = {
        **os.environ,
        "AIRFLOW_HOME": str(home),
        "AIRFLOW__CORE__DAGS_FOLDER": str(dags),
        "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
        "AIRFLOW__LOGGING__LOGGING_LEVEL": "INFO",
    }
    use_sandbox = "AIRFLOW_CONN_NXCLOUD_DEFAULT" not in os.environ
    seed = "AIRFLOW_CONN_NXCLOUD_INBOX" not in os.environ
    inbox = home / "inbox.db"
    sandbox = NxCloudSandbox(business_phones=PHONES) if use_sandbox else None
    rows: list[InboxRow] = []
    known_ids: set[str] = set()
    try:
        if seed:
            # The table's DDL lives with the DAG that reads it.
            ddl = runpy.run_path(str(dags / f"{DAG_ID}.py"))["INBOX_DDL"]
            rows, known_ids = demo_inbox()
            with contextlib.closing(sqlite3.connect(inbox)) as db:
                seed_inbox(db, rows, ddl=ddl)
            env["AIRFLOW_CONN_NXCLOUD_INBOX"] = json.dumps({"conn_type": "sqlite", "host": str(inbox)})
            print(f"Seeded {len(rows)} inbound messages into {inbox}")
        if sandbox is not None:
            # NXCloud has every inbox message but the deleted one: the sandbox knows their threads.
            sandbox.add_inbound(InboundMessage(*row) for row in rows if row[0] in known_ids)
            sandbox.start()
            env["AIRFLOW_CONN_NXCLOUD_DEFAULT"] = sandbox.connection_json()
            print(f"NXCloud sandbox on {sandbox.url} (set AIRFLOW_CONN_NXCLOUD_DEFAULT to use NXCloud)")
        else:
            print("Using NXCloud from AIRFLOW_CONN_NXCLOUD_DEFAULT")
        print(f"AIRFLOW_HOME={home}")
        subprocess.run(
            [str(Path(sys.executable).with_name("airflow")), "db", "migrate"], env=env, check=True,
            capture_output=True,
        )  # fmt: skip

        first = run_dag(env, 1)
        requests_after_first = len(sandbox.requests) if sandbox else 0
        read_in_inbox = summarise(inbox) if seed else set()
        second = run_dag(env, 2)
        if sandbox is None or not seed:
            return first or second
        new_requests = len(sandbox.requests) - requests_after_first
        # What the customers see, less the too-old messages WhatsApp read along with a newer
        # one of their thread (the DAG skipped them locally and recorded why).
        expected = fresh_ids(rows, known_ids)
        read_on_sandbox = sandbox.read_ids() & expected
        print(
            f"\nSandbox: {requests_after_first} requests (one per conversation, and one more where the "
            f"newest message was deleted) left {len(sandbox.read_ids())} of {len(known_ids)} messages read"
        )
        print(f"Second run sent {new_requests} requests (nothing left to mark)")
        print(f"Expected {len(expected)} marked: 4 are older than 30 days, 1 id does not exist on NXCloud")
        agree = read_in_inbox == read_on_sandbox == expected and new_requests == 0
        print("OK: the inbox and the sandbox agree" if agree else "MISMATCH between inbox and sandbox")
        return 0 if agree else 1
    finally:
        if sandbox is not None:
            sandbox.stop()
        print(f"(logs kept in {home})")


if __name__ == "__main__":
    sys.exit(main())
