"""The RELAY websocket: the I/O thread, requests, keepalive and reconnect.

Which thread runs what, which lock guards which field and which fields are read
without a lock on purpose: docs/design.md, "Threads" and "Locks" (the one place it
is written down). In short, the ``swsync-reader`` thread owns the socket in both
directions; callers queue frames in an outbox and wake it through a socketpair.
The handshake (connect and authenticate) is in handshake.py.
"""

from __future__ import annotations

import copy
import functools
import itertools
import json
import logging
import os
import selectors
import socket
import ssl
import threading
import time
from collections.abc import Callable, Mapping
from typing import Any

from ..errors import AuthenticationError, ConnectionClosedError, RelayError, WaitTimeout
from . import wsframes

# The handshake's names stay importable from here, as before handshake.py existed.
from .handshake import AGENT as AGENT
from .handshake import AUTH_ERROR_CODES as AUTH_ERROR_CODES
from .handshake import AUTH_FAILED_CODES as AUTH_FAILED_CODES
from .handshake import FIRST_CONNECT_AUTH_CODES as FIRST_CONNECT_AUTH_CODES
from .handshake import PROTOCOL_VERSION as PROTOCOL_VERSION
from .handshake import READ_SIZE as READ_SIZE
from .handshake import ConnectAborted as ConnectAborted
from .handshake import Handshake, Refused, RelaySocket
from .rpc import (
    NOT_JSON,
    PendingCall,
    PendingCalls,
    decode_frame,
    encode_ack,
    encode_error,
    encode_request,
    encode_result,
    result_error,
)

logger = logging.getLogger("swsync.relay")

TICK = 5.0  # seconds between housekeeping runs (expiring early events, stale messages)
DRAIN_TIMEOUT = 10.0  # after signalwire.disconnect, how long the server may take to close
# A reply that says the session is no longer authenticated: the request was not executed.
SESSION_GONE_CODE = -32002
SESSION_GONE_DRAIN = 2.0  # seconds the socket may linger after such a reply
MAX_QUEUED = 500  # requests held while disconnected, as the official SDK

# Connection states.
CONNECTING, OPEN, RECONNECTING, CLOSED = "connecting", "open", "reconnecting", "closed"

EventHandler = Callable[[str, Mapping[str, Any], Mapping[str, Any]], None]


def _encode(text: str) -> bytes:
    """UTF-8 bytes of a request, on the caller's thread: bad text fails the caller only."""
    try:
        return text.encode("utf-8")
    except UnicodeEncodeError as exc:
        raise ValueError(f"request contains text that is not valid Unicode: {exc.reason}") from None


def _id_source() -> Callable[[], str]:
    """Request ids shaped like UUID4s: a random prefix per client and a counter.

    Unique per client like ``uuid4()``, at a fraction of its cost (no syscall per id);
    ``next()`` on ``itertools.count`` is atomic in CPython.
    """
    h = os.urandom(10).hex()
    prefix = f"{h[:8]}-{h[8:12]}-4{h[12:15]}-{'89ab'[int(h[15], 16) & 3]}{h[16:19]}-"
    counter = itertools.count(1)
    return lambda: f"{prefix}{next(counter):012x}"


