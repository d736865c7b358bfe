"""examples/django_project: the commands its README documents, run for real, each a
subprocess: ``swsync emulator --inbound-webhook-url``, ``manage.py runserver``,
``swsync emulator inject`` and ``send.py``."""

from __future__ import annotations

import queue
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from swsync import RestClient

from ..helpers import clean_environ, stop_process
from ..support.ports import free_port
from ..support.webhook_servers import wait_for_port

PROJECT = Path(__file__).resolve().parents[2] / "examples" / "django_project"
OURS = "+15551230001"
CUSTOMER = "+15557650002"


@pytest.fixture
def app_port() -> int:
    return free_port()


@pytest.fixture
def emulator_env(app_port: int) -> Iterator[dict[str, str]]:
    """``swsync emulator`` posting inbound messages to the app; yields its exported variables."""
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "swsync",
            "emulator",
            "--port",
            "0",
            "--state-delay",
            "0",
            "--inbound-webhook-url",
            f"http://127.0.0.1:{app_port}/signalwire/sms",
        ],
        env=clean_environ(),
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    lines: queue.Queue[str] = queue.Queue()
    reader = threading.Thread(
        target=lambda: [lines.put(line) for line in proc.stdout or ()], name="test-emulator-stdout", daemon=True
    )
    reader.start()
    env: dict[str, str] = {}
    try:
        while "SIGNALWIRE_SIGNING_KEY" not in env:
            line = lines.get(timeout=30)
            if not line.startswith("export SIGNALWIRE_"):
                continue
            name, _, value = line[len("export ") :].strip().partition("=")
            env[name] = value
        yield env
    finally:
        stop_process(proc, grace=15, timeout=15)
        reader.join(timeout=15)


class Log:
    """The runserver's output file; ``wait_for`` blocks until a text appears in it."""

    def __init__(self, path: Path, proc: subprocess.Popen[str]) -> None:
        self.path = path
        self.proc = proc

    def wait_for(self, text: str, timeout: float = 30.0) -> None:
        deadline = time.monotonic() + timeout
        while text not in self.path.read_text():
            assert time.monotonic() < deadline, f"{text!r} not in:\n{self.path.read_text()}"
            assert self.proc.poll() is None, self.path.read_text()
            time.sleep(0.05)  # sleep-ok: a subprocess's log is the only signal it gives


def _run(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, *args], env=env, capture_output=True, text=True, timeout=60)


@pytest.mark.timeout(120)
def test_documented_commands_against_swsync_emulator(
    emulator_env: dict[str, str], app_port: int, tmp_path: Path
) -> None:
    env = {**clean_environ(), **emulator_env, "OPT_OUTS": str(tmp_path / "optouts.db")}
    app = f"http://127.0.0.1:{app_port}"
    with open(tmp_path / "runserver.log", "w") as out:
        server = subprocess.Popen(
            [sys.executable, str(PROJECT / "manage.py"), "runserver", "--noreload", f"127.0.0.1:{app_port}"],
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
            text=True,
        )
    log = Log(tmp_path / "runserver.log", server)
    inject = ["-m", "swsync", "emulator", "inject", "--to", OURS, "--from", CUSTOMER, "--body"]
    try:
        wait_for_port(app_port, server)
        hello = _run(env, *inject, "hello")
        assert hello.returncode == 0, hello.stderr
        log.wait_for(f"inbound {hello.stdout.strip()} from {CUSTOMER}: 'hello'")

        sent = _run(env, str(PROJECT / "send.py"), CUSTOMER, "Your order shipped", app)
        assert sent.returncode == 0 and sent.stdout.startswith("sent "), sent.stdout + sent.stderr
        sid = sent.stdout.split()[1]
        log.wait_for(f"status {sid} delivered")

        assert _run(env, *inject, "STOP").returncode == 0
        log.wait_for(f"swsync: {CUSTOMER} opted out")
        refused = _run(env, str(PROJECT / "send.py"), CUSTOMER, "20% off today", app)
        assert refused.returncode == 3, refused.stdout + refused.stderr
        assert refused.stdout.startswith(f"refused: not sent: {CUSTOMER} opted out")

        assert _run(env, *inject, "START").returncode == 0
        log.wait_for(f"swsync: {CUSTOMER} opted back in")
        assert _run(env, str(PROJECT / "send.py"), CUSTOMER, "welcome back", app).returncode == 0

        text = log.path.read_text()
        for state in ("queued", "sent", "delivered"):
            assert f"status {sid} {state}" in text
        assert "refused webhook" not in text and "'STOP'" not in text  # STOP never reached the view
        with RestClient(
            env["SIGNALWIRE_PROJECT_ID"], env["SIGNALWIRE_API_TOKEN"], space=env["SIGNALWIRE_SPACE"]
        ) as rest:
            records = rest.messages.list(to=CUSTOMER)
        replies = [m.body for m in records if m.direction == "outbound-reply"]
        # The app's cXML replies to hello and START were sent by the emulator; none to STOP.
        assert sorted(replies) == ["Thanks, we got: START", "Thanks, we got: hello"]
        assert "20% off today" not in [m.body for m in records]
    finally:
        stop_process(server, grace=15, timeout=15)
