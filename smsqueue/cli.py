"""The `smsqueue` command: db upgrade, keys create, demo, simulator, and dev (every process at once)."""

from __future__ import annotations

import argparse
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from smsqueue import send_csv
from smsqueue.logs import configure_logging

ROOT = Path(__file__).resolve().parent.parent
DEMO_PROVIDER = "demo-smsc"
# The demo entity's other providers, in failover order: (code, kind, name, default simulator port).
DEMO_FAILOVER = (
    ("demo-smstraffic", "smstraffic", "Local SMS Traffic simulator", 9002),
    ("demo-iqsms", "iqsms", "Local IQSMS simulator", 9003),
)
DEMO_ENTITY = "demo"


def alembic_config() -> object:
    from alembic.config import Config

    ini = ROOT / "alembic.ini"
    if not ini.exists():
        raise SystemExit(f"alembic.ini not found beside the package ({ini}); run from a checkout")
    config = Config(str(ini))
    config.set_main_option("script_location", str(ROOT / "alembic"))
    return config


def db_upgrade(revision: str = "head") -> None:
    from alembic import command

    command.upgrade(alembic_config(), revision)  # type: ignore[arg-type]


def cmd_db(args: argparse.Namespace) -> int:
    if args.db_command == "upgrade":
        db_upgrade(args.revision)
        print("database is at the latest revision", file=sys.stderr)
    return 0


def cmd_keys(args: argparse.Namespace) -> int:
    if args.keys_command == "list":
        return keys_list()
    if args.keys_command == "revoke":
        return keys_revoke(args.id)
    return keys_create(args)


def keys_list() -> int:
    """One line per key, tab-separated: id, role, prefix, entities, name, created, last used, state."""
    from smsqueue.auth import list_keys
    from smsqueue.clock import iso, now
    from smsqueue.db import session_scope

    with session_scope() as session:
        keys = list_keys(session)
    print("id\trole\tprefix\tentities\tname\tcreated_at\tlast_used_at\tstate")
    at = now()
    for key, codes in keys:
        if key.revoked_at is not None:
            state = f"revoked {iso(key.revoked_at)}"
        elif key.expires_at is not None and key.expires_at <= at:
            state = f"expired {iso(key.expires_at)}"
        else:
            state = "active"
        fields = [key.id, key.role, key.prefix, ",".join(codes) or "-", key.name or "-"]
        fields += [iso(key.created_at), iso(key.last_used_at) or "-", state]
        print("\t".join(str(f) for f in fields))
    return 0


def keys_revoke(key_id: int) -> int:
    from smsqueue import auth
    from smsqueue.clock import iso
    from smsqueue.db import session_scope
    from smsqueue.rules import audit

    with session_scope() as session:
        key = auth.key_for_update(session, key_id)
        if key is None:
            print(f"no key with id {key_id}", file=sys.stderr)
            return 1
        if auth.revoke_key(session, key):
            audit.record(session, "key.revoke", str(key.id), {"revoked_at": [None, iso(key.revoked_at)]})
    print(f"key {key_id} is revoked", file=sys.stderr)
    return 0


def keys_create(args: argparse.Namespace) -> int:
    from smsqueue.auth import ADMIN, ENTITY, UnknownEntity, create_key
    from smsqueue.db import session_scope

    if bool(args.admin) == bool(args.entity):
        print("give either --admin or one or more --entity CODE", file=sys.stderr)
        return 2
    try:
        with session_scope() as session:
            key = create_key(session, ADMIN if args.admin else ENTITY, args.entity or (), name=args.name)
    except UnknownEntity as exc:
        print(f"unknown legal entity: {exc}", file=sys.stderr)
        return 1
    print(key)
    return 0


def cmd_demo(args: argparse.Namespace) -> int:
    from smsqueue.auth import ADMIN, ENTITY, create_key
    from smsqueue.db import session_scope
    from smsqueue.rules import admin

    sim_url = args.simulator_url or os.environ.get("SMSQUEUE_SIMULATOR_URL", "http://127.0.0.1:9001")
    with session_scope() as session:
        provider = admin.provider_by_code(session, DEMO_PROVIDER)
        if provider is None:
            provider, _ = admin.create_provider(
                session,
                code=DEMO_PROVIDER,
                kind="smsc",
                name="Local SMSC simulator",
                settings={"base_url": sim_url, "login": "demo", "password": "demo-password"},
                timeout_seconds=5,
            )
        entity = admin.entity_by_code(session, DEMO_ENTITY)
        if entity is None:
            # Sending hours are open all day and the 230-FZ rules are off, so the demo works at any hour.
            entity, _ = admin.create_entity(
                session,
                code=DEMO_ENTITY,
                name="Demo LLC",
                send_window_from="00:00",
                send_window_to="24:00",
                fz_enabled=False,
            )
            admin.link_provider(session, entity, provider, priority=1, sender="DEMO")
        for priority, (code, kind, name, port) in enumerate(DEMO_FAILOVER, start=2):
            if admin.provider_by_code(session, code) is not None:
                continue
            url = getattr(args, f"{kind}_url", None) or f"http://127.0.0.1:{port}"
            settings = {"base_url": url, "login": "demo", "password": "demo-password"}
            if kind == "smstraffic":
                settings["reserve_url"] = url + "/reserve"  # the simulator's reserve endpoint
            other, _ = admin.create_provider(
                session, code=code, kind=kind, name=name, settings=settings, timeout_seconds=5
            )
            admin.link_provider(session, entity, other, priority=priority, sender="DEMO")
        admin_key = create_key(session, ADMIN, name="demo admin")
        entity_key = create_key(session, ENTITY, [DEMO_ENTITY], name="demo entity")
    port = os.environ.get("PORT", "8000")
    base = f"http://127.0.0.1:{port}"
    print(
        f"""
smsqueue demo ready: provider {DEMO_PROVIDER} (the simulator at {sim_url}), then
{", ".join(code for code, *_ in DEMO_FAILOVER)} on failover; legal entity {DEMO_ENTITY}.

  admin key:  {admin_key}
  entity key: {entity_key}

Send a message:
  curl -s -X POST {base}/api/v1/messages -H 'Authorization: Bearer {entity_key}' \\
       -H 'Content-Type: application/json' -d '{{"to": "+79161234567", "text": "Hello from smsqueue"}}'

Then read it (use the id from the answer); it ends "delivered" within a few seconds:
  curl -s {base}/api/v1/messages/<id> -H 'Authorization: Bearer {entity_key}'
"""
    )
    return 0


