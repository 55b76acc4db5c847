"""The shape of the code, kept by tests: no import cycle in smsqueue/; only tasks/, api/, web.py and
cli.py import Celery, Flask or smsqueue.tasks; providers/ (clients and the simulator) reaches no
database, Celery or Flask; every Celery task is routed to a queue that a Procfile worker consumes.

The import graph is read from the source (ast), lazy imports inside functions included, so that
`python -m pytest tests/test_layering.py` shows the cycles of any checkout."""

from __future__ import annotations

import ast
import importlib
import re
from functools import cache
from pathlib import Path

from smsqueue.queues import ROUTES, Queues

ROOT = Path(__file__).resolve().parent.parent
PACKAGE = ROOT / "smsqueue"

FRAMEWORKS = ("celery", "kombu", "flask", "werkzeug", "smsqueue.tasks")
# Where the frameworks may be used: the tasks, the HTTP views, the app factory and the command line.
FRAMEWORK_ROOMS = ("smsqueue.tasks", "smsqueue.api", "smsqueue.web", "smsqueue.cli")
# The operator console is the HTTP layer's second face (pages, not JSON): Flask, but never Celery or
# the tasks (it changes things through the same services as the admin API).
CONSOLE = "smsqueue.console"
WEB_ONLY = ("flask", "werkzeug")
DATABASE = ("sqlalchemy", "psycopg2", "alembic", "smsqueue.db", "smsqueue.models")


def module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts = parts[:-1]
    return ".".join(parts)


def imports_of(path: Path) -> set[str]:
    """Every module a file imports, at its top or inside a function, as absolute dotted names (a `from
    a import b` names both `a` and `a.b`: b may be a module)."""
    name = module_name(path)
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[: len(package.split(".")) - (node.level - 1)]
                module = ".".join(base + ([node.module] if node.module else []))
            else:
                module = node.module or ""
            found.add(module)
            found.update(f"{module}.{alias.name}" for alias in node.names)
    return found


@cache
def graph() -> dict[str, tuple[set[str], set[str]]]:
    """module -> (the smsqueue modules it imports, every name it imports)."""
    files = {module_name(p): p for p in PACKAGE.rglob("*.py")}
    out = {}
    for name, path in files.items():
        names = imports_of(path)
        out[name] = ({n for n in names if n in files and n != name}, names)
    return out


def cycles() -> list[list[str]]:
    """Strongly connected groups of more than one module (Tarjan)."""
    edges = {name: internal for name, (internal, _) in graph().items()}
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in sorted(edges[v]):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            group = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                group.append(w)
                if w == v:
                    break
            if len(group) > 1:
                found.append(sorted(group))

    for v in sorted(edges):
        if v not in index:
            visit(v)
    return found


def reached_from(start: str) -> set[str]:
    """`start` and every smsqueue module it imports, directly or through others."""
    seen, todo = set(), [start]
    while todo:
        v = todo.pop()
        if v not in seen:
            seen.add(v)
            todo.extend(graph()[v][0])
    return seen


def under(name: str, prefixes: tuple[str, ...]) -> bool:
    return any(name == p or name.startswith(p + ".") for p in prefixes)


def offending(module: str, banned: tuple[str, ...]) -> set[str]:
    return {n for n in graph()[module][1] if under(n, banned)}


def allowed_web(module: str, imported: str) -> bool:
    return under(module, (CONSOLE,)) and under(imported, WEB_ONLY)


# --- the checks ---------------------------------------------------------------------------------------


def test_the_import_graph_check_finds_modules_and_a_cycle_in_a_small_graph(monkeypatch):
    """The checks below must be able to fail: the graph holds the package (lazy imports too), and a
    cycle is found."""
    assert {"smsqueue.messages", "smsqueue.sending", "smsqueue.tasks.send"} <= set(graph())
    assert "smsqueue.messages" in graph()["smsqueue.sending"][0]
    assert "smsqueue.tasks.celery_app" in graph()["smsqueue.tasks.doorbell"][0]  # imported in a function
    assert "smsqueue.tasks.celery_app" in offending("smsqueue.tasks.send", FRAMEWORKS)
    assert "sqlalchemy" in offending("smsqueue.messages", DATABASE)
    fake = {"a": ({"b"}, set()), "b": ({"c"}, set()), "c": ({"a"}, set()), "d": ({"a"}, set())}
    monkeypatch.setattr(__import__(__name__), "graph", lambda: fake)
    assert cycles() == [["a", "b", "c"]]


def test_no_import_cycle_in_smsqueue():
    assert cycles() == []


def test_only_tasks_api_web_and_cli_import_celery_flask_or_the_tasks():
    """Domain modules return what must be published; the task that ran them publishes it."""
    wrong = {
        module: sorted(found)
        for module in graph()
        if not under(module, FRAMEWORK_ROOMS)
        and (found := {n for n in offending(module, FRAMEWORKS) if not allowed_web(module, n)})
    }
    assert wrong == {}


# The HTTP layer and the command line sit on top: what they import may not import them back.
TOP_ROOMS = ("smsqueue.api", "smsqueue.console", "smsqueue.web", "smsqueue.cli")


def test_nothing_below_the_http_layer_imports_it():
    """The domain and the tasks take field rules, texts and services from below (message_fields, rules/,
    ...), never from the API's schemas or views: an arrow back up makes the next cycle."""
    wrong = {
        module: sorted(n for n in internal if under(n, TOP_ROOMS))
        for module, (internal, _) in graph().items()
        if not under(module, TOP_ROOMS) and any(under(n, TOP_ROOMS) for n in internal)
    }
    assert wrong == {}


def test_providers_reach_no_database_celery_or_flask():
    """providers/ holds the clients and the simulator: framework-free, they take a ProviderConfig and
    know nothing of rows, caches or secrets at rest."""
    wrong = {}
    for module in graph():
        if not under(module, ("smsqueue.providers",)):
            continue
        for reached in reached_from(module):
            found = offending(reached, DATABASE + FRAMEWORKS)
            if found:
                wrong[module] = (reached, sorted(found))
                break
    assert wrong == {}


def procfile_consumed_queues() -> set[str]:
    procfile = (ROOT / "Procfile").read_text().splitlines()
    entries = dict(line.split(":", 1) for line in procfile if line.strip() and not line.startswith("#"))
    for name in ("web", "worker", "beat", "flower", "release"):
        assert name in entries, name
    consumed: set[str] = set()
    for name, command in entries.items():
        if name.startswith("worker"):
            match = re.search(r"-Q\s+(\S+)", command)
            assert match, f"{name} names no queues"
            consumed |= set(match.group(1).split(","))
    return consumed


def test_every_queue_is_consumed_by_a_procfile_worker():
    assert procfile_consumed_queues() == set(Queues.ALL)
    assert set(ROUTES.values()) <= set(Queues.ALL)


def test_every_task_is_routed_to_a_queue_a_procfile_worker_consumes_and_the_beat_names_only_tasks():
    from smsqueue.tasks.celery_app import app

    for module in app.conf.include:
        importlib.import_module(module)
    registered = {name for name in app.tasks if not name.startswith("celery.")}
    assert registered, "no task registered: the check would prove nothing"
    assert registered == set(ROUTES), registered ^ set(ROUTES)
    consumed = procfile_consumed_queues()
    assert {name: ROUTES[name] for name in registered if ROUTES[name] not in consumed} == {}
    routes = app.conf.task_routes
    assert {name: routes[name]["queue"] for name in registered} == {name: ROUTES[name] for name in registered}
    assert {entry["task"] for entry in app.conf.beat_schedule.values()} <= registered
