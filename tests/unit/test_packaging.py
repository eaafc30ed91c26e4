"""What the installed distribution carries (``dev.py test --airflow X.Y`` installs the wheel built
from the sdist), and what the sdist and a wheel rebuilt from it carry (built offline by hatchling,
from the dev group, as ``uv build`` would)."""

from __future__ import annotations

import subprocess
import sys
import tarfile
import zipfile
from importlib import metadata, resources
from pathlib import Path

import pytest

import airflow_provider_nxcloud

pytestmark = pytest.mark.core


REPO = Path(__file__).resolve().parents[2]
DISTRIBUTION = "airflow-provider-nxcloud"
# What a rebuild from the sdist needs besides the package; the rest of the checkout stays out.
SDIST_NEEDS = {"pyproject.toml", "PKG-INFO", "README.md", "LICENSE", "CHANGELOG.md"}
SDIST_LEAVES_OUT = {"tests", "benchmarks", "demo", "dev.py", ".ci"}


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


def hatchling_build(kind: str, source: Path, out: Path) -> Path:
    """One PEP 517 hook of hatchling, run in ``source`` (hooks build the current directory)."""
    code = f"import sys, hatchling.build as b; print(b.build_{kind}(sys.argv[1]))"
    try:
        built = subprocess.run(
            [sys.executable, "-c", code, str(out)], cwd=source, capture_output=True, text=True, timeout=120
        )
    except subprocess.TimeoutExpired as error:
        raise AssertionError(f"hatchling's build_{kind} in {source} did not finish in 120 s") from error
    assert built.returncode == 0, f"hatchling's build_{kind} in {source} failed:\n{built.stderr}"
    return out / built.stdout.strip().splitlines()[-1]


def package_files() -> set[str]:
    package = REPO / "airflow_provider_nxcloud"
    return {
        path.relative_to(REPO).as_posix()
        for path in package.rglob("*")
        if path.is_file() and "__pycache__" not in path.parts
    }


def test_a_wheel_rebuilt_from_the_sdist_carries_the_package_and_the_license(tmp_path: Path) -> None:
    sdist = hatchling_build("sdist", REPO, tmp_path)
    with tarfile.open(sdist) as archive:
        (top,) = {Path(name).parts[0] for name in archive.getnames()}
        members = {Path(name).relative_to(top).as_posix() for name in archive.getnames() if name != top}
        archive.extractall(tmp_path / "unpacked", filter="data")

    needed = SDIST_NEEDS | package_files()
    assert members >= needed, sorted(needed - members)
    examples = {path.relative_to(REPO).as_posix() for path in (REPO / "example_dags").glob("*.py")}
    assert examples and members >= examples, sorted(examples - members)
    assert not {member.split("/")[0] for member in members} & SDIST_LEAVES_OUT, sorted(members)

    wheel = hatchling_build("wheel", tmp_path / "unpacked" / top, tmp_path)
    with zipfile.ZipFile(wheel) as archive:
        names = set(archive.namelist())
        dist_info = {name.split("/")[0] for name in names if ".dist-info/" in name}
        assert len(dist_info) == 1, dist_info
        license_ = archive.read(f"{dist_info.pop()}/licenses/LICENSE").decode()

    assert license_ == (REPO / "LICENSE").read_text()
    assert names >= package_files(), sorted(package_files() - names)
