"""The layers: client/ and batch/ are plain Python that import nothing above them, nor Airflow."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

import airflow_provider_nxcloud

pytestmark = pytest.mark.core


PACKAGE = Path(airflow_provider_nxcloud.__file__).parent
# What client/ and batch/ may import of this package: each other's layer below, never above.
ALLOWED = {
    "client": ("airflow_provider_nxcloud.client",),
    "batch": ("airflow_provider_nxcloud.client", "airflow_provider_nxcloud.batch"),
}


def imported_modules(path: Path) -> set[str]:
    modules: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            modules.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            modules.add(node.module)
    return modules


@pytest.mark.parametrize("layer", sorted(ALLOWED))
def test_a_layer_imports_only_itself_and_what_lies_below(layer: str) -> None:
    wrong = {
        f"{path.relative_to(PACKAGE)}: {module}"
        for path in sorted((PACKAGE / layer).glob("*.py"))
        for module in imported_modules(path)
        if module.split(".")[0] == "airflow"
        or (module.startswith("airflow_provider_nxcloud") and not module.startswith(ALLOWED[layer]))
    }
    assert not wrong, f"{layer}/ imports from Airflow or from a layer above it: {sorted(wrong)}"


def test_the_client_and_the_batch_load_no_airflow_module() -> None:
    code = (
        "import sys\n"
        "from airflow_provider_nxcloud.client import NxCloudClient\n"
        "from airflow_provider_nxcloud.batch import mark_messages\n"
        "print(sorted({m.split('.')[0] for m in sys.modules if m.split('.')[0] == 'airflow'}))\n"
    )
    output = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout

    assert output.strip() == "[]"
