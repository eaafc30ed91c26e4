"""Many messages -> one result, over anything shaped like the client. Imports no Airflow.

``mark_messages(client, messages)`` validates the messages, sends one request per conversation
(WhatsApp's rules) through the client, concurrently, and returns a ``BatchResult``; with a
``Checkpoint`` it records what it marked, and a new call with the same input sends only the rest.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from airflow_provider_nxcloud.batch.checkpoint import Checkpoint
from airflow_provider_nxcloud.batch.options import BatchOptions
from airflow_provider_nxcloud.batch.results import BatchResult, Outcome

if TYPE_CHECKING:
    from airflow_provider_nxcloud.batch.engine import MarkReadClient, mark_messages


def __getattr__(name: str) -> Any:
    # The engine is loaded when a batch runs, not when a DAG file imports the options.
    if name not in {"mark_messages", "MarkReadClient"}:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    from airflow_provider_nxcloud.batch import engine

    value = getattr(engine, name)
    globals()[name] = value
    return value


__all__ = ["BatchOptions", "BatchResult", "Checkpoint", "MarkReadClient", "Outcome", "mark_messages"]
