"""Opening a RELAY session: TCP, TLS, the websocket upgrade and ``signalwire.connect``.

What is here: the protocol constants sent with every connect, the JSON-RPC error codes
that mean "these credentials are refused", the socket wrapper one connection
generation lives in, and :class:`Handshake`, one bounded connect attempt that any
thread may :meth:`~Handshake.abort`. Which thread runs it and which lock guards it:
docs/design.md, "Threads" and "Locks".
"""

from __future__ import annotations

import socket
import ssl
import threading
import time
from collections.abc import Callable, Mapping
from typing import Any

import websocket

from .._version import __version__
from ..errors import AuthenticationError, ConnectionClosedError, RelayError
from . import wsframes
from .rpc import decode_frame, encode_request, result_error

AGENT = f"swsync-python/{__version__}"
PROTOCOL_VERSION = {"major": 2, "minor": 0, "revision": 0}
READ_SIZE = 16384  # larger SSL reads cost more CPU per message (docs/design.md, "Measurements")

# JSON-RPC errors answering signalwire.connect that mean "these credentials are refused":
# -32002 authentication failed (the service adds data.signalwire_error_code "AUTH_REQUIRED")
# and -32003 requester validation failed (a stale or corrupt authorization_state). SignalWire
# publishes no list of these codes; why these two, see docs/design.md, "Refused connects".
# Only these stop a client that was connected before. Any other refusal of a reconnect
# (-32000, -32602, -32603, ...) can come from a passing fault of the service (its
# authentication backend, an overloaded node): the resume state is dropped and the
# reconnect retried with backoff.
AUTH_FAILED_CODES = frozenset({-32002, -32003})
# A first connect() has nothing to resume and its caller is right there: it also reports
# -32000 (the official Python SDK's test double answers bad credentials with it) and -32602
# (invalid params, e.g. an empty token) as AuthenticationError instead of retrying them.
FIRST_CONNECT_AUTH_CODES = AUTH_FAILED_CODES | {-32000, -32602}
AUTH_ERROR_CODES = AUTH_FAILED_CODES  # the name before 0.2

# OpenSSL's reasons when a TLS client meets a server that answers in plain text.
_NOT_TLS = ("WRONG_VERSION_NUMBER", "RECORD_LAYER_FAILURE", "PACKET_LENGTH_TOO_LONG")


class ConnectAborted(ConnectionClosedError):
    """``open()`` was aborted by ``close()`` from another thread (``disconnect()``)."""


class Refused(ConnectionClosedError):
    """signalwire.connect was refused for a reason other than the credentials."""

    def __init__(self, error: RelayError) -> None:
        super().__init__(f"the server refused the session: {error}")
        self.error = error


class RelaySocket:
    """One websocket connection generation: the raw socket and its frame decoder.

    Frames read during the handshake after the connect reply wait in ``backlog``
    for the I/O thread, in order.
    """

    __slots__ = ("ws", "sock", "reader", "backlog", "pending_tls")

    def __init__(self, ws: websocket.WebSocket) -> None:
        assert ws.sock is not None  # connected
        self.ws = ws
        self.sock: socket.socket = ws.sock
        self.reader = wsframes.FrameReader()
        self.backlog: list[tuple[int, bytes]] = []
        self.pending_tls = isinstance(self.sock, ssl.SSLSocket)

    def close(self) -> None:
        """Shut the socket down (wakes a thread blocked on it) and close it."""
        try:
            self.sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        try:
            self.sock.close()
        except OSError:
            pass

    def read(self, deadline: float) -> list[tuple[int, bytes]]:
        """Blocking read of at least one message before ``deadline`` (handshake only)."""
        while True:
            msgs = self.reader.messages()
            if msgs:
                return msgs
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise TimeoutError("no reply to signalwire.connect")
            self.sock.settimeout(remaining)
            data = self.sock.recv(READ_SIZE)
            if not data:
                raise OSError("server closed the connection")
            self.reader.feed(data)


