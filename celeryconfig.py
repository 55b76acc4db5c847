"""Celery settings: broker, queues and routes, beat schedule, reliability settings.

The database is the source of truth and the broker a doorbell: tasks carry message ids, and the beat's
sweeps re-publish whatever a lost publish or a killed worker left behind.
"""

from __future__ import annotations

from kombu import Exchange, Queue

from smsqueue.config import data_dir, settings
from smsqueue.queues import ROUTES, Queues, Tasks, WebhookTasks

_s = settings()

broker_url = _s.broker_url
broker_connection_retry_on_startup = True
broker_pool_limit = 10

if _s.broker_url.startswith("filesystem://"):
    # The embedded broker: a folder, no server. No fanout, so no remote control or events.
    _folder = data_dir() / "broker"
    for _sub in ("queue", "processed"):
        (_folder / _sub).mkdir(parents=True, exist_ok=True)
    broker_transport_options = {
        "data_folder_in": str(_folder / "queue"),
        "data_folder_out": str(_folder / "queue"),
        "processed_folder": str(_folder / "processed"),
        "store_processed": False,
        "polling_interval": 0.1,
    }
    worker_enable_remote_control = False
    worker_send_task_events = False
else:
    broker_transport_options = {
        # Socket timeouts, so that a Redis that stops answering does not hang a process for long (requests
        # publish through smsqueue.tasks.doorbell, which gives up at once; the sweeps re-publish).
        "socket_connect_timeout": 2,
        "socket_timeout": 5,
        "retry_on_timeout": False,
        "visibility_timeout": 3600,
    }
    # Task events cost three extra publishes per task; Flower switches them on in the workers it watches
    # (it sends enable_events over the remote-control channel when it starts).
    worker_send_task_events = False
    task_send_sent_event = False

# Every queue is bound to the default exchange: a publish goes straight to the queue's list, with no
# exchange lookup (one Redis round trip, and it works across processes on the filesystem broker too).
task_queues = [Queue(name, Exchange(""), routing_key=name) for name in Queues.ALL]
task_default_queue = Queues.SEND
task_default_exchange = ""
task_routes = {name: {"queue": queue, "routing_key": queue, "exchange": ""} for name, queue in ROUTES.items()}
task_create_missing_queues = False

task_serializer = "json"
accept_content = ["json"]
task_ignore_result = True
result_backend = None
# A task is acknowledged when it has run, and given back when its process dies: a doorbell is never
# lost to a crash (nor can a replay do harm: the send task claims by query, and a row already `sending`
# is the reconcile sweep's). The visibility timeout only brings back what a whole worker left unacked;
# it is long (the sweeps ring what is due well before) so that a long run is never handed out twice.
task_acks_late = True
task_reject_on_worker_lost = True
# One task reserved per process: a send task runs whole batches (up to smsqueue.sending.MAX_CLAIM), and a
# doorbell reserved behind it would wait there while another worker is idle. One doorbell waits at a
# time anyway (smsqueue.tasks.doorbell.ring_once), so a larger prefetch buys nothing.
worker_prefetch_multiplier = 1
worker_max_tasks_per_child = 10000
task_time_limit = 600
task_soft_time_limit = 540
broker_channel_error_retry = True
worker_cancel_long_running_tasks_on_connection_loss = False

timezone = "UTC"
enable_utc = True

beat_schedule = {
    "dispatch-scheduled": {"task": Tasks.DISPATCH_SCHEDULED, "schedule": _s.sweep_interval},
    "poll-statuses": {"task": Tasks.POLL_STATUSES, "schedule": _s.sweep_interval},
    # One statusQueue.json call per queue-kind provider (IQSMS) when its queue is empty.
    "drain-status-queues": {"task": Tasks.DRAIN_STATUS_QUEUES, "schedule": max(_s.sweep_interval, 1.0)},
    # Also rings retries when they are due (no countdown is published): as often as the other sweeps.
    "republish-lost": {"task": Tasks.REPUBLISH_LOST, "schedule": _s.sweep_interval},
    "reconcile-sending": {"task": Tasks.RECONCILE_SENDING, "schedule": max(_s.sweep_interval, 2.0)},
    "sweep-webhooks": {"task": WebhookTasks.SWEEP, "schedule": _s.webhook_sweep_interval},
    "purge-counters": {"task": Tasks.PURGE_COUNTERS, "schedule": 3600.0},
    # A run stops before the next is due; two beats' runs skip each other's rows (SKIP LOCKED).
    "purge-messages": {
        "task": Tasks.PURGE_MESSAGES,
        "schedule": _s.purge_interval,
        "options": {"expires": _s.purge_interval},
    },
    # Starts jobs whose task was lost and resumes those whose worker died (their hold ran out).
    "resume-jobs": {"task": Tasks.RESUME_JOBS, "schedule": max(_s.sweep_interval, 1.0)},
}
# A beat tick that nobody ran before the next one is worthless: let it expire instead of piling up.
for _entry in beat_schedule.values():
    _entry["options"] = {"expires": max(float(_entry["schedule"]) * 5, 10.0)}
