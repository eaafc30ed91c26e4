"""The seam picks each name's home for the Airflow it runs on (every branch runs in CI)."""

from __future__ import annotations

from airflow_provider_nxcloud import version_compat
from tests.compat import AIRFLOW_2, AIRFLOW_VERSION


def home(name: str) -> str:
    value = getattr(version_compat, name)
    # `task` is an instance (a decorator collection): name its class.
    return f"{value.__module__}.{getattr(value, '__name__', type(value).__name__)}"


def test_each_name_comes_from_its_home_on_this_airflow() -> None:
    homes = {name: home(name) for name in version_compat.__all__}

    if AIRFLOW_2:  # no task SDK at all
        assert homes["BaseHook"] == "airflow.hooks.base.BaseHook"
        assert homes["BaseOperator"] == "airflow.models.baseoperator.BaseOperator"
        assert homes["DAG"] == "airflow.models.dag.DAG"
        assert homes["AirflowSkipException"] == "airflow.exceptions.AirflowSkipException"
        assert homes["dag"] == "airflow.models.dag.dag"  # what airflow.decorators re-exports
        assert homes["task"].startswith("airflow.decorators")
        assert homes["Stats"] == "airflow.stats.Stats"
        return
    # 3.x: the task SDK, except BaseHook on 3.0 (airflow.sdk.BaseHook arrived with 3.1).
    assert homes["BaseOperator"].startswith("airflow.sdk.")
    assert homes["DAG"].startswith("airflow.sdk.")
    assert homes["dag"].startswith("airflow.sdk.")
    assert homes["task"].startswith("airflow.sdk.")
    if AIRFLOW_VERSION < (3, 1):
        assert homes["BaseHook"] == "airflow.hooks.base.BaseHook"
    else:
        assert homes["BaseHook"].startswith("airflow.sdk.")
    # 3.3 moved Stats into the task SDK; its old home still works but warns on every import.
    if AIRFLOW_VERSION >= (3, 3):
        assert homes["Stats"].startswith("airflow.sdk.")
    assert callable(version_compat.Stats.incr)


def test_unknown_names_raise_attribute_error() -> None:
    try:
        version_compat.NoSuchThing  # type: ignore[attr-defined]  # noqa: B018
    except AttributeError as error:
        assert "NoSuchThing" in str(error)
    else:
        raise AssertionError("version_compat.NoSuchThing resolved")
