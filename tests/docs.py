"""What the README and the example DAG docstrings tell users to copy: connection forms and snippets.

The docs tests run each of them, with only the placeholders (hosts, paths, credentials) swapped
for a local server, so a form that Airflow or a provider cannot read fails here first.
"""

from __future__ import annotations

import re
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
README = REPO / "README.md"
DOCUMENTS = [README, *sorted((REPO / "example_dags").glob("*.py"))]
_EXPORT = re.compile(r"export (AIRFLOW_CONN_\w+)='([^']*)'")


def connection_forms(conn_env: str) -> list[str]:
    """Every ``export <conn_env>='...'`` value in the docs, in the order written."""
    return [
        value
        for document in DOCUMENTS
        for name, value in _EXPORT.findall(document.read_text())
        if name == conn_env
    ]


def readme_blocks(language: str) -> list[str]:
    return re.findall(rf"```{language}\n(.*?)```", README.read_text(), flags=re.DOTALL)
