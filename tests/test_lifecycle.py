"""The lifecycle: the table of allowed moves, walked pair by pair through the one transition function
on the real database, and its compare-and-set under concurrency."""

from __future__ import annotations

import itertools
import threading
import uuid

import pytest
from sqlalchemy import select, update

from smsqueue.db import transaction
from smsqueue.messages import IllegalTransition, NewMessage, insert_messages, messages_t, transition
from smsqueue.models import MessageEvent
from smsqueue.statuses import FINAL, TRANSITIONS, Status, can_move, sources_of

m = messages_t.c


def new_message(entity_id: int, callback_url: str | None = None) -> int:
    item = NewMessage(
        id=uuid.uuid4(),
        legal_entity_id=entity_id,
        to="+79161234567",
        text="x",
        segments=1,
        encoding="GSM-7",
        callback_url=callback_url,
    )
    with transaction() as conn:
        return insert_messages(conn, [item])[0].pk


def force_status(pk: int, status: Status) -> None:
    with transaction() as conn:
        conn.execute(update(messages_t).where(m.pk == pk).values(status=status.value))


def events(pk: int) -> list[tuple[int, str, str | None]]:
    e = MessageEvent.__table__.c
    with transaction() as conn:
        rows = conn.execute(select(e.seq, e.status, e.reason).where(e.message_pk == pk).order_by(e.seq))
        return [tuple(r) for r in rows]


def test_final_statuses_move_nowhere_and_others_move_somewhere():
    for status in Status:
        assert (not TRANSITIONS[status]) == (status in FINAL), status
    assert set(TRANSITIONS) == set(Status)


def test_the_table_is_what_the_lifecycle_promises():
    # The documented path, and the moves the sender and sweeps rely on.
    path = [Status.QUEUED, Status.SENDING, Status.SENT, Status.DELIVERED]
    assert all(can_move(a, b) for a, b in itertools.pairwise(path))
    assert can_move(Status.SCHEDULED, Status.QUEUED)
    assert can_move(Status.SENDING, Status.QUEUED)  # retry / failover
    assert can_move(Status.SENDING, Status.DELIVERED)  # a report that overtook "sent"
    assert not can_move(Status.SENDING, Status.CANCELED)  # too late to cancel
    assert not can_move(Status.SENT, Status.QUEUED)  # never resent after the provider took it
    assert sources_of(Status.CANCELED) == {Status.QUEUED, Status.SCHEDULED}


@pytest.mark.parametrize("src", list(Status))
def test_every_pair_of_the_table_through_the_transition_function(factory, src):
    entity = factory.entity()
    for dst in Status:
        pk = new_message(entity.id)
        force_status(pk, src)
        before = events(pk)
        with transaction() as conn:
            if can_move(src, dst):
                moved = transition(conn, pk, dst, reason="why")
                assert moved is not None and moved.status is dst and moved.seq == len(before) + 1
            else:
                # Not in the table: the function refuses to even try when asked explicitly...
                with pytest.raises(IllegalTransition):
                    transition(conn, pk, dst, expected={src})
                # ...and a plain call leaves the row alone (its status is not among the sources).
                if sources_of(dst):
                    assert transition(conn, pk, dst) is None
        with transaction() as conn:
            status = conn.execute(select(m.status).where(m.pk == pk)).scalar_one()
        if can_move(src, dst):
            assert status == dst and events(pk)[-1] == (len(before) + 1, dst.value, "why")
        else:
            assert status == src and events(pk) == before


def test_webhook_outbox_row_only_with_a_callback_url(factory):
    entity = factory.entity()
    with_cb = new_message(entity.id, "https://hooks.example/x")
    without = new_message(entity.id)
    e = MessageEvent.__table__.c
    with transaction() as conn:
        states = dict(conn.execute(select(e.message_pk, e.webhook_state)).all())
    assert states == {with_cb: "pending", without: None}


def test_compare_and_set_lets_exactly_one_of_many_concurrent_moves_win(factory):
    entity = factory.entity()
    pk = new_message(entity.id)
    barrier = threading.Barrier(8)
    wins: list[Status] = []

    def attempt(target: Status) -> None:
        barrier.wait()
        with transaction() as conn:
            if transition(conn, pk, target) is not None:
                wins.append(target)

    targets = [Status.SENDING, Status.CANCELED] * 4
    threads = [threading.Thread(target=attempt, args=(t,)) for t in targets]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(wins) == 1
    assert [s for _, s, _ in events(pk)] == ["queued", wins[0].value]


# --- a provider's status: the one rule for answers, polls and reports ---------------------------------


