"""HTTP blueprints, one per area."""

from __future__ import annotations

from flask import Flask


def register_blueprints(app: Flask) -> None:
    from smsqueue.api import (
        audit,
        dlr,
        docs,
        entity_providers,
        keys,
        legal_entities,
        messages,
        ops,
        providers,
        webhooks,
    )

    for module in (
        messages,
        providers,
        dlr,
        legal_entities,
        entity_providers,
        webhooks,
        keys,
        audit,
        docs,
        ops,
    ):
        app.register_blueprint(module.bp)
