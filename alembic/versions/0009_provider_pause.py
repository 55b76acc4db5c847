"""providers.paused_until, providers.pause_reason: a provider whose account cannot send is paused

When a provider answers that the account itself cannot send (bad credentials, no funds, a blocked
address), the provider is paused for every message until `paused_until` (SMSQUEUE_PROVIDER_PAUSE_SECONDS
later), with the provider's error as `pause_reason`; after it, one message (the probe) is sent, and its
answer either lifts the pause (both columns NULL) or pauses the provider again.

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-03
"""

from collections.abc import Sequence

import sqlalchemy as sa

from alembic import op

revision: str = "0009"
down_revision: str | None = "0008"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column("providers", sa.Column("paused_until", sa.DateTime(timezone=True), nullable=True))
    op.add_column("providers", sa.Column("pause_reason", sa.String(length=64), nullable=True))


def downgrade() -> None:
    op.drop_column("providers", "pause_reason")
    op.drop_column("providers", "paused_until")