class Handshake:
    """One connect attempt, bounded by ``timeout`` as a whole and abortable from any thread.

    websocket-client's timeout bounds each read, not the whole upgrade: a timer thread
    (``swsync-connect-timer``) calls :meth:`abort` at the deadline so a trickling server
    cannot stall the attempt. ``Connection.close()`` calls the same :meth:`abort` so a
    ``disconnect()`` from another thread ends a connect in progress at once.
    """

    def __init__(self, url: str, *, ssl_context: ssl.SSLContext | None, timeout: float) -> None:
        self.url = url
        self.timeout = timeout
        sslopt = {"context": ssl_context} if ssl_context is not None else None
        self._ws = websocket.WebSocket(sslopt=sslopt, skip_utf8_validation=True)
        self._expired = threading.Event()
        self._aborted = threading.Event()  # checked once the socket exists (see run())

    def abort(self) -> None:
        """Wake a handshake blocked in a read: shut its socket down. Any thread; idempotent."""
        self._aborted.set()  # before the socket is looked at: run() checks it once the socket exists
        sock = self._ws.sock  # None until TCP is up: a TCP connect cannot be cut short
        if sock is not None:
            try:
                sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass

    def _expire(self) -> None:
        self._expired.set()
        self.abort()

    def run(
        self, call_id: str, params: Callable[[], Mapping[str, Any]], auth_codes: frozenset[int]
    ) -> tuple[RelaySocket, dict[str, Any]]:
        """Connect and send ``signalwire.connect``; return the socket and the connect result.

        ``params()`` builds the connect parameters once the websocket is up (so they
        name the contexts subscribed by then). The result has a non-empty
        ``protocol``. A JSON-RPC error whose code is in
        ``auth_codes`` raises :class:`AuthenticationError`, any other :class:`Refused`.

        Raises:
            AuthenticationError: the credentials were refused.
            ConnectionClosedError: unreachable, timed out, aborted, refused or garbage.
        """
        timer = threading.Timer(self.timeout, self._expire)
        timer.name = "swsync-connect-timer"
        timer.daemon = True
        timer.start()
        try:
            self._open_websocket()
            conn = RelaySocket(self._ws)
            try:
                if self._aborted.is_set():  # abort() came before the socket existed: it had nothing to shut down
                    raise ConnectionClosedError("the connect attempt was aborted")
                result = self._authenticate(conn, call_id, params, auth_codes)
            except ConnectionClosedError as exc:
                conn.close()
                if self._expired.is_set():  # the timer cut the socket: say so, not "connection lost"
                    raise ConnectionClosedError(self._timeout_text("authenticating")) from exc
                raise
            except BaseException:
                conn.close()
                raise
        finally:
            timer.cancel()
            timer.join()
        return conn, result

    def _open_websocket(self) -> None:
        """TCP, TLS and the websocket upgrade, with errors that say what went wrong."""
        ws = self._ws
        try:
            # redirect_limit=0: never follow a redirect (it could downgrade wss:// to
            # ws:// or send the credentials to another host).
            ws.connect(
                self.url,
                timeout=self.timeout,  # type: ignore[no-untyped-call]
                header=[f"User-Agent: {AGENT}"],
                redirect_limit=0,
            )
        except (OSError, websocket.WebSocketException) as exc:
            try:
                ws.close(timeout=0)
            except Exception:
                pass
            if self._expired.is_set() or isinstance(exc, (socket.timeout, websocket.WebSocketTimeoutException)):
                raise ConnectionClosedError(self._timeout_text("connecting")) from exc
            text = f"could not connect to {self.url}: {exc}"
            if isinstance(exc, ssl.SSLError) and any(r in str(exc) for r in _NOT_TLS):
                text += (
                    "; the server does not speak TLS on this port: for a plain-HTTP server "
                    "such as the local emulator use a ws:// or http:// URL, "
                    "e.g. host='ws://127.0.0.1:8765'"
                )
            raise ConnectionClosedError(text) from exc

    def _timeout_text(self, step: str) -> str:
        return f"could not connect to {self.url}: no answer within connect_timeout={self.timeout:g} s while {step}"

    def _authenticate(
        self, conn: RelaySocket, call_id: str, params: Callable[[], Mapping[str, Any]], auth_codes: frozenset[int]
    ) -> dict[str, Any]:
        text = encode_request(call_id, "signalwire.connect", params())
        deadline = time.monotonic() + self.timeout
        conn.sock.settimeout(self.timeout)
        try:
            conn.sock.sendall(wsframes.FrameWriter().text(text))
            reply = _await_reply(conn, call_id, deadline)
        except TimeoutError as exc:
            raise ConnectionClosedError(self._timeout_text("authenticating")) from exc
        except (OSError, wsframes.ProtocolError) as exc:
            raise ConnectionClosedError(f"connection to {self.url} failed during authentication: {exc}") from exc
        err = result_error("signalwire.connect", reply)
        if err is not None:
            if err.code in auth_codes:
                raise AuthenticationError(err.code, err.message)
            raise Refused(err)
        result = reply.get("result")
        if not isinstance(result, dict):
            raise ConnectionClosedError("signalwire.connect result is not an object")
        protocol = result.get("protocol")
        if not isinstance(protocol, str) or not protocol:
            raise ConnectionClosedError("signalwire.connect result has no protocol")
        return result


def _await_reply(conn: RelaySocket, call_id: str, deadline: float) -> dict[str, Any]:
    """Read until the reply to ``call_id``; everything else read is kept in ``conn.backlog``."""
    reply: dict[str, Any] | None = None
    while reply is None:
        for opcode, payload in conn.read(deadline):
            # Everything but the connect reply (also what follows it in the same read)
            # is kept for the I/O thread, in order.
            if reply is None and opcode == wsframes.OP_TEXT:
                frame = decode_frame(payload)
                if isinstance(frame, dict) and frame.get("id") == call_id and "method" not in frame:
                    reply = frame
                    continue
            conn.backlog.append((opcode, payload))
    return reply
