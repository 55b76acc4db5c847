"""Tables, by domain. The schema is made only by the Alembic migrations; a test proves these models agree
with them. Every module of tables is imported here, so `Base.metadata` knows them all."""

from smsqueue.models import audit, campaigns, compliance, limits, reports, webhooks  # noqa: F401 - their tables join the metadata
from smsqueue.models.audit import AuditEntry
from smsqueue.models.base import Base, BigPK, UTCDateTime, partial_index
from smsqueue.models.campaigns import Job, JobChunk, JobError, Template
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
    "Job",
    "JobChunk",
    "JobError",
    "LegalEntity",
    "Message",
    "MessageEvent",
    "MetricCounter",
    "Provider",
    "Template",
    "UTCDateTime",
    "partial_index",
]
