"""Sphinx configuration: ``python3 dev.py docs`` builds the site into docs/_build/html."""

from __future__ import annotations

import atexit
import importlib.metadata
import os
import shutil
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))  # the provider, for autodoc, also without an install
# autodoc imports the hook, and with it Airflow: keep Airflow's files out of the builder's home.
if "AIRFLOW_HOME" not in os.environ:
    os.environ["AIRFLOW_HOME"] = tempfile.mkdtemp(prefix="nxcloud-docs-airflow-")
    atexit.register(shutil.rmtree, os.environ["AIRFLOW_HOME"], ignore_errors=True)
os.environ.setdefault("AIRFLOW__CORE__LOAD_EXAMPLES", "False")
os.environ.setdefault("AIRFLOW__LOGGING__LOGGING_LEVEL", "WARNING")

project = "airflow-provider-nxcloud"
author = "airflow-provider-nxcloud contributors"
copyright = "2026, airflow-provider-nxcloud contributors"
# The installed distribution's version (dev.py installs the checkout), not a copy of it.
version = release = importlib.metadata.version("airflow-provider-nxcloud")

extensions = ["sphinx.ext.autodoc", "myst_parser"]
source_suffix = {".rst": "restructuredtext", ".md": "markdown"}
exclude_patterns = ["_build"]
# Every reference must resolve (the build runs with -n -W): names the docs do not document are
# listed here, each a type from outside the provider's public API.
nitpick_ignore_regex = [
    ("py:class", r"(airflow|requests|urllib3|tenacity|collections\.abc|typing)\..*"),
    ("py:class", r"(Context|Mapping|Sequence|Iterable|Iterator|Callable|Retrying)"),
    # Literal aliases of the annotations: their values are in the docstrings.
    ("py:class", r"(Algorithm|CodeActions|CodeAction|Status|BatchState)"),
    # Internal types that appear in public signatures (settings holders, the logger protocol).
    ("py:class", r"(.*\.)?(ClientSettings|NxCloudSettings|Log)"),
]

autodoc_member_order = "bysource"
autodoc_typehints = "description"
autodoc_typehints_description_target = "documented_params"
autodoc_default_options = {"members": True}
# BaseOperator's own docstrings ("Derive when creating an operator") say nothing about ours.
autodoc_inherit_docstrings = False

html_theme = "furo"
html_title = f"airflow-provider-nxcloud {release}"
html_static_path: list[str] = []
