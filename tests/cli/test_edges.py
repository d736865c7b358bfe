"""The ``swsync`` command line at its edges: odd option values, closed or unwritable
standard streams, a rate-limiting REST server, short codes, a TLS/plain-HTTP mix-up.

Stream tests run the real console entry point in a subprocess (``python -m swsync``)
so the interpreter's own handling of closed and full file descriptors is exercised.
"""

from __future__ import annotations

import http.server
import json
import os
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from typing import Any
from urllib.parse import urlsplit

import pytest

from swsync import cli
from swsync.cli._shared import relay_client

from ..helpers import clean_environ, credentials, emulator_environ, run, stop_process

TO, FROM = "+15551234567", "+15559876543"
REST_SEND = ("send", "--via", "rest", "--to", TO, "--from", FROM, "--body", "x")
# Each test starts without the host's SIGNALWIRE_* variables; ``env`` (conftest) sets them.
pytestmark = pytest.mark.usefixtures("clean_signalwire_env")


def swsync(emu: Any, *argv: str, space: str | None = None, **kwargs: Any) -> subprocess.CompletedProcess[bytes]:
    """Run ``python -m swsync ARGV`` against the emulator; ``kwargs`` go to subprocess.run."""
    kwargs.setdefault("stdout", subprocess.PIPE)
    kwargs.setdefault("stderr", subprocess.PIPE)
    return subprocess.run(
        [sys.executable, "-m", "swsync", *argv],
        env=emulator_environ(emu, space),
        timeout=60,
        **kwargs,
    )


# ------------------------------------------------- a global option's value that is a command


@pytest.mark.parametrize("project", ["demo", "send", "messages", "listen", "emulator"])
def test_a_global_option_value_may_equal_a_command_name(capsys: pytest.CaptureFixture[str], project: str) -> None:
    from swsync.emulator import Emulator

    with Emulator(state_delay=0.0, project=project) as emu:
        code, out, err = run(
            capsys, *credentials(emu.relay_url, project, emu.token), "send", "--to", TO, "--from", FROM, "--body", "x"
        )
        assert code == 0, err
        assert "delivered" in out
        code, out, err = run(
            capsys, f"--project={project}", "--token", emu.token, "--space", emu.rest_url, "messages", "list", "--json"
        )
        assert code == 0, err
        assert len(out.splitlines()) == 1


def test_an_unknown_option_after_the_guessed_command_is_still_a_usage_error(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as info:
        cli.main(["--project", "demo", "send", "--to", TO, "--from", FROM, "--body", "x", "--bogus"])
    assert info.value.code == cli.EXIT_USAGE
    assert "unrecognized arguments: --bogus" in capsys.readouterr().err


# ------------------------------------------------------------------------ odd --timeout values


@pytest.mark.parametrize("value", ["nan", "-1", "0", "-inf", "soon"])
def test_nan_negative_and_zero_timeouts_are_usage_errors(capsys: pytest.CaptureFixture[str], value: str) -> None:
    with pytest.raises(SystemExit) as info:
        cli.main(["send", "--to", TO, "--from", FROM, "--body", "x", f"--timeout={value}"])
    assert info.value.code == cli.EXIT_USAGE
    err = capsys.readouterr().err
    assert "--timeout" in err and "Traceback" not in err


@pytest.mark.parametrize("value", ["1e10", "inf", "1e308", "1e400"])
@pytest.mark.parametrize("via", ["relay", "rest"])
def test_huge_and_infinite_timeouts_mean_no_limit(
    env: Any, capsys: pytest.CaptureFixture[str], value: str, via: str
) -> None:
    code, out, err = run(capsys, "send", "--to", TO, "--from", FROM, "--body", "x", "--via", via, "--timeout", value)
    assert code == cli.EXIT_OK, err
    assert "delivered" in out.splitlines()[-1]
    assert err == ""


def test_huge_timeout_in_a_subprocess_exits_0_without_a_traceback(emu: Any) -> None:
    proc = swsync(emu, "send", "--to", TO, "--from", FROM, "--body", "x", "--timeout", "1e10")
    assert proc.returncode == 0, proc.stderr
    assert b"Traceback" not in proc.stderr


# ------------------------------------------------------------------- --body - and stdin


def test_body_from_a_closed_stdin_is_a_usage_error(emu: Any) -> None:
    proc = swsync(
        emu, "send", "--to", TO, "--from", FROM, "--body", "-", stdin=subprocess.DEVNULL, preexec_fn=lambda: os.close(0)
    )
    assert proc.returncode == cli.EXIT_USAGE
    err = proc.stderr.decode()
    assert err.count("\n") == 1 and "standard input is closed" in err
    assert emu.request_log == [] or all("Messages" not in line for _, line in emu.request_log)


def test_body_from_an_empty_stdin_is_a_usage_error(emu: Any) -> None:
    proc = swsync(emu, "send", "--to", TO, "--from", FROM, "--body", "-", stdin=subprocess.DEVNULL)
    assert proc.returncode == cli.EXIT_USAGE
    assert b"body or at least one media URL" in proc.stderr


# --------------------------------------------------- --timeout bounds a rate-limited REST send


class _TooManyRequests(http.server.BaseHTTPRequestHandler):
    """Answers every request with 429 and ``Retry-After: <server.retry_after>``."""

    def _refuse(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        self.rfile.read(length)
        # Counted before answering: the client may check the count as soon as it has the answer.
        self.server.hits.append(time.monotonic())  # type: ignore[attr-defined]
        body = json.dumps({"code": 20429, "message": "Too Many Requests", "status": 429}).encode()
        self.send_response(429)
        self.send_header("Retry-After", self.server.retry_after)  # type: ignore[attr-defined]
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    do_GET = do_POST = _refuse

    def log_message(self, *args: Any) -> None:
        pass


@pytest.fixture
def too_many_requests() -> Iterator[Any]:
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _TooManyRequests)
    server.retry_after = "20"  # type: ignore[attr-defined]
    server.hits = []  # type: ignore[attr-defined]
    thread = threading.Thread(target=server.serve_forever, name="test-429-server", daemon=True)
    thread.start()
    try:
        yield server
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)


