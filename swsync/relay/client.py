"""``RelayClient``: the synchronous RELAY messaging client."""

from __future__ import annotations

import functools
import logging
import os
import ssl
import threading
import weakref
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import TYPE_CHECKING, Any, NamedTuple

from .. import _config, _validate
from ..errors import ConfigurationError, ConnectionClosedError
from ..optouts import OptOutStore, as_store, check_not_opted_out
from ..ratelimit import checked_rate_limit
from .connection import CLOSED, ConnectAborted, Connection
from .dispatcher import Dispatcher
from .events import parse_message_fields
from .inbound import MAX_BUFFERED_INBOUND, MAX_SEEN_INBOUND, Inbound, InboundHandler
from .message import Handler, Message, MessageTracker

if TYPE_CHECKING:
    from ..bulk import Batch, Outbound
    from ..ratelimit import RateLimit

logger = logging.getLogger("swsync.relay")

_SESSION_LOST = "the RELAY session was not resumed after a reconnect; the outcome of messages sent before it is unknown"

# SignalWire's public RELAY host: the default when neither host nor SIGNALWIRE_SPACE is
# given, as in the official SDKs (signalwire-js packages/core/src/utils/constants.ts,
# DEFAULT_HOST = 'wss://relay.signalwire.com').
DEFAULT_RELAY_HOST = "relay.signalwire.com"
# How long disconnect() waits for a concurrent connect() to give way once it was aborted.
DISCONNECT_GRACE = 0.5

# Seconds run() gives queued callbacks to finish, connection still up, before it disconnects.
DRAIN_TIMEOUT = 10.0

_clients: weakref.WeakSet[RelayClient] = weakref.WeakSet()


class _Session(NamedTuple):
    """A connection with the message tracker and dispatcher that belong to it.

    Immutable and replaced whole (``connect()``, a failed connect, a fork), so a
    reader that takes one reference uses the parts of one session together: a
    send never registers its message in another connection's tracker.
    """

    connection: Connection | None  # None: never connected, the last connect() failed, or a fork child
    tracker: MessageTracker
    dispatcher: Dispatcher


