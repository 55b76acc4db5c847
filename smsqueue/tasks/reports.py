"""Processing of delivery reports pushed by providers (issue 3)."""

from __future__ import annotations
