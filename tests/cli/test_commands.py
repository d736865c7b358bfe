"""The ``swsync`` command line, driven through ``main([...])`` against a real emulator."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
from email.utils import parsedate_to_datetime
from typing import Any

import pytest

from swsync import cli
from swsync.emulator import FAILED_NUMBER, NO_DLR_NUMBER, REJECTED_NUMBER, UNDELIVERED_NUMBER

from ..helpers import Lines, clean_environ, credentials, emulator_environ, run, stop_process
from ..support.ports import free_port

TO, FROM = "+15551234567", "+15559876543"
# Each test starts without the host's SIGNALWIRE_* variables; ``env`` (conftest) sets them.
pytestmark = pytest.mark.usefixtures("clean_signalwire_env")


def json_lines(text: str) -> list[dict[str, Any]]:
    return [json.loads(line) for line in text.splitlines() if line.strip()]


def assert_progression(states: list[str]) -> None:
    """queued first, delivered last, each state once and in order (a fast one may be skipped)."""
    order = ["queued", "initiated", "sent", "delivered"]
    assert states[0] == "queued" and states[-1] == "delivered"
    assert states == [s for s in order if s in states]


# ------------------------------------------------------------------------ send


def test_send_waits_until_delivered(env: Any, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = run(capsys, "send", "--to", TO, "--from", FROM, "--body", "hello")
    assert code == cli.EXIT_OK, err
    lines = out.splitlines()
    assert lines[0].split()[1] == "queued"
    assert lines[-1].split()[1] == "delivered"
    assert all(line.split()[0].endswith("s") for line in lines)  # elapsed time first
    assert err == ""
    message_id = lines[0].split("message ")[1].split()[0]
    stored = env.get_message(message_id)
    assert stored["body"] == "hello" and stored["to"] == TO and stored["status"] == "delivered"


def test_send_json_prints_one_object_per_state(capsys: pytest.CaptureFixture[str]) -> None:
    from swsync.emulator import Emulator

    with Emulator(state_delay=0.05) as slow:  # the intermediate states are usually seen too
        code, out, _ = run(
            capsys,
            *credentials(slow.relay_url, slow.project, slow.token),
            "send",
            "--to",
            TO,
            "--from",
            FROM,
            "--body",
            "hi",
            "--json",
            "--tag",
            "a",
            "--tag",
            "b",
        )
        events = json_lines(out)
        stored = slow.get_message(events[0]["message_id"])
    assert code == 0
    assert_progression([e["state"] for e in events])
    assert len({e["message_id"] for e in events}) == 1
    assert [e["elapsed"] for e in events] == sorted(e["elapsed"] for e in events)
    assert stored["tags"] == ["a", "b"]


@pytest.mark.parametrize(
    ("number", "state", "reason"),
    [(UNDELIVERED_NUMBER, "undelivered", "carrier_blocked"), (FAILED_NUMBER, "failed", "unreachable")],
)
def test_send_not_delivered_exits_1_with_reason(
    env: Any, capsys: pytest.CaptureFixture[str], number: str, state: str, reason: str
) -> None:
    code, out, err = run(capsys, "send", "--to", number, "--from", FROM, "--body", "x", "--json")
    assert code == cli.EXIT_NOT_DELIVERED
    last = json_lines(out)[-1]
    assert (last["state"], last["reason"]) == (state, reason)
    assert err.count("\n") == 1 and err.startswith("swsync: error: ")
    assert state in err and reason in err


def test_send_timeout_exits_3(env: Any, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = run(capsys, "send", "--to", NO_DLR_NUMBER, "--from", FROM, "--body", "x", "--timeout", "0.3")
    assert code == cli.EXIT_TIMEOUT
    assert "timed out after 0.3 s" in err and "last state: sent" in err
    assert err.count("\n") == 1


def test_send_refused_by_server_exits_1(env: Any, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = run(capsys, "send", "--to", REJECTED_NUMBER, "--from", FROM, "--body", "x")
    assert code == cli.EXIT_NOT_DELIVERED
    assert "refused" in err and "422" in err and "Traceback" not in err


def test_send_no_wait_exits_0_once_accepted(env: Any, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(capsys, "send", "--to", NO_DLR_NUMBER, "--from", FROM, "--body", "x", "--no-wait", "--json")
    assert code == 0
    (event,) = json_lines(out)
    assert event["state"] == "queued"
    assert env.wait_for_status(event["message_id"], "sent", timeout=5)["to"] == NO_DLR_NUMBER


def test_send_reads_body_from_stdin(
    env: Any, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    import io

    monkeypatch.setattr(sys, "stdin", io.StringIO("from a pipe\n"))
    code, out, _ = run(capsys, "send", "--to", TO, "--from", FROM, "--body", "-", "--json")
    assert code == 0
    assert env.get_message(json_lines(out)[0]["message_id"])["body"] == "from a pipe"


def test_send_via_rest(env: Any, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = run(
        capsys,
        "send",
        "--via",
        "rest",
        "--to",
        TO,
        "--from",
        FROM,
        "--body",
        "r",
        "--json",
        "--media",
        "https://example.com/a.png",
    )
    assert code == 0, err
    events = json_lines(out)
    assert events[-1]["state"] == "delivered"
    stored = env.get_message(events[0]["message_id"])
    assert stored["origin"] == "rest" and stored["media"] == ["https://example.com/a.png"]


def test_send_via_rest_not_delivered(env: Any, capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = run(capsys, "send", "--via", "rest", "--to", UNDELIVERED_NUMBER, "--from", FROM, "--body", "r")
    assert code == cli.EXIT_NOT_DELIVERED
    assert "undelivered" in err


def test_send_via_rest_timeout(env: Any, capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = run(
        capsys, "send", "--via", "rest", "--to", NO_DLR_NUMBER, "--from", FROM, "--body", "r", "--timeout", "0.3"
    )
    assert code == cli.EXIT_TIMEOUT
    assert "last status: sent" in err


@pytest.mark.parametrize(
    ("argv", "needle"),
    [
        (["send", "--to", "55", "--from", FROM, "--body", "x"], "E.164"),
        (["send", "--to", TO, "--from", FROM], "body or at least one media"),
        (["send", "--to", TO, "--from", FROM, "--body", "x", "--media", "ftp://x"], "http(s)"),
        (["send", "--via", "rest", "--tag", "t", "--to", TO, "--from", FROM, "--body", "x"], "RELAY options"),
    ],
)
def test_bad_arguments_exit_2_before_any_network(
    capsys: pytest.CaptureFixture[str], argv: list[str], needle: str
) -> None:
    # No credentials and no server: argument checks come first.
    code, out, err = run(capsys, *argv)
    assert code == cli.EXIT_USAGE
    assert needle in err and err.count("\n") == 1 and out == ""


@pytest.mark.parametrize(
    ("present", "missing"),
    # No space is fine over RELAY (relay.signalwire.com): the token is missing first.
    [
        ({}, "SIGNALWIRE_API_TOKEN"),
        ({"SIGNALWIRE_SPACE": "ws://127.0.0.1:1"}, "SIGNALWIRE_API_TOKEN"),
        ({"SIGNALWIRE_SPACE": "ws://127.0.0.1:1", "SIGNALWIRE_API_TOKEN": "t"}, "SIGNALWIRE_PROJECT_ID"),
    ],
)
def test_missing_credentials_exit_2_naming_the_variable(
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    present: dict[str, str],
    missing: str,
) -> None:
    for name, value in present.items():
        monkeypatch.setenv(name, value)
    code, _, err = run(capsys, "send", "--to", TO, "--from", FROM, "--body", "x")
    assert code == cli.EXIT_USAGE
    assert missing in err and err.startswith("swsync: error: missing ")


def test_argparse_errors_exit_2(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exc:
        cli.main(["send", "--to", TO])
    assert exc.value.code == 2
    assert "swsync: error: the following arguments are required: --from" in capsys.readouterr().err
    with pytest.raises(SystemExit) as exc:
        cli.main(["send", "--to", TO, "--from", FROM, "--body", "x", "--timeout", "-1"])
    assert exc.value.code == 2


def test_help_documents_exit_codes(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exc:
        cli.main(["send", "--help"])
    assert exc.value.code == 0
    out = capsys.readouterr().out
    for line in ("0  delivered", "1  undelivered, failed", "2  usage", "3  timed out", "4  authentication"):
        assert line in out


def test_bad_token_exits_4(env: Any, capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = run(capsys, "--token", "wrong", "send", "--to", TO, "--from", FROM, "--body", "x")
    assert code == cli.EXIT_CONNECTION
    assert err.startswith("swsync: error: authentication failed") and err.count("\n") == 1
    assert "wrong" not in err  # the token is never echoed


def test_bad_token_over_rest_exits_4(env: Any, capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = run(capsys, "messages", "list", "--token", "wrong")
    assert code == cli.EXIT_CONNECTION
    assert "authentication failed" in err and "wrong" not in err


def test_unreachable_server_exits_4(capsys: pytest.CaptureFixture[str]) -> None:
    space = f"ws://127.0.0.1:{free_port()}"
    code, _, err = run(
        capsys, "--project", "p", "--token", "t", "--space", space, "send", "--to", TO, "--from", FROM, "--body", "x"
    )
    assert code == cli.EXIT_CONNECTION
    assert err.startswith("swsync: error: connection failed") and err.count("\n") == 1


def test_timeout_also_bounds_connecting(capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> None:
    import swsync.relay

    made: list[dict[str, Any]] = []
    real = swsync.relay.RelayClient

    def spy(*args: Any, **kwargs: Any) -> Any:
        made.append(kwargs)
        return real(*args, **kwargs)

    monkeypatch.setattr(swsync.relay, "RelayClient", spy)
    with socket.socket() as silent:  # accepts TCP (backlog) but never answers the upgrade
        silent.bind(("127.0.0.1", 0))
        silent.listen(1)
        space = f"ws://127.0.0.1:{silent.getsockname()[1]}"
        code, _, err = run(
            capsys, *credentials(space), "send", "--to", TO, "--from", FROM, "--body", "x", "--timeout", "0.3"
        )
    assert code == cli.EXIT_CONNECTION
    assert err.startswith("swsync: error: connection failed")
    assert made[0]["connect_timeout"] == made[0]["request_timeout"] == 0.3


def test_debug_shows_traceback(env: Any, capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = run(capsys, "send", "--debug", "--token", "wrong", "--to", TO, "--from", FROM, "--body", "x")
    assert code == cli.EXIT_CONNECTION
    assert "Traceback (most recent call last)" in err
    assert err.rstrip().splitlines()[-1].startswith("swsync: error: authentication failed")


def test_global_options_work_before_and_after_the_command(emu: Any, capsys: pytest.CaptureFixture[str]) -> None:
    creds = ["--project", emu.project, "--token", emu.token, "--space", emu.rest_url]  # http:// for RELAY too
    send = ["send", "--to", TO, "--from", FROM, "--body", "x"]
    assert run(capsys, *creds, *send)[0] == 0
    assert run(capsys, *send, *creds)[0] == 0


# -------------------------------------------------------------------- messages


def test_messages_list_table_and_json(env: Any, capsys: pytest.CaptureFixture[str]) -> None:
    sids = env.add_messages(3, to=TO, body="seeded {i}")
    env.add_messages(2, to="+15550009999")
    code, out, err = run(capsys, "messages", "list", "--to", TO)
    assert code == 0, err
    lines = out.splitlines()
    assert lines[0].split() == ["SID", "DATE", "(UTC)", "DIRECTION", "FROM", "TO", "STATUS", "BODY"]
    assert [line.split()[0] for line in lines[1:]] == sids  # newest first
    column = lines[0].index("STATUS")
    assert all(line[column:].startswith("delivered") for line in lines[1:])  # aligned
    code, out, _ = run(capsys, "messages", "list", "--json", "--limit", "2")
    assert code == 0
    records = json_lines(out)
    assert len(records) == 2 and all("sid" in r and "status" in r for r in records)
    code, out, err = run(capsys, "messages", "list", "--to", "+15550000000")
    assert (code, out) == (0, "") and "no messages" in err


def test_messages_list_filters(env: Any, capsys: pytest.CaptureFixture[str]) -> None:
    env.add_messages(2, status="failed", from_="+15550001234")
    env.add_messages(3, status="delivered")
    code, out, _ = run(capsys, "messages", "list", "--json", "--status", "failed", "--from", "+15550001234")
    assert code == 0
    records = json_lines(out)
    assert len(records) == 2 and {r["status"] for r in records} == {"failed"}
    code, out, _ = run(capsys, "messages", "list", "--json", "--status", "delivered")
    day = parsedate_to_datetime(json_lines(out)[0]["date_sent"]).date()
    code, out, _ = run(capsys, "messages", "list", "--json", "--date-sent", day.isoformat())
    records = json_lines(out)
    assert code == 0 and records
    assert {parsedate_to_datetime(r["date_sent"]).date() for r in records} == {day}
    code, out, _ = run(capsys, "messages", "list", "--json", "--date-sent", "1999-01-01")
    assert (code, out) == (0, "")


def test_messages_get_redact_delete(env: Any, capsys: pytest.CaptureFixture[str]) -> None:
    (sid,) = env.add_messages(1, body="secret")
    code, out, _ = run(capsys, "messages", "get", sid)
    assert code == 0
    fields = dict(line.split(None, 1) for line in out.splitlines())
    assert fields["sid"] == sid and fields["body"] == "secret" and fields["status"] == "delivered"
    code, out, _ = run(capsys, "messages", "get", sid, "--json")
    assert json_lines(out)[0]["sid"] == sid
    assert run(capsys, "messages", "redact", sid)[:2] == (0, f"redacted {sid}\n")
    assert env.get_message(sid)["body"] == ""
    assert run(capsys, "messages", "delete", sid)[:2] == (0, f"deleted {sid}\n")
    assert env.get_message(sid) is None
    code, _, err = run(capsys, "messages", "get", sid)
    assert code == cli.EXIT_NOT_DELIVERED and "404" in err and err.count("\n") == 1


# ----------------------------------------------------------------- subprocesses


def test_python_m_swsync_send_subprocess(emu: Any) -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "swsync", "send", "--to", TO, "--from", FROM, "--body", "cron"],
        env=emulator_environ(emu),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 0, proc.stderr
    assert "delivered" in proc.stdout.splitlines()[-1]


def test_listen_prints_inbound_json_and_stops_on_sigterm(emu: Any) -> None:
    proc = subprocess.Popen(
        [sys.executable, "-m", "swsync", "listen", "--context", "office", "--context", "home"],
        env=emulator_environ(emu),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    out, err = Lines(proc.stdout), Lines(proc.stderr)
    try:
        assert "listening on context(s) office, home" in err.next()
        emu.inject_inbound(to_number=FROM, from_number=TO, body="hi there", context="home")
        line = json.loads(out.next())
        assert (line["from_number"], line["to_number"], line["body"], line["context"]) == (TO, FROM, "hi there", "home")
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=20) == 0
    finally:
        stop_process(proc)
        out.close()
        err.close()


def test_emulator_command_prints_exports_and_serves(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
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
            "--project",
            "proj-1",
            "--token",
            "tok-1",
        ],
        env=clean_environ(PYTHONUNBUFFERED="1"),
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    lines = Lines(proc.stdout)
    try:
        exports: dict[str, str] = {}
        while "SIGNALWIRE_SPACE" not in exports or "SIGNALWIRE_API_TOKEN" not in exports:
            line = lines.next()
            assert line, "the emulator exited early"
            if line.startswith("export "):
                name, _, value = line[len("export ") :].strip().partition("=")
                exports[name] = value
        assert exports["SIGNALWIRE_PROJECT_ID"] == "proj-1" and exports["SIGNALWIRE_API_TOKEN"] == "tok-1"
        for name in ("SIGNALWIRE_PROJECT_ID", "SIGNALWIRE_API_TOKEN", "SIGNALWIRE_SPACE"):
            monkeypatch.setenv(name, exports[name])
        code, out, err = run(capsys, "send", "--to", TO, "--from", FROM, "--body", "x")
        assert code == 0, err
        code, out, err = run(capsys, "messages", "list", "--json")
        assert code == 0 and len(json_lines(out)) == 1
        proc.send_signal(signal.SIGINT)
        assert proc.wait(timeout=20) == 0
    finally:
        stop_process(proc)
        lines.close()


# ------------------------------------------------------------------------ demo


def test_demo_runs_end_to_end(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = run(capsys, "demo", "--state-delay", "0.05")
    assert code == 0, err
    step1, step2, step3 = out.split("\n\n")[1:4]
    assert_progression([line.split()[1] for line in step1.splitlines()[1:]])
    assert "from +15557654321 to +15550001111 on context 'demo': 'Got it, thanks!'" in step2
    table = step3.splitlines()
    assert table[1].split() == ["SID", "DIRECTION", "FROM", "TO", "STATUS", "BODY"]
    assert [row.split()[4] for row in table[2:]] == ["received", "delivered"]


def test_emulator_commands_need_aiohttp(capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "aiohttp", None)  # makes "import aiohttp" fail
    for argv in (["demo"], ["emulator", "--port", "0"]):
        code, _, err = run(capsys, *argv)
        assert code == cli.EXIT_USAGE
        assert "pip install 'swsync[emulator]'" in err


def test_send_ctrl_c_exits_130(env: Any, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> None:
    from swsync.relay import Message

    def interrupted(self: Message, timeout: float | None = None) -> None:
        raise KeyboardInterrupt

    monkeypatch.setattr(Message, "wait", interrupted)
    code, _, err = run(capsys, "send", "--to", TO, "--from", FROM, "--body", "x")
    assert code == 130 and err == "swsync: interrupted\n"


def test_send_exit_code_survives_a_closed_stdout(emu: Any) -> None:
    from swsync.emulator import UNDELIVERED_NUMBER

    read_end, write_end = os.pipe()
    os.close(read_end)  # nobody will read: the first line raises BrokenPipeError
    try:
        proc = subprocess.run(
            [sys.executable, "-m", "swsync", "send", "--to", UNDELIVERED_NUMBER, "--from", FROM, "--body", "x"],
            env=emulator_environ(emu),
            stdout=write_end,
            stderr=subprocess.PIPE,
            timeout=60,
        )
    finally:
        os.close(write_end)
    assert proc.returncode == cli.EXIT_NOT_DELIVERED


def test_listen_stops_when_its_reader_goes_away(emu: Any) -> None:
    proc = subprocess.Popen(
        [sys.executable, "-m", "swsync", "listen", "--context", "office"],
        env=emulator_environ(emu),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    err = Lines(proc.stderr)
    try:
        assert "listening" in err.next()
        assert proc.stdout is not None
        proc.stdout.close()  # like `swsync listen | head -n0`
        emu.inject_inbound(to_number=FROM, from_number=TO, body="into the void", context="office")
        assert proc.wait(timeout=30) == 0
    finally:
        stop_process(proc)
        err.close()


def test_what_the_single_module_cli_offered_still_works() -> None:
    # 0.1's swsync.cli was one module: the names it had, and args.func on a parsed command.
    from swsync import errors
    from swsync.relay import events

    for name in ("AuthenticationError", "ConfigurationError", "ConnectionClosedError", "RelayError", "RestError"):
        assert getattr(cli, name) is getattr(errors, name)
    assert (cli.RestTimeout, cli.WaitTimeout) == (errors.RestTimeout, errors.WaitTimeout)
    assert (cli.MessageStateEvent, cli.RelayEvent) == (events.MessageStateEvent, events.RelayEvent)
    args = cli.build_parser().parse_args(["messages", "list", "--limit", "1"])
    assert args.func.__module__ == "swsync.cli.messages" and args.func.__name__ == "run"
