"""Tables of provider delivery reports (issue 3)."""

from __future__ import annotations
