"""Webhook delivery attempts and webhook-secret rotation (issue 5)."""

from __future__ import annotations

from flask import Blueprint

bp = Blueprint("webhooks", __name__)
