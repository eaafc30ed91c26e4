"""Helpers for driving the real ``airflow`` CLI in a throwaway AIRFLOW_HOME."""

from __future__ import annotations

import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

if TYPE_CHECKING:
    from collections.abc import Mapping

# One CLI call costs 1-3 s here; this only stops a hung command from hanging the suite.
CLI_TIMEOUT_SECONDS = 120


def airflow_executable() -> Path:
    """The ``airflow`` script of the interpreter running the tests (the project's venv)."""
    path = Path(sys.executable).parent / "airflow"
    if not path.exists():
        pytest.fail(f"no airflow script next to {sys.executable}; install apache-airflow in this venv")
    return path


def isolated_airflow_env(home: Path) -> dict[str, str]:
    """The current environment minus every AIRFLOW* variable, pointed at ``home``.

    Dropping the inherited ``AIRFLOW_*`` variables keeps a developer's AIRFLOW_HOME, config
    overrides and ``AIRFLOW_CONN_*`` connections out of the subprocess.
    """
    dags = home / "dags"
    dags.mkdir(parents=True, exist_ok=True)
    env = {name: value for name, value in os.environ.items() if not name.startswith("AIRFLOW")}
    env.update(
        AIRFLOW_HOME=str(home),
        AIRFLOW__CORE__LOAD_EXAMPLES="False",
        AIRFLOW__CORE__DAGS_FOLDER=str(dags),
    )
    return env


@dataclass(frozen=True)
class AirflowCli:
    """The ``airflow`` command bound to one throwaway, migrated AIRFLOW_HOME."""

    executable: Path
    home: Path
    env: dict[str, str]

    def run(
        self, *args: str, extra_env: Mapping[str, str] | None = None, check: bool = True
    ) -> subprocess.CompletedProcess[str]:
        result = subprocess.run(
            [str(self.executable), *args],
            env={**self.env, **(extra_env or {})},
            cwd=self.home,
            capture_output=True,
            text=True,
            stdin=subprocess.DEVNULL,
            timeout=CLI_TIMEOUT_SECONDS,
            check=False,
        )
        if check and result.returncode != 0:
            pytest.fail(
                f"`airflow {' '.join(args)}` exited {result.returncode}\n"
                f"--- stdout ---\n{result.stdout}\n--- stderr ---\n{result.stderr}"
            )
        return result


@pytest.fixture(scope="module")
def airflow_cli(tmp_path_factory: pytest.TempPathFactory) -> AirflowCli:
    """A fresh sqlite AIRFLOW_HOME with ``airflow db migrate`` run once for the module."""
    home = tmp_path_factory.mktemp("airflow_home")
    cli = AirflowCli(executable=airflow_executable(), home=home, env=isolated_airflow_env(home))
    cli.run("db", "migrate")
    return cli
