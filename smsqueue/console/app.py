"""Mounting the console on the Flask app."""

from __future__ import annotations

from flask import Flask


def register(app: Flask) -> None:
    """The console's pages and its session cookie (keyed from SMSQUEUE_SECRET_KEY), on `app`."""
    from smsqueue.console import (  # noqa: F401 - routes
        pages_account,
        pages_dashboard,
        pages_entities,
        pages_jobs,
        pages_messages,
        pages_providers,
        pages_stop_list,
        pages_templates,
    )
    from smsqueue.console import session as console_session
    from smsqueue.console.blueprint import bp

    console_session.configure(app)
    app.register_blueprint(bp)
