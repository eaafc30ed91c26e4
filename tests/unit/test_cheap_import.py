from __future__ import annotations

import subprocess
import sys

from tests.compat import AIRFLOW_2


def test_dag_files_importing_the_operator_do_not_load_the_http_stack() -> None:
    # The scheduler parses DAG files over and over: the hook and requests load only at run time.
    code = (
        "import sys\n"
        "from airflow_provider_nxcloud.version_compat import dag, task\n"
        "from airflow_provider_nxcloud.operators.whatsapp import MarkWhatsAppReadOperator\n"
        "print([m for m in ('requests', 'airflow_provider_nxcloud.hooks.nxcloud') if m in sys.modules])\n"
    )
    output = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout

    # Airflow 2's own `import airflow` already loads requests; the hook module must still wait.
    expected = "['requests']" if AIRFLOW_2 else "[]"
    assert output.strip() == expected
