"""The one place that imports from Airflow by version (3.x ``airflow.sdk``, else 2.x paths)."""

from __future__ import annotations

try:
    from airflow.sdk import BaseHook, BaseOperator
    from airflow.sdk.exceptions import AirflowFailException, AirflowSkipException
except ImportError:  # Airflow 2.x has no task SDK
    from airflow.exceptions import AirflowFailException, AirflowSkipException  # type: ignore[no-redef,attr-defined,unused-ignore]
    from airflow.hooks.base import BaseHook  # type: ignore[no-redef,attr-defined,unused-ignore]
    from airflow.models import BaseOperator  # type: ignore[no-redef,attr-defined,unused-ignore]

__all__ = ["AirflowFailException", "AirflowSkipException", "BaseHook", "BaseOperator"]
