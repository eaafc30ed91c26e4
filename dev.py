"""Developer entry point that needs nothing but python3: ``python3 dev.py demo|test|e2e|lint|bench``.

It creates ``.venv`` (with uv: Airflow installs in about 10 s instead of 40), installs the provider
with its dev extras, and runs the requested job inside it.
"""

from __future__ import annotations

import glob
import os
import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent
VENV = ROOT / ".venv"
BIN = VENV / "bin"
PYTHON = BIN / "python"
AIRFLOW_VERSION = "3.3.2"
# Re-install only when what we install changes.
STAMP = VENV / ".installed"


def run(*command: str | Path, env: dict[str, str] | None = None) -> None:
    result = subprocess.run([str(part) for part in command], cwd=ROOT, env=env)
    if result.returncode:
        sys.exit(result.returncode)


def ensure_venv() -> None:
    wanted = f"{AIRFLOW_VERSION}\n{(ROOT / 'pyproject.toml').read_text()}"
    if STAMP.exists() and STAMP.read_text() == wanted:
        return
    if not PYTHON.exists():
        run(sys.executable, "-m", "venv", VENV)
    uv = BIN / "uv"
    if not uv.exists():
        if subprocess.run([PYTHON, "-m", "pip", "--version"], capture_output=True).returncode:
            run(PYTHON, "-m", "ensurepip", "--upgrade")  # a venv made by uv has no pip
        run(PYTHON, "-m", "pip", "install", "--quiet", "--disable-pip-version-check", "uv")
    env = {**os.environ, "VIRTUAL_ENV": str(VENV)}
    # Compiled bytecode halves `import airflow` when PYTHONDONTWRITEBYTECODE is set.
    run(
        uv, "pip", "install", "--quiet", "--compile-bytecode", "--python", PYTHON,
        f"apache-airflow=={AIRFLOW_VERSION}", "-e", ".[dev,bench,deploy]",
        env=env,
    )  # fmt: skip
    STAMP.write_text(wanted)


def ensure_debian_packages(*packages: tuple[str, str]) -> None:
    """Install the Debian ``(package, file it provides)`` pairs whose file is missing.

    Only as root with apt-get (CI, this sandbox); elsewhere the tests needing them skip or say
    what is missing.
    """
    missing = [package for package, provides in packages if not glob.glob(provides)]
    if not missing or not shutil.which("apt-get") or os.geteuid() != 0:
        return
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    run("apt-get", "update", "-qq", env=env)
    run("apt-get", "install", "-y", "-qq", "--no-install-recommends", *missing, env=env)


# The connection-form test drives Debian's Chromium (browsers cannot be downloaded here).
CHROMIUM = ("chromium", "/usr/bin/chromium")
# The deployment tests start throwaway PostgreSQL clusters and a Redis broker.
DEPLOYMENT_SERVERS = (
    ("postgresql", "/usr/lib/postgresql/*/bin/initdb"),
    ("redis-server", "/usr/bin/redis-server"),
)


def main() -> None:
    job = sys.argv[1] if len(sys.argv) > 1 else "help"
    args = sys.argv[2:]
    if job not in {"demo", "test", "e2e", "lint", "bench"}:
        sys.exit("usage: python3 dev.py demo | test|e2e [pytest args] | lint | bench [--quick]")
    ensure_venv()
    if job == "demo":
        run(PYTHON, ROOT / "demo" / "run_demo.py", *args)
    elif job == "test":
        ensure_debian_packages(CHROMIUM)
        run(PYTHON, "-m", "pytest", *args)
    elif job == "e2e":
        ensure_debian_packages(*DEPLOYMENT_SERVERS)
        run(PYTHON, "-m", "pytest", "-m", "deployment", "tests/deployment", *args)
    elif job == "lint":
        run(BIN / "ruff", "check", ".")
        run(BIN / "ruff", "format", "--check", ".")
        run(BIN / "mypy")
    elif job == "bench":
        run(PYTHON, "-m", "benchmarks.run", *args)


if __name__ == "__main__":
    main()
