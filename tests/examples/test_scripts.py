"""Every example in examples/ (but flask_app.py), run unchanged against a local emulator.

Each runs in its own interpreter with only the SIGNALWIRE_* variables pointing at
the emulator this test started, as a user would run it.
"""

from __future__ import annotations

import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from swsync.emulator import REJECTED_NUMBER, UNDELIVERED_NUMBER

from ..helpers import clean_environ, emulator_environ, stop_process

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"


def run_example(emu: Any, name: str, *args: str, space: str | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, str(EXAMPLES / name), *args],
        env=emulator_environ(emu, space),
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_every_example_is_covered() -> None:
    tested = {"send_and_wait.py", "fire_and_forget.py", "auto_responder.py", "cron_batch.py", "rest_list_redact.py"}
    present = {p.name for p in EXAMPLES.glob("*.py")} - {"flask_app.py"}
    assert present == tested


def test_send_and_wait(emu: Any) -> None:
    proc = run_example(emu, "send_and_wait.py")
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.splitlines()[-1] == "final state: delivered"
    proc = run_example(emu, "send_and_wait.py", "--to", UNDELIVERED_NUMBER)
    assert proc.returncode == 1
    assert "final state: undelivered (carrier_blocked)" in proc.stdout


def test_fire_and_forget(emu: Any) -> None:
    proc = run_example(emu, "fire_and_forget.py", "--count", "25")
    assert proc.returncode == 0, proc.stderr
    assert "delivered: 25, not delivered: 0, no outcome yet: 0" in proc.stdout
    assert emu.stats.accepted_sends == 25
    proc = run_example(emu, "fire_and_forget.py", "--count", "3", "--to", UNDELIVERED_NUMBER)
    assert proc.returncode == 1
    assert "delivered: 0, not delivered: 3" in proc.stdout


def test_cron_batch_exit_code_reflects_failures(emu: Any) -> None:
    proc = run_example(emu, "cron_batch.py")
    assert proc.returncode == 0, proc.stderr
    assert "5 of 5 delivered" in proc.stdout
    proc = run_example(
        emu,
        "cron_batch.py",
        "--to",
        "+15551230001",
        "--to",
        UNDELIVERED_NUMBER,
        "--to",
        REJECTED_NUMBER,
        "--to",
        "not-a-number",
    )
    assert proc.returncode == 1
    assert "1 of 4 delivered" in proc.stdout
    assert f"{UNDELIVERED_NUMBER}: undelivered (carrier_blocked)" in proc.stderr
    assert f"{REJECTED_NUMBER}: error:" in proc.stderr and "not-a-number: invalid" in proc.stderr


def test_cron_batch_reads_a_file(emu: Any, tmp_path: Path) -> None:
    numbers = tmp_path / "numbers.txt"
    numbers.write_text("# team\n+15551230007\n\n+15551230008\n", encoding="utf-8")
    proc = run_example(emu, "cron_batch.py", "--file", str(numbers))
    assert proc.returncode == 0, proc.stderr
    assert "2 of 2 delivered" in proc.stdout


def test_rest_list_redact(emu: Any) -> None:
    finished = emu.add_messages(3, body="secret {i}")
    proc = run_example(emu, "rest_list_redact.py", "--dry-run", space=emu.rest_url)
    assert proc.returncode == 0, proc.stderr
    assert all(sid in proc.stdout for sid in finished)
    assert emu.get_message(finished[0])["body"] == "secret 0"
    proc = run_example(emu, "rest_list_redact.py", space=emu.rest_url)
    assert proc.returncode == 0, proc.stderr
    assert all(emu.get_message(sid)["body"] == "" for sid in finished)
    assert proc.stdout.count("redacted ") == 3


def test_auto_responder_replies_and_stops_on_sigterm(emu: Any) -> None:
    ours, sender = "+15550001111", "+15557654321"
    proc = subprocess.Popen(
        [sys.executable, str(EXAMPLES / "auto_responder.py")],
        env=emulator_environ(emu),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        emu.wait_for_clients(1, timeout=30)
        emu.inject_inbound(to_number=ours, from_number=sender, body="is this thing on?", context="default")
        emu.wait_until(lambda: emu.stats.accepted_sends >= 1, timeout=30)
        replies = [
            m
            for m in (emu.get_message(sid) for sid in _sids_to(emu, sender))
            if m is not None and m["origin"] == "relay"
        ]
        assert len(replies) == 1
        assert replies[0]["from"] == ours
        assert replies[0]["body"] == "Thanks! You said: is this thing on?"
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=30) == 0
        assert proc.stderr is not None
        log = proc.stderr.read()
        assert "from +15557654321: 'is this thing on?'" in log and "stopped" in log
    finally:
        stop_process(proc)


def _sids_to(emu: Any, number: str) -> list[str]:
    from swsync.rest import RestClient

    with RestClient(emu.project, emu.token, emu.rest_url) as rest:
        return [r.sid for r in rest.messages.list(to=number)]


@pytest.mark.parametrize("name", ["send_and_wait.py", "rest_list_redact.py"])
def test_examples_report_missing_credentials(name: str) -> None:
    environ = clean_environ()
    proc = subprocess.run(
        [sys.executable, str(EXAMPLES / name)], env=environ, capture_output=True, text=True, timeout=60
    )
    assert proc.returncode != 0
    assert "SIGNALWIRE_PROJECT_ID" in proc.stderr
