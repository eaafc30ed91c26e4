"""Scheduler-side safety: hostile operator arguments fail when the DAG file is parsed.

Each case is a DAG file with one bad argument, parsed by Airflow's DagBag (what the DAG
processor does). The file must show up as an import error carrying the operator's one-line
message, and its DAG must not load, so nothing is ever scheduled with it. A valid file beside
them loads, and parsing looks nothing up (no connection, no network).
"""

from __future__ import annotations

from typing import Any

import pytest

from airflow_provider_nxcloud.hooks.nxcloud import NxCloudHook
from tests.compat import dag_bag

DAG_FILE = """
from __future__ import annotations

from datetime import datetime

from airflow_provider_nxcloud.version_compat import DAG

from airflow_provider_nxcloud.operators.whatsapp import MarkWhatsAppReadOperator

with DAG({dag_id!r}, schedule=None, start_date=datetime(2026, 1, 1)):
    {operator}
"""
# The same argument on a plain task and on a mapped one (whose instances Airflow only builds
# when they run: the operator's partial() checks what it is given).
FORMS = {
    "plain": 'MarkWhatsAppReadOperator(task_id="mark", message_ids=["wamid.1"], {arguments})',
    "mapped": 'MarkWhatsAppReadOperator.partial(task_id="mark", {arguments}).expand(message_ids=[["w.1"]])',
}

# name: (the hostile argument as written in a DAG file, the message the import error must carry)
CASES: dict[str, tuple[str, str]] = {
    "negative_workers": ("max_workers=-1", "max_workers must be a positive int, got -1"),
    "zero_workers": ("max_workers=0", "max_workers must be a positive int, got 0"),
    "bool_workers": ("max_workers=True", "max_workers must be a positive int, got True"),
    "float_workers": ("max_workers=2.5", "max_workers must be a positive int, got 2.5"),
    "string_workers": ("max_workers='8'", "max_workers must be a positive int, got '8'"),
    "zero_rate": (
        "max_requests_per_second=0",
        "max_requests_per_second must be a positive number, got 0",
    ),
    "negative_rate": (
        "max_requests_per_second=-2.5",
        "max_requests_per_second must be a positive number, got -2.5",
    ),
    "nan_rate": (
        "max_requests_per_second=float('nan')",
        "max_requests_per_second must be a positive number, got nan",
    ),
    "string_rate": (
        "max_requests_per_second='10'",
        "max_requests_per_second must be a positive number, got '10'",
    ),
    "unknown_action": (
        "code_actions={9006: 'ignore'}",
        "code_actions[9006]: 'ignore' is not an action; use 'retry', 'skip' or 'fail'",
    ),
    "action_wrong_case": (
        "code_actions={9006: 'Skip'}",
        "code_actions[9006]: 'Skip' is not an action; use 'retry', 'skip' or 'fail'",
    ),
    "action_none": (
        "code_actions={9006: None}",
        "code_actions[9006]: None is not an action; use 'retry', 'skip' or 'fail'",
    ),
    "float_code": (
        "code_actions={9006.0: 'skip'}",
        "code_actions: key 9006.0 is not an NXCloud code; use ints like 9006",
    ),
    "text_code": (
        "code_actions={'unbound': 'skip'}",
        "code_actions: key 'unbound' is not an NXCloud code; use ints like 9006",
    ),
    "none_code": (
        "code_actions={None: 'skip'}",
        "code_actions: key None is not an NXCloud code; use ints like 9006",
    ),
    "bool_code": (
        "code_actions={True: 'skip'}",
        "code_actions: key True is not an NXCloud code; use ints like 9006",
    ),
    "success_code": (
        "code_actions={0: 'fail'}",
        "code_actions: code 0 means marked and cannot be overridden",
    ),
    "list_of_codes": (
        "code_actions=[9006]",
        'code_actions must be a dict like {9006: "skip"}, got list',
    ),
    "zero_age": (
        "max_message_age_days=0",
        "max_message_age_days must be a positive number, got 0",
    ),
    "negative_age": (
        "max_message_age_days=-30",
        "max_message_age_days must be a positive number, got -30",
    ),
    "durable_text": (
        "durable='yes'",
        "durable must be True, False or None, got 'yes'",
    ),
}
VALID = "max_workers=4, max_requests_per_second=20, code_actions={'9006': 'skip', -1: 'fail'}"


@pytest.fixture(scope="module")
def parsed(tmp_path_factory: pytest.TempPathFactory) -> tuple[Any, list[str]]:
    """Every case's DAG file plus a valid one, parsed once by a DagBag; and any lookups made."""
    folder = tmp_path_factory.mktemp("hostile_dags")
    for name, (arguments, _) in {**CASES, "valid": (VALID, "")}.items():
        for form, operator in FORMS.items():
            dag_id = f"nx_parse_{form}_{name}"
            source = DAG_FILE.format(dag_id=dag_id, operator=operator.format(arguments=arguments))
            (folder / f"{dag_id}.py").write_text(source)
    lookups: list[str] = []
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(NxCloudHook, "get_connection", classmethod(lambda cls, name: lookups.append(name)))
        bag = dag_bag(dag_folder=str(folder))
    return bag, lookups


@pytest.mark.parametrize("form", sorted(FORMS))
@pytest.mark.parametrize("name", sorted(CASES))
def test_hostile_argument_fails_at_parse_time(
    parsed: tuple[Any, list[str]], figures: dict[str, Any], name: str, form: str
) -> None:
    bag, _ = parsed
    _, message = CASES[name]
    dag_id = f"nx_parse_{form}_{name}"
    errors = {path.rsplit("/", 1)[-1]: text for path, text in bag.import_errors.items()}

    error = errors.get(f"{dag_id}.py")
    assert error is not None, f"{dag_id}.py parsed without error"
    assert f"NxCloudConfigError: {message}" in error, error.splitlines()[-1]
    assert dag_id not in bag.dag_ids
    figures["import_error"] = error.strip().splitlines()[-1]


def test_valid_arguments_parse_without_any_lookup(parsed: tuple[Any, list[str]]) -> None:
    bag, lookups = parsed

    assert {"nx_parse_plain_valid", "nx_parse_mapped_valid"} <= set(bag.dag_ids)
    operator = bag.dags["nx_parse_plain_valid"].get_task("mark")
    assert operator.options.code_actions == {9006: "skip", -1: "fail"}
    assert lookups == [], "parsing a DAG file looked up a connection"
    assert len(bag.import_errors) == len(CASES) * len(FORMS)
