"""Proof that the emulator speaks the real RELAY protocol: SignalWire's own SDK runs against it.

The official ``signalwire-sdk`` (asyncio) is installed with ``pip install --target``
into a temporary directory and run in a subprocess against the emulator over TLS
(the official client only speaks ``wss://``; a test CA made with ``trustme`` is
passed in ``SIGNALWIRE_RELAY_CA_FILE``). The same scenario then runs with swsync's
own ``RelayClient`` against the same kind of emulator.

The scenario: connect with a context, send a message and wait until it is
delivered (seeing every state change), the same on the named context it receives
(the emulator routes state events by context, as SignalWire does; without a context
the official client sends on its protocol), send one that ends ``undelivered`` (with
its reason), send one the server refuses (code 422), and receive an inbound
message the test injects once the client says it is ready. Afterwards every
event the emulator sent must have been ACKed.

Why ``state_delay=0.2`` and not 0: the official client registers a sent message
only after its ``send_message`` coroutine resumes, which happens after the
receive loop has handled whatever frames were already buffered. State events
that arrive in the same read as the ``messaging.send`` result are dropped
(docs/design.md, "Measurements": every ``wait()`` timed out with no delay). A gap
between the result and the first state event lets it register first; 0.2 s
rather than 0.05 s keeps that true when a loaded machine stalls the client.
swsync's client has no such race and is also run with ``state_delay=0``.
"""

from __future__ import annotations

import json
import os
import queue
import shutil
import subprocess
import sys
import tempfile
import textwrap
import threading
from pathlib import Path
from typing import Any

import pytest

from swsync.emulator import REJECTED_NUMBER, UNDELIVERED_NUMBER, Emulator

from ..helpers import emulator_environ, stop_process

SDK = "signalwire-sdk==3.7.5"
TO, FROM = "+15551234567", "+15559876543"
CONTEXT = "office"
STATE_DELAY = 0.2  # see the module docstring

OFFICIAL_SCRIPT = textwrap.dedent(
    """
    import asyncio, json, os, sys

    from signalwire.relay.client import RelayClient, RelayError

    TO, FROM, CONTEXT, UNDELIVERED, REJECTED = sys.argv[1:6]


    def report(**fields):
        print("@@ " + json.dumps(fields), flush=True)


    async def send_and_wait(client, to, body, tags=None, context=None):
        message = await client.send_message(to_number=to, from_number=FROM, body=body, tags=tags,
                                            context=context)
        seen = []
        message.on(lambda event: seen.append(event.params.get("message_state")))
        event = await message.wait(timeout=15)
        return message, event, seen


    async def main():
        # Project, token and space (host:port) come from SIGNALWIRE_* variables.
        client = RelayClient(contexts=[CONTEXT])
        inbound = asyncio.get_running_loop().create_future()

        @client.on_message
        async def on_message(message):
            if not inbound.done():
                inbound.set_result(message)

        await client.connect()
        message, event, seen = await send_and_wait(client, TO, "interop hello", ["interop"])
        report(step="delivered", message_id=message.message_id, state=message.state,
               event_state=event.params.get("message_state"), seen=seen)
        # A named context the client receives: its state events are routed to it.
        message, event, seen = await send_and_wait(client, TO, "on a named context", context=CONTEXT)
        report(step="named", message_id=message.message_id, state=message.state,
               context=message.context, seen=seen)
        message, event, seen = await send_and_wait(client, UNDELIVERED, "to a blocked number")
        report(step="undelivered", message_id=message.message_id, state=message.state,
               reason=message.reason, seen=seen)
        try:
            await client.send_message(to_number=REJECTED, from_number=FROM, body="refused")
        except RelayError as exc:
            report(step="rejected", code=exc.code)
        else:
            report(step="rejected", code=None)
        report(step="ready")
        received = await asyncio.wait_for(inbound, 15)
        report(step="inbound", message_id=received.message_id, body=received.body,
               from_number=received.from_number, to_number=received.to_number,
               context=received.context, state=received.state)
        await client.disconnect()


    asyncio.run(main())
    """
)


