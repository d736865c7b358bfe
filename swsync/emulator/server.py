"""The :class:`Emulator`: one aiohttp app serving RELAY and REST on one port.

Threading model: the emulator owns one thread, ``swsync-emulator``, which runs an
asyncio event loop with the aiohttp server; every socket, session, task and
record mutation lives on that loop. Public methods called from other threads hop
onto the loop with ``run_coroutine_threadsafe`` and wait for the answer, or read
the store under its lock. ``close()`` stops everything and joins the thread.
"""

from __future__ import annotations

import asyncio
import logging
import secrets
import socket
import ssl
import threading
import time
import uuid
from collections.abc import Awaitable, Callable, Sequence
from typing import Any, TypeVar

from aiohttp import web

from .. import _validate
from .callbacks import Webhooks
from .control import ControlApi
from .faults import Counters, Faults, Stats
from .inbox import Inbox
from .pacing import DEFAULT_BACKLOG, Pacer
from .relay import RelayServer
from .rest import RestApi
from .store import MessageRecord, Outcome, Store, outcome_for

__all__ = ["Emulator"]

logger = logging.getLogger(__name__)

T = TypeVar("T")

_CALL_TIMEOUT = 30.0  # bound on any public call waiting for the loop thread


def _check_options(
    state_delay: float,
    ping_interval: float | None,
    session_ttl: float,
    certfile: str | None,
    keyfile: str | None,
    inbound_webhook_url: str | None,
) -> None:
    """Raise ``ValueError`` for an ``Emulator`` option out of range."""
    if state_delay < 0:
        raise ValueError("state_delay must be >= 0")
    if ping_interval is not None and ping_interval <= 0:
        raise ValueError("ping_interval must be > 0 or None")
    if session_ttl < 0:
        raise ValueError("session_ttl must be >= 0")
    if keyfile is not None and certfile is None:
        raise ValueError("keyfile needs certfile")
    if inbound_webhook_url is not None and not inbound_webhook_url.startswith(("http://", "https://")):
        raise ValueError("inbound_webhook_url must be an http(s) URL")


