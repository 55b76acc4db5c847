"""HTTP blueprints, one per area."""

from __future__ import annotations

from flask import Flask


def register_blueprints(app: Flask) -> None:
    from smsqueue.api import (
        audit,
        dlr,
        docs,
        entity_providers,
        history,
        interactions,
        jobs,
        keys,
        legal_entities,
        messages,
        ops,
        providers,
        stop_list,
        templates,
        webhooks,
    )

    for module in (
        audit,
        dlr,
        docs,
        entity_providers,
        history,
        interactions,
        jobs,
        keys,
        legal_entities,
        messages,
        ops,
        providers,
        stop_list,
        templates,
        webhooks,
    ):
        app.register_blueprint(module.bp)
