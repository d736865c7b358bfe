"""examples/django_project: the commands its README documents, run for real:
``swsync emulator``, ``manage.py runserver`` and ``send_demo.py``, each a subprocess."""

from __future__ import annotations

import os
import queue
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from .webhook_servers import free_port, wait_for_port

PROJECT = Path(__file__).resolve().parent.parent / "examples" / "django_project"


def _stop(proc: subprocess.Popen[str]) -> None:
    if proc.poll() is None:
        proc.terminate()
    try:
        proc.wait(timeout=15)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(timeout=15)


@pytest.fixture
def emulator_env() -> Iterator[dict[str, str]]:
    """``swsync emulator --port 0``; yields the variables from its ``export`` lines."""
    proc = subprocess.Popen([sys.executable, "-m", "swsync", "emulator", "--port", "0",
                             "--state-delay", "0"],
                            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    lines: queue.Queue[str] = queue.Queue()
    reader = threading.Thread(target=lambda: [lines.put(line) for line in proc.stdout or ()],
                              name="test-emulator-stdout", daemon=True)
    reader.start()
    env: dict[str, str] = {}
    try:
        while "SIGNALWIRE_SIGNING_KEY" not in env:
            line = lines.get(timeout=30)
            assert line.startswith("export SIGNALWIRE_"), line
            name, _, value = line[len("export "):].strip().partition("=")
            env[name] = value
        yield env
    finally:
        _stop(proc)
        reader.join(timeout=15)


@pytest.mark.timeout(120)
def test_documented_commands_against_swsync_emulator(emulator_env: dict[str, str], tmp_path: Path) -> None:
    env = {**os.environ, **emulator_env, "OPT_OUTS": str(tmp_path / "optouts.db")}
    port = free_port()
    log_path = tmp_path / "runserver.log"
    with open(log_path, "w") as log:
        server = subprocess.Popen(
            [sys.executable, str(PROJECT / "manage.py"), "runserver", "--noreload", f"127.0.0.1:{port}"],
            env=env, stdout=log, stderr=subprocess.STDOUT, text=True,
        )
    try:
        wait_for_port(port, server)
        demo = subprocess.run([sys.executable, str(PROJECT / "send_demo.py"), f"http://127.0.0.1:{port}"],
                              env=env, capture_output=True, text=True, timeout=60)
        assert demo.returncode == 0, demo.stdout + demo.stderr
        out = demo.stdout
        sid = out.split()[1].rstrip(";")
        assert "inbound 'hello' -> 200" in out and "Thanks, we got: hello" in out
        assert "inbound 'STOP' -> 200 <?xml version=\"1.0\" encoding=\"UTF-8\"?><Response />" in out
        assert "refused: not sent: +15557650002 opted out" in out
        # The emulator's signed status callbacks reached the app, up to the last one.
        deadline = time.monotonic() + 30
        while f"status {sid} delivered" not in log_path.read_text():
            assert time.monotonic() < deadline, log_path.read_text()
            assert server.poll() is None, log_path.read_text()
            time.sleep(0.1)  # the subprocess's log is the only signal it gives
        text = log_path.read_text()
        for state in ("queued", "sent", "delivered"):
            assert f"status {sid} {state}" in text
        assert "+15557650002 opted out" in text and "refused webhook" not in text
    finally:
        _stop(server)
