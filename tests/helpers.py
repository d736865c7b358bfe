"""Plain helpers shared by several test modules (fixtures live in conftest.py).

Sections: the environment a test or subprocess runs with; the CLI in-process; threads and
subprocesses; bare wire clients for the emulator (RELAY over a websocket, REST over
``requests``) and a recording webhook receiver, which pin the server's wire behaviour
where swsync's own clients would refuse or hide it.
"""

from __future__ import annotations

import http.server
import json
import os
import queue
import subprocess
import threading
import time
import uuid
from collections import Counter
from collections.abc import Callable
from concurrent.futures import Future
from typing import Any
from urllib.parse import parse_qs

import pytest
import requests
import websocket

from swsync import RelayClient, RestClient

# --------------------------------------------------------------------------- environment

# The environment variables swsync reads (credentials, space, TLS, webhook signing key): tests
# clear them (the ``clean_signalwire_env`` fixture) or leave them out of a subprocess's environment.
ENV_VARS = (
    "SIGNALWIRE_PROJECT_ID",
    "SIGNALWIRE_API_TOKEN",
    "SIGNALWIRE_SPACE",
    "SIGNALWIRE_JWT_TOKEN",
    "SIGNALWIRE_RELAY_CA_FILE",
    "SIGNALWIRE_REST_CA_FILE",
    "SIGNALWIRE_SIGNING_KEY",
)

# Credentials of the mocked REST client (the ``rest`` fixture).
PROJECT = "ea108133-d6b3-407c-9536-9fad8a929a6a"
TOKEN = "PTsecret-token-value"


def clean_environ(**extra: str) -> dict[str, str]:
    """This process's environment without the variables in ``ENV_VARS``, plus ``extra``."""
    environ = {k: v for k, v in os.environ.items() if k not in ENV_VARS}
    environ.update(extra)
    return environ


def emulator_environ(emu: Any, space: str | None = None, **extra: str) -> dict[str, str]:
    """A subprocess environment pointing the ``SIGNALWIRE_*`` variables at ``emu`` (its RELAY URL
    unless ``space`` says otherwise), with unbuffered output so a test can read it line by line."""
    return clean_environ(
        SIGNALWIRE_PROJECT_ID=emu.project,
        SIGNALWIRE_API_TOKEN=emu.token,
        SIGNALWIRE_SPACE=space or emu.relay_url,
        PYTHONUNBUFFERED="1",
        **extra,
    )


# --------------------------------------------------------------------------- the CLI


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    """Run ``swsync ARGV`` in-process: ``(exit code, stdout, stderr)``."""
    from swsync import cli

    code = cli.main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def credentials(space: str, project: str = "p", token: str = "t") -> list[str]:
    """``swsync``'s global options ``--project P --token T --space SPACE``, for :func:`run`."""
    return ["--project", project, "--token", token, "--space", space]


# --------------------------------------------------------------------------- swsync's clients on an emulator


def make_client(emu: Any, **kw: Any) -> RelayClient:
    """A :class:`~swsync.RelayClient` for ``emu``, not connected yet; ``kw`` go to its constructor."""
    return RelayClient(project=emu.project, token=emu.token, host=emu.relay_url, **kw)


def sent_to(emu: Any) -> Counter[str]:
    """How many messages ``emu`` holds per destination number (read over REST)."""
    with RestClient(emu.project, emu.token, emu.rest_url) as rest:
        return Counter(m.to for m in rest.messages.stream())


# --------------------------------------------------------------------------- REST payloads for mocked HTTP

SID = "0a059168-ead0-41af-9d1f-343dae832527"  # the message ``message_json()`` describes by default


def message_json(sid: str = SID, **over: Any) -> dict[str, Any]:
    """A message resource as SignalWire's cXML REST API returns it; ``over`` replaces fields."""
    payload: dict[str, Any] = {
        "account_sid": PROJECT,
        "api_version": "2010-04-01",
        "body": "Hello World!",
        "num_segments": 1,
        "num_media": 2,
        "date_created": "Mon, 13 Aug 2018 21:38:46 +0000",
        "date_sent": None,
        "date_updated": "Mon, 13 Aug 2018 21:38:47 +0000",
        "direction": "outbound-api",
        "error_code": None,
        "error_message": None,
        "from": "+15551234567",
        "price": None,
        "price_unit": "USD",
        "sid": sid,
        "status": "queued",
        "to": "+15557654321",
        "messaging_service_sid": None,
        "uri": f"/api/laml/2010-04-01/Accounts/{PROJECT}/Messages/{sid}",
        "subresource_uris": {"media": f"/api/laml/2010-04-01/Accounts/{PROJECT}/Messages/{sid}/Media"},
    }
    payload.update(over)
    return payload


def page_json(records: list[dict[str, Any]], next_uri: str | None = None, key: str = "messages") -> dict[str, Any]:
    """A list page holding ``records`` under ``key``, pointing at ``next_uri`` (None: the last page)."""
    uri = f"/api/laml/2010-04-01/Accounts/{PROJECT}/Messages?Page=0&PageSize=50"
    return {
        "uri": uri,
        "first_page_uri": uri,
        "next_page_uri": next_uri,
        "previous_page_uri": None,
        "page": 0,
        "page_size": 50,
        key: records,
    }