# ---------------------------------------------------------------------- fixtures


def _install_sdk(target: Path) -> None:
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "install",
            "--quiet",
            "--disable-pip-version-check",
            "--no-input",
            "--target",
            str(target),
            SDK,
        ],
        capture_output=True,
        text=True,
        timeout=180,
    )
    if proc.returncode != 0:
        lines = [line for line in proc.stderr.splitlines() if line.strip() and "WARNING" not in line]
        why = lines[-1] if lines else f"exit status {proc.returncode}"
        pytest.fail(f"could not install {SDK} with pip: {why}")


@pytest.fixture(scope="session")
def official_sdk() -> Path:
    """A directory holding ``signalwire-sdk`` 3.7.5 and its dependencies (for PYTHONPATH).

    Installed once into the system temp directory and reused by later runs
    (``SWSYNC_INTEROP_SDK_DIR`` may point at an existing install instead).
    """
    given = os.environ.get("SWSYNC_INTEROP_SDK_DIR")
    if given:
        return Path(given)
    final = Path(tempfile.gettempdir()) / "swsync-interop-signalwire-sdk-3.7.5"
    if (final / ".complete").exists():
        return final
    work = Path(tempfile.mkdtemp(prefix="swsync-interop-", dir=tempfile.gettempdir()))
    try:
        _install_sdk(work)
    except BaseException:
        shutil.rmtree(work, ignore_errors=True)
        raise
    if not (work / "signalwire" / "relay" / "client.py").exists():
        shutil.rmtree(work, ignore_errors=True)
        pytest.fail(f"pip installed {SDK} but signalwire/relay/client.py is missing")
    (work / ".complete").touch()
    try:
        shutil.rmtree(final, ignore_errors=True)
        work.rename(final)
    except OSError:  # another run won the race: use either copy
        return final if (final / ".complete").exists() else work
    return final


def assert_progress(seen: list[str], final: str) -> None:
    """``seen`` is the tail of queued -> initiated -> sent -> ``final``, in order, ending in ``final``.

    With STATE_DELAY between states a handler registered right after the send sees
    all three; a badly stalled machine may make it miss the first, never reorder.
    """
    assert seen and seen == ["initiated", "sent", final][-len(seen) :]


def _all_events_acked(emu: Emulator) -> None:
    def acked() -> bool:
        stats = emu.stats
        return stats.events_sent > 0 and stats.acks_received == stats.events_sent

    emu.wait_until(acked, timeout=10)


# ------------------------------------------------------------------------- tests


