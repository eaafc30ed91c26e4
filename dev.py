"""Developer entry point needing nothing but python3: ``python3 dev.py demo|test|e2e|lint|bench|dist|docs``.

It creates ``.venv`` (with uv: Airflow installs in about 10 s instead of 40), installs the provider
(editable) and the development dependency groups of pyproject.toml, and runs the requested job
inside it. With ``--airflow X.Y``, ``test`` and ``demo`` run in ``.venv-X.Y`` instead, on that
Airflow, with the provider installed from a wheel built from an sdist of this checkout, as a
release is (so a file missing from either fails the tests); ``test --all-airflow`` runs every
version of the table below, as CI does. ``dist`` writes that sdist and wheel to ``dist/`` and
checks both as a package index would.
"""

from __future__ import annotations

import atexit
import functools
import glob
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent
VENV = ROOT / ".venv"

# Every Airflow line we support: the release we test, and uv's --exclude-newer date for it.
# An unconstrained install of an older Airflow takes today's fastapi/pydantic/starlette and
# Airflow itself breaks (3.2.2: `__pydantic_core_schema__`, 3.0.6: "Remote server returned
# validation error"). Airflow's constraints files cannot be fetched here, so every package is
# resolved as of a date a few weeks after that release instead (None: the newest of everything).
AIRFLOW: dict[str, tuple[str, str | None]] = {
    "2.11": ("2.11.2", "2026-05-01"),
    "3.0": ("3.0.6", "2025-09-01"),
    "3.1": ("3.1.8", "2026-05-01"),
    "3.2": ("3.2.2", "2026-07-01"),
    "3.3": ("3.3.2", None),
}
NEWEST = "3.3"
# 3.0's connection form needs the FAB provider (the providers manager imports wtforms before it
# asks a hook for its form); the official image ships it, so test 3.0 the way users run it.
EXTRA_PACKAGES = {"3.0": ["apache-airflow-providers-fab"]}
# Packages our own floor needs newer than a line's date: urllib3>=2.6 (bounded decompression)
# came out after 2025-09-01; Airflow 3.0 works with it.
NEWER_THAN_THE_DATE = {"3.0": ["urllib3=2026-01-15"]}
# What `test --all-airflow` (CI) runs besides the newest version's full suite: everything but the
# long reliability runs and the Airflow-free tests (``core``: the same code on every line), and
# the browser test once per UI code path (Flask, React from the hook's
# classmethods, React from conn-fields: 2.11, 3.1 and the newest).
# The deployment group runs on the newest line only, by `e2e` (a `-m` here replaces the one in
# pyproject's addopts, so each expression leaves it out again).
MATRIX_MARKERS = {
    "2.11": "not long and not core and not deployment",
    "3.0": "not long and not core and not browser and not deployment",
    "3.1": "not long and not core and not deployment",
    "3.2": "not long and not core and not browser and not deployment",
    NEWEST: "not deployment",
}


def run(*command: str | Path, env: dict[str, str] | None = None, cwd: Path = ROOT) -> None:
    result = subprocess.run([str(part) for part in command], cwd=cwd, env=env)
    if result.returncode:
        sys.exit(result.returncode)


def ensure_uv() -> Path:
    """uv, in ``.venv`` (which also bootstraps it for the per-version venvs)."""
    python = VENV / "bin" / "python"
    if not python.exists():
        run(sys.executable, "-m", "venv", VENV)
    uv = VENV / "bin" / "uv"
    if not uv.exists():
        if subprocess.run([python, "-m", "pip", "--version"], capture_output=True).returncode:
            run(python, "-m", "ensurepip", "--upgrade")  # a venv made by uv has no pip
        run(python, "-m", "pip", "install", "--quiet", "--disable-pip-version-check", "uv")
    return uv


# The development dependency groups (PEP 735) each venv gets besides the provider: .venv runs
# every job; the per-Airflow venvs run the tests and the demo from the wheel.
GROUPS = ("dev", "bench", "deploy")
LINE_GROUPS = ("dev", "bench")


def build_dist(uv: Path, out: Path) -> tuple[Path, Path]:
    """The provider's sdist, and its wheel built from that sdist (uv's default), as a release is."""
    run(uv, "build", "--quiet", "--out-dir", out, ROOT)
    (sdist,) = out.glob("*.tar.gz")
    (wheel,) = out.glob("*.whl")
    return sdist, wheel


@functools.cache
def release_wheel(uv: Path) -> Path:
    """One build per dev.py run, shared by the per-Airflow venvs of ``test --all-airflow``."""
    out = Path(tempfile.mkdtemp(prefix="nxcloud-dist-"))
    atexit.register(shutil.rmtree, out, ignore_errors=True)
    return build_dist(uv, out)[1]


def groups(*names: str) -> list[str]:
    return [option for name in names for option in ("--group", f"{ROOT / 'pyproject.toml'}:{name}")]


