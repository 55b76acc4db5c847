"""Legal entities, their providers, sending windows and 230-FZ settings (issue 4)."""

from __future__ import annotations

from flask import Blueprint

bp = Blueprint("legal_entities", __name__)