class Emulator:
    """A local SignalWire stand-in: RELAY WebSocket and cXML REST on one port.

    Args:
        host: address to listen on (default ``127.0.0.1``).
        port: TCP port; 0 picks a free one (see :attr:`port` after ``start()``).
        project: project ID it accepts (a fresh UUID4 when omitted).
        token: API token it accepts (``"PT" + hex`` when omitted).
        jwt_token: RELAY JWT it accepts instead of project+token (random when omitted).
        signing_key: key webhooks are signed with (``"PSK_" + hex`` when omitted).
        certfile, keyfile: serve TLS (``wss://``/``https://``) on the same port.
        state_delay: seconds between a message's state changes; 0 emits them all
            back to back right after the send response.
        inbound_webhook_url: where :meth:`inject_inbound` POSTs the inbound
            message, cXML style; ``<Message>`` verbs in the reply are sent.
        ping_interval: send ``signalwire.ping`` to every client this often (s).
        session_ttl: how long a RELAY session stays resumable after its socket
            went away (s).
        mps: pace each sender like SignalWire's carrier queue: its messages reach
            ``sent`` in order, at most this many segments per second; a send past
            ``backlog`` queued messages is refused; REST POSTs are rate limited
            (see ``swsync.emulator.pacing``). ``None`` (default): no pacing.
        backlog: most messages queued for their turn at once (with ``mps``).

    Use it as a context manager (``start()`` on enter, ``close()`` on exit).
    Thread-safe: every public method may be called from any thread except the
    emulator's own; a webhook receiver running in another thread may call it.
    """

    def __init__(
        self,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        project: str | None = None,
        token: str | None = None,
        jwt_token: str | None = None,
        signing_key: str | None = None,
        certfile: str | None = None,
        keyfile: str | None = None,
        state_delay: float = 0.05,
        inbound_webhook_url: str | None = None,
        ping_interval: float | None = None,
        session_ttl: float = 60.0,
        mps: float | None = None,
        backlog: int = DEFAULT_BACKLOG,
    ) -> None:
        _check_options(state_delay, ping_interval, session_ttl, certfile, keyfile, inbound_webhook_url)
        self.host = host
        self.port = port
        self.project = project or str(uuid.uuid4())
        self.token = token or "PT" + secrets.token_hex(24)
        self.jwt_token = jwt_token or secrets.token_urlsafe(48)
        self.signing_key = signing_key or "PSK_" + secrets.token_hex(24)
        self.certfile = certfile
        self.keyfile = keyfile
        self.state_delay = float(state_delay)
        self.inbound_webhook_url = inbound_webhook_url
        self.ping_interval = ping_interval
        self.session_ttl = float(session_ttl)
        self.node_id = str(uuid.uuid4())
        self.space_id = str(uuid.uuid4())

        self.faults = Faults()
        self.pacing = Pacer(mps, backlog)  # carrier pacing (off unless mps is given)
        # The parts below are internals shared by the relay, rest and callbacks
        # modules; they are not part of the public API.
        self.counters = Counters()
        self.store = Store()
        self.relay = RelayServer(self)
        self.rest = RestApi(self)
        self.hooks = Webhooks(self)
        self.control = ControlApi(self)
        self.inbox = Inbox(self)  # the web inbox and its JSON API, under /_emulator/

        # Guards _live_clients (authenticated RELAY sockets); wait_for_clients
        # sleeps on it. Only ever held for a counter update or a wait.
        self._clients = threading.Condition(threading.Lock())
        self._live_clients = 0
        # Guards _thread/_loop/_running/_closed transitions in start() and close().
        self._life = threading.Lock()
        self._thread: threading.Thread | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._running = False
        self._closed = False
        self._tasks: set[asyncio.Task[Any]] = set()
        self._ping_task: asyncio.Task[Any] | None = None
        self._runner: web.AppRunner | None = None

    # -- lifecycle ---------------------------------------------------------------

    @property
    def tls(self) -> bool:
        """Whether the emulator serves TLS."""
        return self.certfile is not None

    @property
    def relay_url(self) -> str:
        """The RELAY URL, ``ws://host:port`` (``wss://`` with TLS)."""
        return f"{'wss' if self.tls else 'ws'}://{self._netloc()}"

    @property
    def rest_url(self) -> str:
        """The REST origin, ``http://host:port`` (``https://`` with TLS)."""
        return f"{'https' if self.tls else 'http'}://{self._netloc()}"

    @property
    def ui_url(self) -> str:
        """The web inbox, ``http://host:port/_emulator/`` (see docs/emulator.md)."""
        return f"{self.rest_url}/_emulator/"

    def _netloc(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{host}:{self.port}"

    def start(self) -> Emulator:
        """Start serving; return once the port is listening.

        Returns:
            ``self``, so ``emu = Emulator().start()`` works.

        Raises:
            OSError: the address could not be bound.
            ssl.SSLError: the certificate or key could not be loaded.
            RuntimeError: the emulator was already closed.
        """
        with self._life:
            if self._closed:
                raise RuntimeError("this Emulator was closed; create a new one")
            if self._running:
                return self
            ssl_context = self._ssl_context()
            sock = self._bind()
            ready = threading.Event()
            failure: list[BaseException] = []
            thread = threading.Thread(
                name="swsync-emulator", target=self._run, args=(sock, ssl_context, ready, failure), daemon=True
            )
            thread.start()
            ready.wait()
            if failure:
                thread.join()
                raise failure[0]
            self._thread = thread
            self._running = True
        logger.info("emulator listening on %s", self.rest_url)
        return self

    def _ssl_context(self) -> ssl.SSLContext | None:
        if self.certfile is None:
            return None
        ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        ctx.load_cert_chain(self.certfile, self.keyfile)
        return ctx

    def _bind(self) -> socket.socket:
        family, kind, proto, _, addr = socket.getaddrinfo(
            self.host, self.port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE
        )[0]
        sock = socket.socket(family, kind, proto)
        try:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            sock.bind(addr)
            sock.listen(256)
        except OSError:
            sock.close()
            raise
        self.port = sock.getsockname()[1]
        return sock

    def _run(
        self,
        sock: socket.socket,
        ssl_context: ssl.SSLContext | None,
        ready: threading.Event,
        failure: list[BaseException],
    ) -> None:
        loop = asyncio.new_event_loop()
        self._loop = loop
        try:
            try:
                loop.run_until_complete(self._setup(sock, ssl_context))
            except BaseException as exc:  # noqa: BLE001 - re-raised in start()
                failure.append(exc)
                sock.close()
                return
            finally:
                ready.set()
            loop.run_forever()
        finally:
            pending = asyncio.all_tasks(loop)
            for task in pending:
                task.cancel()
            if pending:
                loop.run_until_complete(asyncio.gather(*pending, return_exceptions=True))
            loop.run_until_complete(loop.shutdown_asyncgens())
            loop.close()

    async def _setup(self, sock: socket.socket, ssl_context: ssl.SSLContext | None) -> None:
        app = web.Application(client_max_size=4 * 1024 * 1024)
        app.router.add_get("/", self.relay.handle)
        self.inbox.mount(app)
        self.control.add_routes(app, guard=self.inbox.guard)
        app.router.add_route("*", "/{tail:.*}", self.rest.handle)
        runner = web.AppRunner(app, access_log=None, handle_signals=False, shutdown_timeout=1.0)
        await runner.setup()
        site = web.SockSite(runner, sock, ssl_context=ssl_context)
        await site.start()
        self._runner = runner
        if self.ping_interval:
            self._ping_task = asyncio.get_running_loop().create_task(self.relay.ping_loop(self.ping_interval))

    def close(self) -> None:
        """Close every connection, stop serving and join the thread. Idempotent."""
        with self._life:
            if self._closed:
                return
            self._closed = True
            if not self._running:
                return
            self._running = False
            loop, thread = self._loop, self._thread
        assert loop is not None and thread is not None
        if threading.current_thread() is thread:
            raise RuntimeError("Emulator.close() cannot run on the emulator's own thread")
        try:
            asyncio.run_coroutine_threadsafe(self._teardown(), loop).result(_CALL_TIMEOUT)
        except Exception:
            logger.exception("emulator teardown failed")
        loop.call_soon_threadsafe(loop.stop)
        thread.join()
        with self._clients:
            self._live_clients = 0
            self._clients.notify_all()

    async def _teardown(self) -> None:
        if self._ping_task is not None:
            self._ping_task.cancel()
        self._cancel_progress()
        self.relay.cancel_tasks()
        self.inbox.close()
        await self.hooks.close()
        await self.relay.close_all()
        if self._runner is not None:
            await self._runner.cleanup()

    def __enter__(self) -> Emulator:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        state = "running" if self._running else ("closed" if self._closed else "new")
        return f"<Emulator {state} relay_url={self.relay_url!r} rest_url={self.rest_url!r}>"

    # -- calls onto the loop -----------------------------------------------------------

    def _call(self, fn: Callable[..., Awaitable[T]], *args: Any, timeout: float = _CALL_TIMEOUT) -> T:
        loop = self._loop
        if not self._running or loop is None:
            raise RuntimeError("the emulator is not running (call start() first)")
        if threading.current_thread() is self._thread:
            raise RuntimeError("this Emulator method cannot be called from the emulator's own thread")

        async def runner() -> T:
            return await fn(*args)

        return asyncio.run_coroutine_threadsafe(runner(), loop).result(timeout)

    def _client_count(self, delta: int) -> None:
        with self._clients:
            self._live_clients += delta
            self._clients.notify_all()

    # -- the state engine (loop thread) ---------------------------------------------

    def advance(self, record: MessageRecord, state: str, outcome: Outcome) -> None:
        """Move ``record`` to ``state`` and tell whoever listens (RELAY, callback).

        A message sent over RELAY (it has a context) has its ``messaging.state``
        events routed by that context; REST and cXML messages have none.
        """
        self.store.advance(record, state, outcome)
        if record.context is not None and record.origin == "relay":
            self.relay.state_event(record, state)
        if record.status_callback:
            self.hooks.status_callback(record, state)

    def launch(self, record: MessageRecord, outcome: Outcome, *, start: int) -> None:
        """Run ``outcome.states[start:]`` in a task, ``state_delay`` apart.

        With ``start > 0`` the first of them also waits ``state_delay``.
        """
        task = asyncio.get_running_loop().create_task(self._progress(record, outcome, start))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _progress(self, record: MessageRecord, outcome: Outcome, start: int) -> None:
        states = outcome.states
        for i in range(start, len(states)):
            delay = self.state_delay
            if delay and (i > start or start > 0):
                await asyncio.sleep(delay)
            sent_at = None
            if states[i] == "sent":
                sent_at = await self.pacing.wait_turn(record.sid)  # Emulator(mps=...): its turn
            self.advance(record, states[i], outcome)
            if sent_at is not None:
                self.store.set_date_sent(record, sent_at)

    def _cancel_progress(self) -> None:
        for task in list(self._tasks):
            task.cancel()

    def create_outbound(
        self,
        *,
        to: str,
        from_: str,
        body: str | None,
        media: Sequence[str],
        direction: str,
        origin: str,
        status_callback: str | None = None,
        messaging_service_sid: str | None = None,
        send_as_mms: bool = False,
    ) -> MessageRecord:
        """Store a REST or cXML outbound message and start its progression (loop thread)."""
        record = self.store.new_message(
            account_sid=self.project,
            from_=from_,
            to=to,
            body=body,
            media=media,
            direction=direction,
            origin=origin,
            status_callback=status_callback,
            messaging_service_sid=messaging_service_sid,
            send_as_mms=send_as_mms,
        )
        self.launch(record, outcome_for(to), start=0)
        return record

    # -- public helpers for tests -----------------------------------------------------

    def inject_inbound(
        self,
        to_number: str,
        from_number: str,
        body: str | None = None,
        context: str = "default",
        media: Sequence[str] | None = None,
    ) -> str:
        """Simulate an inbound SMS/MMS from ``from_number`` to your ``to_number``.

        It is stored (direction ``inbound``, status ``received``), sent as
        ``messaging.receive`` to ONE RELAY session subscribed to ``context``
        (sessions take turns, round-robin; a disconnected session that can still
        resume queues it only when no subscribed session is connected) and, when
        ``inbound_webhook_url`` is set, POSTed there signed; ``<Message>`` verbs in
        the cXML reply are sent as new outbound messages.

        Returns:
            The new message's id (its ``MessageSid``).

        Raises:
            ValueError: a number is neither E.164 nor a short code, or neither body nor media given.
        """
        _validate.phone_number(to_number, "to_number")
        _validate.phone_number(from_number, "from_number")
        body, urls = _validate.content(body, media)
        if not isinstance(context, str) or not context:
            raise ValueError("context must be a non-empty string")
        return self._call(self._inject, to_number, from_number, body, context, urls)

    async def _inject(self, to: str, from_: str, body: str | None, context: str, media: list[str]) -> str:
        return self.receive_inbound(to, from_, body, context, media)[0].sid

    def receive_inbound(
        self, to: str, from_: str, body: str | None, context: str, media: list[str]
    ) -> tuple[MessageRecord, int]:
        """Store an inbound message and hand it out (loop thread; arguments valid).

        Returns the record and how many RELAY sessions it went to (0 or 1).
        """
        record = self.store.new_message(
            account_sid=self.project,
            from_=from_,
            to=to,
            body=body if body is not None else "",
            media=media,
            direction="inbound",
            status="received",
            origin="inbound",
            context=context,
        )
        sessions = self.relay.inbound(record)
        if self.inbound_webhook_url:
            self.hooks.inbound(record, self.inbound_webhook_url)
        return record, sessions

    def wait_for_clients(self, n: int, timeout: float | None = 5.0) -> None:
        """Block until at least ``n`` authenticated RELAY connections are open.

        Raises:
            TimeoutError: fewer than ``n`` within ``timeout`` seconds.
        """
        with self._clients:
            if not self._clients.wait_for(lambda: self._live_clients >= n, timeout):
                raise TimeoutError(f"{self._live_clients} authenticated RELAY clients after {timeout} s, wanted {n}")

    @property
    def clients(self) -> int:
        """How many authenticated RELAY connections are open right now."""
        with self._clients:
            return self._live_clients

    def wait_for_status(self, sid: str, status: str, timeout: float | None = 5.0) -> dict[str, Any]:
        """Block until message ``sid`` has reached ``status`` (now or earlier).

        Returns:
            The message as :meth:`get_message` returns it.

        Raises:
            TimeoutError: not reached within ``timeout`` seconds.
        """
        return self.store.wait_for(sid, status, timeout)

    def get_message(self, sid: str) -> dict[str, Any] | None:
        """Return a copy of a stored message, or ``None``.

        The dict has the REST field names (``sid``, ``from``, ``to``, ``body``,
        ``status``, ``direction``, ``num_segments``, ``num_media``, the dates as
        RFC 2822 strings, ``error_code``, ``error_message``, ``price``, ...) plus
        ``media`` (URLs), ``context``, ``tags``, ``reason``, ``origin`` (``relay``,
        ``rest``, ``inbound``, ``cxml`` or ``seed``) and ``history`` (every status
        it has had, in order).
        """
        return self.store.snapshot(sid)

    def add_messages(self, count: int, **fields: Any) -> list[str]:
        """Seed ``count`` finished messages straight into the store; return their sids.

        Record ``i`` is dated ``i + 1`` hours ago (created and sent), so they
        spread over ``count / 24`` days and list newest first in the order
        returned. Keyword fields: ``to``, ``from_`` (or ``from``), ``body`` (may
        contain ``{i}``), ``status`` (default ``delivered``), ``direction``,
        ``media``, ``error_code``, ``error_message``, ``context``, ``tags``.
        """
        return self.store.seed(count, self.project, fields)

    def drop_connections(self) -> None:
        """Abruptly close every client socket (TCP close, no WebSocket close frame)."""

        async def drop() -> int:
            return self.relay.drop_all()

        self._call(drop)

    def send_raw(self, text: str) -> None:
        """Send ``text`` as one raw text frame to every authenticated client."""
        if not isinstance(text, str):
            raise TypeError("text must be a str")

        async def send() -> int:
            return self.relay.send_raw(text)

        self._call(send)

    def server_disconnect(self, restart: bool = False) -> None:
        """Send ``signalwire.disconnect`` to every client, then close each socket.

        A socket is closed once its client ACKs the notice, or after 1 s. With
        ``restart=True`` the sessions are discarded (a resume will fail), as the
        client is told to start afresh.
        """

        async def disconnect() -> int:
            return self.relay.server_disconnect(bool(restart))

        self._call(disconnect)

    def reset(self) -> None:
        """Clear messages, faults, sessions (dropping their sockets), stats and the log."""

        self.faults.reset()
        self._call(self.reset_on_loop)

    async def reset_on_loop(self) -> None:
        """``reset()`` minus the faults, on the loop thread (the inbox's reset calls it)."""
        self._cancel_progress()
        self.hooks.cancel()
        self.relay.reset()
        self.store.clear()
        self.counters.reset()

    @property
    def unacked_events(self) -> int:
        """How many events sent (or queued) to RELAY sessions still await an ACK."""
        if threading.current_thread() is self._thread:
            return self.relay.unacked_count()  # e.g. inside a wait_until() predicate

        async def count() -> int:
            return self.relay.unacked_count()

        return self._call(count)

    @property
    def stats(self) -> Stats:
        """A snapshot of the traffic counters (see :class:`~swsync.emulator.Stats`)."""
        return self.counters.snapshot()

    @property
    def request_log(self) -> list[tuple[str, str]]:
        """``(method, path_with_query)`` of recent REST requests, oldest first (max 10,000)."""
        return self.store.request_log()

    def wait_idle(self, timeout: float = 5.0) -> None:
        """Block until no state change and no webhook is pending any more.

        Messages to ``NO_DLR_NUMBER`` and failed callbacks settle too, so after this
        a test can assert that nothing else will happen.

        Raises:
            TimeoutError: still busy after ``timeout`` seconds.
        """
        self.wait_until(lambda: not self._tasks and not self.hooks.busy, timeout)

    def wait_until(self, predicate: Callable[[], bool], timeout: float = 5.0) -> None:
        """Block until ``predicate()`` (run on the emulator's thread) is true.

        Checked once each time the loop goes idle-ish (every 5 ms); for conditions
        on ``stats`` or ``unacked_events`` that have no dedicated wait.

        Raises:
            TimeoutError: still false after ``timeout`` seconds.
        """
        deadline = time.monotonic() + timeout

        async def poll() -> None:
            while not predicate():
                if time.monotonic() >= deadline:
                    raise TimeoutError(f"condition still false after {timeout} s")
                await asyncio.sleep(0.005)

        self._call(poll, timeout=timeout + 5.0)
