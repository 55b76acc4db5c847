"""Providers admin API: create, read, edit, disable, delete, balance (issue 3)."""

from __future__ import annotations

from flask import Blueprint

bp = Blueprint("providers", __name__)
