"""Delivery reports pushed by providers (issue 3)."""

from __future__ import annotations

from flask import Blueprint

bp = Blueprint("dlr", __name__)
