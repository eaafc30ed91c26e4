"""The example DAGs: they import cleanly, and the reconcile DAG does its job twice over, also when
WhatsApp throttles it."""

from __future__ import annotations

import contextlib
import json
import sqlite3
import subprocess
import sys
import time
from typing import TYPE_CHECKING

import pytest

from airflow_provider_nxcloud.testing import InboundMessage, seed_inbox
from tests.compat import dag_bag
from tests.conftest import DAGS_FOLDER, REPO, load_dag_module

if TYPE_CHECKING:
    from pathlib import Path

    from airflow_provider_nxcloud.testing import NxCloudSandbox
    from airflow_provider_nxcloud.testing.inbox import InboxRow

pytestmark = pytest.mark.airflow
EXAMPLES = sorted(p.stem for p in (REPO / "example_dags").glob("*.py"))
PHONE = "8613800000000"
DAY = 86_400


def test_every_example_dag_imports_without_errors(airflow_db: Path) -> None:
    bag = dag_bag(dag_folder=str(DAGS_FOLDER))

    assert bag.import_errors == {}
    assert {
        "example_nxcloud_mark_read", "example_nxcloud_reconcile", "example_nxcloud_sharded",
        "example_nxcloud_typing_reply",
    } <= set(bag.dag_ids)  # fmt: skip


# Parses each example in a fresh interpreter (warnings fire once per process) and lists the
# deprecation warnings raised from the example or the provider's own code.
PARSE_FOR_WARNINGS = """
import json, runpy, sys, warnings
import airflow  # first: it routes warnings to logging, which would replace the recorder below
with warnings.catch_warnings(record=True) as caught:
    warnings.simplefilter("always")
    for path in sys.argv[1:]:
        runpy.run_path(path)
print(json.dumps([
    f"{w.filename}:{w.lineno}: {w.category.__name__}: {w.message}" for w in caught
    if issubclass(w.category, (DeprecationWarning, PendingDeprecationWarning, FutureWarning))
    and ("example_dags" in w.filename or "airflow_provider_nxcloud" in w.filename)
]))
"""


def test_example_dags_raise_no_deprecation_warnings(airflow_db: Path) -> None:
    paths = [str(DAGS_FOLDER / f"{name}.py") for name in EXAMPLES]
    command = [sys.executable, "-c", PARSE_FOR_WARNINGS, *paths]
    result = subprocess.run(command, capture_output=True, text=True, timeout=300, check=False)

    assert result.returncode == 0, result.stderr[-3000:]
    assert json.loads(result.stdout.strip().splitlines()[-1]) == []


def test_reconcile_schedule_is_safe_for_a_15_minute_job() -> None:
    dag = load_dag_module("example_nxcloud_reconcile").example_nxcloud_reconcile()

    assert dag.max_active_runs == 1
    assert dag.catchup is False
    assert dag.task_dict["write_back"].trigger_rule == "all_done"


NOW = int(time.time())
# One customer's thread of 12, one message too old to mark, and one deleted before the run
# (NXCloud does not know it: 9099).
INBOX_ROWS: list[InboxRow] = [(f"wamid.rec{i}", PHONE, "15550001", NOW - i * 60) for i in range(12)] + [
    ("wamid.too_old", PHONE, "15550002", NOW - 40 * DAY),
    ("wamid.gone", PHONE, "15550003", NOW),
]


