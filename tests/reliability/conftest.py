"""Reliability tests: their figures, and ``airflow dags test`` in a separate process.

Each test that measures something puts its figures in the ``figures`` fixture; they are printed
in a "NXCloud reliability figures" section at the end of the run and, when the environment
variable ``NXCLOUD_RELIABILITY_FIGURES`` names a file, written there as JSON.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

from tests.support import airflow_executable, isolated_airflow_env, migrate_airflow_db, run_airflow

if TYPE_CHECKING:
    from collections.abc import Iterator, Mapping

HERE = Path(__file__).resolve().parent
REPO = HERE.parent.parent
# Generous: a CLI run costs 5-15 s here; this only stops a hung process from hanging the suite.
DAGS_TEST_TIMEOUT_SECONDS = 180

_FIGURES: dict[str, dict[str, Any]] = {}


@pytest.fixture
def figures(request: pytest.FixtureRequest) -> Iterator[dict[str, Any]]:
    """A dict the test fills with what it measured; reported even when the test fails."""
    measured: dict[str, Any] = {}
    yield measured
    if measured:
        _FIGURES[request.node.nodeid] = measured
        request.node.user_properties.append(("figures", json.dumps(measured, sort_keys=True)))


# Figures that only quote an error text: shown with -v (they are in the JSON file either way).
_QUOTES_ONLY = {"error", "import_error"}


def pytest_terminal_summary(terminalreporter: Any, exitstatus: int, config: pytest.Config) -> None:
    shown = {
        nodeid: measured
        for nodeid, measured in _FIGURES.items()
        if config.get_verbosity() > 0 or not set(measured) <= _QUOTES_ONLY
    }
    if shown:
        terminalreporter.section("NXCloud reliability figures")
    for nodeid, measured in shown.items():
        terminalreporter.write_line(f"{nodeid}")
        for key, value in measured.items():
            terminalreporter.write_line(f"    {key}: {json.dumps(value, sort_keys=True)}")
    target = os.environ.get("NXCLOUD_RELIABILITY_FIGURES")
    if target and _FIGURES:
        Path(target).write_text(json.dumps(_FIGURES, indent=2, sort_keys=True) + "\n", encoding="utf-8")


@dataclass(frozen=True)
class AirflowProcess:
    """``airflow dags test`` against a throwaway, migrated AIRFLOW_HOME, in its own process."""

    home: Path
    dags_folder: Path

    def env(self, extra: Mapping[str, str] | None = None) -> dict[str, str]:
        # Every connection the child uses is passed explicitly in ``extra``.
        return isolated_airflow_env(self.home, **(extra or {}))

    def command(self, dag_id: str) -> list[str]:
        return [str(airflow_executable()), "dags", "test", dag_id]

    def run(
        self, dag_id: str, extra_env: Mapping[str, str] | None = None
    ) -> subprocess.CompletedProcess[str]:
        return run_airflow(
            "dags", "test", dag_id, env=self.env(extra_env), cwd=self.home, check=False,
            timeout=DAGS_TEST_TIMEOUT_SECONDS,
        )  # fmt: skip

    def start(self, dag_id: str, extra_env: Mapping[str, str] | None, log: Path) -> subprocess.Popen[bytes]:
        """Started in a new session, so the whole process group can be killed at once."""
        with log.open("wb") as output:
            return subprocess.Popen(
                self.command(dag_id),
                env=self.env(extra_env),
                cwd=self.home,
                stdout=output,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                start_new_session=True,
            )


@pytest.fixture(scope="session")
def airflow_process(tmp_path_factory: pytest.TempPathFactory) -> Iterator[AirflowProcess]:
    """A migrated sqlite AIRFLOW_HOME (once per session, ~4 s) holding this directory's DAGs."""
    home = tmp_path_factory.mktemp("reliability_airflow_home")
    dags_folder = home / "dags"
    dags_folder.mkdir()
    for source in [*(HERE / "dags").glob("*.py"), REPO / "example_dags" / "example_nxcloud_reconcile.py"]:
        if source.exists():
            shutil.copy(source, dags_folder / source.name)
    process = AirflowProcess(home=home, dags_folder=dags_folder)
    migrate_airflow_db(process.env())
    yield process
    shutil.rmtree(home, ignore_errors=True)
