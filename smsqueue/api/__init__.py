"""HTTP blueprints, one per area."""

from __future__ import annotations

from flask import Flask


def register_blueprints(app: Flask) -> None:
    from smsqueue.api import messages, ops

    for module in (messages, ops):
        app.register_blueprint(module.bp)