@pytest.fixture
def inbox(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    return write_inbox(tmp_path / "inbox.db", INBOX_ROWS, monkeypatch)


def write_inbox(path: Path, rows: list[tuple[str, str, str, int]], monkeypatch: pytest.MonkeyPatch) -> Path:
    """The reconcile example's table with ``rows``, and ``nxcloud_inbox`` pointing at it."""
    ddl = load_dag_module("example_nxcloud_reconcile").INBOX_DDL
    with contextlib.closing(sqlite3.connect(path)) as db:
        seed_inbox(db, rows, ddl=ddl)
    monkeypatch.setenv("AIRFLOW_CONN_NXCLOUD_INBOX", json.dumps({"conn_type": "sqlite", "host": str(path)}))
    return path


def inbox_rows(path: Path) -> dict[str, tuple[str | None, str | None]]:
    with sqlite3.connect(path) as db:
        return {
            m: (r, e) for m, r, e in db.execute("SELECT message_id, read_at, last_error FROM whatsapp_inbox")
        }


def test_reconcile_marks_writes_back_and_second_run_skips(
    run_dag, nxcloud_sandbox: NxCloudSandbox, inbox: Path
) -> None:
    nxcloud_sandbox.add_inbound(InboundMessage(*row) for row in INBOX_ROWS if row[0] != "wamid.gone")

    first = run_dag("example_nxcloud_reconcile", dag_id="example_nxcloud_reconcile")

    expected = {f"wamid.rec{i}" for i in range(12)}
    assert nxcloud_sandbox.marked_ids() == {"wamid.rec0"}, "one request for the thread: its newest"
    assert nxcloud_sandbox.read_ids() == expected, "and the customer sees all 12 read"
    assert len(nxcloud_sandbox.requests) == 2  # the thread's newest, and the deleted message
    rows = inbox_rows(inbox)
    assert {m for m, (read_at, _) in rows.items() if read_at} == expected
    assert rows["wamid.too_old"][1] == "skipped: older than 30 days: WhatsApp cannot mark it read"
    assert rows["wamid.gone"][0] is None
    assert rows["wamid.gone"][1] is not None and rows["wamid.gone"][1].startswith("failed: code 9099")
    assert first.task_state("mark_read") == "failed", "an unknown id is a permanent failure"
    assert first.xcom("write_back") == {"read": 12, "errors": 2}
    assert first.xcom("mark_read")["counts"]["requests"] == 2
    requests_after_first = len(nxcloud_sandbox.requests)

    second = run_dag("example_nxcloud_reconcile", dag_id="example_nxcloud_reconcile")

    assert second.task_state("mark_read") == "skipped"
    assert len(nxcloud_sandbox.requests) == requests_after_first, "nothing is marked twice"
    assert inbox_rows(inbox) == rows


def test_sharded_backlog_is_mapped_in_chunks_and_summed(
    run_dag, nxcloud_sandbox: NxCloudSandbox, inbox: Path
) -> None:
    from airflow.models.pool import Pool

    Pool.create_or_update_pool("nxcloud_api", slots=2, description="test", include_deferred=False)

    result = run_dag("example_nxcloud_sharded", dag_id="example_nxcloud_sharded", conf={"chunk_size": 5})

    assert [result.task_state("mark_chunk", map_index=i) for i in range(3)] == ["success"] * 3
    assert nxcloud_sandbox.marked_ids() == {f"wamid.rec{i}" for i in range(12)} | {"wamid.gone"}
    assert result.xcom("summarise") == {
        "total": 14, "marked": 13, "skipped": 1, "failed": 0, "not_attempted": 0, "duplicates": 0,
        "requests": 13, "conversations": 0, "marked_earlier": 0, "typing_indicators": 0,
        "marked_with_newer": 0,
    }  # fmt: skip


# 24 customers, two messages each (a minute apart): 24 threads, one request each, and a message
# deleted before the run. Its permanent failure fails mark_read for good, so Airflow does not
# retry the task (a minute later): one try, whatever the throttles leave retryable.
THROTTLED_ROWS = [
    (f"wamid.thr{c:02d}{n}", PHONE, f"155501{c:02d}", NOW - 600 + c + 60 * n)
    for c in range(24)
    for n in range(2)
] + [("wamid.gone", PHONE, "15550003", NOW)]
THROTTLED_READABLE = {m for m, *_ in THROTTLED_ROWS} - {"wamid.gone"}


@pytest.fixture
def throttled(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, nxcloud_sandbox: NxCloudSandbox
) -> tuple[NxCloudSandbox, Path]:
    """The sandbox seeded with the rows, limited to 3/s answered as Meta's 130429, and the inbox."""
    from airflow_provider_nxcloud.testing import AccountLimit

    nxcloud_sandbox.add_inbound(
        {"id": m, "business_phone": p, "from": sender, "timestamp": ts}
        for m, p, sender, ts in THROTTLED_ROWS
        if m != "wamid.gone"
    )
    # Below the 16 workers' first burst: most of it is throttled, then the client finds the pace.
    nxcloud_sandbox.set_rate_limit(AccountLimit(per_second=3, burst=2, answer="meta"))
    return nxcloud_sandbox, write_inbox(tmp_path / "inbox.db", THROTTLED_ROWS, monkeypatch)


def assert_no_throttle_parked(
    sandbox: NxCloudSandbox, rows: dict[str, tuple[str | None, str | None]]
) -> set[str]:
    """Each row read (and WhatsApp agrees) or left for the next run; only the deleted one parked."""
    throttled = [r for r in sandbox.requests if r.fault == "rate_limit"]
    assert throttled and {r.code for r in throttled} == {9099}, "the limit answered as Meta's 130429"
    parked = {m: error for m, (_, error) in rows.items() if error is not None}
    assert list(parked) == ["wamid.gone"], f"parked for a throttle: {parked}"
    assert "(#130429)" not in parked["wamid.gone"]
    read = {m for m, (read_at, _) in rows.items() if read_at}
    assert read <= sandbox.read_ids(), "read_at written for a message WhatsApp did not read"
    return read


def test_reconcile_on_a_meta_style_limit_parks_no_row_for_a_throttle(
    run_dag, throttled: tuple[NxCloudSandbox, Path]
) -> None:
    sandbox, inbox_path = throttled

    result = run_dag("example_nxcloud_reconcile", dag_id="example_nxcloud_reconcile")

    read = assert_no_throttle_parked(sandbox, inbox_rows(inbox_path))
    outcome = result.xcom("mark_read")
    left = {item["message_id"] for item in outcome["failed"] if item["retryable"]}
    assert read | left == THROTTLED_READABLE, "every row read, or retryable and left unread"
    assert result.xcom("write_back") == {"read": len(read), "errors": 1}


def test_reconcile_leaves_throttled_rows_for_the_next_run_which_reads_them(
    run_dag, throttled: tuple[NxCloudSandbox, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    sandbox, inbox_path = throttled
    # No client retries: every request the limit refuses ends its message retryable.
    monkeypatch.setenv("AIRFLOW_CONN_NXCLOUD_DEFAULT", sandbox.connection_json(max_retries=0))

    run_dag("example_nxcloud_reconcile", dag_id="example_nxcloud_reconcile")

    first = inbox_rows(inbox_path)
    read_first = assert_no_throttle_parked(sandbox, first)
    assert read_first < THROTTLED_READABLE, "some rows were throttled and left unread"
    assert all(first[m] == (None, None) for m in THROTTLED_READABLE - read_first)
    sandbox.set_rate_limit(None)

    second = run_dag("example_nxcloud_reconcile", dag_id="example_nxcloud_reconcile")

    rows = inbox_rows(inbox_path)
    assert {m for m, (read_at, _) in rows.items() if read_at} == THROTTLED_READABLE
    assert sandbox.read_ids() >= THROTTLED_READABLE
    assert second.task_state("mark_read") == "success"
    assert {m: rows[m] for m in read_first} == {m: first[m] for m in read_first}, "read rows untouched"


def test_the_reply_pipeline_shows_typing_once_per_customer_then_replies(
    run_dag, nxcloud_sandbox: NxCloudSandbox
) -> None:
    result = run_dag("example_nxcloud_typing_reply")

    assert result.state == "success"
    assert [request.path for request in nxcloud_sandbox.requests] == ["/api/wa/typingIndicator"] * 2
    assert sorted(nxcloud_sandbox.typing_shown(PHONE)) == [
        "wamid.HBgLMTU1NTAwMDAwMDEVAgASGBQzQUI0",  # 15550001's newest
        "wamid.HBgLMTU1NTAwMDAwMDIVAgASGBQzQUI1",
    ]
    assert result.xcom("mark_read_typing")["counts"]["marked"] == 3
    assert result.xcom("send_replies") == dict.fromkeys(
        ["15550001", "15550002"], "Thank you, we are looking into it."
    )