# --------------------------------------------------------------------------- threads, subprocesses, ports


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


def wait_for(predicate: Callable[[], bool], timeout: float, what: str) -> None:
    """Poll ``predicate`` (state in other processes has no event to wait on) until true."""
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {what}")
        time.sleep(0.02)  # sleep-ok: polling other processes' state, bounded by the deadline


def stop_process(proc: subprocess.Popen[Any], *, grace: float = 0.0, timeout: float = 10.0) -> None:
    """End ``proc`` if it is still running and reap it (for a test's ``finally:``).

    With ``grace``, SIGTERM first and that many seconds to exit; then SIGKILL.
    """
    if proc.poll() is not None:
        return
    if grace:
        proc.terminate()
        try:
            proc.wait(timeout=grace)
            return
        except subprocess.TimeoutExpired:
            pass
    proc.kill()
    proc.wait(timeout=timeout)


class Lines:
    """The lines a subprocess writes to a pipe, read by a helper thread, with timeouts."""

    def __init__(self, pipe: Any) -> None:
        self._queue: queue.SimpleQueue[str] = queue.SimpleQueue()
        self._thread = threading.Thread(target=self._pump, args=(pipe,), name="test-pipe", daemon=True)
        self._thread.start()

    def _pump(self, pipe: Any) -> None:
        for line in pipe:
            self._queue.put(line)
        self._queue.put("")  # EOF

    def next(self, timeout: float = 30) -> str:
        """The next line ("" at end of file); fails the test after ``timeout`` seconds."""
        try:
            return self._queue.get(timeout=timeout)
        except queue.Empty:
            pytest.fail(f"no output within {timeout} s")

    def close(self) -> None:
        self._thread.join(timeout=10)


# --------------------------------------------------------------------------- the emulator's wire

# The numbers the wire helpers send between by default.
TO = "+15551230001"
FROM = "+15559870001"


class WireClient:
    """A minimal JSON-RPC-over-WebSocket client for poking the emulator's RELAY side.

    To prove that something did *not* arrive, :meth:`barrier` sends ``signalwire.ping`` and
    reads up to its reply: the emulator handles one socket's frames in order and writes
    everything a frame causes before reading the next.
    """

    def __init__(self, url: str, **kwargs: Any) -> None:
        self.ws = websocket.create_connection(url, timeout=5, **kwargs)
        self.events: list[dict[str, Any]] = []  # server requests seen while waiting
        self.protocol: str | None = None
        self.auth_state: str | None = None

    def close(self) -> None:
        try:
            self.ws.close(timeout=1)
        except (OSError, websocket.WebSocketException):
            pass

    def send(self, method: str, params: dict[str, Any] | None = None, mid: str | None = None) -> str:
        mid = mid or str(uuid.uuid4())
        frame: dict[str, Any] = {"jsonrpc": "2.0", "id": mid, "method": method}
        if params is not None:
            frame["params"] = params
        self.ws.send(json.dumps(frame))
        return mid

    def recv(self) -> dict[str, Any]:
        frame = json.loads(self.ws.recv())
        assert isinstance(frame, dict)
        return frame

    def ack(self, frame: dict[str, Any]) -> None:
        self.ws.send(json.dumps({"jsonrpc": "2.0", "id": frame["id"], "result": {}}))

    def response(self, mid: str, *, ack: bool = True) -> dict[str, Any]:
        """Read frames until the response to ``mid``; keep (and ACK) requests seen."""
        while True:
            frame = self.recv()
            if "method" in frame:
                self.events.append(frame)
                if frame["method"] == "signalwire.event":
                    self._note(frame)
                    if ack:
                        self.ack(frame)
                continue
            if frame.get("id") == mid:
                return frame

    def call(self, method: str, params: dict[str, Any] | None = None, *, ack: bool = True) -> dict[str, Any]:
        return self.response(self.send(method, params), ack=ack)

    def _note(self, frame: dict[str, Any]) -> None:
        if frame["params"]["event_type"] == "signalwire.authorization.state":
            self.auth_state = frame["params"]["params"]["authorization_state"]

    def connect(self, emu: Any, *, ack: bool = True, **params: Any) -> dict[str, Any]:
        """``signalwire.connect``; a fresh session receives context "office" unless told otherwise."""
        if "protocol" not in params:
            params.setdefault("contexts", ["office"])
        body = {
            "version": {"major": 2, "minor": 0, "revision": 0},
            "agent": "test",
            "event_acks": True,
            "authentication": {"project": emu.project, "token": emu.token},
            **params,
        }
        reply = self.call("signalwire.connect", body)
        assert "result" in reply, reply
        self.protocol = reply["result"]["protocol"]
        self.next_event("signalwire.authorization.state", ack=ack)
        return reply["result"]

    def resume_reply(self, emu: Any, old: WireClient) -> dict[str, Any]:
        """Ask to resume ``old``'s session (bare ``signalwire.connect``); return the reply, error or not."""
        auth = {"project": emu.project, "token": emu.token}
        params = {"authentication": auth, "protocol": old.protocol, "authorization_state": old.auth_state}
        return self.call("signalwire.connect", params)

    def next_event(self, event_type: str | None = None, *, ack: bool = True) -> dict[str, Any]:
        """Return the next ``signalwire.event`` (from the backlog first)."""
        while True:
            if self.events:
                frame = self.events.pop(0)
            else:
                frame = self.recv()
                if frame.get("method") == "signalwire.event":
                    self._note(frame)
                    if ack:
                        self.ack(frame)
            if frame.get("method") != "signalwire.event":
                continue
            if event_type is None or frame["params"]["event_type"] == event_type:
                return frame

    def barrier(self, *, ack: bool = True) -> list[dict[str, Any]]:
        """Ping and return every server request that arrived before the reply."""
        start = len(self.events)
        self.call("signalwire.ping", {}, ack=ack)
        seen = self.events[start:]
        del self.events[start:]
        return seen

    def send_message(self, to: str = TO, **extra: Any) -> dict[str, Any]:
        params = {
            "context": "office",
            "to_number": to,
            "from_number": FROM,
            "body": "Hello",
            **extra,
        }
        return self.call("messaging.send", params)


