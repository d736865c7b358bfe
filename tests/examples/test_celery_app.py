"""examples/celery_app runs as docs/scaling.md says: worker, listener, enqueue script."""

from __future__ import annotations

import subprocess
import sys
from typing import Any

import pytest
import redis

from swsync.emulator import Emulator

from ..helpers import wait_for
from ..support.celeryd import ROOT, Listener, WorkerPool, worker_env

pytestmark = pytest.mark.timeout(120)


def test_the_celery_example_sends_answers_and_never_sends_twice(redis_server: Any) -> None:
    url = redis_server.db_url(15)
    redis.Redis.from_url(url).flushdb()
    with Emulator(state_delay=0.0) as emu:
        env = worker_env(broker=url, emu=emu, REDIS_URL=url, SWSYNC_RATE="100")
        pool = WorkerPool("example", env, app="examples.celery_app.app")
        listener = Listener(
            env,
            "--task",
            "examples.celery_app.tasks.handle_inbound",
            "--context",
            "office",
            app="examples.celery_app.app:app",
        )
        try:
            for _ in range(2):  # the second run sends nothing: every key was sent already
                run = subprocess.run(
                    [sys.executable, "-m", "examples.celery_app.enqueue", "3"],
                    cwd=ROOT,
                    env=env,
                    capture_output=True,
                    text=True,
                    timeout=90,
                )
                assert run.returncode == 0, run.stdout + run.stderr + pool.output()
                assert run.stdout.count('"outcome": "delivered"') == 3
            sent = [r.body for r in emu.store.select(lambda r: r.direction != "inbound")]
            assert sorted(sent) == ["Hello #0", "Hello #1", "Hello #2"]
            emu.wait_for_clients(3, timeout=60)  # 2 worker processes + the listener
            emu.inject_inbound(to_number="+15551234567", from_number="+15550001234", body="hi", context="office")
            wait_for(
                lambda: any(r.body == "Got it: hi" and r.to == "+15550001234" for r in emu.store.select(None)),
                60,
                "the reply",
            )
        finally:
            assert listener.stop() == 0
            pool.stop()
