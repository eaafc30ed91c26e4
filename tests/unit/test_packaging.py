"""What the installed distribution carries (``dev.py test --airflow X.Y`` installs the wheel)."""

from __future__ import annotations

from importlib import metadata, resources

import airflow_provider_nxcloud


def test_the_package_is_marked_typed() -> None:
    assert resources.files(airflow_provider_nxcloud).joinpath("py.typed").is_file()


def test_entry_points_load() -> None:
    distribution = metadata.distribution("airflow-provider-nxcloud")
    points = {(point.group, point.name): point for point in distribution.entry_points}

    info = points["apache_airflow_provider", "provider_info"].load()()
    assert info["package-name"] == "airflow-provider-nxcloud"
    assert info["versions"] == [airflow_provider_nxcloud.__version__]
    assert points["pytest11", "nxcloud"].load().__name__ == "airflow_provider_nxcloud.testing.pytest_plugin"
