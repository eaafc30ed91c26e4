"""What the installed distribution carries (``dev.py test --airflow X.Y`` installs the wheel)."""

from __future__ import annotations

from importlib import metadata, resources
from pathlib import Path

import airflow_provider_nxcloud

REPO = Path(__file__).resolve().parents[2]
DISTRIBUTION = "airflow-provider-nxcloud"


def test_the_package_is_marked_typed() -> None:
    assert resources.files(airflow_provider_nxcloud).joinpath("py.typed").is_file()


def test_entry_points_load() -> None:
    distribution = metadata.distribution(DISTRIBUTION)
    points = {(point.group, point.name): point for point in distribution.entry_points}

    info = points["apache_airflow_provider", "provider_info"].load()()
    assert info["package-name"] == "airflow-provider-nxcloud"
    assert info["versions"] == [airflow_provider_nxcloud.__version__]
    assert points["pytest11", "nxcloud"].load().__name__ == "airflow_provider_nxcloud.testing.pytest_plugin"


def test_the_version_is_the_one_in_the_package() -> None:
    assert metadata.version(DISTRIBUTION) == airflow_provider_nxcloud.__version__


def test_the_license_text_is_in_the_dist_info() -> None:
    distribution = metadata.distribution(DISTRIBUTION)
    licenses = [path for path in distribution.files or [] if path.parts[-2:] == ("licenses", "LICENSE")]

    assert len(licenses) == 1, distribution.files
    assert licenses[0].read_text() == (REPO / "LICENSE").read_text()
    assert "Apache License\n                           Version 2.0" in licenses[0].read_text()
    assert distribution.metadata["License-Expression"] == "Apache-2.0"


def test_development_dependencies_are_not_published() -> None:
    # dev, bench, deploy and docs are dependency groups (PEP 735), which stay out of the metadata.
    requirements = metadata.requires(DISTRIBUTION) or []
    assert set(metadata.metadata(DISTRIBUTION).get_all("Provides-Extra") or []) == {"examples"}
    assert not [line for line in requirements if "pytest" in line or "ruff" in line], requirements