class RelayClient:
    """A synchronous client for SignalWire RELAY messaging.

    One background reader thread owns the websocket; ``send_message`` and
    ``Message.wait`` block only the calling thread; callbacks run on
    ``handler_workers`` dispatch threads. Use it as a context manager, or call
    ``connect()`` and ``disconnect()``. Thread-safe: every method may be called
    from any thread, and ``send_message`` from many threads at once.

    Args:
        project: project id (default ``SIGNALWIRE_PROJECT_ID``).
        token: API token (default ``SIGNALWIRE_API_TOKEN``); or give ``jwt_token``.
        host: space host name, or a ``ws://``/``wss://`` URL (default ``SIGNALWIRE_SPACE``,
            else SignalWire's public RELAY host ``relay.signalwire.com``).
        contexts: contexts whose inbound messages this client receives.
        jwt_token: a JWT instead of project and token (default ``SIGNALWIRE_JWT_TOKEN``).
        ca_file: CA bundle for TLS (default ``SIGNALWIRE_RELAY_CA_FILE``; else the system store).
        request_timeout: seconds to wait for a reply once a request is written.
        connect_timeout: seconds for the TCP/TLS/websocket handshake and authentication.
        reconnect: reconnect automatically after a drop (resuming the session).
        max_reconnect_delay: upper bound of the jittered reconnect backoff, seconds.
        ping_interval: seconds of silence before a keepalive ping; a connection
            silent for twice this is replaced. ``None`` disables keepalive.
        handler_workers: threads running user callbacks.
        queue_timeout: seconds a request made while reconnecting may wait to be sent.
        max_tracked_messages: outbound messages tracked at once before the oldest is dropped.
        message_ttl: seconds a message may stay without a terminal state before it is dropped.
        opt_outs: an opt-out store (``swsync.optouts``) or an SQLite path; sends to a
            number in it raise ``OptedOutError`` before anything is sent.
        rate_limit: a :class:`~swsync.RateLimit` pacing ``send_message`` (shareable).
        auto_connect: connect on first use (``send_message``, ``execute``, ``receive``)
            in each process, so a client created at import time works in every worker
            of a pre-fork server and never connects in the master. ``disconnect()``
            turns it off until the next ``connect()``.

    Every option in seconds must be a positive number: NaN, zero or a negative value
    raises ``ConfigurationError``; infinity and huge values are clamped to about
    three years (never an ``OverflowError`` later).

    Raises:
        ConfigurationError: a credential, the host or an option is missing or invalid.
    """

    def __init__(
        self,
        project: str | None = None,
        token: str | None = None,
        host: str | None = None,
        contexts: Sequence[str] | None = None,
        *,
        jwt_token: str | None = None,
        ca_file: str | None = None,
        request_timeout: float = 10.0,
        connect_timeout: float = 10.0,
        reconnect: bool = True,
        max_reconnect_delay: float = 30.0,
        ping_interval: float | None = 30.0,
        handler_workers: int = 1,
        queue_timeout: float = 30.0,
        max_tracked_messages: int = 100_000,
        message_ttl: float = 24 * 3600.0,
        opt_outs: OptOutStore | str | None = None,
        rate_limit: RateLimit | None = None,
        auto_connect: bool = False,
    ) -> None:
        self._auth = _authentication(project, token, jwt_token)  # secret: never logged or repr'd
        host_value = _config.setting(host, _config.ENV_SPACE, "host", required=False) or DEFAULT_RELAY_HOST
        self._url = _config.relay_url(host_value)
        cafile = _config.ca_file(ca_file, _config.ENV_RELAY_CA)
        self._options = _connection_options(
            request_timeout=request_timeout,
            connect_timeout=connect_timeout,
            max_reconnect_delay=max_reconnect_delay,
            queue_timeout=queue_timeout,
            message_ttl=message_ttl,
            ping_interval=ping_interval,
            reconnect=reconnect,
        )
        self._message_ttl: float = self._options.pop("message_ttl")
        self._handler_workers = _positive_int(handler_workers, "handler_workers")
        self._max_tracked = _positive_int(max_tracked_messages, "max_tracked_messages")
        self.rate_limit = checked_rate_limit(rate_limit)
        self._ssl_context: ssl.SSLContext | None = None
        if self._url.startswith("wss://"):
            self._ssl_context = ssl.create_default_context(cafile=cafile)
        self._opt_outs = as_store(opt_outs)  # swsync.optouts store honoured by send_message, or None
        self._contexts: list[str] = _validate.str_list(contexts, "contexts")
        self._inbound = Inbound(max_seen=MAX_SEEN_INBOUND, max_buffered=MAX_BUFFERED_INBOUND)
        self._state_handlers: tuple[Handler, ...] = ()  # replaced whole, never mutated
        self._auto_connect = bool(auto_connect)
        self._disconnected = False  # disconnect() was called and connect() not since
        self._disconnects = 0  # disconnect() calls so far (under _lifecycle)
        self._forked_from: int | None = None  # pid that had this client connected, in a fork child
        self._stop_error: BaseException | None = None
        self._start_over()
        _clients.add(self)

    def _start_over(self) -> None:
        """The per-process state: fresh locks, no connection (init, fork child)."""
        # Guards _contexts and _state_handlers (replaced whole). Never held while calling
        # user code, doing I/O or waiting; nothing re-enters it.
        self._lock = threading.Lock()
        # Guards the lifecycle state: _session swaps, _connecting, _disconnected, _stop_error
        # and _stopped changes. Held only for those transitions: never across the handshake,
        # a join or user code (the reader takes it in _on_lost).
        self._lifecycle = threading.Lock()
        # Connection, tracker and dispatcher as one: replaced whole under _lifecycle, read
        # without a lock as one reference (s = self._session), never field by field.
        self._session = self._idle_session()
        # Set while a connect() does its handshake; concurrent connect() calls wait for it.
        self._connecting: threading.Event | None = None
        self._stopped = threading.Event()

    def _idle_session(self, *, defer_notify: bool = False) -> _Session:
        """A new tracker and dispatcher, no connection (before the first connect, in a fork child)."""
        dispatcher = Dispatcher(self._handler_workers)
        tracker = MessageTracker(
            dispatcher,
            max_tracked=self._max_tracked,
            message_ttl=self._message_ttl,
            defer_notify=defer_notify,  # a reader wakes waiters once per read (notify_deferred)
            foreign=self._foreign_handlers,
        )
        return _Session(None, tracker, dispatcher)

    def _new_session(self) -> _Session:
        """A connection (not yet opened) bound to its own new tracker and dispatcher."""
        # The connection's callbacks are bound to this session's own tracker and
        # dispatcher: a connection that stopped earlier can never touch a newer one.
        parts = self._idle_session(defer_notify=True)
        tracker = parts.tracker
        conn = Connection(
            self._url,
            auth=self._auth,
            contexts=self._subscriptions,
            on_event=functools.partial(self._on_event, parts),
            on_lost=lambda reason: self._on_lost(conn, tracker, reason),
            on_fresh_session=functools.partial(tracker.closed, _SESSION_LOST),
            on_tick=tracker.expire,
            on_batch_end=tracker.notify_deferred,
            ssl_context=self._ssl_context,
            hold_ack=self._inbound.holds_ack,
            **self._options,
        )
        return parts._replace(connection=conn)

    # ------------------------------------------------------------- lifecycle

    def connect(self) -> RelayClient:
        """Open the websocket and authenticate; return self. No-op when connected.

        Raises:
            AuthenticationError: the credentials were rejected (not retried).
            ConnectionClosedError: the server could not be reached.
        """
        while True:
            attempt = threading.Event()  # ours, if this thread ends up doing the handshake
            session: _Session | None = None
            stale = self._session
            opened = False
            # One try from before the attempt is installed: whatever stops this thread (even
            # an asynchronous KeyboardInterrupt), the attempt is uninstalled and its Event set.
            try:
                with self._lifecycle:
                    other, disconnects = self._connecting, self._disconnects
                    if other is not None and other.is_set():
                        other = self._connecting = None  # its owner was stopped before uninstalling it
                    if other is None:
                        stale = self._session
                        if stale.connection is not None and stale.connection.state != CLOSED:
                            return self
                        # Installed before the handshake, so that disconnect() finds (and aborts) it.
                        self._connecting = attempt
                        session = self._session = self._new_session()
                        self._stopped.clear()
                        self._stop_error = None
                        self._disconnected = False
                if session is None:
                    assert other is not None
                    self._await_attempt(other, disconnects)
                    continue  # it ended without a disconnect(): connected now, or try again
                assert session.connection is not None
                session.connection.open()  # the handshake, on this thread, holding no lock
                opened = True
            finally:
                self._connect_ended(attempt, session, stale, opened)
            self._forked_from = None
            self._inbound.hand_over(session.dispatcher)  # inbound a stopped dispatcher refused, if any
            return self

    def _await_attempt(self, attempt: threading.Event, disconnects: int) -> None:
        """Wait for another thread's connect attempt to end; it is bounded by ``connect_timeout``.

        Raises:
            ConnectAborted: ``disconnect()`` was called meanwhile: this ``connect()`` takes
                the outcome of the attempt it waited for, as the aborted thread does.
        """
        while not attempt.wait(1.0):
            if self._connecting is not attempt:
                break  # its owner was stopped before it could set the Event
        with self._lifecycle:
            aborted = self._disconnects != disconnects
        if aborted:
            raise ConnectAborted("client disconnected while connecting")

    def _connect_ended(self, attempt: threading.Event, session: _Session | None, stale: _Session, opened: bool) -> None:
        try:
            with self._lifecycle:
                if self._connecting is attempt:
                    self._connecting = None
                if not opened and session is not None and self._session is session:
                    self._session = session._replace(connection=None)
                replaced = session is not None and self._session is not stale  # by this attempt
        finally:
            attempt.set()  # first of all: threads waiting for this attempt go on
        if session is not None and not opened:
            session.dispatcher.stop()
        # The previous session (its connection stopped on its own, or never existed) is
        # retired holding no lock, so its callbacks may still call into the client.
        if replaced:
            if stale.connection is not None:
                stale.connection.close()
            stale.dispatcher.stop()

    def disconnect(self) -> None:
        """Close the connection and stop every thread this client started.

        Pending requests fail and every ``Message.wait`` is woken with
        ``ConnectionClosedError``. Idempotent; safe from any thread, including a
        callback; bounded in time. Queued callbacks run before it returns (unless
        called from a callback).
        """
        with self._lifecycle:
            self._disconnected = True
            self._disconnects += 1  # a connect() waiting for another's attempt gives up (_await_attempt)
            session, attempt = self._session, self._connecting
        if session.connection is not None:
            # Also aborts a connect() in progress on another thread: its handshake socket
            # is shut down, so it fails at once.
            session.connection.close("client disconnected")
        session.tracker.closed("client disconnected")
        with self._lifecycle:
            current = self._session.connection
            if current is None or current is session.connection:  # no connect() took over since
                self._stopped.set()
        if attempt is not None:
            attempt.wait(DISCONNECT_GRACE)  # bounded: let the aborted connect() give way
        # Holding no lock: a callback that is itself waiting for one can finish.
        session.dispatcher.stop()
        waiting = self._inbound.waiting()
        if waiting:
            logger.warning(
                "%d inbound message(s) not yet handed to an on_message handler; they are kept for the next connect()",
                waiting,
            )

    def __enter__(self) -> RelayClient:
        return self.connect()

    def __exit__(self, *exc: object) -> None:
        self.disconnect()

    def run(self) -> None:
        """Connect if needed, then block until ``disconnect()``, SIGINT or SIGTERM.

        Meant for inbound-only programs (an auto-responder). Returns cleanly on
        Ctrl-C or SIGTERM (handled when called from the main thread); re-raises
        the error that stopped the client if it stopped on its own (for
        example ``AuthenticationError`` during a reconnect). On Ctrl-C or SIGTERM,
        callbacks already queued run first (at most ``DRAIN_TIMEOUT`` = 10 s) while
        the connection is still up, so their replies can be sent; then it disconnects.
        """
        import signal  # here, not at the top: one-shot scripts never need it

        main = threading.current_thread() is threading.main_thread()
        terminated = threading.Event()

        def on_sigterm(*_: Any) -> None:
            terminated.set()
            self._stopped.set()

        previous: Any = None
        if main:  # before connecting: a SIGTERM must never find the default handler
            previous = signal.signal(signal.SIGTERM, on_sigterm)
        try:
            try:
                self.connect()
            except ConnectAborted:
                pass  # disconnect() during connect() ends run() cleanly, as after it
            if terminated.is_set():
                self._stopped.set()  # SIGTERM came during connect(), which resets the event
            self._stopped.wait()
        except KeyboardInterrupt:
            logger.info("interrupted; disconnecting")
        finally:
            if main:
                signal.signal(signal.SIGTERM, previous)
            error = self._stop_error
            try:
                if error is None and self.connected:
                    self._drain_callbacks()
            finally:
                self.disconnect()
        if error is not None:
            raise error

    def _drain_callbacks(self) -> None:
        # Queued callbacks were for events already ACKed: run them while their replies
        # can still be sent. Bounded: a stuck callback must not block shutdown.
        if not self._session.dispatcher.drain(DRAIN_TIMEOUT):
            logger.warning("callbacks still running after %s s; disconnecting anyway", DRAIN_TIMEOUT)

    @property
    def connected(self) -> bool:
        """True while the websocket is open and authenticated."""
        conn = self._session.connection
        return conn is not None and conn.connected

    @property
    def project(self) -> str:
        """The project ID the client authenticates with ('' with a JWT that has none)."""
        return self._auth.get("project", "")

    @property
    def protocol(self) -> str:
        """The RELAY session (``protocol``) string of the current connection ('' if none)."""
        conn = self._session.connection
        return (conn.protocol or "") if conn is not None else ""

    @property
    def contexts(self) -> list[str]:
        """The contexts this client receives inbound messages for."""
        return self._subscriptions()

    def __repr__(self) -> str:
        state = "connected" if self.connected else "disconnected"
        return f"<RelayClient {self._url} {state} contexts={self._subscriptions()!r}>"

    # -------------------------------------------------------------- requests

    def _live_session(self) -> tuple[_Session, Connection]:
        """The current session and its connection, connecting first with ``auto_connect``."""
        s = self._session
        conn = s.connection
        if conn is not None and conn.state != CLOSED:
            return s, conn
        if self._auto_connect and not self._disconnected:
            self.connect()  # first use in this process (or after the client stopped)
            s = self._session
            conn = s.connection
            if conn is not None and conn.state != CLOSED:
                return s, conn
        raise ConnectionClosedError(self._not_connected_reason())

    def _not_connected_reason(self) -> str:
        parent = self._forked_from
        if parent is not None:
            return (
                f"client is not connected: this process (pid {os.getpid()}) was forked from "
                f"pid {parent}, where the client was connected, and a RELAY connection cannot "
                "be shared across processes. Connect in each process instead: create the client "
                "with auto_connect=True (it connects on first use) or call connect() after the "
                "fork (e.g. in gunicorn's post_fork hook); see the README, 'Pre-fork servers'"
            )
        if self._disconnected:
            return "client is not connected: disconnect() was called; call connect() to use it again"
        return "client is not connected; call connect() or use 'with client:'"

    def execute(
        self, method: str, params: Mapping[str, Any] | None = None, *, timeout: float | None = None
    ) -> dict[str, Any]:
        """Send a raw JSON-RPC request and return its ``result`` object.

        Raises:
            ValueError: ``timeout`` is NaN, negative or not a number (infinity means
                as long as it takes).
            RelayError: the server refused it (JSON-RPC error or non-2xx ``code``).
            WaitTimeout: no reply within ``timeout`` (default ``request_timeout``).
            ConnectionClosedError: the connection closed before the reply.
        """
        if not isinstance(method, str) or not method:
            raise ValueError("method must be a non-empty string")
        if timeout is not None:  # NaN/negative: ValueError; infinity: as long as threads allow
            limit = _validate.timeout(timeout)
            timeout = _validate.MAX_TIMEOUT if limit is None else limit
        _, conn = self._live_session()
        result: dict[str, Any] = conn.request(method, dict(params or {}), timeout=timeout)
        return result

    def send_message(
        self,
        to_number: str,
        from_number: str,
        body: str | None = None,
        *,
        media: Sequence[str] | None = None,
        tags: Sequence[str] | None = None,
        context: str | None = None,
        region: str | None = None,
        on_completed: Handler | None = None,
        check_context: bool = True,
    ) -> Message:
        """Send an SMS/MMS and return its live ``Message`` (state ``queued``).

        The message is registered before any of its state events can be
        processed, so none is lost however early the server sends them.

        Args:
            to_number, from_number: E.164 numbers or short codes (3 to 8 digits).
            body: the text; a body and/or ``media`` is required.
            media: public URLs of media for an MMS (at most 10).
            tags: labels stored with the message.
            context: the context the message's events belong to (default: the session's
                protocol). SignalWire sends a message's state events only to clients
                that receive its context, so it must be one this client receives.
            region: origination region.
            on_completed: ``callback(event)`` run once, on a dispatch thread, at the terminal state.
            check_context: with ``False``, send on a context this client does not
                receive (another process tracks it, e.g. with ``on_message_state``);
                this ``Message`` then gets no state events and ``wait()`` runs out.

        Raises:
            ValueError: bad arguments, or a ``context`` this client does not receive
                (nothing is sent).
            OptedOutError: ``to_number`` is in the client's opt-out store (nothing is sent).
            RelayError: the server refused the message.
            WaitTimeout: no reply within ``request_timeout`` (the message may have been sent).
            ConnectionClosedError: the connection closed first (see ``may_have_been_sent``).
            RateLimited: ``rate_limit`` did not admit it within its ``max_wait`` (not sent).
        """
        _validate.phone_number(to_number, "to_number")
        _validate.phone_number(from_number, "from_number")
        body, urls = _validate.content(body, media)
        check_not_opted_out(self._opt_outs, to_number)
        tag_list = _validate.str_list(tags, "tags")
        if context is not None and (not isinstance(context, str) or not context):
            raise ValueError("context must be a non-empty string")
        if region is not None and (not isinstance(region, str) or not region):
            raise ValueError("region must be a non-empty string")
        if on_completed is not None and not callable(on_completed):
            raise TypeError("on_completed must be callable")
        session, conn = self._live_session()
        if context is not None and check_context:
            self._check_context(context, conn)
        if self.rate_limit is not None:  # blocks until admitted, or raises RateLimited
            self.rate_limit.acquire(from_number=from_number, body=body, media=urls, account=self.project)
        # Without a context or a protocol the server is replacing the session (signalwire.disconnect
        # with restart): the send is held for the next session, whose protocol the server then uses
        # as the default context. "default" would be a named context this client may not receive.
        params = _send_params(to_number, from_number, body, urls, tag_list, context or conn.protocol, region)
        fields = dict(params, direction="outbound", message_state="queued", media=urls, tags=tag_list)
        return _request_send(conn, session.tracker, params, fields, on_completed)

    def send_many(
        self,
        outbounds: Iterable[Outbound],
        *,
        journal: str | None = None,
        window: int = 64,
        wait: bool = True,
        timeout: float | None = 60.0,
        retry_unknown: bool = False,
    ) -> Batch:
        """Send many messages, at most ``window`` in flight, never twice with a journal.

        See :func:`swsync.bulk.send_many` (the implementation) for the details.
        """
        from ..bulk import send_many

        return send_many(
            self, outbounds, journal=journal, window=window, wait=wait, timeout=timeout, retry_unknown=retry_unknown
        )

    def _check_context(self, context: str, conn: Connection) -> None:
        # In production a message's state events go only to sessions that receive its
        # context (the session's own protocol always is one): without this check such
        # a send "works" and its wait() hangs until the timeout.
        if context == conn.protocol or context in self._subscriptions():
            return
        raise ValueError(
            f"context {context!r} is not one this client receives, so the message's state "
            f"events would never reach it and wait() would hang: create the client with "
            f"contexts=[{context!r}] or call client.receive([{context!r}]) first, or pass "
            f"check_context=False if another client tracks this context"
        )

    # --------------------------------------------------------------- inbound

    def on_message(self, handler: InboundHandler | None = None, *, ack_after: bool = False) -> Any:
        """Register ``handler(message)`` for every inbound message; usable as a decorator.

        Inbound messages that arrived before any handler was registered (up to
        1000) are delivered to the first handler. Handlers run on a dispatch
        thread, never on the socket reader.

        With ``ack_after=True`` the RELAY event carrying each inbound message is
        acknowledged only after the handlers ran and this one returned without
        raising: a handler that hands the message on (to a queue, a database)
        makes the hand-off at-least-once. If it raises, the event stays
        un-acknowledged and the server may deliver it again (to a resumed
        session), so such a handler must tolerate duplicates. Also usable as
        ``@client.on_message(ack_after=True)``.
        """
        if handler is None:  # @client.on_message(ack_after=True)
            return functools.partial(self.on_message, ack_after=ack_after)
        if not callable(handler):
            raise TypeError("handler must be callable")
        self._inbound.add_handler(handler, ack_after=ack_after)
        self._inbound.hand_over(self._session.dispatcher)
        return handler

    def on_message_state(self, handler: Handler) -> Handler:
        """Register ``handler(event)`` for state events of messages this client did not send.

        SignalWire sends a message's ``messaging.state`` events to every client that
        receives the message's context, so one process can follow the delivery of
        messages that other processes send on its contexts (as the Node SDK's
        ``onMessageUpdated`` does). ``event`` is a ``MessageStateEvent``; states only
        move forward and each is handed out once. Events of this client's own
        messages never reach these handlers (use ``Message.on`` or ``on_completed``).
        Handlers run on a dispatch thread, in event order per message. Usable as a
        decorator; returns ``handler``.
        """
        if not callable(handler):
            raise TypeError("handler must be callable")
        with self._lock:
            self._state_handlers = (*self._state_handlers, handler)
        return handler

    def _foreign_handlers(self) -> tuple[Handler, ...]:
        return self._state_handlers  # read without the lock: the tuple is replaced whole

    def receive(self, contexts: Iterable[str]) -> None:
        """Start receiving inbound messages for more ``contexts`` (kept across reconnects)."""
        wanted = _validate.str_list(contexts, "contexts")
        if not wanted:
            return
        self.execute("signalwire.receive", {"contexts": wanted})
        with self._lock:
            for c in wanted:
                if c not in self._contexts:
                    self._contexts.append(c)

    def unreceive(self, contexts: Iterable[str]) -> None:
        """Stop receiving inbound messages for ``contexts``."""
        unwanted = _validate.str_list(contexts, "contexts")
        if not unwanted:
            return
        self.execute("signalwire.unreceive", {"contexts": unwanted})
        with self._lock:
            self._contexts = [c for c in self._contexts if c not in unwanted]

    def _subscriptions(self) -> list[str]:
        with self._lock:
            return list(self._contexts)

    def _after_fork(self) -> None:
        # In a forked child: the parent's threads do not exist here and its locks may
        # be held forever. Start over disconnected; close (never shut down) the
        # inherited descriptors so the parent's connection is untouched. The parent's
        # buffered inbound messages stay the parent's.
        s = self._session
        if s.connection is not None:
            if s.connection.state != CLOSED:
                self._forked_from = os.getppid()
            s.connection.forget_after_fork()
        s.tracker.reset_after_fork()
        self._inbound = self._inbound.forked()
        self._start_over()

    # ------------------------------------------------- reader-thread callbacks

    def _on_event(
        self,
        session: _Session,
        event_type: str,
        params: Mapping[str, Any],
        envelope: Mapping[str, Any],
        ack: Callable[[], None] | None = None,
    ) -> None:
        ts = envelope.get("timestamp")
        timestamp = float(ts) if isinstance(ts, (int, float)) and not isinstance(ts, bool) else None
        if event_type == "messaging.state":
            fields = parse_message_fields(params)
            mid = fields.get("message_id")
            state = fields.get("message_state")
            if not mid or not state:
                logger.warning("dropped a messaging.state event without message_id/message_state")
                return
            session.tracker.apply_state(fields, params, timestamp)
        elif event_type == "messaging.receive":
            self._inbound.receive(session.tracker, session.dispatcher, params, timestamp, ack)
        else:
            logger.debug("ignoring %s event", event_type)

    def _on_lost(self, conn: Connection, tracker: MessageTracker, reason: str) -> None:
        # The connection stopped for good on its own (reconnect disabled or auth refused).
        tracker.closed(f"connection lost for good: {reason}")
        with self._lifecycle:
            if conn is not self._session.connection:
                return  # an older connection: the client has moved on
            self._stop_error = conn.closed_error
            self._stopped.set()


