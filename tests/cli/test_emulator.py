"""The emulator from the shell: one option table for both entry points, stable credentials, inject.

``swsync emulator`` and ``python -m swsync.emulator`` share their options; the
credentials a run prints keep working after a restart; ``swsync emulator inject``
and ``POST /_emulator/api/inbound`` hand a running emulator an inbound message.
"""

from __future__ import annotations

import argparse
import json
import queue
import signal
import subprocess
import sys
from typing import Any

import pytest
import requests

from swsync import RelayClient, cli
from swsync.cli import _emulator_server as emulator_server
from swsync.cli import emulator as emulator_command
from swsync.emulator import Emulator
from swsync.emulator import __main__ as standalone
from swsync.emulator.control import PREFIX

from ..helpers import Hook, Lines, clean_environ, run, stop_process
from ..support.ports import free_port
from ..support.webhook_servers import sign_form

TO, FROM = "+15551234567", "+15559876543"
SHORT = "12345"
EXPORTED = ["SIGNALWIRE_PROJECT_ID", "SIGNALWIRE_API_TOKEN", "SIGNALWIRE_SPACE", "SIGNALWIRE_SIGNING_KEY"]


# Each test starts without the host's SIGNALWIRE_* variables.
pytestmark = pytest.mark.usefixtures("clean_signalwire_env")


@pytest.fixture
def env(emu: Emulator, monkeypatch: pytest.MonkeyPatch) -> Emulator:
    """The variables ``swsync emulator`` prints, pointing at ``emu``."""
    monkeypatch.setenv("SIGNALWIRE_PROJECT_ID", emu.project)
    monkeypatch.setenv("SIGNALWIRE_API_TOKEN", emu.token)
    monkeypatch.setenv("SIGNALWIRE_SPACE", emu.rest_url)
    return emu


def options(parser: argparse.ArgumentParser) -> dict[str, Any]:
    return {o: a.default for a in parser._actions for o in a.option_strings}


# -- one option table ---------------------------------------------------------------------------------------------


def test_both_entry_points_share_one_option_table() -> None:
    alone = options(standalone.build_parser())
    swsync = cli.build_parser("emulator")._subparsers._group_actions[0].choices["emulator"]  # type: ignore[union-attr]
    sub = options(swsync)
    server = {
        "--host",
        "--port",
        "--state-delay",
        "--certfile",
        "--keyfile",
        "--signing-key",
        "--inbound-webhook-url",
        "--ping-interval",
        "--session-ttl",
        "--project",
        "--token",
    }
    assert server <= set(alone) and server <= set(sub)
    assert set(alone) - set(sub) == {"-v", "--verbose"}  # swsync has --debug instead
    assert set(sub) - set(alone) == {"--space", "--debug"}  # swsync's global options
    for name in server - {"--port", "--project", "--token"}:
        assert alone[name] == sub[name], name
    assert (alone["--port"], sub["--port"]) == (0, 8765)


def test_credentials_come_from_options_then_a_local_environment() -> None:
    parser = standalone.build_parser()
    env = {"SIGNALWIRE_PROJECT_ID": "p-env", "SIGNALWIRE_API_TOKEN": "t-env", "SIGNALWIRE_SIGNING_KEY": "k-env"}
    kwargs, note = emulator_server.emulator_kwargs(parser.parse_args([]), env)
    assert (kwargs["project"], kwargs["token"], kwargs["signing_key"], note) == ("p-env", "t-env", "k-env", None)
    local = {**env, "SIGNALWIRE_SPACE": "http://127.0.0.1:8765"}
    kwargs, note = emulator_server.emulator_kwargs(parser.parse_args(["--token", "t-arg"]), local)
    assert (kwargs["project"], kwargs["token"], kwargs["signing_key"], note) == ("p-env", "t-arg", "k-env", None)
    real = {**env, "SIGNALWIRE_SPACE": "example.signalwire.com"}
    kwargs, note = emulator_server.emulator_kwargs(parser.parse_args(["--signing-key", "k-arg"]), real)
    assert (kwargs["project"], kwargs["token"], kwargs["signing_key"]) == (None, None, "k-arg")
    assert note is not None and "SIGNALWIRE_PROJECT_ID, SIGNALWIRE_API_TOKEN" in note
    assert "t-env" not in note and "k-env" not in note
    kwargs, _ = emulator_server.emulator_kwargs(
        parser.parse_args(
            [
                "--inbound-webhook-url",
                "http://127.0.0.1:1/in",
                "--state-delay",
                "0",
                "--ping-interval",
                "2",
                "--session-ttl",
                "5",
            ]
        ),
        {},
    )
    assert (kwargs["inbound_webhook_url"], kwargs["state_delay"], kwargs["ping_interval"], kwargs["session_ttl"]) == (
        "http://127.0.0.1:1/in",
        0.0,
        2.0,
        5.0,
    )
    Emulator(**kwargs)  # every keyword is one the constructor takes