class Connection:
    """A RELAY session that survives drops: one socket at a time, one I/O thread.

    Thread-safe: ``request()`` may be called from any number of threads.
    """

    def __init__(
        self,
        url: str,
        *,
        auth: dict[str, str],
        contexts: Callable[[], list[str]],
        on_event: EventHandler,
        on_lost: Callable[[str], None],
        on_fresh_session: Callable[[], None],
        on_tick: Callable[[], None],
        on_batch_end: Callable[[], None],
        ssl_context: ssl.SSLContext | None,
        connect_timeout: float,
        request_timeout: float,
        queue_timeout: float,
        reconnect: bool,
        max_reconnect_delay: float,
        ping_interval: float | None,
        hold_ack: Callable[[Mapping[str, Any]], bool] | None = None,
    ) -> None:
        # Set once here, read by every thread.
        self.url = url
        self._auth = auth  # secret: never logged or repr'd
        self._contexts = contexts
        self._on_event = on_event
        self._on_lost = on_lost
        self._on_fresh_session = on_fresh_session
        self._on_tick = on_tick
        self._on_batch_end = on_batch_end
        # hold_ack(envelope) -> True: the event's ACK waits for ack(); on_event gets it as a 4th argument.
        self._hold_ack = hold_ack
        self._ssl_context = ssl_context
        self.connect_timeout = connect_timeout
        self.request_timeout = request_timeout
        self.queue_timeout = queue_timeout
        self.reconnect = reconnect
        self.max_reconnect_delay = max_reconnect_delay
        self.ping_interval = ping_interval
        self.calls = PendingCalls()  # its own lock
        self._new_id = _id_source()  # thread-safe (itertools.count)
        self._stop = threading.Event()
        self._wake_r, self._wake_w = socket.socketpair()
        self._wake_r.setblocking(False)
        self._init_shared()
        self._init_session()

    def _init_shared(self) -> None:
        """Fields shared between callers and the I/O thread (docs/design.md, "Locks")."""
        # Guards everything set here; never held during socket I/O or user code.
        self._lock = threading.Lock()
        self._outbox: list[PendingCall | bytes] = []
        self._wake_sent = False
        self._selecting = False  # the I/O thread is (about to be) blocked in select()
        self.state = CONNECTING  # written under _lock; read without it as a hint
        self._handshaking: Handshake | None = None  # the connect attempt close() must abort
        self._closed_error: Exception | None = None  # the first reason wins
        self._thread: threading.Thread | None = None
        self._sock: RelaySocket | None = None  # set under _lock; read by its owner, the I/O thread

    def _init_session(self) -> None:
        """Fields of the thread running the handshakes and the I/O loop: no lock."""
        # The caller of open() until it starts the I/O thread, then the I/O thread.
        self.protocol: str | None = None  # also read by callers without a lock: a str swap
        self._last_protocol: str | None = None  # kept when a restart forgets protocol
        self._authorization_state: str | None = None  # secret
        # The session the server knew us by is gone (restart, refused resume): waiters of
        # earlier messages must be told once a new session is up.
        self._session_lost = False
        self._ever_connected = False
        self._draining = False
        self._drain_deadline = 0.0
        self._next_tick = time.monotonic() + TICK
        self._last_rx = time.monotonic()
        self._ping_sent = False
        self._writer = wsframes.FrameWriter()
        self._wbuf: list[bytes] = []  # framed control frames (pong, close) to write
        self._wtext: list[bytes] = []  # UTF-8 JSON replies (ACKs, pings) to frame and write
        # Calls answered by the current read, completed after its writes (see _complete_answered).
        self._answered: list[tuple[PendingCall, Any, BaseException | None]] = []

    # ----------------------------------------------------------------- public

    def open(self) -> None:
        """Connect and authenticate on the calling thread, then start the I/O thread.

        Raises:
            AuthenticationError: the server rejected the credentials.
            ConnectionClosedError: the server could not be reached or spoke garbage.
        """
        try:
            conn = self._establish()
        except BaseException as exc:
            aborted = self._stop.is_set() and isinstance(exc, ConnectionClosedError)
            self._open_failed(exc)
            if aborted:
                raise ConnectAborted("client disconnected while connecting") from exc
            raise
        with self._lock:
            # close() sets _stop before it looks for the thread under this lock: either
            # it sees the thread and joins it, or the thread is never started.
            started = not self._stop.is_set()
            if started:
                self._sock = conn
                self.state = OPEN
                self._thread = threading.Thread(target=self._run, name="swsync-reader", daemon=True)
                self._thread.start()
        if not started:
            conn.close()
            self._close_wake()
            self._set_state(CLOSED)
            raise ConnectAborted("client disconnected while connecting")

    def _open_failed(self, exc: BaseException) -> None:
        """The first handshake failed: closed for good, and requests queued meanwhile fail with why."""
        error = exc if isinstance(exc, Exception) else ConnectionClosedError(f"connect interrupted ({exc!r})")
        with self._lock:
            if self._closed_error is None:  # close() may have set it first (the first reason wins)
                self._closed_error = error
            error = self._closed_error
            self.state = CLOSED
        self._fail_pending(error)  # nothing was written: may_have_been_sent=False
        self._close_wake()

    def request(
        self,
        method: str,
        params: Mapping[str, Any],
        *,
        timeout: float | None = None,
        on_result: Callable[[dict[str, Any]], Any] | None = None,
    ) -> Any:
        """Send a JSON-RPC request and block until its reply.

        The timeout (default ``request_timeout``) counts from when the frame is
        written; a request made while reconnecting waits up to ``queue_timeout``
        to be written. ``on_result(result)`` runs on the reader thread before the
        next frame is handled and its return value is returned here.

        Raises:
            RelayError: the server refused the request.
            WaitTimeout: no reply in time (the connection stays up).
            ConnectionClosedError: closed or lost before a reply;
                ``may_have_been_sent`` tells whether the frame was written.
        """
        if timeout is not None and not (0 < timeout < 1e9):
            raise ValueError("timeout must be a positive number of seconds or None")
        call_id = self._new_id()
        call = PendingCall(call_id, method, _encode(encode_request(call_id, method, params)), on_result)
        self.calls.add(call)
        try:
            self._enqueue(call)
        except BaseException:
            self.calls.pop(call_id)
            raise
        return self._await(call, self.request_timeout if timeout is None else timeout)

    def close(self, reason: str = "client disconnected") -> None:
        """Stop the I/O thread, close the socket and fail every pending call.

        Idempotent, safe from any thread, bounded in time.
        """
        with self._lock:
            if self._closed_error is None:
                self._closed_error = ConnectionClosedError(reason)
        self._stop.set()
        self._wake()
        self._abort_handshake()  # a connect() in progress on another thread fails at once
        with self._lock:
            t = self._thread
        if t is not None and t is not threading.current_thread():
            t.join(self.connect_timeout + 2.0)
            if t.is_alive() and self._sock is not None:
                # A reader stuck in a blocking call: shutdown() wakes it (close() alone does not).
                self._sock.close()
                t.join(5.0)
        self._finish()

    @property
    def connected(self) -> bool:
        """True while a socket is open and authenticated."""
        return self.state == OPEN

    @property
    def closed_error(self) -> Exception | None:
        """Why the connection stopped for good, if it did."""
        return self._closed_error

    @property
    def thread(self) -> threading.Thread | None:
        """The I/O thread, while one exists."""
        return self._thread

    def forget_after_fork(self) -> None:
        """In a forked child: close inherited descriptors without touching the peer."""
        # No lock: a thread of the parent may have held it at the fork and does not exist here.
        self.state = CLOSED
        self._thread = None
        conn, self._sock = self._sock, None
        if conn is not None:
            try:
                conn.sock.close()  # never shutdown(): that would cut the parent's connection
            except OSError:
                pass
        self._close_wake()

    def ack(self, call_id: str | int) -> None:
        """Acknowledge an event whose ACK was held (see ``hold_ack``); any thread may call it.

        The ACK joins the outbox like a request. When the connection is closed the
        ACK is dropped: the server keeps the event un-ACKed and may deliver it again.
        """
        try:
            self._enqueue(encode_ack(call_id).encode())
        except ConnectionClosedError as exc:
            logger.debug("could not ACK event %s: %s", call_id, exc)

    def _set_state(self, state: str) -> None:
        with self._lock:
            self.state = state

    # ------------------------------------------------------------ caller side

    def _enqueue(self, item: PendingCall | bytes) -> None:
        wake = False
        with self._lock:
            refused = self._refusal_locked()
            if refused is None:
                self._outbox.append(item)
                # The I/O thread checks the outbox before every select(): wake it only
                # when it is (about to be) blocked there, once per select().
                wake = self._selecting and not self._wake_sent
                if wake:
                    self._wake_sent = True
        if refused is not None:
            raise refused
        if wake:
            self._wake()

    def _refusal_locked(self) -> ConnectionClosedError | None:
        """Why nothing can be queued now, or None. Caller holds ``_lock``."""
        cause = self._closed_error
        if cause is not None or self.state == CLOSED:
            if isinstance(cause, ConnectionClosedError):
                return copy.copy(cause).with_traceback(None)
            refused = ConnectionClosedError(
                f"client is not connected ({cause})" if cause else "client is not connected"
            )
            refused.__cause__ = cause  # as "raise ... from cause"
            refused.__suppress_context__ = True
            return refused
        if self.state != OPEN and len(self._outbox) >= MAX_QUEUED:
            return ConnectionClosedError(
                f"not connected and {MAX_QUEUED} requests are already waiting for the connection"
            )
        return None

    def _wake(self) -> None:
        try:
            self._wake_w.send(b"\0")
        except OSError:
            pass  # socketpair closed: the client is closed already

    def _await(self, call: PendingCall, timeout: float | None) -> Any:
        """Wait for the reply: ``timeout`` from the write, ``queue_timeout`` for the write."""
        if timeout is None:
            call.wait(None)
            return call.outcome()
        start = time.monotonic()
        # state read without the lock: a stale OPEN only sends us down the slow path later.
        if self.state == OPEN and call.wait(timeout):
            return call.outcome()  # the common case: written at once, answered in time
        with self._lock:
            written = call.written
            if not written and call.progress is None:
                call.progress = threading.Event()
        if not written:
            # Not written yet (reconnecting, or requeued by a drop): wait for the write.
            assert call.progress is not None
            call.progress.wait(max(0.0, start + self.queue_timeout - time.monotonic()))
            if call.wait(0):
                return call.outcome()
            if not self._abandon(call, written_too=False):
                if not self._withdraw(call):
                    return call.outcome()
                raise ConnectionClosedError(
                    f"{call.method} was not sent: no connection within "
                    f"{time.monotonic() - start:.1f} s (queue_timeout={self.queue_timeout})",
                    may_have_been_sent=False,
                )
        if call.wait(call.written_at + timeout - time.monotonic()):
            return call.outcome()
        written = self._abandon(call, written_too=True)  # False: held again for the next session, never executed
        if not self._withdraw(call):
            return call.outcome()
        if not written:
            raise ConnectionClosedError(
                f"{call.method} was not sent: the server discarded the session and no new "
                f"one was ready within {timeout} s",
                may_have_been_sent=False,
            )
        raise WaitTimeout(
            f"no reply to {call.method} within {timeout} s of sending it (it may have reached the server)"
        )

    def _abandon(self, call: PendingCall, *, written_too: bool) -> bool:
        """Mark ``call`` given up (if unwritten, or always with ``written_too``); return whether it was written.

        An unwritten call leaves the outbox. Under the lock, so the I/O thread either
        skips it or has written it, never both; a written call marked abandoned is
        never held for the next session.
        """
        with self._lock:
            written = call.written
            if written_too or not written:
                call.abandoned = True
            if not written:
                self._unqueue_locked(call)
        return written

    def _withdraw(self, call: PendingCall) -> bool:
        """Remove a call its requester gave up on from the table; False when someone else removed it first.

        Whoever removed it resolves it (docs/design.md, "Locks"): then wait for that,
        and the outcome is the call's own.
        """
        if self.calls.pop(call.call_id) is not None:
            return True
        call.wait(None)  # being resolved or failed right now by whoever removed it
        return False

    def _unqueue_locked(self, call: PendingCall) -> None:
        # Caller holds self._lock.
        try:
            self._outbox.remove(call)
        except ValueError:
            pass

    # ------------------------------------------------------------- handshake

    def _connect_params(self) -> dict[str, Any]:
        params: dict[str, Any] = {
            "version": PROTOCOL_VERSION,
            "agent": AGENT,
            "event_acks": True,
            "authentication": dict(self._auth),
        }
        contexts = self._contexts()
        if contexts:
            params["contexts"] = contexts
        if self.protocol:
            params["protocol"] = self.protocol
            if self._authorization_state:
                params["authorization_state"] = self._authorization_state
        return params

    def _establish(self) -> RelaySocket:
        """Open a socket and authenticate; on a rejected resume, retry once fresh."""
        resuming = self.protocol is not None
        try:
            conn, resumed = self._handshake()
        except AuthenticationError as exc:
            if not resuming:
                raise
            logger.info("session resume refused (code %s); starting a fresh session", exc.code)
            self._forget_session()
            conn, resumed = self._handshake()
        except Refused as exc:
            if resuming:
                # Not a verdict on the credentials: start afresh next time, after the backoff.
                logger.info("session refused (code %s); the next attempt starts a fresh session", exc.error.code)
                self._forget_session()
            raise
        if resuming and not resumed:
            self._session_lost = True
        if self._session_lost and self._ever_connected:
            self._on_fresh_session()
        self._session_lost = False
        self._ever_connected = True
        return conn

    def _forget_session(self) -> None:
        self.protocol = None
        self._authorization_state = None
        self._session_lost = True

    def _handshake(self) -> tuple[RelaySocket, bool]:
        """One connect attempt that ``close()`` can abort; return the socket and whether it resumed."""
        attempt = Handshake(self.url, ssl_context=self._ssl_context, timeout=self.connect_timeout)
        with self._lock:
            stopped = self._stop.is_set()
            if not stopped:
                self._handshaking = attempt
        if stopped:
            raise ConnectionClosedError("client disconnected")
        codes = AUTH_FAILED_CODES if self._ever_connected else FIRST_CONNECT_AUTH_CODES
        try:
            conn, result = attempt.run(self._new_id(), self._connect_params, codes)
        finally:
            with self._lock:
                self._handshaking = None
        protocol: str = result["protocol"]
        # The official SDK never reads session_restored and a server may omit it: the same
        # protocol back means the session was resumed, unless the flag says otherwise.
        resumed = (
            self.protocol is not None and protocol == self.protocol and result.get("session_restored") is not False
        )
        self.protocol = self._last_protocol = protocol
        logger.info("connected to %s (session %s)", self.url, "resumed" if resumed else "new")
        return conn, resumed

    def _abort_handshake(self) -> None:
        """Abort a connect attempt in progress on another thread (for close())."""
        with self._lock:
            attempt = self._handshaking
        if attempt is not None:
            attempt.abort()

    # ---------------------------------------------------------------- I/O thread

    def _run(self) -> None:
        try:
            while not self._stop.is_set():
                conn = self._sock
                assert conn is not None
                reason = self._serve(conn)
                self._complete_answered()  # replies already read must not be lost
                if self._stop.is_set():
                    self._goodbye(conn)
                    break
                self._drop(conn, reason)
                if not self.reconnect:
                    self._fail_closed(ConnectionClosedError(f"connection lost: {reason}"))
                    break
                if not self._reconnect(reason):
                    break
        except BaseException as exc:  # a bug: never leave callers hanging
            logger.exception("swsync reader thread crashed")
            self._complete_answered()
            self._fail_closed(ConnectionClosedError(f"reader thread crashed: {exc!r}"))
            if self._sock is not None:
                self._sock.close()

    def _serve(self, conn: RelaySocket) -> str:
        """Run one connection until it ends; return why it ended.

        Each turn: write what is pending, wait for the socket, read and route what
        arrived, then housekeeping (docs/design.md, "Threads").
        """
        sock = conn.sock
        sock.settimeout(max(self.request_timeout, 5.0))  # bounds a stuck sendall()
        self._last_rx = time.monotonic()
        self._ping_sent = False
        self._draining = False
        # selectors (epoll on Linux), not select(): descriptors above 1024 must work too.
        selector = selectors.DefaultSelector()
        try:
            selector.register(sock, selectors.EVENT_READ)
            selector.register(self._wake_r, selectors.EVENT_READ)
            ended = self._handle_backlog(conn)
            while ended is None and not self._stop.is_set():
                self._flush(sock)
                ended = self._wait_and_read(conn, selector)
                if ended is None:
                    ended = self._housekeeping()
            return ended or "client disconnected"
        except wsframes.ProtocolError as exc:
            logger.warning("closing connection: websocket protocol error: %s", exc)
            return f"protocol error: {exc}"
        except (OSError, ValueError) as exc:
            return f"{type(exc).__name__}: {exc}"
        finally:
            selector.close()

    def _handle_backlog(self, conn: RelaySocket) -> str | None:
        """Route what the handshake read after the connect reply."""
        if not conn.backlog:
            return None
        backlog, conn.backlog = conn.backlog, []
        return self._handle_batch(conn.sock, backlog)

    def _wait_and_read(self, conn: RelaySocket, selector: selectors.BaseSelector) -> str | None:
        """Wait until the socket is readable and handle one read; return why the connection ended, if it did.

        Returns at once, without waiting, when requests were queued while we were
        writing: they are written first.
        """
        sock = conn.sock
        # TLS may hold decrypted bytes select() cannot see.
        if conn.pending_tls and sock.pending():  # type: ignore[attr-defined]
            return self._receive(conn)
        if not self._arm_select():
            return None
        if self._select(selector, sock):
            return self._receive(conn)
        if self._keepalive_expired():
            return "no data from the server within two ping intervals"
        return None

    def _arm_select(self) -> bool:
        """Tell callers we are about to block in select(); False when the outbox must be written first."""
        with self._lock:
            idle = self._draining or not self._outbox
            self._selecting = idle
        return idle

    def _receive(self, conn: RelaySocket) -> str | None:
        """Read once and handle every complete message; return why the connection ended, if it did."""
        data = conn.sock.recv(READ_SIZE)
        if not data:
            return "server closed the connection"
        self._last_rx = time.monotonic()
        self._ping_sent = False
        conn.reader.feed(data)
        msgs = conn.reader.messages()
        return self._handle_batch(conn.sock, msgs) if msgs else None

    def _housekeeping(self) -> str | None:
        """The drain deadline and the periodic tick; return why the connection ended, if it did."""
        now = time.monotonic()
        if self._draining and now >= self._drain_deadline:
            return "the server announced a disconnect but did not close the connection"
        if now >= self._next_tick:
            self._next_tick = now + TICK
            try:
                self._on_tick()
            except Exception:
                logger.exception("housekeeping failed")
        return None

    def _select(self, selector: selectors.BaseSelector, sock: socket.socket) -> bool:
        """Block until the socket is readable, a caller wakes us or a tick is due."""
        events = selector.select(self._tick())
        with self._lock:
            self._selecting = False
            self._wake_sent = False
        readable = False
        for key, _ in events:
            if key.fileobj is sock:
                readable = True
            else:
                try:
                    self._wake_r.recv(4096)
                except BlockingIOError:
                    pass
        return readable

    def _handle_batch(self, sock: socket.socket, msgs: list[tuple[int, bytes]]) -> str | None:
        """Route one read's messages, write what they produced, wake their callers."""
        closing = self._handle_messages(msgs)
        self._flush(sock)
        self._complete_answered()
        return "server sent a close frame" if closing else None

    def _tick(self) -> float:
        """Seconds until the next keepalive action."""
        now = time.monotonic()
        wait = self._next_tick - now
        if self._draining:
            wait = min(wait, self._drain_deadline - now)
        if self.ping_interval:
            due = self._last_rx + self.ping_interval * (2 if self._ping_sent else 1)
            wait = min(wait, due - now)
        return max(0.0, wait)

    def _keepalive_expired(self) -> bool:
        if not self.ping_interval:
            return False
        idle = time.monotonic() - self._last_rx
        if idle >= 2 * self.ping_interval:
            return True
        if idle >= self.ping_interval and not self._ping_sent:
            self._ping_sent = True
            ping_id = self._new_id()
            # A reply needs no waiter: any frame from the server proves liveness.
            self._wtext.append(encode_request(ping_id, "signalwire.ping", {}).encode())
        return False

    def _flush(self, sock: socket.socket) -> None:
        """Write pending ACKs/replies, queued requests and control frames in one ``sendall``."""
        payloads = self._wtext
        if not self._draining:
            with self._lock:
                if self._outbox:
                    self._take_outbox_locked(payloads)
        if not payloads and not self._wbuf:
            return
        data = self._writer.frames(payloads) if payloads else b""
        if self._wbuf:
            data += b"".join(self._wbuf)  # control frames last: a close must end the stream
            self._wbuf = []
        self._wtext = []
        sock.sendall(data)

    def _take_outbox_locked(self, payloads: list[bytes]) -> None:
        """Move the outbox's frames to ``payloads``, marking requests written. Caller holds ``_lock``.

        Marked under the lock: a requester giving up sees either "still queued" (and
        removes it) or "written", never both.
        """
        items, self._outbox = self._outbox, []
        now = time.monotonic()
        for item in items:
            if not isinstance(item, PendingCall):
                payloads.append(item)  # an ACK
            elif not item.abandoned:  # else its requester gave up while it was queued
                item.written = True
                item.written_at = now
                if item.progress is not None:
                    item.progress.set()
                if item.retarget is not None and item.retarget != self.protocol:
                    item.payload = _retarget(item.payload, item.retarget, self.protocol)
                    item.retarget = None
                payloads.append(item.payload)

    def _handle_messages(self, msgs: list[tuple[int, bytes]]) -> bool:
        """Route decoded messages; return True when the server sent a close frame."""
        for opcode, payload in msgs:
            if opcode == wsframes.OP_TEXT:
                frame = decode_frame(payload)
                if isinstance(frame, dict):
                    self._route(frame)
                elif frame is not NOT_JSON:
                    logger.warning("dropped a frame that is not a JSON object (%d bytes)", len(payload))
            elif opcode == wsframes.OP_PING:
                self._wbuf.append(self._writer.frame(payload, wsframes.OP_PONG))
            elif opcode == wsframes.OP_CLOSE:
                self._wbuf.append(self._writer.frame(payload[:2], wsframes.OP_CLOSE))
                return True
            elif opcode == wsframes.OP_BINARY:
                logger.warning("dropped a binary frame (%d bytes)", len(payload))
        return False

    def _route(self, frame: dict[str, Any]) -> None:
        method = frame.get("method")
        if method is None:
            self._route_response(frame)
            return
        call_id = frame.get("id")
        if not isinstance(method, str) or not isinstance(call_id, (str, int, type(None))) or isinstance(call_id, bool):
            logger.warning("dropped a malformed request frame")
            return
        params = frame.get("params")
        if not isinstance(params, dict):
            params = {}
        if method == "signalwire.event":
            held = call_id is not None and self._hold_ack is not None and self._hold_ack(params)
            if call_id is not None and not held:
                self._wtext.append(encode_ack(call_id).encode())  # ACK first, unless held
            self._route_event(params, functools.partial(self.ack, call_id) if held and call_id is not None else None)
        elif method == "signalwire.ping":
            if call_id is not None:
                ts = params.get("timestamp")
                reply = {"timestamp": ts} if isinstance(ts, (int, float)) and not isinstance(ts, bool) else {}
                self._wtext.append(encode_result(call_id, reply).encode())
        elif method == "signalwire.disconnect":
            self._server_disconnect(call_id, params.get("restart") is True)
        elif call_id is not None:
            self._wtext.append(encode_error(call_id, -32601, f"method not found: {method}").encode())

    def _server_disconnect(self, call_id: str | int | None, restart: bool) -> None:
        """``signalwire.disconnect``: answer, forget the session on a restart, drain this socket."""
        if call_id is not None:
            self._wtext.append(encode_result(call_id, {}).encode())
        if restart:
            self._forget_session()
        # Hold new requests for the next session instead of writing them to a doomed socket.
        self._draining = True
        self._drain_deadline = time.monotonic() + DRAIN_TIMEOUT
        logger.info("server asked to disconnect (restart=%s)", restart)

    def _route_event(self, params: Mapping[str, Any], ack: Callable[[], None] | None = None) -> None:
        event_type = params.get("event_type")
        inner = params.get("params")
        if not isinstance(event_type, str) or not event_type:
            logger.warning("dropped an event without event_type")
            if ack is not None:
                ack()
            return
        if not isinstance(inner, dict):
            inner = {}
        if event_type == "signalwire.authorization.state":
            value = inner.get("authorization_state")
            if isinstance(value, str) and value:
                self._authorization_state = value
            return
        try:
            if ack is None:
                self._on_event(event_type, inner, params)
            else:
                self._on_event(event_type, inner, params, ack)  # type: ignore[call-arg]
        except Exception:
            logger.exception("failed to handle a %s event", event_type)
            if ack is not None:
                ack()  # a failure here must not leave the event un-ACKed for ever

    def _route_response(self, frame: dict[str, Any]) -> None:
        call = self.calls.pop(frame.get("id"))
        if call is None:
            if "id" in frame:
                logger.debug("reply to an unknown or abandoned request")
            else:
                logger.warning("dropped a frame that is neither request nor response")
            return
        err = result_error(call.method, frame)
        if err is not None:
            if err.code == SESSION_GONE_CODE and call.method != "signalwire.connect":
                if self._hold_for_next_session(call, err):
                    return
                gone = ConnectionClosedError(
                    f"{call.method} was not sent: the server discarded the session before executing it ({err})",
                    may_have_been_sent=False,
                )
                gone.__cause__ = err
                self._answered.append((call, None, gone))
                return
            self._answered.append((call, None, err))
            return
        result = frame.get("result")
        if not isinstance(result, dict):
            result = {"raw": result}
        if call.on_result is not None:
            try:
                value = call.on_result(result)
            except Exception as exc:
                logger.warning("invalid reply to %s: %s", call.method, exc)
                self._answered.append((call, None, RelayError(-1, f"invalid reply to {call.method}: {exc}")))
                return
        else:
            value = result
        self._answered.append((call, value, None))

    def _hold_for_next_session(self, call: PendingCall, err: RelayError) -> bool:
        """Requeue a request the server refused because it discarded the session.

        "Authentication required" on an established connection means the server no
        longer knows this session (it is restarting it, as after
        ``signalwire.disconnect`` with ``restart: true``): the request was provably
        not executed. It is held for the next session, once; the socket is given up
        shortly. Returns False when the call must fail instead.
        """
        with self._lock:
            hold = not (call.abandoned or call.held or self._stop.is_set())
            if hold:
                call.held = True
                call.retarget = self._last_protocol
                call.written = False
                if call.progress is not None:
                    call.progress.clear()  # a requester waiting for the write waits again
                self.calls.add(call)
                self._outbox.insert(0, call)
                if not self._draining:
                    self._draining = True
                    self._drain_deadline = time.monotonic() + SESSION_GONE_DRAIN
        if not hold:
            return False
        logger.info("%s refused (%s): the server discarded the session; held for the next one", call.method, err)
        return True

    def _complete_answered(self) -> None:
        # Waking a caller makes it contend for the GIL at once; waking them all
        # together, after this read's writes and just before select() releases the
        # GIL, costs far fewer switches than waking each one mid-batch.
        answered, self._answered = self._answered, []
        for call, value, error in answered:
            if error is None:
                call.resolve(value)
            else:
                call.fail(error)
        try:
            self._on_batch_end()  # the same for message waiters
        except Exception:
            logger.exception("waking message waiters failed")

    # ------------------------------------------------------ drops and reconnect

    def _drop(self, conn: RelaySocket, reason: str) -> None:
        """Close ``conn``; fail the calls that were written on it."""
        conn.close()
        if self._stop.is_set():
            return
        logger.warning("RELAY connection lost: %s", reason)
        with self._lock:
            self.state = RECONNECTING if self.reconnect else CLOSED
        self._wbuf = []
        self._wtext = []
        for call in self.calls.take(lambda c: c.written):
            call.fail(
                ConnectionClosedError(
                    f"connection lost before the reply to {call.method} ({reason}); "
                    "it may have been sent and is not retried automatically",
                    may_have_been_sent=True,
                )
            )

    def _reconnect(self, reason: str) -> bool:
        """Reconnect with backoff and full jitter; return False when stopping for good."""
        import random  # here, not at the top: only a reconnect needs it

        attempt = 0
        while True:
            delay = random.uniform(0, min(self.max_reconnect_delay, 0.25 * (2**attempt)))
            if self._stop.wait(delay):
                return False
            try:
                conn = self._establish()
            except AuthenticationError as exc:
                logger.error("re-authentication rejected: %s; giving up", exc)
                self._fail_closed(exc)
                return False
            except ConnectionClosedError as exc:
                attempt = min(attempt + 1, 16)
                logger.info("reconnect attempt failed: %s", exc)
                continue
            with self._lock:
                stopped = self._stop.is_set()
                if not stopped:
                    self._sock = conn
                    self.state = OPEN
            if stopped:
                conn.close()
            return not stopped

    def _fail_closed(self, error: Exception) -> None:
        with self._lock:
            if self._closed_error is None:
                self._closed_error = error
            self.state = CLOSED
        self._fail_pending(error)
        self._on_lost(str(error))

    def _fail_pending(self, error: Exception) -> None:
        with self._lock:
            self._outbox = []
        # From here on ``written`` cannot change (only the reader writes it, under the
        # lock, for a call in the outbox or a hold refused once _stop is set), so it is
        # read without the lock, even on close()'s thread (docs/design.md, "Locks").
        for call in self.calls.take(lambda c: True):
            exc = ConnectionClosedError(str(error), may_have_been_sent=call.written)
            if not isinstance(error, ConnectionClosedError):
                exc.__cause__ = error
            call.fail(exc)

    def _goodbye(self, conn: RelaySocket) -> None:
        """Best-effort websocket close handshake on a client-initiated disconnect."""
        try:
            conn.sock.settimeout(1.0)
            conn.sock.sendall(self._writer.frame(b"\x03\xe8", wsframes.OP_CLOSE))
        except OSError:
            pass
        conn.close()

    def _finish(self) -> None:
        with self._lock:
            self.state = CLOSED
            error = self._closed_error or ConnectionClosedError("client disconnected")
        self._fail_pending(error)
        self._close_wake()

    def _close_wake(self) -> None:
        for s in (self._wake_r, self._wake_w):
            try:
                s.close()
            except OSError:
                pass


def _retarget(payload: bytes, old: str, new: str | None) -> bytes:
    """A held request for a fresh session: its default context (the old protocol) follows.

    State events go to the clients receiving a message's context; the discarded
    session's protocol is received by nobody any more.
    """
    frame = json.loads(payload)
    params = frame.get("params")
    if new and isinstance(params, dict) and params.get("context") == old:
        params["context"] = new
        return encode_request(frame["id"], frame["method"], params).encode("utf-8")
    return payload