def ensure_venv(line: str | None = None) -> Path:
    """The venv for ``line`` (None: ``.venv``, editable, newest Airflow); returns its python."""
    version, exclude_newer = AIRFLOW[line or NEWEST]
    venv = VENV if line is None else ROOT / f".venv-{line}"
    python = venv / "bin" / "python"
    uv = ensure_uv()
    if not python.exists():
        run(uv, "venv", "--quiet", "--python", sys.executable, venv)
    env = {**os.environ, "VIRTUAL_ENV": str(venv)}
    # Compiled bytecode halves `import airflow` when PYTHONDONTWRITEBYTECODE is set.
    install = [uv, "pip", "install", "--quiet", "--compile-bytecode", "--python", python]
    if exclude_newer:
        install += ["--exclude-newer", exclude_newer]
    for package_date in NEWER_THAN_THE_DATE.get(line or NEWEST, []):
        install += ["--exclude-newer-package", package_date]
    wanted = f"{install}\n{(ROOT / 'pyproject.toml').read_text()}"
    stamp = venv / ".installed"  # re-resolve only when what we install changes
    packages = [f"apache-airflow=={version}", *EXTRA_PACKAGES.get(line or NEWEST, [])]
    if line is None:
        if not stamp.exists() or stamp.read_text() != wanted:
            run(*install, *packages, "-e", ".", *groups(*GROUPS), env=env)
            stamp.write_text(wanted)
        return python
    wheel = release_wheel(uv)
    if not stamp.exists() or stamp.read_text() != wanted:
        run(*install, *packages, wheel, *groups(*LINE_GROUPS), env=env)
        stamp.write_text(wanted)
    else:  # this checkout's wheel, every time; the dependencies stay as resolved
        run(*install, "--reinstall-package", "airflow-provider-nxcloud", "--no-deps", wheel, env=env)
    return python


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


def pytest(python: Path, args: list[str], *, wheel: bool) -> int:
    env = dict(os.environ)
    if wheel:
        # Import the provider from the installed wheel, not from the checkout: no cwd on
        # sys.path, and pytest appends the rootdir (for `tests`) after site-packages.
        env.update(PYTHONSAFEPATH="1", NXCLOUD_TEST_FROM_WHEEL="1")
        args = ["--import-mode=append", *args]
    return subprocess.run([str(python), "-m", "pytest", *args], cwd=ROOT, env=env).returncode


def test(line: str | None, args: list[str]) -> None:
    ensure_debian_packages(CHROMIUM)
    code = pytest(ensure_venv(line), args, wheel=line is not None)
    if code:
        sys.exit(code)


def test_all_airflow(args: list[str]) -> None:
    ensure_debian_packages(CHROMIUM)
    times: dict[str, tuple[float, int]] = {}
    for line in sorted(AIRFLOW, key=lambda v: tuple(map(int, v.split(".")))):
        start = time.monotonic()
        print(f"\n===== Airflow {AIRFLOW[line][0]} =====", flush=True)
        code = pytest(ensure_venv(line), ["-m", MATRIX_MARKERS[line], *args], wheel=True)
        times[line] = (time.monotonic() - start, code)
    print("\n===== Airflow matrix =====")
    for line, (seconds, code) in times.items():
        # Exit 5 (nothing collected) is a failure too: a version must run its tests.
        outcome = {0: "passed", 5: "FAILED: no tests ran"}.get(code, f"FAILED (pytest exit {code})")
        print(f"{AIRFLOW[line][0]:>8}  {outcome}  {seconds / 60:.1f} min")
    if any(code for _, code in times.values()):
        sys.exit(1)


def parse_airflow(args: list[str]) -> tuple[str | None, list[str]]:
    """Takes ``--airflow X.Y`` out of ``args``."""
    if "--airflow" not in args:
        return None, args
    at = args.index("--airflow")
    line = args[at + 1] if at + 1 < len(args) else ""
    if line not in AIRFLOW:
        sys.exit(f"--airflow takes one of {', '.join(AIRFLOW)}, got {line!r}")
    return line, args[:at] + args[at + 2 :]


def main() -> None:
    job = sys.argv[1] if len(sys.argv) > 1 else "help"
    line, args = parse_airflow(sys.argv[2:])
    jobs = {
        "demo": lambda: run(ensure_venv(line), ROOT / "demo" / "run_demo.py", *args),
        "test": lambda: test_all_airflow(args[1:]) if args[:1] == ["--all-airflow"] else test(line, args),
        "e2e": lambda: e2e(args),
        "lint": lint,
        "bench": lambda: run(ensure_venv(), "-m", "benchmarks.run", *args),
        "dist": dist,
        "docs": lambda: docs(args),
    }
    if job not in jobs:
        sys.exit(
            "usage: python3 dev.py demo [--airflow X.Y] | test [--airflow X.Y | --all-airflow] [pytest args]"
            " | e2e [pytest args] | lint | bench [--quick] | dist | docs [sphinx args]"
            f"\n(Airflow lines: {', '.join(AIRFLOW)})"
        )
    jobs[job]()


def e2e(args: list[str]) -> None:
    """The deployment group: real scheduler, workers, PostgreSQL and Redis, on the newest Airflow."""
    python = ensure_venv()
    ensure_debian_packages(*DEPLOYMENT_SERVERS)
    run(python, "-m", "pytest", "-m", "deployment", "tests/deployment", *args)


def dist() -> None:
    """``dist/``: the sdist and the wheel built from it, both through ``twine check --strict``."""
    ensure_venv()
    out = ROOT / "dist"
    shutil.rmtree(out, ignore_errors=True)
    sdist, wheel = build_dist(ensure_uv(), out)
    run(VENV / "bin" / "twine", "check", "--strict", sdist, wheel)


def docs(args: list[str]) -> None:
    """The Sphinx site into docs/_build/html: any warning fails it, every reference must resolve."""
    python = ensure_venv()
    run(ensure_uv(), "pip", "install", "--quiet", "--python", python, *groups("docs"))
    html = ROOT / "docs" / "_build" / "html"
    # -E: every page read afresh, so a warning of a page that did not change still fails the build.
    run(python, "-m", "sphinx", "-E", "-W", "--keep-going", "-n", "-b", "html", ROOT / "docs", html, *args)
    print(f"docs: {html / 'index.html'}")


def lint() -> None:
    ensure_venv()
    bin_ = VENV / "bin"
    run(bin_ / "ruff", "check", ".")
    run(bin_ / "ruff", "format", "--check", ".")
    run(bin_ / "mypy")


if __name__ == "__main__":
    main()
