"""
Scenario 3: durable marking (issue 18) in ``airflow standalone`` on 3.3, with the reconcile example.

The example is copied with one change, its ``retry_delay`` (1 minute) cut to 2 seconds so the
retries happen within the test. Two DAG runs, each checked through the sandbox's request log,
the task's XCom and the inbox the example's write-back fills:

- transient: 600 rows, 10 of whose ids still answer -1 when the first try gives up on them;
  the retry sends those 10 and nothing the first try marked;
- crash: 2,400 rows; the task runner (``airflow worker -- <ti uuid>``) is SIGKILLed once the
  sandbox has seen half the requests; the retry re-sends at most what the sandbox received in
  the 2 s before the kill.
"""

from __future__ import annotations

import contextlib
import json
import os
import runpy
import signal
import sqlite3
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

from tests.deployment.servers import (
    ACCESS_KEY,
    ACCESS_SECRET,
    REPO,
    Airflow,
    airflow_env,
    files_containing,
    services,
    start_sandbox,
)

if TYPE_CHECKING:
    from collections.abc import Callable

pytestmark = pytest.mark.deployment

DAG_ID = "example_nxcloud_reconcile"
PHONE = "8613800000000"
TRANSIENT_ROWS, STUCK = 600, 10
CRASH_ROWS = 2400
RATE = 60  # the connection's cap: 2,400 requests take 40 s, time to kill the task halfway
MAX_RETRIES = 1  # the client's: a stuck id gets 2 requests per try


