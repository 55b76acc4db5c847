"""`smsqueue simulator` (also `python -m smsqueue.providers.simulator`): options, and running one
simulator in the foreground until SIGINT or SIGTERM."""

from __future__ import annotations

import argparse
import signal
import sys
import threading
from collections.abc import Mapping, Sequence
from typing import Any

from smsqueue.providers.simulator.behaviour import ENDPOINTS, OPERATIONS, Behaviour, behaviour_keys
from smsqueue.providers.simulator.dialects import DIALECTS
from smsqueue.providers.simulator.provider import Simulator

DEFAULT_PORT = 9001


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="smsqueue simulator",
        description="A local SMS provider that speaks a real provider's wire format.",
    )
    parser.add_argument("--kind", choices=sorted(DIALECTS), default="smsc")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=DEFAULT_PORT)
    parser.add_argument(
        "--login", help="accept only this login (SMSC, SMS Traffic, IQSMS) or e-mail (SMS Aero)"
    )
    parser.add_argument(
        "--password", help="accept only this password (SMSC, SMS Traffic, IQSMS; SMS.ru api_id; SMS Aero key)"
    )
    parser.add_argument(
        "--apikey", help="accept only this API key (SMSC apikey, SMS.ru api_id, SMS Aero key)"
    )
    parser.add_argument("--seed", type=int, default=0, help="seed for which messages end undelivered")
    defaults = Behaviour()
    parser.add_argument("--delivery-delay", type=float, default=defaults.delivery_delay, metavar="SECONDS")
    parser.add_argument("--undelivered-share", type=float, default=defaults.undelivered_share, metavar="0..1")
    parser.add_argument("--fail-http", type=int, metavar="STATUS", help="answer this HTTP status")
    parser.add_argument("--fail-http-times", type=int, metavar="N", help="only for the next N requests")
    parser.add_argument("--error-code", metavar="CODE", help="answer this provider error code")
    parser.add_argument("--error-code-times", type=int, metavar="N", help="only for the next N requests")
    parser.add_argument(
        "--delay-seconds", type=float, default=defaults.delay_seconds, help="answer this many seconds late"
    )
    parser.add_argument("--delay-times", type=int, metavar="N", help="only for the next N requests")
    parser.add_argument(
        "--affects", nargs="+", choices=OPERATIONS, default=list(defaults.affects), help="operations hit"
    )
    parser.add_argument(
        "--endpoints",
        nargs="+",
        choices=ENDPOINTS,
        default=list(defaults.endpoints),
        help="endpoints hit (SMS Traffic's reserve answers under /reserve)",
    )
    parser.add_argument("--report-url", help="push delivery reports to this URL")
    parser.add_argument("--balance", type=float, default=defaults.balance)
    parser.add_argument("--price", type=float, default=defaults.price)
    parser.add_argument(
        "--bad-numbers", nargs="*", default=[], metavar="NUMBER", help="refuse these numbers as invalid"
    )
    return parser


def behaviour_from_args(args: argparse.Namespace) -> Behaviour:
    return Behaviour().changed({name: getattr(args, name) for name in behaviour_keys()})


def serve(
    kind: str = "smsc",
    host: str = "127.0.0.1",
    port: int = DEFAULT_PORT,
    *,
    behaviour: Behaviour | Mapping[str, Any] | None = None,
    login: str | None = None,
    password: str | None = None,
    apikey: str | None = None,
    seed: int = 0,
) -> None:
    """Run a simulator in the foreground until SIGINT or SIGTERM."""
    sim = Simulator(
        kind, host, port, login=login, password=password, apikey=apikey, behaviour=behaviour, seed=seed
    )
    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGTERM, _raise_keyboard_interrupt)
    try:  # everything after the handler is installed, so a signal at any point stops cleanly
        sim.start()
        print(f"smsqueue simulator ({kind}) listening on {sim.url}", flush=True)
        sim.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        sim.stop()


def _raise_keyboard_interrupt(signum: int, frame: Any) -> None:
    raise KeyboardInterrupt


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        behaviour = behaviour_from_args(args)
    except ValueError as exc:
        print(f"smsqueue simulator: {exc}", file=sys.stderr)
        return 2
    serve(
        args.kind,
        args.host,
        args.port,
        behaviour=behaviour,
        login=args.login,
        password=args.password,
        apikey=args.apikey,
        seed=args.seed,
    )
    return 0