def test_a_providers_status_ends_sent_or_sending_messages_only_and_in_progress_changes_nothing(factory):
    from smsqueue.clock import now
    from smsqueue.messages import ProviderStatus, apply_status, apply_statuses

    entity = factory.entity()
    sent, sending, delivered, queued, in_progress = (new_message(entity.id) for _ in range(5))
    for pk, status in ((sent, Status.SENT), (sending, Status.SENDING), (delivered, Status.DELIVERED)):
        force_status(pk, status)
    force_status(in_progress, Status.SENT)
    with transaction() as conn:
        moved = apply_statuses(
            conn,
            [
                ProviderStatus(sent, Status.UNDELIVERED, "provider_error:20", "20"),
                ProviderStatus(sending, Status.DELIVERED, None, "1"),
                ProviderStatus(delivered, Status.UNDELIVERED, None, None),  # final already: stays
                ProviderStatus(queued, Status.DELIVERED, None, None),  # never sent: not the provider's
                ProviderStatus(in_progress, None, None, "0"),
            ],
            now(),
            "poll",
        )
        # A status that is not one a provider may end a message with changes nothing either.
        assert not apply_status(conn, ProviderStatus(in_progress, Status.SENT), now(), "report")
    assert moved == {sent, sending}
    with transaction() as conn:
        rows = dict(conn.execute(select(m.pk, m.status)).all())
        detail = conn.execute(
            select(MessageEvent.detail)
            .where(MessageEvent.message_pk == sent)
            .order_by(MessageEvent.seq.desc())
        ).scalar()
    assert rows == {
        sent: "undelivered",
        sending: "delivered",
        delivered: "delivered",
        queued: "queued",
        in_progress: "sent",
    }
    assert events(sent)[-1][1:] == ("undelivered", "provider_error:20")
    assert detail == {"source": "poll", "provider_status": "20"}


# --- when queued messages are rung: the database says (ring_at), never a countdown ---------------------


def ring_at(pk: int):
    with transaction() as conn:
        return conn.execute(select(m.ring_at, m.next_attempt_at).where(m.pk == pk)).one()


def test_a_new_message_is_rung_by_the_sweep_only_if_no_worker_took_it_within_the_grace_period(factory):
    from datetime import timedelta

    from smsqueue import sweeps
    from smsqueue.clock import now
    from smsqueue.config import settings

    entity = factory.entity()
    pk = new_message(entity.id)
    row = ring_at(pk)
    assert row.ring_at == row.next_attempt_at + timedelta(seconds=settings().lost_publish_after)
    assert sweeps._republish_lost_batch(now())[1].now == []
    later = row.ring_at + timedelta(milliseconds=1)
    assert sweeps._republish_lost_batch(later)[1].now == [pk]
    # Rung: again only a grace period later.
    assert sweeps._republish_lost_batch(later)[1].now == []
    assert ring_at(pk).ring_at == later + timedelta(seconds=settings().lost_publish_after)


def test_a_retry_is_rung_by_the_sweep_when_it_is_due(factory):
    from datetime import timedelta

    from smsqueue import links, recording, sending, sweeps
    from smsqueue.clock import now
    from smsqueue.messages import Followups
    from smsqueue.providers.base import TransientProviderError

    entity = factory.entity(factory.provider())
    pk = new_message(entity.id)
    with transaction() as conn:
        [claimed] = sending.claim(conn, [pk], now(), Followups())
    followups = Followups()
    with transaction() as conn:
        ctx = links.load_context(conn, [entity.id])
        error = TransientProviderError("HTTP 502", code="http_502")
        recording.record_failure(conn, claimed.message, claimed.link, 1, error, ctx, now(), followups)
    assert followups == Followups()  # nothing to publish: no countdown
    row = ring_at(pk)
    assert row.ring_at == row.next_attempt_at > now()
    assert sweeps._republish_lost_batch(row.ring_at - timedelta(milliseconds=1))[1].now == []
    assert sweeps._republish_lost_batch(row.ring_at)[1].now == [pk]


def test_when_the_broker_lost_its_doorbells_recently_rung_messages_are_rung_again_at_once(factory):
    from datetime import timedelta

    from smsqueue import sweeps
    from smsqueue.clock import now

    entity = factory.entity()
    fresh, waiting = new_message(entity.id), new_message(entity.id)
    far = now() + timedelta(hours=1)
    with transaction() as conn:  # a message waiting long for a token: rung by the sweep when due
        conn.execute(update(messages_t).where(m.pk == waiting).values(next_attempt_at=far, ring_at=far))
    at = now()
    assert sweeps._republish_lost_batch(at)[1].now == []
    assert sweeps.ring_again_when_due(at) == 1
    assert sweeps._republish_lost_batch(at)[1].now == [fresh]
    assert ring_at(waiting).ring_at == far
