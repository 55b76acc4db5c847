"""Tables of webhook delivery (issue 5)."""

from __future__ import annotations