@pytest.mark.timeout(30)
def test_send_via_rest_timeout_bounds_retry_after_waits(
    too_many_requests: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    space = f"http://127.0.0.1:{too_many_requests.server_address[1]}"
    start = time.monotonic()
    code, out, err = run(capsys, *credentials(space), *REST_SEND, "--timeout", "3")
    elapsed = time.monotonic() - start
    # Before the fix it slept the 20 s Retry-After three times; generous for a loaded machine.
    assert elapsed < 10, f"took {elapsed:.1f} s with --timeout 3"
    assert code == cli.EXIT_NOT_DELIVERED  # refused (429): provably not sent
    assert "Too Many Requests" in err and err.count("\n") == 1
    assert len(too_many_requests.hits) == 1  # a 20 s wait does not fit in 3 s: no retry


@pytest.mark.timeout(30)
def test_send_via_rest_retries_only_while_the_deadline_allows(
    too_many_requests: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    too_many_requests.retry_after = "1"
    space = f"http://127.0.0.1:{too_many_requests.server_address[1]}"
    start = time.monotonic()
    code, _, err = run(capsys, *credentials(space), *REST_SEND, "--timeout", "2.5")
    elapsed = time.monotonic() - start
    assert code == cli.EXIT_NOT_DELIVERED, err
    # Each 1 s wait is made only if it ends before the deadline: at most three attempts
    # (before the fix: all four, max_retries=3); the last one within 2.5 s of the start.
    assert 2 <= len(too_many_requests.hits) <= 3
    assert too_many_requests.hits[-1] - start < 2.5
    assert elapsed < 10


# ------------------------------------------------------------------------------ short codes


def test_short_codes_in_send_and_messages_list(env: Any, capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = run(capsys, "send", "--to", TO, "--from", "12345", "--body", "from a short code")
    assert code == 0, err
    code, _, err = run(capsys, "send", "--via", "rest", "--to", "7654", "--from", FROM, "--body", "to one")
    assert code == 0, err
    code, out, err = run(capsys, "messages", "list", "--from", "12345", "--json")
    assert code == 0, err
    assert [(m["from"], m["body"]) for m in map(json.loads, out.splitlines())] == [("12345", "from a short code")]
    code, out, err = run(capsys, "messages", "list", "--to", "7654", "--json")
    assert code == 0 and [json.loads(line)["to"] for line in out.splitlines()] == ["7654"]


@pytest.mark.parametrize("flag", ["--to", "--from"])
def test_messages_list_refuses_a_malformed_number_before_any_request(
    env: Any, capsys: pytest.CaptureFixture[str], flag: str
) -> None:
    before = len(env.request_log)
    code, _, err = run(capsys, "messages", "list", flag, "555-1234")
    assert code == cli.EXIT_USAGE
    assert "short code" in err and err.count("\n") == 1
    assert len(env.request_log) == before


# ------------------------------------------------------------- a bare --space on a plain server


@pytest.mark.parametrize(
    "command",
    [
        ["send", "--to", TO, "--from", FROM, "--body", "x"],
        list(REST_SEND),
        ["messages", "list"],
    ],
)
def test_bare_space_on_the_plain_http_emulator_hints_at_http(
    emu: Any, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, command: list[str]
) -> None:
    from swsync.rest import _transport as transport_mod

    monkeypatch.setattr(transport_mod, "_sleep", lambda seconds: None)
    hostport = urlsplit(emu.rest_url).netloc
    code, _, err = run(capsys, "--project", emu.project, "--token", emu.token, "--space", hostport, *command)
    assert code == cli.EXIT_CONNECTION
    assert f"http://{hostport}" in err and err.count("\n") == 1


# ------------------------------------------------- standard output closed (>&-) or full (>/dev/full)


def closed_stdout() -> dict[str, Any]:
    """subprocess.run arguments that start the child with file descriptor 1 closed (``>&-``)."""
    return {"stdout": subprocess.DEVNULL, "preexec_fn": lambda: os.close(1)}


def full_stdout() -> dict[str, Any]:
    """subprocess.run arguments that point the child's stdout at /dev/full (every write: ENOSPC)."""
    return {"stdout": open("/dev/full", "wb")}  # noqa: SIM115 - closed by the child's exit


STDOUTS = {"closed": closed_stdout, "full": full_stdout}


def statuses(emu: Any) -> list[str]:
    from swsync.rest import RestClient

    with RestClient(emu.project, emu.token, emu.rest_url) as rest:
        return [str(m.status) for m in rest.messages.list()]


def assert_one_output_error(stderr: bytes, why: str) -> None:
    text = stderr.decode()
    assert "Traceback" not in text and "Exception ignored" not in text, text
    lines = [line for line in text.splitlines() if "standard output" in line]
    assert len(lines) == 1, text
    assert why in lines[0]


@pytest.mark.parametrize("stdout", ["closed", "full"])
@pytest.mark.parametrize("extra", [[], ["--json"], ["--via", "rest"]])
def test_send_exit_code_is_the_outcome_when_stdout_is_unusable(emu: Any, stdout: str, extra: list[str]) -> None:
    from swsync.emulator import UNDELIVERED_NUMBER

    why = "closed" if stdout == "closed" else "No space left on device"
    delivered = swsync(emu, "send", "--to", TO, "--from", FROM, "--body", "x", *extra, **STDOUTS[stdout]())
    assert delivered.returncode == cli.EXIT_OK, delivered.stderr
    assert_one_output_error(delivered.stderr, why)
    assert statuses(emu) == ["delivered"]
    refused = swsync(
        emu, "send", "--to", UNDELIVERED_NUMBER, "--from", FROM, "--body", "x", *extra, **STDOUTS[stdout]()
    )
    assert refused.returncode == cli.EXIT_NOT_DELIVERED
    assert_one_output_error(refused.stderr, why)
    assert "undelivered" in refused.stderr.decode().splitlines()[-1]


@pytest.mark.parametrize("stdout", ["closed", "full"])
@pytest.mark.parametrize("command", [["messages", "list"], ["messages", "list", "--json"], ["messages", "get"]])
def test_messages_commands_report_unusable_stdout_in_one_line(emu: Any, stdout: str, command: list[str]) -> None:
    (sid,) = emu.add_messages(1)
    argv = [*command, sid] if command[-1] == "get" else command
    proc = swsync(emu, *argv, space=emu.rest_url, **STDOUTS[stdout]())
    assert proc.returncode == cli.EXIT_NOT_DELIVERED  # what was asked for was not shown
    assert_one_output_error(proc.stderr, "closed" if stdout == "closed" else "No space left on device")


@pytest.mark.parametrize("stdout", ["closed", "full"])
def test_messages_delete_exit_code_is_the_outcome_when_stdout_is_unusable(emu: Any, stdout: str) -> None:
    (sid,) = emu.add_messages(1)
    proc = swsync(emu, "messages", "delete", sid, space=emu.rest_url, **STDOUTS[stdout]())
    assert proc.returncode == cli.EXIT_OK
    assert_one_output_error(proc.stderr, "closed" if stdout == "closed" else "No space left on device")
    assert emu.get_message(sid) is None


@pytest.mark.parametrize("stdout", ["closed", "full"])
def test_demo_reports_unusable_stdout_in_one_line(stdout: str) -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "swsync", "demo", "--state-delay", "0"],
        env=clean_environ(),
        stderr=subprocess.PIPE,
        timeout=60,
        **STDOUTS[stdout](),
    )
    assert proc.returncode == cli.EXIT_NOT_DELIVERED
    assert_one_output_error(proc.stderr, "closed" if stdout == "closed" else "No space left on device")


def test_in_process_stdout_failure_is_one_line(
    env: Any, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    class Full:
        def write(self, text: str) -> int:
            raise OSError(28, "No space left on device")

        def flush(self) -> None:
            pass

    monkeypatch.setattr(sys, "stdout", Full())
    assert cli.main(["send", "--to", TO, "--from", FROM, "--body", "x"]) == cli.EXIT_OK
    err = capsys.readouterr().err
    assert err == "swsync: error: cannot write to standard output: [Errno 28] No space left on device\n"


# ------------------------------------------------------------------- listen with nowhere to print


def test_listen_with_stdout_closed_stops_before_receiving_anything(emu: Any) -> None:
    proc = swsync(emu, "listen", "--context", "office", **closed_stdout())
    assert proc.returncode == cli.EXIT_USAGE
    err = proc.stderr.decode()
    assert "standard output is closed" in err and "listening" not in err and err.count("\n") == 1


@pytest.mark.timeout(90)
def test_listen_with_stdout_full_stops_without_acknowledging_what_it_did_not_print(emu: Any) -> None:
    proc = subprocess.Popen(
        [sys.executable, "-m", "swsync", "listen", "--context", "office"],
        env=emulator_environ(emu),
        stdout=open("/dev/full", "wb"),
        stderr=subprocess.PIPE,  # noqa: SIM115
    )
    try:
        assert proc.stderr is not None
        assert b"listening" in proc.stderr.readline()
        bodies = [f"inbound {i}" for i in range(3)]
        for body in bodies:
            emu.inject_inbound(to_number=FROM, from_number=TO, body=body, context="office")
        assert proc.wait(timeout=30) == cli.EXIT_NOT_DELIVERED
        err = proc.stderr.read().decode()
        # None was acknowledged: the service still holds all three for redelivery.
        unacked = emu.unacked_events
    finally:
        stop_process(proc)
        if proc.stderr is not None:
            proc.stderr.close()
    assert "Traceback" not in err
    assert err.count("cannot write to standard output: [Errno 28] No space left on device") == 1
    reported = [
        json.loads(line.split("): ", 1)[1]) for line in err.splitlines() if line.startswith("swsync: not printed")
    ]
    # The first message is reported whole; every other one the client received likewise.
    assert reported and reported[0]["body"] == "inbound 0"
    assert [m["body"] for m in reported] == bodies[: len(reported)]
    assert unacked == len(bodies)


# ------------------------------------------------------------------------- a missing space


@pytest.mark.parametrize("command", [["messages", "list"], list(REST_SEND)])
def test_rest_commands_without_a_space_say_the_rest_api_needs_one(
    capsys: pytest.CaptureFixture[str], command: list[str]
) -> None:
    code, _, err = run(capsys, "--project", "p", "--token", "t", *command)
    assert code == cli.EXIT_USAGE
    assert "REST API has no default host and needs your space" in err and "SIGNALWIRE_SPACE" in err
    assert err.count("\n") == 1


def test_relay_commands_without_a_space_use_signalwires_relay_host(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SIGNALWIRE_PROJECT_ID", "p")
    monkeypatch.setenv("SIGNALWIRE_API_TOKEN", "t")
    for argv in (["send", "--to", TO, "--from", FROM, "--body", "x"], ["listen"]):
        client = relay_client(cli.build_parser().parse_args(argv))  # built, never connected
        assert "wss://relay.signalwire.com" in repr(client)
