"""Helpers for driving the real ``airflow`` CLI in a throwaway AIRFLOW_HOME."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import pytest

from tests.support import isolated_airflow_env, migrate_airflow_db, run_airflow

if TYPE_CHECKING:
    import subprocess
    from collections.abc import Mapping
    from pathlib import Path


@dataclass(frozen=True)
class AirflowCli:
    """The ``airflow`` command bound to one throwaway, migrated AIRFLOW_HOME."""

    home: Path
    env: dict[str, str]

    def run(
        self, *args: str, extra_env: Mapping[str, str] | None = None, check: bool = True
    ) -> subprocess.CompletedProcess[str]:
        return run_airflow(*args, env={**self.env, **(extra_env or {})}, cwd=self.home, check=check)


@pytest.fixture(scope="module")
def airflow_cli(tmp_path_factory: pytest.TempPathFactory) -> AirflowCli:
    """A fresh sqlite AIRFLOW_HOME with ``airflow db migrate`` run once for the module."""
    home = tmp_path_factory.mktemp("airflow_home")
    cli = AirflowCli(home=home, env=isolated_airflow_env(home))
    migrate_airflow_db(cli.env)
    return cli
