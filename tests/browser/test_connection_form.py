"""The ``nxcloud`` connection form as the Airflow 3 UI renders it, and what saving it stores."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

import pytest
from playwright.sync_api import expect

from airflow_provider_nxcloud.testing import NxCloudSandbox

if TYPE_CHECKING:
    from pathlib import Path

    from conftest import ApiServer  # tests/browser/conftest.py
    from playwright.sync_api import Locator, Page

pytestmark = pytest.mark.browser

EXTRA_FIELD_LABELS = {
    "business_phone": "Business phone",
    "algorithm": "Signature algorithm",
    "timeout": "Timeout (seconds)",
    "verify": "Verify TLS certificate",
    "max_requests_per_second": "Max requests per second",
    "adaptive_rate": "Adapt to NXCloud's rate limit",
    "max_retries": "Max retries",
}
RELABELS = {"host": "API base URL", "login": "Access Key", "password": "Access Secret"}


def _nxcloud_meta(api_server: ApiServer) -> dict[str, Any]:
    hooks = api_server.get_json("/ui/connections/hook_meta")
    matches = [hook for hook in hooks if hook["connection_type"] == "nxcloud"]
    assert len(matches) == 1, sorted(hook["connection_type"] for hook in hooks)
    return dict(matches[0])


def test_hook_meta_describes_the_nxcloud_form(api_server: ApiServer) -> None:
    meta = _nxcloud_meta(api_server)

    assert meta["hook_name"] == "NXCloud"
    assert meta["hook_class_name"] == "airflow_provider_nxcloud.hooks.nxcloud.NxCloudHook"

    standard = meta["standard_fields"]
    assert {name: standard[name]["title"] for name in RELABELS} == RELABELS
    assert {name: standard[name]["hidden"] for name in RELABELS} == dict.fromkeys(RELABELS, False)
    assert standard["port"]["hidden"] is True
    assert standard["url_schema"]["hidden"] is True
    assert standard["host"]["placeholder"] == "https://api2.nxcloud.com"

    extra = meta["extra_fields"]
    assert set(extra) == set(EXTRA_FIELD_LABELS)
    assert {name: field["schema"]["title"] for name, field in extra.items()} == EXTRA_FIELD_LABELS
    # The JSON Schema type picks the widget: text, select, number, switch.
    assert {name: field["schema"]["type"][0] for name, field in extra.items()} == {
        "business_phone": "string",
        "algorithm": "string",
        "timeout": "number",
        "verify": "boolean",
        "max_requests_per_second": "number",
        "adaptive_rate": "boolean",
        "max_retries": "integer",
    }
    assert extra["algorithm"]["schema"]["enum"] == ["md5", "sha256"]
    assert {name: field["value"] for name, field in extra.items()} == {
        "business_phone": None,
        "algorithm": "md5",
        "timeout": 30,
        "verify": True,
        "max_requests_per_second": None,
        "adaptive_rate": True,
        "max_retries": 5,
    }


def _pick_option(page: Page, combobox: Locator, text: str) -> None:
    combobox.click()
    combobox.fill(text)
    page.get_by_role("option", name=text, exact=True).click()


def test_add_connection_through_the_form(api_server: ApiServer, page: Page, artifacts_dir: Path) -> None:
    page_errors: list[str] = []
    page.on("pageerror", lambda error: page_errors.append(str(error)))
    business_phone = "8613912345678"

    with NxCloudSandbox(business_phones=(business_phone,)) as sandbox:
        page.goto(f"{api_server.url}/connections")
        page.get_by_role("button", name="Add Connection").click()
        dialog = page.get_by_role("dialog")
        expect(dialog.get_by_role("heading", name="Add Connection")).to_be_visible()

        _pick_option(page, dialog.get_by_role("combobox").first, "NXCloud")

        # Standard fields: relabelled, port and schema hidden.
        for label in RELABELS.values():
            expect(dialog.get_by_label(label, exact=True)).to_be_visible()
        for default_label in ("Host", "Login", "Password", "Port", "Schema"):
            expect(dialog.get_by_text(default_label, exact=True)).to_have_count(0)
        expect(dialog.get_by_label("API base URL", exact=True)).to_have_attribute(
            "placeholder", "https://api2.nxcloud.com"
        )

        dialog.get_by_label("Connection ID").fill("nx_ui")  # the label also holds the "*"
        dialog.get_by_label("API base URL", exact=True).fill(sandbox.url)
        dialog.get_by_label("Access Key", exact=True).fill(sandbox.state.access_key)
        dialog.get_by_label("Access Secret", exact=True).fill(sandbox.state.access_secret)
        page.screenshot(path=artifacts_dir / "connection-form-standard-fields.png", animations="disabled")

        # Extra fields live in a collapsed accordion section (opening it closes Standard Fields).
        extra_section = dialog.get_by_role("button", name="Extra Fields", exact=True)
        extra_section.click()
        expect(extra_section).to_have_attribute("aria-expanded", "true")
        for label in EXTRA_FIELD_LABELS.values():
            expect(dialog.get_by_text(label, exact=True)).to_be_visible()
        expect(dialog.locator("#element_business_phone")).to_be_visible()

        dialog.locator("#element_business_phone").fill(business_phone)
        _pick_option(page, dialog.get_by_role("combobox", name="Signature algorithm"), "sha256")
        expect(dialog.locator("input[name=element_algorithm]")).to_have_value("sha256")
        page.screenshot(path=artifacts_dir / "connection-form.png", animations="disabled")

        dialog.get_by_role("button", name="Save").click()
        expect(dialog).to_be_hidden()
        expect(page.get_by_text("Connection has been successfully created.")).to_be_visible()
        expect(page.get_by_role("cell", name="nx_ui", exact=True)).to_be_visible()

        stored = api_server.get_json("/api/v2/connections/nx_ui")
        assert stored["conn_type"] == "nxcloud"
        assert stored["host"] == sandbox.url
        assert stored["login"] == sandbox.state.access_key
        assert json.loads(stored["extra"]) == {
            "business_phone": business_phone,
            "algorithm": "sha256",
            # Untouched fields are saved with their defaults (an empty number as null).
            "timeout": 30,
            "verify": True,
            "max_requests_per_second": None,
            "adaptive_rate": True,
            "max_retries": 5,
        }

        # The REST API masks the password; the stored secret is proven by the hook signing with it.
        status, outcome = api_server.request(
            "POST", "/api/v2/connections/test", {"connection_id": "nx_ui", "conn_type": "nxcloud"}
        )
        requests = sandbox.requests

    assert status == 200, outcome
    assert outcome["status"] is True, outcome
    assert [r.code for r in requests] == [0]
    headers = {name.lower(): value for name, value in requests[0].headers.items()}
    assert headers["accesskey"] == sandbox.state.access_key
    assert headers["algorithm"] == "sha256"
    assert requests[0].business_phone == business_phone
    assert page_errors == []
