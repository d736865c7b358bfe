"""The :class:`Emulator`: one aiohttp app serving RELAY and REST on one port.

The emulator is the public face: it owns the thread, the event loop, the aiohttp
app and the helpers tests call, and wires the parts (RELAY, REST, webhooks,
control API, inbox) to one :class:`~swsync.emulator.engine.Engine`, which holds
the configuration and the message state machine. The parts only know the engine.

Threads and locks: docs/design.md, "Threads" and "Locks".
"""

from __future__ import annotations

import asyncio
import logging
import socket
import ssl
import threading
import time
from collections.abc import Awaitable, Callable, Sequence
from typing import Any, Generic, TypeVar, cast, overload

from aiohttp import web

from .callbacks import Webhooks
from .control import ControlApi
from .engine import Engine, check_inbound
from .faults import Stats
from .inbox import Inbox
from .pacing import DEFAULT_BACKLOG
from .relay import RelayServer
from .rest import RestApi
from .store import MessageRecord, Outcome

__all__ = ["Emulator"]

logger = logging.getLogger(__name__)

T = TypeVar("T")

_CALL_TIMEOUT = 30.0  # bound on any public call waiting for the loop thread


class _Setting(Generic[T]):
    """An :class:`Emulator` attribute kept on its engine: read and set through to it.

    The engine holds the configuration the parts read; the emulator only forwards.
    """

    name = ""

    def __set_name__(self, owner: type, name: str) -> None:
        self.name = name

    @overload
    def __get__(self, obj: None, owner: type) -> _Setting[T]: ...

    @overload
    def __get__(self, obj: Emulator, owner: type) -> T: ...

    def __get__(self, obj: Emulator | None, owner: type) -> T | _Setting[T]:
        if obj is None:
            return self
        return cast(T, getattr(obj.engine, self.name))

    def __set__(self, obj: Emulator, value: T) -> None:
        setattr(obj.engine, self.name, value)


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
        self.engine = Engine(
            host=host,
            port=port,
            project=project,
            token=token,
            jwt_token=jwt_token,
            signing_key=signing_key,
            certfile=certfile,
            keyfile=keyfile,
            state_delay=state_delay,
            inbound_webhook_url=inbound_webhook_url,
            ping_interval=ping_interval,
            session_ttl=session_ttl,
            mps=mps,
            backlog=backlog,
        )
        engine = self.engine
        self.faults = engine.faults
        self.pacing = engine.pacing  # carrier pacing (off unless mps is given)
        # The parts below are internals wired to the engine; not part of the public API.
        self.counters = engine.counters
        self.store = engine.store
        self.relay = RelayServer(engine)
        self.rest = RestApi(engine)
        self.hooks = Webhooks(engine)
        self.control = ControlApi(engine)
        self.inbox = Inbox(engine)  # the web inbox and its JSON API, under /_emulator/
        engine.subscribe(self.relay)  # messaging.state / messaging.receive events first,
        engine.subscribe(self.hooks)  # then status callbacks and inbound webhooks

        # Guards _thread/_loop/_running/_closed transitions in start() and close().
        self._life = threading.Lock()
        self._thread: threading.Thread | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._running = False
        self._closed = False
        self._ping_task: asyncio.Task[Any] | None = None
        self._runner: web.AppRunner | None = None

    host = _Setting[str]()
    port = _Setting[int]()
    project = _Setting[str]()
    token = _Setting[str]()
    jwt_token = _Setting[str]()
    signing_key = _Setting[str]()
    certfile = _Setting[str | None]()
    keyfile = _Setting[str | None]()
    state_delay = _Setting[float]()
    inbound_webhook_url = _Setting[str | None]()
    ping_interval = _Setting[float | None]()
    session_ttl = _Setting[float]()
    node_id = _Setting[str]()
    space_id = _Setting[str]()

    # -- lifecycle ---------------------------------------------------------------

    @property
    def tls(self) -> bool:
        """Whether the emulator serves TLS."""
        return self.engine.tls

    @property
    def relay_url(self) -> str:
        """The RELAY URL, ``ws://host:port`` (``wss://`` with TLS)."""
        return self.engine.relay_url

    @property
    def rest_url(self) -> str:
        """The REST origin, ``http://host:port`` (``https://`` with TLS)."""
        return self.engine.rest_url

    @property
    def ui_url(self) -> str:
        """The web inbox, ``http://host:port/_emulator/`` (see docs/emulator.md)."""
        return f"{self.rest_url}/_emulator/"

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
        self.engine.forget_clients()

    async def _teardown(self) -> None:
        if self._ping_task is not None:
            self._ping_task.cancel()
        self.engine.cancel_progress()
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
        to, from_, text, urls = check_inbound(
            to_number, from_number, body, media, context, ("to_number", "from_number")
        )
        return self._call(self._inject, to, from_, text, context, urls)

    async def _inject(self, to: str, from_: str, body: str | None, context: str, media: list[str]) -> str:
        return self.engine.receive_inbound(to, from_, body, context, media)[0].sid

    def wait_for_clients(self, n: int, timeout: float | None = 5.0) -> None:
        """Block until at least ``n`` authenticated RELAY connections are open.

        Raises:
            TimeoutError: fewer than ``n`` within ``timeout`` seconds.
        """
        self.engine.wait_for_clients(n, timeout)

    @property
    def clients(self) -> int:
        """How many authenticated RELAY connections are open right now."""
        return self.engine.clients

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
            return self.engine.drop_connections()

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
            return self.engine.server_disconnect(bool(restart))

        self._call(disconnect)

    def reset(self) -> None:
        """Clear messages, faults, sessions (dropping their sockets), stats and the log."""

        async def reset() -> None:
            self.engine.reset(faults=True)

        self._call(reset)

    # -- 0.1's loop-thread internals, now the engine's (kept: they were public names) ------

    def advance(self, record: MessageRecord, state: str, outcome: Outcome) -> None:
        """Loop thread only: ``emu.engine.advance`` (move ``record`` to ``state`` and tell the listeners)."""
        self.engine.advance(record, state, outcome)

    def launch(self, record: MessageRecord, outcome: Outcome, *, start: int) -> None:
        """Loop thread only: ``emu.engine.launch`` (run ``outcome.states[start:]``, ``state_delay`` apart)."""
        self.engine.launch(record, outcome, start=start)

    def create_outbound(self, **fields: Any) -> MessageRecord:
        """Loop thread only: ``emu.engine.create_outbound`` (store a REST/cXML message and start it)."""
        return self.engine.create_outbound(**fields)

    def receive_inbound(
        self, to: str, from_: str, body: str | None, context: str, media: list[str]
    ) -> tuple[MessageRecord, int]:
        """Loop thread only: ``emu.engine.receive_inbound`` (store an inbound message and hand it out)."""
        return self.engine.receive_inbound(to, from_, body, context, media)

    async def reset_on_loop(self) -> None:
        """Loop thread only: ``reset()`` minus the faults (``emu.engine.reset``)."""
        self.engine.reset()

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
        self.wait_until(lambda: self.engine.idle, timeout)

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
