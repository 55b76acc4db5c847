"""The layering that keeps the HTTP side and the provider clients apart (issue 8): the views import
their helpers from `api/`, never the app factory; `providers/` holds clients that know nothing of the
database, the secrets, Celery or Flask. Read from the source, so a stray import fails here at once."""

from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parent.parent / "smsqueue"
PROVIDERS_MAY_NOT_IMPORT = (
    "smsqueue.db",
    "smsqueue.models",
    "smsqueue.crypto",
    "sqlalchemy",
    "celery",
    "flask",
)


def imports_of(path: Path) -> set[str]:
    """Every module a file imports, at any depth (function-level imports included)."""
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
            found.add(node.module)
            found.update(f"{node.module}.{alias.name}" for alias in node.names)
    return found


def _is_under(name: str, prefix: str) -> bool:
    return name == prefix or name.startswith(prefix + ".")


def test_provider_clients_import_no_database_secrets_celery_or_flask():
    offending = {
        f"{path.relative_to(PACKAGE.parent)}: {name}"
        for path in sorted((PACKAGE / "providers").rglob("*.py"))
        for name in imports_of(path)
        if any(_is_under(name, banned) for banned in PROVIDERS_MAY_NOT_IMPORT)
    }
    assert offending == set()


def test_views_do_not_import_the_app_factory():
    offending = {
        str(path.relative_to(PACKAGE.parent))
        for path in sorted((PACKAGE / "api").rglob("*.py"))
        if any(_is_under(name, "smsqueue.web") for name in imports_of(path))
    }
    assert offending == set()


def test_the_check_sees_a_banned_import(tmp_path):
    # The test above cannot pass by reading nothing: the same reading finds an import where there is one.
    sample = tmp_path / "client.py"
    sample.write_text("def f():\n    from smsqueue.models import Provider\n", encoding="utf-8")
    assert "smsqueue.models" in imports_of(sample)
    assert list((PACKAGE / "providers").rglob("*.py")) and list((PACKAGE / "api").rglob("*.py"))
