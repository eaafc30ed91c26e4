"""Test session setup: a throwaway Airflow home (sqlite) set before anything imports Airflow.

DAG tests run real DAG files with ``dag.test()``: the files in ``tests/airflow/dags`` and
``example_dags`` are copied into this session's DAGS_FOLDER, because ``dag.test()`` only runs
DAGs it can sync from there into the metadata DB.
"""

from __future__ import annotations

import importlib.util
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

from tests.compat import read_xcom

if TYPE_CHECKING:
    from collections.abc import Iterator
    from types import ModuleType

REPO = Path(__file__).resolve().parent.parent
# The tests of the layers that import no Airflow (``tests/unit/test_layers.py`` checks it): the
# matrix runs them on the newest Airflow only (``core``); modules elsewhere mark themselves.
AIRFLOW_FREE = ("tests/unit/client", "tests/unit/batch")
AIRFLOW_HOME = Path(tempfile.mkdtemp(prefix="nxcloud-test-airflow-"))
DAGS_FOLDER = AIRFLOW_HOME / "dags"

os.environ.update(
    {
        "AIRFLOW_HOME": str(AIRFLOW_HOME),
        "AIRFLOW__CORE__DAGS_FOLDER": str(DAGS_FOLDER),
        "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
        "AIRFLOW__CORE__UNIT_TEST_MODE": "False",
        "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": f"sqlite:///{AIRFLOW_HOME / 'airflow.db'}",
        "AIRFLOW__LOGGING__LOGGING_LEVEL": os.environ.get("NXCLOUD_TEST_LOG_LEVEL", "INFO"),
    }
)
if os.environ.get("NXCLOUD_TEST_FROM_WHEEL"):
    # `dev.py test --airflow X.Y` tests the installed wheel: a package imported from the checkout
    # would hide a file missing from the wheel.
    import airflow_provider_nxcloud

    if Path(airflow_provider_nxcloud.__file__).resolve().parent == REPO / "airflow_provider_nxcloud":
        raise pytest.UsageError(f"testing the wheel, but the provider came from {REPO}")

DAGS_FOLDER.mkdir()
for source in [*(REPO / "tests" / "airflow" / "dags").glob("*.py"), *(REPO / "example_dags").glob("*.py")]:
    shutil.copy(source, DAGS_FOLDER / source.name)


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    shutil.rmtree(AIRFLOW_HOME, ignore_errors=True)


@pytest.fixture(scope="session")
def airflow_db() -> Path:
    """A migrated sqlite metadata DB for this session (about 4 s, once)."""
    airflow = Path(sys.executable).with_name("airflow")
    subprocess.run([str(airflow), "db", "migrate"], check=True, capture_output=True, env=os.environ.copy())
    return AIRFLOW_HOME


def load_dag_module(name: str) -> ModuleType:
    """Import a DAG file from the session's DAGS_FOLDER (so its fileloc is where Airflow looks)."""
    path = DAGS_FOLDER / f"{name}.py"
    spec = importlib.util.spec_from_file_location(f"nxcloud_test_dag_{name}", path)
    assert spec and spec.loader, path
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


class DagRunResult:
    """What a ``dag.test()`` run left behind: task states, tries and XComs."""

    def __init__(self, dag_run: Any) -> None:
        self.dag_run = dag_run
        self.task_instances = {ti.task_id: ti for ti in dag_run.get_task_instances()}

    @property
    def state(self) -> str:
        return str(self.dag_run.state)

    def task_state(self, task_id: str, map_index: int = -1) -> str | None:
        states = {ti.map_index: ti.state for ti in self.dag_run.get_task_instances() if ti.task_id == task_id}
        state = states.get(map_index)
        return str(state) if state is not None else None

    def try_number(self, task_id: str) -> int:
        return int(self.task_instances[task_id].try_number)

    def xcom(self, task_id: str, key: str = "return_value", map_index: int = -1) -> Any:
        return read_xcom(
            dag_id=self.dag_run.dag_id,
            run_id=self.dag_run.run_id,
            task_id=task_id,
            key=key,
            map_index=map_index,
        )


@pytest.fixture
def run_dag(airflow_db: Path) -> Iterator[Any]:
    """``run_dag("dag_file_name", dag_id=None, **conf) -> DagRunResult``."""

    def run(name: str, *, dag_id: str | None = None, conf: dict[str, Any] | None = None) -> DagRunResult:
        from airflow_provider_nxcloud.version_compat import DAG

        module = load_dag_module(name)
        dags = [value for value in vars(module).values() if isinstance(value, DAG)]
        dag = next((d for d in dags if dag_id in (None, d.dag_id)), None)
        if dag is None:  # a @dag function called at module level: build the DAG again
            dag = getattr(module, dag_id or name)()
        return DagRunResult(dag.test(run_conf=conf))

    yield run


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if item.path.relative_to(REPO).as_posix().startswith(AIRFLOW_FREE):
            item.add_marker(pytest.mark.core)
