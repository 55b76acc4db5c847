"""Message statuses, reason codes and the table of allowed moves: the one place they are decided."""

from __future__ import annotations

from enum import StrEnum


class Status(StrEnum):
    QUEUED = "queued"
    SCHEDULED = "scheduled"
    SENDING = "sending"
    SENT = "sent"
    DELIVERED = "delivered"
    UNDELIVERED = "undelivered"
    FAILED = "failed"
    REJECTED = "rejected"
    CANCELED = "canceled"
    EXPIRED = "expired"


class JobStatus(StrEnum):
    """A CSV job's status: pending (stored, not started), running, then done, canceled or failed."""

    PENDING = "pending"
    RUNNING = "running"
    DONE = "done"
    CANCELED = "canceled"
    FAILED = "failed"


JOB_UNFINISHED: frozenset[JobStatus] = frozenset({JobStatus.PENDING, JobStatus.RUNNING})


FINAL: frozenset[Status] = frozenset(
    {Status.DELIVERED, Status.UNDELIVERED, Status.FAILED, Status.REJECTED, Status.CANCELED, Status.EXPIRED}
)
CANCELABLE: frozenset[Status] = frozenset({Status.QUEUED, Status.SCHEDULED})
# The statuses a provider's answer, poll or delivery report can end a message with (the table's moves out
# of `sent`); any other status a provider reports (in progress) changes nothing.
PROVIDER_FINAL: frozenset[Status] = frozenset({Status.DELIVERED, Status.UNDELIVERED, Status.FAILED})

# from -> the statuses it may move to. Final statuses move nowhere.
# queued/scheduled -> rejected/failed: the rules or provider selection refuse it at claim time, before
#   any provider call (the claim and the rules decision are one transaction).
# sending -> queued: a transient provider error; it waits for its retry (or the next provider).
# sending -> delivered/undelivered: a delivery report that overtook the send task's own "sent".
# sent -> failed: the provider refused it after accepting it (e.g. SMSC status 23/24).
TRANSITIONS: dict[Status, frozenset[Status]] = {
    Status.QUEUED: frozenset(
        {Status.SENDING, Status.SCHEDULED, Status.CANCELED, Status.EXPIRED, Status.REJECTED, Status.FAILED}
    ),
    Status.SCHEDULED: frozenset(
        {Status.QUEUED, Status.CANCELED, Status.EXPIRED, Status.REJECTED, Status.FAILED}
    ),
    Status.SENDING: frozenset(
        {
            Status.SENT,
            Status.QUEUED,
            Status.SCHEDULED,
            Status.FAILED,
            Status.DELIVERED,
            Status.UNDELIVERED,
        }
    ),
    Status.SENT: PROVIDER_FINAL,
    **{s: frozenset() for s in FINAL},
}


def can_move(src: Status, dst: Status) -> bool:
    return dst in TRANSITIONS[src]


def sources_of(dst: Status) -> frozenset[Status]:
    """Every status from which `dst` may be reached."""
    return frozenset(src for src, dsts in TRANSITIONS.items() if dst in dsts)


class Reason(StrEnum):
    OUTSIDE_SEND_WINDOW = "outside_send_window"
    FZ_DAILY_LIMIT = "fz_daily_limit"
    FZ_WEEKLY_LIMIT = "fz_weekly_limit"
    FZ_MONTHLY_LIMIT = "fz_monthly_limit"
    STOP_LIST = "stop_list"  # the number or the debtor is on the entity's (or its group's) stop list
    ENTITY_INACTIVE = "entity_inactive"
    PROVIDER_NOT_ALLOWED = "provider_not_allowed"
    NO_PROVIDER_AVAILABLE = "no_provider_available"
    INVALID_NUMBER = "invalid_number"  # a provider's documented bad-number answer; its code is in the event
    RETRIES_EXHAUSTED = "retries_exhausted"
    UNKNOWN_OUTCOME = "unknown_outcome"
    STATUS_TIMEOUT = "status_timeout"
    CANCELED_BY_CLIENT = "canceled_by_client"
    TEXT_TOO_LONG = "text_too_long"  # longer than every provider that could take it accepts


def provider_error(code: str | int) -> str:
    """The reason for an answer of the provider's own: `provider_error:<its code>`."""
    return f"provider_error:{code}"


class WebhookState(StrEnum):
    """Where a status change stands in the webhook outbox (`message_events.webhook_state`; null when the
    message has no callback URL)."""

    PENDING = "pending"  # to be posted (or being posted, or waiting for its retry)
    DELIVERED = "delivered"  # the receiver answered 2xx
    FAILED = "failed"  # given up
