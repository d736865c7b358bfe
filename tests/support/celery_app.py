"""The Celery app the worker subprocesses of tests/test_celery.py run (``-A tests.support.celery_app``).

Configured from the environment the test passes: ``SWSYNC_TEST_BROKER`` (broker and
result backend), ``SWSYNC_TEST_RECORDS`` (send records; default the broker),
``SWSYNC_TEST_RATE`` / ``SWSYNC_TEST_LIMIT_REDIS`` (a shared pacing limit),
``SWSYNC_TEST_RETRIES``; the emulator's URL and credentials come in the usual
``SIGNALWIRE_*`` variables.
"""

from __future__ import annotations

import os
from typing import Any

from celery import Celery

import swsync.celery

BROKER = os.environ.get("SWSYNC_TEST_BROKER", "redis://127.0.0.1:6379/0")

app = Celery("swsync_test", broker=BROKER, backend=BROKER)
app.conf.update(
    task_acks_late=True,
    task_reject_on_worker_lost=True,
    worker_prefetch_multiplier=1,
    result_expires=600,
    broker_connection_retry_on_startup=True,
    # A killed worker's unacknowledged tasks come back to the queue after 2 s.
    broker_transport_options={"visibility_timeout": 2, "unacked_restore_interval": 1, "unacked_restore_throttle": 1},
    worker_hijack_root_logger=False,
)

options: dict[str, Any] = {}
if os.environ.get("SWSYNC_TEST_RATE"):
    from swsync import RateLimit

    options["rate_limit"] = RateLimit(
        float(os.environ["SWSYNC_TEST_RATE"]),
        burst=1,
        weight="messages",
        redis_url=os.environ["SWSYNC_TEST_LIMIT_REDIS"],
    )

send_message = swsync.celery.configure(
    app,
    redis_url=os.environ.get("SWSYNC_TEST_RECORDS") or None,
    max_retries=int(os.environ.get("SWSYNC_TEST_RETRIES", "3")),
    retry_backoff=0.05,
    retry_backoff_max=0.2,
    request_timeout=5.0,
    **options,
)


_redis: Any = None


@app.task(name="tests.handle_inbound", bind=True, acks_late=True)
def handle_inbound(self: Any, message: dict[str, Any]) -> None:
    """Record the message id and the listener that enqueued it (``origin``) in Redis."""
    global _redis
    import redis

    if _redis is None:
        _redis = redis.Redis.from_url(BROKER)
    _redis.rpush("test:handled", f"{message['message_id']} {self.request.origin or ''}")


@app.task(name="tests.noop")
def noop(*args: Any, **kwargs: Any) -> None:
    """Does nothing: Celery's own cost per task, for bench/scaling.py."""