@pytest.mark.parametrize("tls_emu", [STATE_DELAY], indirect=True, ids=["delay"])
def test_official_sdk_against_the_emulator(
    official_sdk: Path, tls_emu: Emulator, tls_files: dict[str, str], tmp_path: Path
) -> None:
    script = tmp_path / "official_client.py"
    script.write_text(OFFICIAL_SCRIPT, encoding="utf-8")
    env = emulator_environ(
        tls_emu,
        tls_emu.relay_url.removeprefix("wss://"),  # the SDK wants host:port
        PYTHONPATH=str(official_sdk),
        SIGNALWIRE_RELAY_CA_FILE=tls_files["ca"],
        SIGNALWIRE_LOG_MODE="stderr",
    )
    stderr_path = tmp_path / "stderr.txt"
    stderr_file = stderr_path.open("w", encoding="utf-8")
    proc = subprocess.Popen(
        [sys.executable, str(script), TO, FROM, CONTEXT, UNDELIVERED_NUMBER, REJECTED_NUMBER],
        env=env,
        stdout=subprocess.PIPE,
        stderr=stderr_file,
        text=True,
        cwd=str(tmp_path),
    )
    lines: queue.SimpleQueue[str | None] = queue.SimpleQueue()
    assert proc.stdout is not None

    def pump() -> None:
        assert proc.stdout is not None
        for line in proc.stdout:
            lines.put(line)
        lines.put(None)

    reader = threading.Thread(target=pump, name="interop-stdout", daemon=True)
    reader.start()
    try:
        reports: dict[str, dict[str, Any]] = {}

        def next_report() -> dict[str, Any]:
            while True:
                line = lines.get(timeout=60)
                if line is None:
                    code = proc.wait(10)
                    stderr = stderr_path.read_text(encoding="utf-8")
                    pytest.fail(f"official client exited early ({code}):\n{stderr[-3000:]}")
                if line.startswith("@@ "):
                    report: dict[str, Any] = json.loads(line[3:])
                    reports[report["step"]] = report
                    return report

        while next_report()["step"] != "ready":
            pass
        tls_emu.inject_inbound(to_number=FROM, from_number=TO, body="inbound over wss", context=CONTEXT)
        assert next_report()["step"] == "inbound"
        assert proc.wait(timeout=60) == 0, stderr_path.read_text(encoding="utf-8")[-3000:]
    finally:
        stop_process(proc)
        reader.join(timeout=10)
        stderr_file.close()

    delivered = reports["delivered"]
    assert delivered["state"] == delivered["event_state"] == "delivered"
    assert_progress(delivered["seen"], "delivered")
    stored = tls_emu.get_message(delivered["message_id"])
    assert stored is not None and stored["history"] == ["queued", "initiated", "sent", "delivered"]
    assert (stored["status"], stored["body"], stored["tags"], stored["origin"]) == (
        "delivered",
        "interop hello",
        ["interop"],
        "relay",
    )

    named = reports["named"]
    assert (named["state"], named["context"]) == ("delivered", CONTEXT)
    assert_progress(named["seen"], "delivered")
    stored = tls_emu.get_message(named["message_id"])
    assert stored is not None and stored["context"] == CONTEXT

    undelivered = reports["undelivered"]
    assert (undelivered["state"], undelivered["reason"]) == ("undelivered", "carrier_blocked")
    assert_progress(undelivered["seen"], "undelivered")
    assert reports["rejected"]["code"] == 422

    inbound = reports["inbound"]
    assert (inbound["body"], inbound["from_number"], inbound["to_number"], inbound["context"], inbound["state"]) == (
        "inbound over wss",
        TO,
        FROM,
        CONTEXT,
        "received",
    )
    _all_events_acked(tls_emu)


@pytest.mark.parametrize("tls_emu", [STATE_DELAY, 0.0], indirect=True, ids=["delay", "no-delay"])
def test_swsync_client_same_scenario(tls_emu: Emulator, tls_files: dict[str, str]) -> None:
    from swsync import RelayClient, RelayError

    client = RelayClient(tls_emu.project, tls_emu.token, tls_emu.relay_url, contexts=[CONTEXT], ca_file=tls_files["ca"])
    inbox: queue.SimpleQueue[Any] = queue.SimpleQueue()
    client.on_message(inbox.put)
    with client:
        seen: list[str] = []
        message = client.send_message(TO, FROM, "interop hello", tags=["interop"])
        message.on(lambda event: seen.append(event.message_state))
        assert message.wait(timeout=15).message_state == "delivered"
        stored = tls_emu.get_message(message.message_id)
        assert stored is not None and stored["tags"] == ["interop"] and stored["status"] == "delivered"

        failed = client.send_message(UNDELIVERED_NUMBER, FROM, "to a blocked number")
        event = failed.wait(timeout=15)
        assert (event.message_state, event.reason, failed.reason) == (
            "undelivered",
            "carrier_blocked",
            "carrier_blocked",
        )
        with pytest.raises(RelayError) as refused:
            client.send_message(REJECTED_NUMBER, FROM, "refused")
        assert refused.value.code == 422

        tls_emu.inject_inbound(to_number=FROM, from_number=TO, body="inbound over wss", context=CONTEXT)
        received = inbox.get(timeout=15)
        assert (received.body, received.from_number, received.to_number, received.context, received.state) == (
            "inbound over wss",
            TO,
            FROM,
            CONTEXT,
            "received",
        )
        _all_events_acked(tls_emu)
    # Handlers run on the dispatch thread, possibly after wait() returned; leaving
    # "with" runs every queued callback first.
    if tls_emu.state_delay:
        assert_progress(seen, "delivered")
