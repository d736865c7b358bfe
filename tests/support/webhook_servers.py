"""Real local servers for the webhook-helper tests: a WSGI app in a thread, a
recorder of finished requests, a small reverse proxy, sample webhook forms, what
the views saw (``Seen``), and signing written out independently of swsync.webhooks."""

from __future__ import annotations

import base64
import hashlib
import hmac
import http.client
import socket
import subprocess
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlencode, urlsplit
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer
from wsgiref.simple_server import make_server as wsgiref_make_server

from werkzeug.serving import make_server as werkzeug_make_server

TIMEOUT = 10.0


# Webhook forms as SignalWire posts them, between our number and theirs.
OURS = "+15551234567"
THEIRS = "+15557654321"
EMPTY = '<?xml version="1.0" encoding="UTF-8"?><Response />'

INBOUND = {
    "MessageSid": "SM-in-1",
    "AccountSid": "AC1",
    "From": THEIRS,
    "To": OURS,
    "Body": "hello",
    "NumMedia": "0",
    "SmsStatus": "received",
}
STATUS = {"MessageSid": "SM-out-1", "AccountSid": "AC1", "From": OURS, "To": THEIRS, "MessageStatus": "delivered"}


class Seen:
    """What the views were called with, thread-safe; ``wait`` blocks on a count."""

    def __init__(self) -> None:
        # Guards items; waiters use _cond.
        self._cond = threading.Condition()
        self.items: list[Any] = []

    def add(self, item: Any) -> None:
        with self._cond:
            self.items.append(item)
            self._cond.notify_all()

    def wait(self, predicate: Any, timeout: float = TIMEOUT) -> list[Any]:
        with self._cond:
            assert self._cond.wait_for(lambda: predicate(self.items), timeout), self.items
            return list(self.items)

    def snapshot(self) -> list[Any]:
        with self._cond:
            return list(self.items)


def sign_form(key: str, url: str, params: Mapping[str, str] | Iterable[tuple[str, str]]) -> str:
    """Form scheme: base64 HMAC-SHA1 of url + name + value, names sorted (pairs keep their order per name)."""
    pairs = params.items() if isinstance(params, Mapping) else params
    data = url + "".join(name + value for name, value in sorted(pairs, key=lambda pair: pair[0]))
    return base64.b64encode(hmac.new(key.encode(), data.encode(), hashlib.sha1).digest()).decode()


def sign_body(key: str, url: str, body: bytes, algorithm: str = "sha1") -> str:
    """Raw-body scheme: hex HMAC of url + body."""
    return hmac.new(key.encode(), url.encode() + body, algorithm).hexdigest()


class _QuietHandler(WSGIRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002
        pass


@dataclass(frozen=True)
class Finished:
    """One request a server answered."""

    method: str
    target: str
    status: int
    content_type: str
    body: bytes


class Recorder:
    """WSGI middleware recording every answered request; ``wait_for`` blocks on a predicate."""

    def __init__(self, app: Any) -> None:
        self._app = app
        # Guards finished; waiters use _cond.
        self._cond = threading.Condition()
        self.finished: list[Finished] = []

    def __call__(self, environ: dict[str, Any], start_response: Any) -> Iterable[bytes]:
        seen: dict[str, Any] = {}

        def recording_start(status: str, headers: list[tuple[str, str]], *exc: Any) -> Any:
            seen["status"] = int(status.split()[0])
            seen["ctype"] = dict((k.lower(), v) for k, v in headers).get("content-type", "")
            return start_response(status, headers, *exc)

        body = b"".join(self._app(environ, recording_start))
        target = environ.get("RAW_URI") or environ.get("PATH_INFO", "")
        with self._cond:
            self.finished.append(Finished(environ["REQUEST_METHOD"], target, seen["status"], seen["ctype"], body))
            self._cond.notify_all()
        return [body]

    def wait_for(self, predicate: Callable[[list[Finished]], bool], timeout: float = TIMEOUT) -> list[Finished]:
        with self._cond:
            ok = self._cond.wait_for(lambda: predicate(list(self.finished)), timeout)
            assert ok, f"requests seen: {[(f.target, f.status) for f in self.finished]}"
            return list(self.finished)


class LocalServer:
    """Serve a WSGI app on 127.0.0.1:<free port> from one named thread, joined on exit.

    ``kind="werkzeug"`` passes the raw request target (``RAW_URI``);
    ``kind="wsgiref"`` does not, so the helpers must rebuild it.
    """

    def __init__(self, app: Any, *, kind: str = "werkzeug", name: str = "app", threaded: bool = False) -> None:
        self.recorder = Recorder(app)
        if kind == "werkzeug":
            # threaded: one thread per request; server_close() joins them.
            self._server: Any = werkzeug_make_server("127.0.0.1", 0, self.recorder, threaded=threaded)
        else:
            self._server = wsgiref_make_server("127.0.0.1", 0, self.recorder, WSGIServer, _QuietHandler)
        self.port: int = self._server.server_port
        self.url = f"http://127.0.0.1:{self.port}"
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, name=f"test-{name}-server", daemon=True
        )

    def __enter__(self) -> LocalServer:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.shutdown()
        self._thread.join(timeout=TIMEOUT)
        self._server.server_close()
        assert not self._thread.is_alive(), "the test server thread did not stop"


