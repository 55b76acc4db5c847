"""Status webhooks to callers' services (issue 5)."""

from __future__ import annotations