def cmd_simulator(argv: list[str]) -> int:
    """The simulator parses its own options (`smsqueue simulator --help` lists them)."""
    from smsqueue.providers import simulator

    return int(simulator.main(argv) or 0)


def cmd_dev(args: argparse.Namespace) -> int:
    """Every process of the service in the foreground, stopped together by Ctrl-C (what `make run` uses)."""
    port = os.environ.get("PORT", "8000")
    exe = Path(sys.executable).parent
    data = Path(os.environ.get("SMSQUEUE_DATA_DIR") or Path.cwd() / ".smsqueue")
    data.mkdir(parents=True, exist_ok=True)
    celery = [str(exe / "celery"), "-A", "smsqueue.tasks.celery_app"]
    simulators = {
        f"simulator-{kind}": [str(exe / "smsqueue"), "simulator", "--kind", kind, "--port", str(port)]
        for kind, port in [
            ("smsc", args.simulator_port),
            *((kind, args.simulator_port + n) for n, (_, kind, _, _) in enumerate(DEMO_FAILOVER, 1)),
        ]
    }
    processes = {
        **simulators,
        "web": [
            str(exe / "gunicorn"),
            "smsqueue.web:create_app()",
            "--bind",
            f"127.0.0.1:{port}",
            "--workers",
            "2",
        ],
        "worker": [
            *celery,
            "worker",
            "--loglevel",
            "INFO",
            "--concurrency",
            "2",
            "-Q",
            "send,status,webhooks,periodic,jobs",
        ],
        "beat": [*celery, "beat", "--loglevel", "INFO", "-s", str(data / "celerybeat-schedule")],
    }
    children = {name: subprocess.Popen(cmd) for name, cmd in processes.items()}
    print(f"smsqueue is running on http://127.0.0.1:{port} (Ctrl-C stops it)", file=sys.stderr)
    try:
        while all(p.poll() is None for p in children.values()):
            time.sleep(0.5)
        dead = [n for n, p in children.items() if p.poll() is not None]
        print(f"stopped: {', '.join(dead)} exited", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 0
    finally:
        for p in children.values():
            if p.poll() is None:
                p.send_signal(signal.SIGTERM)
        for p in children.values():
            try:
                p.wait(timeout=10)
            except subprocess.TimeoutExpired:
                p.kill()


def parser() -> argparse.ArgumentParser:
    top = argparse.ArgumentParser(prog="smsqueue", description="SMS dispatch service")
    sub = top.add_subparsers(dest="command", required=True)

    db = sub.add_parser("db", help="database migrations")
    db_sub = db.add_subparsers(dest="db_command", required=True)
    up = db_sub.add_parser("upgrade", help="apply the Alembic migrations to DATABASE_URL")
    up.add_argument("revision", nargs="?", default="head")
    db.set_defaults(func=cmd_db)

    keys = sub.add_parser("keys", help="API keys")
    keys_sub = keys.add_subparsers(dest="keys_command", required=True)
    create = keys_sub.add_parser("create", help="print a new key on stdout, alone on its line")
    create.add_argument("--admin", action="store_true", help="an admin key: everything")
    create.add_argument(
        "--entity", action="append", metavar="CODE", help="bind to this legal entity (repeatable)"
    )
    create.add_argument("--name", help="a note to tell keys apart")
    keys_sub.add_parser("list", help="every key: id, role, prefix, entities, name, times, state")
    revoke = keys_sub.add_parser("revoke", help="revoke a key (401 everywhere within a second)")
    revoke.add_argument("id", type=int)
    keys.set_defaults(func=cmd_keys)

    demo = sub.add_parser("demo", help="create a demo provider, entity and keys, and print how to try them")
    demo.add_argument("--simulator-url", help="where the SMSC simulator listens (default :9001)")
    demo.add_argument("--smstraffic-url", help="where the SMS Traffic simulator listens (default :9002)")
    demo.add_argument("--iqsms-url", help="where the IQSMS simulator listens (default :9003)")
    demo.set_defaults(func=cmd_demo)

    sub.add_parser(
        "simulator",
        add_help=False,
        help="a local provider that speaks a provider's wire format (--kind, --port)",
    )

    send_csv.add_parser(sub)

    dev = sub.add_parser("dev", help="run web, worker, beat and the simulators together (make run)")
    dev.add_argument(
        "--simulator-port", type=int, default=9001, help="SMSC's; SMS Traffic and IQSMS take the next two"
    )
    dev.set_defaults(func=cmd_dev)
    return top


def main(argv: list[str] | None = None) -> int:
    configure_logging(os.environ.get("SMSQUEUE_LOG_LEVEL", "WARNING"))
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["simulator"]:
        return cmd_simulator(argv[1:])
    args = parser().parse_args(argv)
    return int(args.func(args) or 0)


if __name__ == "__main__":
    raise SystemExit(main())