def _append(environ: dict[str, Any], header: str, value: str) -> str:
    # Like nginx's $proxy_add_x_forwarded_for: append to what the client sent.
    before = environ.get("HTTP_" + header.upper().replace("-", "_"))
    return f"{before}, {value}" if before else value


class ReverseProxy:
    """A reverse proxy WSGI app: forwards to ``upstream`` adding X-Forwarded-* headers.

    By default it tells the truth about the request it received (``http``, its own
    Host header and port). ``proto``/``host``/``port`` make it claim something else,
    as a TLS terminator or a load balancer in front of it would; ``strip_prefix``
    removes a path prefix before forwarding and reports it in X-Forwarded-Prefix.
    ``repeat=2`` forwards every request twice and answers with the second reply, as
    when a provider's first attempt lost its answer and it retried.
    """

    def __init__(
        self,
        upstream: str,
        *,
        proto: str | None = None,
        host: str | None = None,
        port: str | None = None,
        strip_prefix: str = "",
        repeat: int = 1,
    ) -> None:
        self._repeat = repeat
        parts = urlsplit(upstream)
        self._upstream = (parts.hostname or "127.0.0.1", parts.port or 80)
        self._claims = (proto, host, port)
        self._strip = strip_prefix

    def _headers(self, environ: dict[str, Any]) -> dict[str, str]:
        headers = {
            k[5:].replace("_", "-").title(): v
            for k, v in environ.items()
            if k.startswith("HTTP_") and not k.startswith("HTTP_X_FORWARDED_")
        }
        if environ.get("CONTENT_TYPE"):
            headers["Content-Type"] = environ["CONTENT_TYPE"]
        proto, host, port = self._claims
        seen_host = environ.get("HTTP_HOST", "")
        headers["X-Forwarded-Proto"] = _append(environ, "X-Forwarded-Proto", proto or "http")
        headers["X-Forwarded-Host"] = _append(environ, "X-Forwarded-Host", host or seen_host)
        headers["X-Forwarded-Port"] = _append(environ, "X-Forwarded-Port", port or seen_host.rpartition(":")[2])
        if self._strip:
            headers["X-Forwarded-Prefix"] = _append(environ, "X-Forwarded-Prefix", self._strip)
        headers["Host"] = f"{self._upstream[0]}:{self._upstream[1]}"
        return headers

    def __call__(self, environ: dict[str, Any], start_response: Any) -> Iterable[bytes]:
        target = environ["RAW_URI"]
        if self._strip and target.startswith(self._strip):
            target = target[len(self._strip) :] or "/"
        length = int(environ.get("CONTENT_LENGTH") or 0)
        body = environ["wsgi.input"].read(length) if length else b""
        for _ in range(self._repeat):
            conn = http.client.HTTPConnection(*self._upstream, timeout=TIMEOUT)
            try:
                conn.request(environ["REQUEST_METHOD"], target, body=body, headers=self._headers(environ))
                reply = conn.getresponse()
                data = reply.read()
            finally:
                conn.close()
        headers = [
            (k, v)
            for k, v in reply.getheaders()
            if k.lower() not in ("connection", "transfer-encoding", "content-length")
        ]
        start_response(f"{reply.status} {reply.reason}", headers)
        return [data]


def post(
    url: str, data: bytes | dict[str, str], headers: dict[str, str] | None = None, *, content_type: str | None = None
) -> tuple[int, str, bytes]:
    """POST with http.client (the target is sent exactly as given); returns (status, ctype, body)."""
    parts = urlsplit(url)
    body = urlencode(data).encode() if isinstance(data, dict) else data
    all_headers = {"Content-Type": content_type or "application/x-www-form-urlencoded", **(headers or {})}
    conn = http.client.HTTPConnection(parts.hostname, parts.port, timeout=TIMEOUT)
    try:
        target = parts.path + (f"?{parts.query}" if parts.query else "")
        conn.request("POST", target, body=body, headers=all_headers)
        reply = conn.getresponse()
        return reply.status, reply.getheader("Content-Type") or "", reply.read()
    finally:
        conn.close()


def wait_for_port(port: int, proc: subprocess.Popen[Any], timeout: float = 20.0) -> None:
    """Block until 127.0.0.1:port accepts connections (or the process died / timeout)."""
    deadline = time.monotonic() + timeout
    while True:
        assert proc.poll() is None, f"the server exited with {proc.returncode}"
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1.0).close()
            return
        except OSError:
            assert time.monotonic() < deadline, f"nothing listening on port {port}"
            time.sleep(0.05)  # sleep-ok: a subprocess gives no other readiness signal
