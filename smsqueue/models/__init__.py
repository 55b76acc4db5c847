"""Tables, by domain. The schema is made only by the Alembic migrations; a test proves these models agree
with them. Every module of tables is imported here, so `Base.metadata` knows them all."""

from smsqueue.models import audit, limits, reports, webhooks  # noqa: F401 - their tables join the metadata
from smsqueue.models.audit import AuditEntry
from smsqueue.models.base import Base, BigPK, UTCDateTime, partial_index
from smsqueue.models.core import (
    ApiKey,
    ApiKeyEntity,
    EntityProvider,
    LegalEntity,
    Message,
    MessageEvent,
    MetricCounter,
    Provider,
)

__all__ = [
    "ApiKey",
    "ApiKeyEntity",
    "AuditEntry",
    "Base",
    "BigPK",
    "EntityProvider",
    "LegalEntity",
    "Message",
    "MessageEvent",
    "MetricCounter",
    "Provider",
    "UTCDateTime",
    "partial_index",
]
