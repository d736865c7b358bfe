"""Plain helpers shared by several test modules (fixtures live in conftest.py)."""

from __future__ import annotations

import threading
from concurrent.futures import Future

import pytest

# The environment variables swsync reads for credentials and TLS: tests clear them
# (the ``clean_signalwire_env`` fixture) or leave them out of a subprocess's environment.
ENV_VARS = (
    "SIGNALWIRE_PROJECT_ID",
    "SIGNALWIRE_API_TOKEN",
    "SIGNALWIRE_SPACE",
    "SIGNALWIRE_JWT_TOKEN",
    "SIGNALWIRE_RELAY_CA_FILE",
    "SIGNALWIRE_REST_CA_FILE",
)

# Credentials of the mocked REST client (the ``rest`` fixture).
PROJECT = "ea108133-d6b3-407c-9536-9fad8a929a6a"
TOKEN = "PTsecret-token-value"


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    """Run ``swsync ARGV`` in-process: ``(exit code, stdout, stderr)``."""
    from swsync import cli

    code = cli.main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def in_thread(fn, *args, **kw) -> Future:  # type: ignore[no-untyped-def]
    """Run ``fn`` on a plain thread; the Future carries its outcome."""
    fut: Future = Future()

    def run() -> None:
        try:
            fut.set_result(fn(*args, **kw))
        except BaseException as exc:
            fut.set_exception(exc)

    threading.Thread(target=run, name="test-caller", daemon=True).start()
    return fut