def start(args: list[str], environ: dict[str, str]) -> tuple[subprocess.Popen[str], Lines, dict[str, str]]:
    """Start ``swsync emulator ARGS``; return it, its output and the variables it exported."""
    proc = subprocess.Popen(
        [sys.executable, "-m", "swsync", "emulator", "--port", "0", *args],
        env=dict(environ, PYTHONUNBUFFERED="1"),
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    lines = Lines(proc.stdout)
    exports: dict[str, str] = {}
    while len(exports) < len(EXPORTED):
        line = lines.next()
        assert line.startswith("export "), line or "the emulator exited early"
        name, _, value = line[len("export ") :].strip().partition("=")
        exports[name] = value
    assert list(exports) == EXPORTED
    return proc, lines, exports


def stop(proc: subprocess.Popen[str], lines: Lines) -> int:
    try:
        proc.send_signal(signal.SIGINT)
        return proc.wait(timeout=20)
    finally:
        stop_process(proc)
        lines.close()


@pytest.mark.timeout(120)
def test_the_shell_workflow_options_inject_and_a_restart(
    hook: Hook,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    base = clean_environ()
    url = f"{hook.url}/sms"
    proc, lines, first = start(
        ["--state-delay", "0", "--inbound-webhook-url", url, "--signing-key", "PSK_fixed"],
        dict(base, SIGNALWIRE_PROJECT_ID="proj-env"),
    )
    try:
        assert first["SIGNALWIRE_PROJECT_ID"] == "proj-env" and first["SIGNALWIRE_SIGNING_KEY"] == "PSK_fixed"
        for name, value in first.items():
            monkeypatch.setenv(name, value)
        code, out, err = run(capsys, "emulator", "inject", "--to", SHORT, "--from", TO, "--body", "from the shell")
        assert code == 0, err
        sid = out.strip()
        assert "no RELAY client receives context 'default'" in err
        path, headers, form = hook.next()
        assert (path, form["MessageSid"], form["To"], form["From"], form["Body"]) == (
            "/sms",
            sid,
            SHORT,
            TO,
            "from the shell",
        )
        assert headers["X-SignalWire-Signature"] == sign_form("PSK_fixed", url, form)
    finally:
        assert stop(proc, lines) == 0

    # Restarted with the variables the first run exported: the same credentials and key.
    proc, lines, second = start(["--state-delay", "0"], {**base, **first})
    try:
        assert {k: second[k] for k in EXPORTED if k != "SIGNALWIRE_SPACE"} == {
            k: first[k] for k in EXPORTED if k != "SIGNALWIRE_SPACE"
        }
        monkeypatch.setenv("SIGNALWIRE_SPACE", second["SIGNALWIRE_SPACE"])  # port 0: a new port
        code, _, err = run(capsys, "send", "--to", TO, "--from", SHORT, "--body", "after a restart")
        assert code == 0, err
    finally:
        assert stop(proc, lines) == 0


# -- inject against a running emulator ----------------------------------------------------------------------------


def test_inject_reaches_a_listening_relay_client(env: Emulator, capsys: pytest.CaptureFixture[str]) -> None:
    inbox: queue.SimpleQueue[Any] = queue.SimpleQueue()
    with RelayClient(env.project, env.token, env.relay_url, contexts=["office"]) as client:
        client.on_message(inbox.put)
        code, out, err = run(
            capsys,
            "emulator",
            "inject",
            "--to",
            SHORT,
            "--from",
            TO,
            "--body",
            "STOP",
            "--media",
            "https://e.com/a.png",
            "--context",
            "office",
            "--json",
        )
        assert code == 0, err
        answer = json.loads(out)
        assert answer == {
            "sid": answer["sid"],
            "to": SHORT,
            "from": TO,
            "body": "STOP",
            "media": ["https://e.com/a.png"],
            "context": "office",
            "sessions": 1,
        }
        message = inbox.get(timeout=10)
    assert (message.message_id, message.to_number, message.from_number, message.body, message.context) == (
        answer["sid"],
        SHORT,
        TO,
        "STOP",
        "office",
    )
    stored = env.get_message(answer["sid"])
    assert stored is not None and stored["direction"] == "inbound" and stored["status"] == "received"


def test_inject_against_a_ws_space_url(
    env: Emulator, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("SIGNALWIRE_SPACE", env.relay_url)  # ws://: the same server
    code, out, err = run(capsys, "emulator", "inject", "--to", TO, "--from", FROM, "--body", "x")
    assert code == 0, err
    assert env.get_message(out.strip()) is not None


@pytest.mark.parametrize(
    ("argv", "code", "text"),
    [
        (["--to", "12", "--from", FROM, "--body", "x"], cli.EXIT_USAGE, "short code"),
        (["--to", TO, "--from", "+1 555", "--body", "x"], cli.EXIT_USAGE, "short code"),
        (["--to", TO, "--from", FROM], cli.EXIT_USAGE, "body"),
        (["--to", TO, "--from", FROM, "--body", "x", "--token", "wrong"], cli.EXIT_CONNECTION, "authentication"),
        (
            ["--to", TO, "--from", FROM, "--body", "x", "--space", "example.signalwire.com"],
            cli.EXIT_USAGE,
            "must be its URL",
        ),
        (
            ["--to", TO, "--from", FROM, "--body", "x", "--space", f"http://127.0.0.1:{free_port()}"],
            cli.EXIT_CONNECTION,
            "cannot reach the emulator",
        ),
    ],
)
def test_inject_errors(
    env: Emulator, capsys: pytest.CaptureFixture[str], argv: list[str], code: int, text: str
) -> None:
    got, out, err = run(capsys, "emulator", "inject", *argv)
    assert (got, out) == (code, "")
    assert err.startswith("swsync: error: ") and text in err and env.token not in err
    assert len(env.store) == 0


def test_inject_needs_the_space(capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = run(capsys, "emulator", "inject", "--to", TO, "--from", FROM, "--body", "x")
    assert code == cli.EXIT_USAGE and "SIGNALWIRE_SPACE" in err


def test_inject_on_loopback_needs_only_the_space(
    emu: Emulator, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("SIGNALWIRE_SPACE", emu.rest_url)
    code, out, err = run(capsys, "emulator", "inject", "--to", TO, "--from", FROM, "--body", "x")
    assert code == 0, err
    assert emu.get_message(out.strip()) is not None


def test_control_api_inbound(emu: Emulator) -> None:
    url = f"{emu.rest_url}{PREFIX}/inbound"
    assert PREFIX == emulator_command.CONTROL_PREFIX
    auth = (emu.project, emu.token)
    r = requests.post(url, json={"to": SHORT, "from": TO, "body": "hi"}, auth=auth, timeout=10)
    assert r.status_code == 201 and r.json()["context"] == "default" and r.json()["sessions"] == 0
    assert emu.get_message(r.json()["sid"])["body"] == "hi"  # type: ignore[index]
    denied = requests.post(url, json={"to": SHORT, "from": TO, "body": "hi"}, auth=(emu.project, "x"), timeout=10)
    assert denied.status_code == 401 and denied.headers["WWW-Authenticate"].startswith("Basic")
    # On 127.0.0.1 the control API, like the inbox's, is open to this machine without
    # credentials; bound elsewhere it needs them (tests/emulator/inbox/test_api.py).
    assert requests.post(url, json={"to": SHORT, "from": TO, "body": "hi"}, timeout=10).status_code == 201
    for bad in (
        {"to": "12", "from": TO, "body": "x"},
        {"to": TO, "from": TO},
        {"to": TO, "from": TO, "body": "x", "media": "https://e.com/a.png"},
        {"to": TO, "from": TO, "body": "x", "context": ""},
        {"to": TO, "from": TO, "body": "x", "extra": 1},
        ["not", "an", "object"],
    ):
        r = requests.post(url, json=bad, auth=auth, timeout=10)
        assert r.status_code == 400 and r.json()["status"] == 400 and r.json()["message"], bad
    r = requests.post(url, data="{not json", auth=auth, timeout=10)
    assert r.status_code == 400
    assert len(emu.store) == 2


def test_help_text_claims_only_what_is_true(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        cli.main(["emulator", "--help"])
    out = capsys.readouterr().out
    assert "SIGNALWIRE_SIGNING_KEY" in out and "inject" in out and "--inbound-webhook-url" in out
    assert "RELAY_URL" not in out
