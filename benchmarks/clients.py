"""The code under test (the operator) and what it is compared with, each marking ``ids`` read.

Every function returns how many messages NXCloud (the sandbox) answered ``code`` 0 for, so a
run that "went fast" by failing is caught. The baselines sign with their own few lines of
hashlib, as a user without this provider would, not with the provider's signing module.
"""

from __future__ import annotations

import hashlib
import itertools
import json
import threading
import time
from typing import TYPE_CHECKING, Any

from airflow_provider_nxcloud.client.api import MARK_READ_PATH

if TYPE_CHECKING:
    from collections.abc import Callable

    from benchmarks.common import Ticker


def user_signed_request(
    access_key: str, secret: str, phone: str, message_id: str, ts: int | None = None
) -> tuple[dict[str, str], bytes]:
    """Headers and body for one request, signed the way NXCloud's docs describe it."""
    body = json.dumps(
        {
            "business_phone": phone,
            "messaging_product": "whatsapp",
            "message_id": message_id,
            "status": "read",
        },
        separators=(",", ":"),
    ).encode()
    headers = {
        "accessKey": access_key,
        "action": "read",
        "bizType": "2",
        "ts": str(ts if ts is not None else int(time.time() * 1000)),
    }
    text = "&".join(f"{k}={headers[k]}" for k in sorted(headers)).encode()
    headers["sign"] = hashlib.md5(text + b"&body=" + body + b"&accessSecret=" + secret.encode()).hexdigest()
    headers["Content-Type"] = "application/json"
    return headers, body


def _code(raw: bytes) -> int | None:
    try:
        document = json.loads(raw)
    except ValueError:
        return None
    return document.get("code") if isinstance(document, dict) else None


# -- the provider --


def operator_run(
    ids: list[Any], *, conn_id: str, max_workers: int | None = None, **operator_kwargs: Any
) -> int:
    """``MarkWhatsAppReadOperator.execute``: the code path a DAG runs (hook, batch, retries)."""
    from airflow_provider_nxcloud.operators.whatsapp import MarkWhatsAppReadOperator

    if max_workers is not None:
        operator_kwargs["max_workers"] = max_workers
    operator = MarkWhatsAppReadOperator(
        task_id="bench_mark_read", message_ids=ids, nxcloud_conn_id=conn_id, **operator_kwargs
    )
    # On success execute() returns the XCom value and never touches the context.
    outcome = operator.execute(context={})
    return len(outcome["marked"])


# -- what a user writes without the provider --


def hand_written_loop(ids: list[str], *, url: str, connection: dict[str, Any], ticker: Ticker) -> int:
    """A sequential ``requests.post`` per id, signing each: the obvious script."""
    import requests

    ok = 0
    phone = connection["extra"]["business_phone"]
    for message_id in ids:
        headers, body = user_signed_request(connection["login"], connection["password"], phone, message_id)
        response = requests.post(url + MARK_READ_PATH, data=body, headers=headers, timeout=30)
        ok += response.json().get("code") == 0
        ticker.done += 1
    return ok


def http_hook_loop(ids: list[str], *, http_conn_id: str, connection: dict[str, Any], ticker: Ticker) -> int:
    """Airflow's ``HttpHook.run`` per id with the same signing: the Airflow-native way."""
    from airflow.providers.http.hooks.http import HttpHook

    hook = HttpHook(method="POST", http_conn_id=http_conn_id)
    ok = 0
    phone = connection["extra"]["business_phone"]
    for message_id in ids:
        headers, body = user_signed_request(connection["login"], connection["password"], phone, message_id)
        # bytes, not str: what was signed is what is sent (the stubs say str, requests takes both).
        response = hook.run(
            MARK_READ_PATH,
            data=body,  # type: ignore[arg-type]
            headers=headers,
            extra_options={"timeout": 30},
        )
        ok += response.json().get("code") == 0
        ticker.done += 1
    return ok


# -- the ceiling: a minimal client --


def presign(ids: list[str], connection: dict[str, Any]) -> list[tuple[dict[str, str], bytes]]:
    """Every request signed up front (outside the timing), one ``ts`` for all: they stay valid 60 s."""
    ts = int(time.time() * 1000)
    phone = connection["extra"]["business_phone"]
    return [
        user_signed_request(connection["login"], connection["password"], phone, message_id, ts)
        for message_id in ids
    ]


def raw_client(
    requests_: list[tuple[dict[str, str], bytes]], *, url: str, workers: int, ticker: Ticker
) -> int:
    """Pre-signed requests through one urllib3 pool, ``workers`` threads: nothing but HTTP."""
    import urllib3

    host, port = url.removeprefix("http://").split(":")
    pool = urllib3.HTTPConnectionPool(host, int(port), maxsize=workers, block=True, retries=False)
    next_index = itertools.count()
    oks = [0] * workers
    total = len(requests_)

    def work(slot: int) -> None:
        while (index := next(next_index)) < total:
            headers, body = requests_[index]
            response = pool.urlopen("POST", MARK_READ_PATH, body=body, headers=headers, retries=False)
            oks[slot] += _code(response.data) == 0
            ticker.done += 1  # racy += on an int: only a progress display

    _run_threads(work, workers)
    pool.close()
    return sum(oks)


def _run_threads(work: Callable[[int], None], workers: int) -> None:
    errors: list[BaseException] = []

    def guarded(slot: int) -> None:
        try:
            work(slot)
        except BaseException as error:
            errors.append(error)

    threads = [threading.Thread(target=guarded, args=(slot,), daemon=True) for slot in range(workers)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    if errors:
        raise errors[0]