def rows(prefix: str, count: int) -> list[tuple[str, str, str, int]]:
    """Inbox rows, each from a customer of its own (one conversation, one request per row)."""
    now = int(time.time())
    return [
        (f"wamid.{prefix}{n:05d}", PHONE, f"1666{prefix}{n:05d}", now - 600 + n // 10) for n in range(count)
    ]


def insert(path: Path, new: list[tuple[str, str, str, int]]) -> None:
    with contextlib.closing(sqlite3.connect(path)) as conn:
        conn.executemany(
            "INSERT INTO whatsapp_inbox (message_id, business_phone, sender, received_at)"
            " VALUES (?, ?, ?, ?)",
            new,
        )
        conn.commit()


def read_ids(path: Path) -> set[str]:
    with contextlib.closing(sqlite3.connect(path)) as conn:
        return {m for (m,) in conn.execute("SELECT message_id FROM whatsapp_inbox WHERE read_at IS NOT NULL")}


def task_runner_pids(ti_id: str) -> list[int]:
    """The task runner: Airflow titles it ``airflow worker -- <task instance uuid>``."""
    found = []
    for cmdline in Path("/proc").glob("[0-9]*/cmdline"):
        with contextlib.suppress(OSError):
            text = cmdline.read_bytes().replace(b"\0", b" ").decode(errors="replace")
            # Exactly this title: the LocalExecutor's worker, which hosts the supervisor, names
            # the task instance in its title too, and killing it would leave no one to report.
            if text.strip() == f"airflow worker -- {ti_id}":
                found.append(int(cmdline.parent.name))
    return found


def mark_read(airflow: Airflow, run_id: str) -> dict[str, Any]:
    (ti,) = [ti for ti in airflow.task_instances(DAG_ID, run_id) if ti["task_id"] == "mark_read"]
    return ti


def test_durable_marking(tmp_path: Path, figure: Callable[[str, object], None]) -> None:
    transient_rows, crash_rows = rows("T", TRANSIENT_ROWS), rows("C", CRASH_ROWS)
    inbox = tmp_path / "inbox.db"
    with contextlib.closing(sqlite3.connect(inbox)) as conn:
        conn.execute(runpy.run_path(str(REPO / "example_dags" / f"{DAG_ID}.py"))["INBOX_DDL"])
    insert(inbox, transient_rows)
    stuck = [row[0] for row in transient_rows[:: TRANSIENT_ROWS // STUCK]]
    with services(tmp_path) as running:
        sandbox = start_sandbox(
            running, business_phones=[PHONE], message_ids=[r[0] for r in transient_rows + crash_rows]
        )
        # Each stuck id answers -1 to every request of the first try, then is marked.
        sandbox.client.configure(faults={"scripts": {m: ["-1"] * (MAX_RETRIES + 1) for m in stuck}})
        home = tmp_path / "airflow"
        connection = {
            "conn_type": "nxcloud", "host": sandbox.url, "login": ACCESS_KEY, "password": ACCESS_SECRET,
            "extra": {"max_requests_per_second": RATE, "max_retries": MAX_RETRIES},
        }  # fmt: skip
        env = airflow_env(
            home,
            f"sqlite:///{home / 'airflow.db'}",
            AIRFLOW_CONN_NXCLOUD_DEFAULT=json.dumps(connection),
            AIRFLOW_CONN_NXCLOUD_INBOX=json.dumps({"conn_type": "sqlite", "host": str(inbox)}),
            # Should the supervisor die with the task runner after all, the retry still comes in time.
            AIRFLOW__SCHEDULER__TASK_INSTANCE_HEARTBEAT_TIMEOUT="20",
        )
        source = (REPO / "example_dags" / f"{DAG_ID}.py").read_text()
        assert "timedelta(minutes=1)" in source
        (home / "dags" / f"{DAG_ID}.py").write_text(
            source.replace("timedelta(minutes=1)", "timedelta(seconds=2)")
        )
        airflow = Airflow(env)
        airflow.api = running.start("airflow-standalone", ["airflow", "standalone"], env=env, cwd=home)
        airflow.wait_healthy(timeout=300)
        airflow.wait_dag(DAG_ID)

        # -- transient: the first try gives up on 10 ids; the retry sends those 10 alone --
        airflow.unpause(DAG_ID)  # catchup=False: the latest interval starts at once
        airflow.api.wait_for("scheduling the unpaused DAG", lambda: bool(airflow.runs(DAG_ID)), timeout=120)
        first_run = airflow.runs(DAG_ID)[0]["dag_run_id"]
        assert airflow.wait_run(DAG_ID, first_run, timeout=300) == "success"
        ti = mark_read(airflow, first_run)
        assert (ti["state"], ti["try_number"]) == ("success", 2)
        counts = sandbox.mark_counts()
        requests = sandbox.requests()
        transient_ids = {r[0] for r in transient_rows}
        assert {m for _, m in counts} == transient_ids
        assert set(counts.values()) == {1}, "an id the first try marked was sent again"
        assert len(requests) == TRANSIENT_ROWS - STUCK + STUCK * (MAX_RETRIES + 1) + STUCK
        result = airflow.xcom(DAG_ID, first_run, "mark_read")
        assert sorted(result["marked"]) == sorted(transient_ids)
        assert result["counts"]["marked_earlier"] == TRANSIENT_ROWS - STUCK
        assert result["counts"]["requests"] == STUCK
        assert read_ids(inbox) == transient_ids, "the write-back records every id marked in any try"
        figure("transient: ids re-sent by the retry", f"0 of {TRANSIENT_ROWS - STUCK} (before: all)")
        figure("transient: retry requests", f"{STUCK} for the {STUCK} ids left")

        # -- crash: SIGKILL the task runner halfway; the retry sends what is left --
        insert(inbox, crash_rows)
        before = len(requests)
        run_id = airflow.trigger(DAG_ID)
        victim: dict[str, Any] = {}

        def runner_started() -> bool:
            tis = [ti for ti in airflow.task_instances(DAG_ID, run_id) if ti["task_id"] == "mark_read"]
            victim["pids"] = task_runner_pids(tis[0]["id"]) if tis and tis[0].get("id") else []
            return bool(victim["pids"])

        def halfway() -> bool:
            return int(sandbox.client.state(since=1 << 62)["request_count"]) - before >= CRASH_ROWS // 2

        airflow.api.wait_for("the mark_read task runner started", runner_started, timeout=300)
        airflow.api.wait_for("half the crash batch sent", halfway, timeout=120)
        for pid in victim["pids"]:
            os.kill(pid, signal.SIGKILL)
        killed_at = time.time()
        assert airflow.wait_run(DAG_ID, run_id, timeout=300) == "success"
        ti = mark_read(airflow, run_id)
        assert (ti["state"], ti["try_number"]) == ("success", 2)
        crash = sandbox.requests(since=before)
        crash_ids = {r[0] for r in crash_rows}
        sent_before_kill = [r for r in crash if r["received_at"] < killed_at]
        last_two_seconds = [r for r in sent_before_kill if r["received_at"] >= killed_at - 2.0]
        counts = sandbox.mark_counts()
        assert {m for _, m in counts} == transient_ids | crash_ids
        twice = sorted(m for (_, m), n in counts.items() if n > 1)
        assert len(twice) <= len(last_two_seconds), (
            f"{len(twice)} ids sent twice; {len(last_two_seconds)} requests in the 2 s before the kill"
        )
        result = airflow.xcom(DAG_ID, run_id, "mark_read")
        assert sorted(result["marked"]) == sorted(crash_ids)
        assert result["counts"]["marked_earlier"] == CRASH_ROWS - result["counts"]["requests"]
        assert read_ids(inbox) == transient_ids | crash_ids

        logs = home / "logs"
        assert files_containing(logs, ACCESS_SECRET) == []

    retried = len(crash) - len(sent_before_kill)
    figure(
        "crash: SIGKILL of the task runner",
        f"after {len(sent_before_kill)} of {CRASH_ROWS} requests; the retry sent {retried}, {len(twice)} ids "
        f"twice (before: {len(sent_before_kill)}); {len(last_two_seconds)} in the 2 s before the kill",
    )
    figure(
        "crash: result", f"{result['counts']['marked']} marked, {result['counts']['marked_earlier']} earlier"
    )