def _connection_options(
    *,
    request_timeout: float,
    connect_timeout: float,
    max_reconnect_delay: float,
    queue_timeout: float,
    message_ttl: float,
    ping_interval: float | None,
    reconnect: bool,
) -> dict[str, Any]:
    """The validated timing options (``Connection`` keywords, plus ``message_ttl``).

    NaN, zero and negative values are refused; infinity and huge values are clamped
    (never an ``OverflowError`` later).

    Raises:
        ConfigurationError: an option is not a positive number of seconds.
    """
    durations = dict(
        request_timeout=request_timeout,
        connect_timeout=connect_timeout,
        max_reconnect_delay=max_reconnect_delay,
        queue_timeout=queue_timeout,
        message_ttl=message_ttl,
    )
    try:
        options: dict[str, Any] = {name: float(_validate.duration(value, name)) for name, value in durations.items()}
        if ping_interval is not None:
            ping_interval = float(_validate.duration(ping_interval, "ping_interval"))
    except ValueError as exc:
        raise ConfigurationError(f"{exc} (a positive number of seconds)") from None
    options.update(ping_interval=ping_interval, reconnect=bool(reconnect))
    return options


def _positive_int(value: object, name: str) -> int:
    """``value`` when it is a positive ``int``; else ``ConfigurationError``."""
    if not isinstance(value, int) or value < 1:
        raise ConfigurationError(f"{name} must be a positive integer")
    return value


