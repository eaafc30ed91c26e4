"""``python -m airflow_provider_nxcloud.testing``: run the NXCloud sandbox until interrupted."""

from __future__ import annotations

import argparse
import json
import signal
import sys
import threading
from typing import NoReturn, get_args

from airflow_provider_nxcloud.testing.sandbox import (
    DEFAULT_ACCESS_KEY,
    DEFAULT_ACCESS_SECRET,
    DEFAULT_APPKEY,
    DEFAULT_BUSINESS_PHONE,
    FAULT_KINDS,
    AccountLimit,
    Faults,
    NxCloudSandbox,
)
from airflow_provider_nxcloud.testing.state import MetaCodeAs, MetaShape, ThrottleAnswer


def _fault(text: str) -> tuple[str, float]:
    kind, _, rate = text.partition("=")
    if kind not in FAULT_KINDS or not rate:
        raise argparse.ArgumentTypeError(f"use KIND=RATE with KIND one of {', '.join(FAULT_KINDS)}")
    return kind, float(rate)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m airflow_provider_nxcloud.testing", description=__doc__)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0, help="0 picks a free port")
    parser.add_argument("--access-key", default=DEFAULT_ACCESS_KEY)
    parser.add_argument("--access-secret", default=DEFAULT_ACCESS_SECRET)
    parser.add_argument("--appkey", default=DEFAULT_APPKEY, help="the appkey typingIndicator bodies carry")
    parser.add_argument("--business-phone", action="append", help="repeatable; known merchant numbers")
    parser.add_argument("--message-ids-file", help="one existing id per line; default: any well-formed id")
    parser.add_argument(
        "--inbound-file",
        help="a JSON list of messages customers sent (id, business_phone, from or from_user_id, and "
        "optionally timestamp and group_id): marking a one-to-one message reads the ones of its "
        "conversation strictly earlier, a group message is read only when marked, unknown ids get 9099",
    )
    parser.add_argument("--latency-ms", type=float, default=0.0, help="added to every API request")
    parser.add_argument(
        "--fault",
        type=_fault,
        action="append",
        default=[],
        help="KIND=RATE, e.g. --fault 503=0.05 or, for a Meta error (9099 with Meta's 130429), "
        f"--fault meta:130429=0.05; KIND one of {', '.join(FAULT_KINDS)}",
    )
    parser.add_argument(
        "--meta-shape",
        choices=get_args(MetaShape),
        default="documented",
        help="how a 9099 is written: documented (NXCloud's documented shape, Meta's error in "
        "data.error, the default) or text (the older shape: Meta's '(#130429) Rate limit hit' as "
        "the top-level message, data null)",
    )
    parser.add_argument(
        "--meta-code-as",
        choices=get_args(MetaCodeAs),
        default="int",
        help="data.error.code as an int (NXCloud's example, the default) or a str (its field table)",
    )
    parser.add_argument("--seed", type=int)
    parser.add_argument("--clock-skew-ms", type=int, default=0)
    parser.add_argument("--rate-limit", type=float, help="account limit, requests/s (refused beyond)")
    parser.add_argument("--rate-burst", type=float, default=5.0, help="requests the limit lets burst")
    parser.add_argument("--rate-retry-after", type=float, help="Retry-After on its 429s; default: none")
    parser.add_argument(
        "--rate-answer",
        choices=get_args(ThrottleAnswer),
        default="http429",
        help="how the limit refuses: http429 (HTTP 429, the default) or meta (HTTP 200, code 9099 "
        "with Meta's 130429, as WhatsApp's throughput limit comes through NXCloud)",
    )
    parser.add_argument(
        "--rate-business-phone", help="limit only this business number's requests; default: every one"
    )
    parser.add_argument("--no-request-log", action="store_true", help="keep only marks (long runs)")
    parser.add_argument(
        "--tls",
        action="store_true",
        help="serve HTTPS with a throwaway self-signed certificate; the printed connection verifies it",
    )
    args = parser.parse_args(argv)

    message_ids = None
    if args.message_ids_file:
        with open(args.message_ids_file, encoding="utf-8") as handle:
            message_ids = [line.strip() for line in handle if line.strip()]
    inbound = []
    if args.inbound_file:
        with open(args.inbound_file, encoding="utf-8") as handle:
            inbound = json.load(handle)
    sandbox = NxCloudSandbox(
        access_key=args.access_key,
        access_secret=args.access_secret,
        appkey=args.appkey,
        business_phones=args.business_phone or [DEFAULT_BUSINESS_PHONE],
        message_ids=message_ids,
        host=args.host,
        port=args.port,
        clock_skew_ms=args.clock_skew_ms,
        faults=Faults(
            latency=args.latency_ms / 1000,
            rates=dict(args.fault),
            seed=args.seed,
            meta_shape=args.meta_shape,
            meta_code_as=args.meta_code_as,
        ),
        record_requests=not args.no_request_log,
        inbound=inbound,
        rate_limit=(
            AccountLimit(
                per_second=args.rate_limit,
                burst=args.rate_burst,
                retry_after=args.rate_retry_after,
                answer=args.rate_answer,
                business_phone=args.rate_business_phone,
            )
            if args.rate_limit is not None
            else None
        ),
        tls=args.tls,
    )

    def stop(signum: int, frame: object) -> NoReturn:
        raise KeyboardInterrupt

    # Both, explicitly: Python installs its SIGINT handler only when SIGINT is not ignored at
    # start, and a shell ignores it for a script's background jobs (``&``), as nohup does.
    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    sandbox.start()
    try:  # from the first line printed: a caller may send SIGINT as soon as it reads it
        print(f"NXCloud sandbox listening on {sandbox.url}", flush=True)
        print(f"AIRFLOW_CONN_NXCLOUD_DEFAULT='{sandbox.connection_json()}'", flush=True)
        threading.Event().wait()  # until Ctrl-C or SIGTERM
    except KeyboardInterrupt:
        pass
    finally:
        sandbox.stop()
    print("NXCloud sandbox stopped", file=sys.stderr, flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
