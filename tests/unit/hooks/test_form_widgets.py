"""The connection form as Airflow 2.x (and 3.0/3.1) build it: from the hook's classmethods.

Airflow 3.2+ reads ``conn-fields`` instead; both come from the same definition in
``get_provider_info``, and this checks the classmethod side matches it field for field.
"""

from __future__ import annotations

import json

import pytest

from airflow_provider_nxcloud.get_provider_info import CONN_FIELDS, UI_FIELD_BEHAVIOUR
from airflow_provider_nxcloud.hooks.nxcloud import NxCloudHook


def test_form_widgets_match_the_conn_fields() -> None:
    # Flask, WTForms and FAB come with Airflow 2 (and with the FAB provider on 3.x).
    for module in ("wtforms", "flask_babel", "flask_appbuilder"):
        pytest.importorskip(module, reason="needs the Flask UI's packages (Airflow 2, or the FAB provider)")
    from wtforms import BooleanField, Form, IntegerField, StringField

    widgets = NxCloudHook.get_connection_form_widgets()

    assert list(widgets) == list(CONN_FIELDS)
    form = type("NxCloudForm", (Form,), widgets)()
    fields = {name: form[name] for name in widgets}
    assert {name: str(field.label.text) for name, field in fields.items()} == {
        name: spec["label"] for name, spec in CONN_FIELDS.items()
    }
    kinds = {name: type(field) for name, field in fields.items()}
    assert kinds == {
        "business_phone": StringField,
        "appkey": StringField,
        "algorithm": StringField,
        "timeout": StringField,
        "verify": BooleanField,
        "max_requests_per_second": StringField,
        "adaptive_rate": BooleanField,
        "max_retries": IntegerField,
    }
    assert fields["verify"].default is True
    assert fields["adaptive_rate"].default is True


def test_field_behaviour_is_the_metadata_in_snake_case() -> None:
    assert NxCloudHook.get_ui_field_behaviour() == {
        "hidden_fields": UI_FIELD_BEHAVIOUR["hidden-fields"],
        "relabeling": UI_FIELD_BEHAVIOUR["relabeling"],
        "placeholders": UI_FIELD_BEHAVIOUR["placeholders"],
    }


@pytest.mark.parametrize(("sent", "ticked"), [("y", True), ("n", False)])
def test_checkbox_value_the_flask_form_sends_on_test_is_a_boolean(
    monkeypatch: pytest.MonkeyPatch, sent: str, ticked: bool
) -> None:
    # Airflow 2's Test button posts the unsaved form: a ticked WTForms checkbox arrives as "y".
    # Read as a CA bundle path, it would fail every Test against https://api2.nxcloud.com.
    extra = {"verify": sent, "adaptive_rate": sent}
    document = {"conn_type": "nxcloud", "login": "key", "password": "secret", "extra": extra}
    monkeypatch.setenv("AIRFLOW_CONN_NX_FORM_TEST", json.dumps(document))
    settings = NxCloudHook(nxcloud_conn_id="nx_form_test").settings

    assert (settings.verify, settings.adaptive_rate) == (ticked, ticked)
