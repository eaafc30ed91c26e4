"""NxCloudHook: an Airflow connection of type ``nxcloud`` -> an ``NxCloudClient`` and its calls."""

from __future__ import annotations

import threading
from dataclasses import replace
from functools import cached_property
from typing import TYPE_CHECKING, Any

from airflow_provider_nxcloud.batch.options import MAX_MESSAGE_AGE_DAYS, MAX_WORKERS, BatchOptions
from airflow_provider_nxcloud.client.config import DEFAULT_RETRY_WAIT
from airflow_provider_nxcloud.client.errors import (
    NxCloudApiError,
    NxCloudAuthError,
    NxCloudConfigError,
    NxCloudTransientError,
)
from airflow_provider_nxcloud.get_provider_info import (
    CONN_FIELDS,
    CONN_TYPE,
    DEFAULT_CONN_ID,
    HOOK_NAME,
    UI_FIELD_BEHAVIOUR,
)
from airflow_provider_nxcloud.settings import resolve_settings
from airflow_provider_nxcloud.version_compat import BaseHook

if TYPE_CHECKING:
    from collections.abc import Mapping

    from airflow_provider_nxcloud.batch import BatchResult, Checkpoint
    from airflow_provider_nxcloud.batch.options import CodeActions
    from airflow_provider_nxcloud.client import NxCloudClient, NxCloudResponse
    from airflow_provider_nxcloud.client.config import ClientSettings
    from airflow_provider_nxcloud.client.signing import Algorithm

TEST_MESSAGE_ID = "airflow-connection-test-not-a-real-message"
# The Test button's one request ends within this (seconds), whatever the connection's timeout.
TEST_TIMEOUT = 10.0