def open_client(emu: Any, clients: list[WireClient], **kwargs: Any) -> WireClient:
    """A :class:`WireClient` connected to ``emu``'s RELAY URL, closed with the ``clients`` fixture."""
    c = WireClient(emu.relay_url, **kwargs)
    clients.append(c)
    return c


def states(frames: list[dict[str, Any]]) -> list[str]:
    """The ``message_state`` of each ``messaging.state`` event among ``frames``."""
    return [
        f["params"]["params"]["message_state"]
        for f in frames
        if f.get("method") == "signalwire.event" and f["params"]["event_type"] == "messaging.state"
    ]


def state_events(client: WireClient, n: int) -> list[dict[str, Any]]:
    """The next ``n`` ``messaging.state`` events ``client`` receives."""
    return [client.next_event("messaging.state") for _ in range(n)]


class Api:
    """The emulator's cXML REST API over plain ``requests``: the account base URL and a session."""

    def __init__(self, emu: Any, prefix: str = "/api/laml") -> None:
        self.emu = emu
        self.base = f"{emu.rest_url}{prefix}/2010-04-01/Accounts/{emu.project}"
        self.http = requests.Session()
        self.http.auth = (emu.project, emu.token)

    def close(self) -> None:
        self.http.close()

    def get(self, path: str, **kw: Any) -> requests.Response:
        return self.http.get(self.base + path, timeout=10, **kw)

    def post(self, path: str, data: Any = None, **kw: Any) -> requests.Response:
        return self.http.post(self.base + path, data=data, timeout=10, **kw)

    def delete(self, path: str, **kw: Any) -> requests.Response:
        return self.http.delete(self.base + path, timeout=10, **kw)

    def follow(self, uri: str) -> requests.Response:
        assert uri.startswith("/api/laml/")
        return self.http.get(self.emu.rest_url + uri, timeout=10)

    def create(self, **data: Any) -> dict[str, Any]:
        data.setdefault("To", TO)
        data.setdefault("From", FROM)
        data.setdefault("Body", "Hello")
        r = self.post("/Messages.json", data)
        assert r.status_code == 201, r.text
        return r.json()


ERROR_KEYS = {"code", "message", "more_info", "status"}


def assert_error(r: requests.Response, status: int, code: int) -> dict[str, Any]:
    """``r`` is a REST error in SignalWire's JSON shape with this HTTP status and error code."""
    assert r.status_code == status, r.text
    assert r.headers["Content-Type"].startswith("application/json")
    body = r.json()
    assert set(body) == ERROR_KEYS
    assert body["code"] == code and body["status"] == status
    assert body["message"] and body["more_info"].startswith("https://")
    return body


class Hook:
    """A tiny webhook receiver: records every POST, answers with a fixed reply; ``url`` ends in ``path``."""

    def __init__(self, path: str = "") -> None:
        self.requests: queue.Queue[tuple[str, dict[str, str], dict[str, str]]] = queue.Queue()
        self.reply: tuple[int, str, str] = (200, "text/plain", "")
        hook = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length", "0"))
                raw = self.rfile.read(length).decode()
                form = {k: v[0] for k, v in parse_qs(raw, keep_blank_values=True).items()}
                hook.requests.put((self.path, dict(self.headers), form))
                status, ctype, body = hook.reply
                data = body.encode()
                self.send_response(status)
                self.send_header("Content-Type", ctype)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, *args: Any) -> None:
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}{path}"
        self.thread = threading.Thread(
            target=self.server.serve_forever,
            kwargs={"poll_interval": 0.05},
            name="test-hook",
            daemon=True,
        )
        self.thread.start()

    def next(self) -> tuple[str, dict[str, str], dict[str, str]]:
        """The next POST received: ``(path, headers, form)``."""
        return self.requests.get(timeout=10)

    def next_form(self) -> dict[str, str]:
        """The form of the next POST received."""
        return self.next()[2]

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(timeout=10)
