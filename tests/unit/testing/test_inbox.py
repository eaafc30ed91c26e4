"""seed_inbox: the one INSERT of the reconcile example's inbox, in the driver's paramstyle."""

from __future__ import annotations

import contextlib
import sqlite3
from typing import TYPE_CHECKING

import pytest

from airflow_provider_nxcloud.testing import InboundMessage, seed_inbox
from airflow_provider_nxcloud.testing.inbox import driver_paramstyle, insert_statement
from tests.conftest import load_dag_module

if TYPE_CHECKING:
    from pathlib import Path

ROWS = [("wamid.A", "8613800000000", "15550001", 1_700_000_000), ("wamid.B", "8613800000000", None, 1)]
COLUMNS = "message_id, business_phone, sender, received_at, read_at, last_error"


@pytest.fixture
def ddl() -> str:
    return str(load_dag_module("example_nxcloud_reconcile").INBOX_DDL)


def read_back(path: Path) -> list[tuple[object, ...]]:
    with contextlib.closing(sqlite3.connect(path)) as db:
        return db.execute(f"SELECT {COLUMNS} FROM whatsapp_inbox ORDER BY message_id").fetchall()


def test_a_connection_gets_the_table_and_the_rows_committed(tmp_path: Path, ddl: str) -> None:
    path = tmp_path / "inbox.db"
    with contextlib.closing(sqlite3.connect(path)) as db:
        assert seed_inbox(db, ROWS, ddl=ddl) == 2

    assert read_back(path) == [(*row, None, None) for row in ROWS]


def test_a_cursor_leaves_the_commit_to_its_caller(tmp_path: Path, ddl: str) -> None:
    path = tmp_path / "inbox.db"
    with contextlib.closing(sqlite3.connect(path)) as db:
        seed_inbox(db.cursor(), ROWS[:1], ddl=ddl)
        assert read_back(path) == [], "not committed yet"
        db.commit()

    assert [row[0] for row in read_back(path)] == ["wamid.A"]


def test_the_sandbox_s_inbound_messages_seed_the_same_rows(tmp_path: Path, ddl: str) -> None:
    path = tmp_path / "inbox.db"
    message = InboundMessage(*ROWS[0])
    with contextlib.closing(sqlite3.connect(path)) as db:
        seed_inbox(db, [message], ddl=ddl)

    assert read_back(path) == [(*ROWS[0], None, None)]


def test_the_named_paramstyle_binds_by_column(tmp_path: Path, ddl: str) -> None:
    path = tmp_path / "inbox.db"
    with contextlib.closing(sqlite3.connect(path)) as db:
        seed_inbox(db, ROWS, ddl=ddl, paramstyle="named")  # sqlite3 takes :name too

    assert read_back(path) == [(*row, None, None) for row in ROWS]


def test_placeholders_follow_the_driver() -> None:
    with contextlib.closing(sqlite3.connect(":memory:")) as db:
        assert driver_paramstyle(db) == driver_paramstyle(db.cursor()) == "qmark"
    assert insert_statement("pyformat").endswith("VALUES (%s, %s, %s, %s)")  # psycopg2
    assert insert_statement("numeric").endswith("VALUES (:1, :2, :3, :4)")
    with pytest.raises(ValueError, match="paramstyle="):
        driver_paramstyle(object())
