"""HTTP blueprints, one per area."""

from __future__ import annotations

from flask import Flask


def register_blueprints(app: Flask) -> None:
    from smsqueue.api import (
        dlr,
        docs,
        entity_providers,
        jobs,
        legal_entities,
        messages,
        ops,
        providers,
        templates,
        webhooks,
    )

    for module in (
        messages,
        jobs,
        providers,
        dlr,
        legal_entities,
        entity_providers,
        templates,
        webhooks,
        docs,
        ops,
    ):
        app.register_blueprint(module.bp)
