"""Real Celery worker subprocesses for tests (``celery -A tests.support.celery_app worker``).

Each :class:`WorkerPool` is one ``celery worker`` (prefork, 2 processes by default)
in its own process group, so ``kill()`` can SIGKILL the pool's main process and its
children at once, by PID, like a machine dying.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import tempfile
from collections.abc import Mapping
from typing import Any

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def worker_env(*, broker: str, emu: object, **extra: str) -> dict[str, str]:
    """The environment a worker needs: broker, emulator credentials, extra SWSYNC_TEST_* values."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SIGNALWIRE_", "SWSYNC_TEST_"))}
    env.update(
        {
            "SWSYNC_TEST_BROKER": broker,
            "SIGNALWIRE_PROJECT_ID": emu.project,  # type: ignore[attr-defined]
            "SIGNALWIRE_API_TOKEN": emu.token,  # type: ignore[attr-defined]
            "SIGNALWIRE_SPACE": emu.relay_url,  # type: ignore[attr-defined]
            "PYTHONPATH": ROOT + os.pathsep + env.get("PYTHONPATH", ""),
        }
    )
    env.update(extra)
    return env


def _start(argv: list[str], env: Mapping[str, str], log: Any) -> subprocess.Popen[bytes]:
    """Start ``argv`` from the repository root in its own session, all output to ``log``."""
    return subprocess.Popen(
        argv,
        cwd=ROOT,
        env=dict(env),
        stdin=subprocess.DEVNULL,
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )


class WorkerPool:
    """One ``celery worker`` subprocess with ``concurrency`` prefork processes."""

    def __init__(
        self,
        name: str,
        env: Mapping[str, str],
        *,
        concurrency: int = 2,
        pool: str = "prefork",
        queues: str = "celery",
        loglevel: str = "info",
        app: str = "tests.support.celery_app",
    ) -> None:
        self.name = name
        self.log = tempfile.NamedTemporaryFile(prefix=f"swsync-celery-{name}-", suffix=".log", delete=False)
        self.proc = _start(
            [
                sys.executable,
                "-m",
                "celery",
                "-A",
                app,
                "worker",
                "-P",
                pool,
                "-c",
                str(concurrency),
                "-n",
                f"{name}@%h",
                "-Q",
                queues,
                "--without-gossip",
                "--without-mingle",
                "--without-heartbeat",
                "-l",
                loglevel,
            ],
            env,
            self.log,
        )

    def output(self) -> str:
        """The worker's log so far (for assertion messages)."""
        with open(self.log.name, encoding="utf-8", errors="replace") as f:
            return f.read()[-6000:]

    def kill(self) -> None:
        """SIGKILL the whole pool (main process and children) at once."""
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGKILL)
        self.proc.wait(timeout=10)

    def stop(self) -> None:
        """Warm shutdown (SIGTERM to the pool's process group), SIGKILL after 20 s."""
        if self.proc.poll() is None:
            try:
                os.killpg(self.proc.pid, signal.SIGTERM)
                self.proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(timeout=10)
            except ProcessLookupError:
                pass
        try:  # children that outlived their parent
            os.killpg(self.proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        self.log.close()
        os.unlink(self.log.name)


class Listener:
    """``swsync listen --celery-app tests.support.celery_app:app --task ...`` as a subprocess."""

    def __init__(self, env: Mapping[str, str], *args: str, app: str = "tests.support.celery_app:app") -> None:
        self.log = tempfile.NamedTemporaryFile(prefix="swsync-listen-", suffix=".log", delete=False)
        self.proc = _start([sys.executable, "-m", "swsync", "listen", "--celery-app", app, *args], env, self.log)

    def output(self) -> str:
        with open(self.log.name, encoding="utf-8", errors="replace") as f:
            return f.read()[-4000:]

    def stop(self) -> int:
        """SIGTERM (a clean stop for ``swsync listen``); SIGKILL after 20 s. Returns the exit code."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=10)
        self.log.close()
        os.unlink(self.log.name)
        return self.proc.returncode
