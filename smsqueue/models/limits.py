"""Tables of the 230-FZ limits (issue 4)."""

from __future__ import annotations
