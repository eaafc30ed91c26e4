"""Helpers for driving the real ``airflow`` CLI in a throwaway AIRFLOW_HOME."""

from __future__ import annotations

import subprocess
from dataclasses import dataclass
from typing import TYPE_CHECKING

import pytest

from tests.support import airflow_executable, isolated_airflow_env, migrate_airflow_db

if TYPE_CHECKING:
    from collections.abc import Mapping
    from pathlib import Path

# One CLI call costs 1-3 s here; this only stops a hung command from hanging the suite.
CLI_TIMEOUT_SECONDS = 120


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
    migrate_airflow_db(cli.env)
    return cli