class NxCloudHook(BaseHook):
    """
    Signed access to NXCloud's HTTP API through an Airflow connection of type ``nxcloud``.

    Connection: login = access key, password = access secret, host = API base URL (empty:
    ``https://api2.nxcloud.com``). Extras: ``business_phone``, ``appkey``, ``algorithm``, ``timeout``,
    ``verify``, ``max_requests_per_second``, ``adaptive_rate``, ``max_retries``, ``proxies``.
    Each argument given here overrides the extra of its name and means what the same argument of
    :class:`~airflow_provider_nxcloud.client.NxCloudClient` does; that client, which ``client``
    and ``get_conn()`` return, does the work. Nothing is looked up until the first request.

    :param nxcloud_conn_id: The Airflow connection id.
    """

    conn_name_attr = "nxcloud_conn_id"
    default_conn_name = DEFAULT_CONN_ID
    conn_type = CONN_TYPE
    hook_name = HOOK_NAME

    def __init__(
        self,
        *,
        nxcloud_conn_id: str = default_conn_name,
        business_phone: str | None = None,
        algorithm: Algorithm | None = None,
        timeout: float | None = None,
        verify: bool | str | None = None,
        max_requests_per_second: float | None = None,
        max_retries: int | None = None,
        retry_wait: tuple[float, float] = DEFAULT_RETRY_WAIT,
        adaptive_rate: bool | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.nxcloud_conn_id = nxcloud_conn_id
        self._overrides: dict[str, Any] = {
            "business_phone": business_phone,
            "algorithm": algorithm,
            "timeout": timeout,
            "verify": verify,
            "max_requests_per_second": max_requests_per_second,
            "max_retries": max_retries,
            "adaptive_rate": adaptive_rate,
        }
        self.retry_wait = retry_wait
        self._client: NxCloudClient | None = None
        self._client_lock = threading.Lock()
        self._cancelled = False

    # -- connection form (Airflow 2.x; 3.2+ reads the same definition from provider metadata) --

    @classmethod
    def get_connection_form_widgets(cls) -> dict[str, Any]:
        from flask_appbuilder.fieldwidgets import BS3PasswordFieldWidget, BS3TextFieldWidget
        from flask_babel import lazy_gettext
        from wtforms import BooleanField, IntegerField, PasswordField, StringField
        from wtforms.validators import Optional

        widgets: dict[str, Any] = {}
        for name, spec in CONN_FIELDS.items():
            types = spec["schema"]["type"]
            label = lazy_gettext(spec["label"])
            if "boolean" in types:
                widgets[name] = BooleanField(label, default=spec["schema"].get("default"))
            elif "integer" in types:
                widgets[name] = IntegerField(label, validators=[Optional()])
            elif spec["schema"].get("format") == "password":
                widgets[name] = PasswordField(label, widget=BS3PasswordFieldWidget())
            else:
                widgets[name] = StringField(label, widget=BS3TextFieldWidget())
        return widgets

    @classmethod
    def get_ui_field_behaviour(cls) -> dict[str, Any]:
        return {key.replace("-", "_"): value for key, value in UI_FIELD_BEHAVIOUR.items()}

    # -- the client --

    @cached_property
    def settings(self) -> ClientSettings:
        """The resolved connection (one lookup per hook). Raises NxCloudConfigError when unusable."""
        connection = self.get_connection(self.nxcloud_conn_id)
        return resolve_settings(connection, self.nxcloud_conn_id, self._overrides, retry_wait=self.retry_wait)

    @property
    def client(self) -> NxCloudClient:
        """This hook's one ``NxCloudClient``, built from the connection on first use."""
        with self._client_lock:
            if self._client is None:
                from airflow_provider_nxcloud.client import NxCloudClient

                self._client = NxCloudClient.from_settings(self.settings, logger=self.log)
                if self._cancelled:
                    self._client.cancel()
            return self._client

    def get_conn(self) -> NxCloudClient:
        """The same ``NxCloudClient`` as ``client``, every time."""
        return self.client

    def cancel(self) -> None:
        """Stop retrying, from any thread (the task is being killed); see ``NxCloudClient.cancel``."""
        with self._client_lock:
            self._cancelled = True  # a client built later starts cancelled
            if self._client is not None:
                self._client.cancel()

    # -- calls --

    def call(self, path: str, *, action: str, biz_type: str, body: Mapping[str, Any]) -> NxCloudResponse:
        """Send one signed POST to an NXCloud endpoint; see ``NxCloudClient.call``."""
        return self.client.call(path, action=action, biz_type=biz_type, body=body)

    def mark_message_as_read(
        self, message_id: str, business_phone: str | None = None, *, typing_indicator: bool = False
    ) -> NxCloudResponse:
        """
        Mark one inbound WhatsApp message (and the earlier ones of its conversation) as read;
        ``typing_indicator=True`` also shows "typing..." (needs the ``appkey`` extra).
        """
        return self.client.mark_message_as_read(message_id, business_phone, typing_indicator=typing_indicator)

    def mark_messages_as_read(
        self,
        messages: Any,
        *,
        business_phone: str | None = None,
        max_workers: int = MAX_WORKERS,
        code_actions: CodeActions | None = None,
        max_message_age_days: float | None = MAX_MESSAGE_AGE_DAYS,
        one_request_per_conversation: bool = True,
        typing_indicator: bool = False,
        checkpoint: Checkpoint | None = None,
    ) -> BatchResult:
        """
        Mark many messages concurrently under this hook's rate cap; never raises for a message.

        ``messages`` and the options mean what the operator's arguments do; with a ``checkpoint``
        (``batch/checkpoint.py``) a new call sends only what is left. Bad input raises before sending.
        """
        from airflow_provider_nxcloud.batch import mark_messages

        options = BatchOptions(
            max_workers=max_workers, max_message_age_days=max_message_age_days,
            code_actions=code_actions or {}, one_request_per_conversation=one_request_per_conversation,
            typing_indicator=typing_indicator,
        )  # fmt: skip
        return mark_messages(
            self.client, messages, business_phone=business_phone, options=options, checkpoint=checkpoint
        )

    def test_connection(self) -> tuple[bool, str]:
        """
        Check the credentials (and the ``business_phone`` and ``appkey``, when set) with one
        signed request for a message id that cannot exist: no retries, at most ``TEST_TIMEOUT``
        seconds, as the UI's Test button waits for it. With an ``appkey`` the request goes to
        ``typingIndicator``, whose body carries it, so that a wrong one fails here, not in a task.
        """
        from airflow_provider_nxcloud.client import NxCloudClient
        from airflow_provider_nxcloud.client.api import (
            META_PASSTHROUGH_CODE,
            UNKNOWN_APPLICATION_CODE,
            classify,
        )

        phone = appkey = None
        try:
            settings = self.settings
            phone, appkey = settings.business_phone, settings.appkey
            quick = replace(settings, max_retries=0, timeout=min(settings.timeout, TEST_TIMEOUT))
            client = NxCloudClient.from_settings(quick, logger=self.log)
            client.mark_message_as_read(
                TEST_MESSAGE_ID, phone or "10000000000", typing_indicator=bool(appkey)
            )
        except NxCloudAuthError as error:
            return False, f"NXCloud refused the credentials: {error}"
        except NxCloudConfigError as error:
            return False, str(error)
        except NxCloudTransientError as error:
            if error.code == META_PASSTHROUGH_CODE:  # a Meta throttle or outage: NXCloud took the keys
                return (
                    True,
                    f"Credentials accepted (test request answered code {error.code}: {error.message})",
                )
            return False, f"Could not get an answer from NXCloud: {error}"
        except NxCloudApiError as error:
            if error.code is None:
                return False, str(error)
            if phone and classify(error.code).meaning == "number":
                return False, f"NXCloud refused the business_phone {phone}: {error}"
            if appkey and error.code == UNKNOWN_APPLICATION_CODE:
                return (
                    False,
                    f"NXCloud refused the appkey extra (no such application, or unavailable): {error}",
                )
            # Authentication is checked first, so any other code means the keys were accepted.
            return True, f"Credentials accepted (test request answered code {error.code})"
        except Exception as error:  # the UI shows this text; never a traceback
            return False, f"{type(error).__name__}: {error}"
        return True, "Credentials accepted"
