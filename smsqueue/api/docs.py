"""The OpenAPI document and the /docs page (issue 5)."""

from __future__ import annotations

from flask import Blueprint

bp = Blueprint("docs", __name__)