def _send_params(
    to_number: str,
    from_number: str,
    body: str | None,
    media: list[str],
    tags: list[str],
    context: str | None,
    region: str | None,
) -> dict[str, Any]:
    """The ``messaging.send`` params of validated arguments; empty ones are left out."""
    params: dict[str, Any] = {}
    if context:
        params["context"] = context
    params.update(to_number=to_number, from_number=from_number)
    if body:
        params["body"] = body
    if media:
        params["media"] = media
    if tags:
        params["tags"] = tags
    if region:
        params["region"] = region
    return params


def _request_send(
    conn: Connection,
    tracker: MessageTracker,
    params: dict[str, Any],
    fields: dict[str, Any],
    on_completed: Handler | None,
) -> Message:
    """Send ``messaging.send`` on ``conn`` and return the ``Message`` ``tracker`` registered.

    The message is registered on the reader thread while it handles the reply, before
    the next frame is read, so none of its state events can be missed.
    """

    def register(result: dict[str, Any]) -> Message:
        message_id = result.get("message_id")
        if not isinstance(message_id, str) or not message_id:
            raise ValueError("messaging.send result has no message_id")
        if "context" not in fields:  # sent without one: the session that accepted it
            fields["context"] = conn.protocol
        return tracker.register(message_id, fields, on_completed, seq)

    seq = tracker.send_started()  # events of unknown ids are held until this is answered
    try:
        message: Message = conn.request("messaging.send", params, on_result=register)
    except BaseException:
        tracker.send_finished(seq)
        raise
    return message


def _authentication(project: str | None, token: str | None, jwt_token: str | None) -> dict[str, str]:
    """The ``authentication`` object of ``signalwire.connect``, from arguments or the environment.

    An explicit ``jwt_token`` wins; from the environment, a JWT is used only when no
    API token is given either way (a stale exported JWT must not shadow the token).
    """
    jwt = _config.setting(jwt_token, _config.ENV_JWT, "jwt_token", required=False)
    if jwt is not None and (jwt_token is not None or (token is None and not os.environ.get(_config.ENV_TOKEN))):
        auth = {"jwt_token": jwt}
        proj = _config.setting(project, _config.ENV_PROJECT, "project", required=False)
        if proj:
            auth["project"] = proj
        return auth
    proj = _config.setting(project, _config.ENV_PROJECT, "project")
    tok = _config.setting(token, _config.ENV_TOKEN, "token")
    assert proj is not None and tok is not None
    return {"project": proj, "token": tok}


def _after_fork_in_child() -> None:
    # The reader thread and socket belong to the parent: forget them, unconnected.
    for client in list(_clients):
        client._after_fork()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_after_fork_in_child)
