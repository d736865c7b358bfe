"""The Celery app: workers send through swsync, one pacing limit shared through Redis.

Start a worker (any number, on any machine that reaches Redis and SignalWire)::

    celery -A examples.celery_app.app worker -c 2 -l info

Settings come from the environment: ``REDIS_URL`` (broker, results, send records
and the shared limit; default ``redis://127.0.0.1:6379/0``), ``SWSYNC_RATE``
(segments per second for each sending number; default 4, a 10DLC number) and the
usual ``SIGNALWIRE_PROJECT_ID`` / ``SIGNALWIRE_API_TOKEN`` / ``SIGNALWIRE_SPACE``.
"""

from __future__ import annotations

import os

from celery import Celery

import swsync.celery
from swsync import RateLimit

REDIS_URL = os.environ.get("REDIS_URL", "redis://127.0.0.1:6379/0")

app = Celery("celery_app", broker=REDIS_URL, backend=REDIS_URL, include=["examples.celery_app.tasks"])
app.conf.update(
    task_acks_late=True,  # a task whose worker dies is run again (swsync never sends twice)
    task_reject_on_worker_lost=True,
    worker_prefetch_multiplier=1,  # a slow limit holds back one task per process, not a batch
    result_expires=24 * 3600,
)

# Every worker process gets its own RelayClient; the limit lives in Redis, so all
# processes on all machines share it. Send records live in the broker's Redis.
# No contexts here: a worker subscribed to the listeners' context would take its
# share of the inbound messages and have no handler for them.
send_message = swsync.celery.configure(
    app,
    rate_limit=RateLimit(float(os.environ.get("SWSYNC_RATE", "4")), redis_url=REDIS_URL, max_wait=30.0),
)
