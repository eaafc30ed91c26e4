"""The one place that imports from Airflow by version: 3.x ``airflow.sdk`` first, else the 2.x home.

Each name falls back on its own, as in apache/airflow's ``providers/common/compat/sdk.py``: on
3.0 ``airflow.sdk.BaseOperator`` exists but ``airflow.sdk.BaseHook`` only arrives with 3.1, and
2.11 has no ``airflow.sdk`` at all. We keep this seam instead of depending on
``apache-airflow-providers-common-compat``: it is a handful of names, tested on every Airflow
we support, and a dependency would add its own Airflow floor and release pins for no gain.

``dag``, ``task`` and ``DAG`` are here for DAG files that must run on 2.x and 3.x alike (the
example DAGs): ``airflow.decorators`` warns on 3.x and ``airflow.sdk`` is missing on 2.x.
``Stats`` (metrics) lives in ``airflow.sdk.observability.stats`` from 3.3 (``airflow.stats`` warns
there), ``airflow.observability.stats`` on 3.2 and ``airflow.stats`` before: the homes
apache/airflow's common.compat ``sdk.py`` lists for it.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    # Type-checked against the newest Airflow; the runtime branches below resolve the same names.
    from airflow.sdk import DAG, BaseHook, BaseOperator, dag, task
    from airflow.sdk import Context as Context
    from airflow.sdk.exceptions import AirflowFailException, AirflowSkipException
    from airflow.sdk.observability.stats import Stats
else:
    try:
        from airflow.sdk import BaseOperator
    except ImportError:  # Airflow 2.x
        from airflow.models.baseoperator import BaseOperator
    try:
        from airflow.sdk import BaseHook
    except ImportError:  # Airflow 2.x, and 3.0 (whose task SDK has no BaseHook yet)
        from airflow.hooks.base import BaseHook
    try:
        from airflow.sdk.exceptions import AirflowFailException, AirflowSkipException
    except ImportError:  # Airflow 2.x
        from airflow.exceptions import AirflowFailException, AirflowSkipException

    _STATS_HOMES = ("airflow.sdk.observability.stats", "airflow.observability.stats", "airflow.stats")

    def __getattr__(name: str) -> Any:
        # Resolved on first use: DAG files need them, the operator and hook modules do not (the
        # operator needs Stats only once a batch is over).
        if name == "Stats":
            return _resolve_stats()
        if name not in {"DAG", "dag", "task"}:
            raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
        try:
            import airflow.sdk as home
        except ImportError:  # Airflow 2.x
            import airflow.decorators as decorators
            import airflow.models.dag as models_dag

            home = models_dag if name == "DAG" else decorators
        value = getattr(home, name)
        globals()[name] = value
        return value

    def _resolve_stats() -> Any:
        import importlib

        for home in _STATS_HOMES:
            try:
                module = importlib.import_module(home)
            except ImportError:
                continue
            globals()["Stats"] = module.Stats
            return module.Stats
        raise ImportError(f"no Airflow Stats in any of {', '.join(_STATS_HOMES)}")


__all__ = [
    "DAG",
    "AirflowFailException",
    "AirflowSkipException",
    "BaseHook",
    "BaseOperator",
    "Stats",
    "dag",
    "task",
]
