"""What differs between the Airflow versions the tests run on (2.11, 3.0 to 3.3).

The provider's own seam is ``airflow_provider_nxcloud.version_compat``; this is the tests' one,
for Airflow internals the tests reach into. Importing it does not import Airflow (the session
configures Airflow's environment first).
"""

from __future__ import annotations

from importlib.metadata import version
from typing import Any

AIRFLOW_VERSION: tuple[int, int] = tuple(int(part) for part in version("apache-airflow").split(".")[:2])  # type: ignore[assignment]
AIRFLOW_2 = AIRFLOW_VERSION < (3, 0)


def dag_bag(**kwargs: Any) -> Any:
    """A DagBag (``airflow.dag_processing.dagbag`` on newer 3.x, ``airflow.models.dagbag`` before)."""
    try:
        from airflow.dag_processing.dagbag import DagBag
    except ImportError:
        from airflow.models.dagbag import DagBag  # type: ignore[no-redef,attr-defined,unused-ignore]
    return DagBag(**kwargs)


def read_xcom(*, dag_id: str, run_id: str, task_id: str, key: str, map_index: int) -> Any:
    """One XCom value from the metadata DB, deserialized; None when there is none."""
    if AIRFLOW_2:
        from airflow.models.xcom import XCom

        return XCom.get_one(dag_id=dag_id, run_id=run_id, task_id=task_id, key=key, map_index=map_index)
    from airflow.models.xcom import XComModel
    from airflow.utils.session import create_session

    with create_session() as session:
        row = (
            session.query(XComModel)
            .filter_by(dag_id=dag_id, run_id=run_id, task_id=task_id, key=key, map_index=map_index)
            .one_or_none()
        )
        return None if row is None else XComModel.deserialize_value(row)
