"""The emulator's engine: the service every part of the emulator runs on.

One :class:`Engine` holds what the parts share: the configuration (credentials,
address, delays), the message :class:`~swsync.emulator.store.Store`, the traffic
:class:`~swsync.emulator.faults.Counters`, the :class:`~swsync.emulator.faults.Faults`,
the carrier :class:`~swsync.emulator.pacing.Pacer`, the count of authenticated RELAY
clients and the state machine that moves each message through its states.

The parts receive the engine and never the :class:`~swsync.emulator.Emulator`
(``server.py``), which only owns the thread, the event loop, the aiohttp app and
the public helpers. What happens reaches the parts one way: they are
listeners (:class:`~swsync.emulator.listeners.Listener`, :meth:`Engine.subscribe`).
The RELAY side (``messaging.state``/``messaging.receive`` events) and the webhook
sender (status callbacks, inbound webhooks) act on every state change and every
inbound message and clear their own state on reset; the RELAY side also carries
out the connection faults (:meth:`Engine.drop_connections`,
:meth:`Engine.server_disconnect`); the web inbox's journal hears every store
change, as do the callbacks given to ``Store.add_listener`` (docs/emulator.md),
through the same listeners.

Threads and locks: docs/design.md, "Threads" and "Locks".
"""

from __future__ import annotations

import asyncio
import hmac
import secrets
import threading
import uuid
from collections.abc import Sequence
from typing import Any

from aiohttp import BasicAuth

from .. import _validate
from .faults import Counters, Faults
from .listeners import Listener, Listeners
from .pacing import Pacer
from .store import MessageRecord, Outcome, Store, outcome_for

__all__ = ["Engine", "Listener", "check_inbound", "check_options"]


def check_options(
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


def check_inbound(
    to: object, from_: object, body: str | None, media: Sequence[str] | None, context: object, names: tuple[str, str]
) -> tuple[str, str, str | None, list[str]]:
    """Check an inbound message's numbers, content and context; return the numbers, body and media URLs.

    ``names`` are the numbers' argument names in error messages (``to_number`` and
    ``from_number`` in Python, ``to`` and ``from`` in the control API).

    Raises:
        ValueError: a number is neither E.164 nor a short code, neither body nor
            media given, or ``context`` is not a non-empty string.
    """
    to_number = _validate.phone_number(to, names[0])
    from_number = _validate.phone_number(from_, names[1])
    text, urls = _validate.content(body, media)
    if not isinstance(context, str) or not context:
        raise ValueError("context must be a non-empty string")
    return to_number, from_number, text, urls


class Engine:
    """Configuration, store, counters, faults, pacing and message states of one emulator.

    Keyword arguments are the ``Emulator`` options of the same names, all given (their
    defaults live in ``Emulator``'s signature) and checked by :func:`check_options`;
    missing credentials are generated. Attributes may be changed at any time
    (``Emulator`` forwards its own to them).
    """

    def __init__(
        self,
        *,
        host: str,
        port: int,
        project: str | None,
        token: str | None,
        jwt_token: str | None,
        signing_key: str | None,
        certfile: str | None,
        keyfile: str | None,
        state_delay: float,
        inbound_webhook_url: str | None,
        ping_interval: float | None,
        session_ttl: float,
        mps: float | None,
        backlog: int,
    ) -> None:
        check_options(state_delay, ping_interval, session_ttl, certfile, keyfile, inbound_webhook_url)
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
        self.counters = Counters()

        # Every part that hears what happens (its overridden hooks bound once: the
        # per-event hot path is one call per listener that wants the event).
        self.listeners = Listeners()
        self.store = Store(listeners=self.listeners)
        self._tasks: set[asyncio.Task[Any]] = set()  # state progressions under way
        # Guards _clients (authenticated RELAY sockets); wait_for_clients sleeps on
        # it. Only ever held for a counter update or a wait.
        self._client_change = threading.Condition(threading.Lock())
        self._clients = 0

    # -- address ------------------------------------------------------------------

    @property
    def tls(self) -> bool:
        """Whether the emulator serves TLS."""
        return self.certfile is not None

    def _netloc(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{host}:{self.port}"

    @property
    def relay_url(self) -> str:
        """The RELAY URL, ``ws://host:port`` (``wss://`` with TLS)."""
        return f"{'wss' if self.tls else 'ws'}://{self._netloc()}"

    @property
    def rest_url(self) -> str:
        """The REST origin, ``http://host:port`` (``https://`` with TLS)."""
        return f"{'https' if self.tls else 'http'}://{self._netloc()}"

    def basic_auth_ok(self, header: str) -> bool:
        """Whether an ``Authorization`` header carries this emulator's project and token."""
        try:
            auth = BasicAuth.decode(header) if header else None
        except ValueError:
            return False
        return (
            auth is not None
            and hmac.compare_digest(auth.login.encode(), self.project.encode())
            and hmac.compare_digest(auth.password.encode(), self.token.encode())
        )

    # -- listeners ----------------------------------------------------------------

    def subscribe(self, listener: Listener) -> None:
        """Call ``listener``'s hooks from now on, after those subscribed before it."""
        self.listeners.add(listener)

    @property
    def idle(self) -> bool:
        """Whether no state change and no listener's work is pending (loop thread)."""
        return not self._tasks and not any(x.busy for x in self.listeners.all)

    # -- connection faults (loop thread) --------------------------------------------

    def drop_connections(self) -> int:
        """Abort every client socket (TCP close, no WebSocket close frame); return how many."""
        return sum(x.drop_connections() for x in self.listeners.all)

    def server_disconnect(self, restart: bool) -> int:
        """Send ``signalwire.disconnect`` to every client, then close each socket; return how many."""
        return sum(x.server_disconnect(restart) for x in self.listeners.all)

    # -- RELAY clients (any thread) -------------------------------------------------

    def count_client(self, delta: int) -> None:
        """Add ``delta`` to the count of authenticated RELAY clients and wake the waiters."""
        with self._client_change:
            self._clients += delta
            self._client_change.notify_all()

    def forget_clients(self) -> None:
        """Count no clients any more (the emulator closed)."""
        with self._client_change:
            self._clients = 0
            self._client_change.notify_all()

    @property
    def clients(self) -> int:
        """How many authenticated RELAY connections are open right now."""
        with self._client_change:
            return self._clients

    def wait_for_clients(self, n: int, timeout: float | None) -> None:
        """Block until at least ``n`` authenticated RELAY connections are open.

        Raises:
            TimeoutError: fewer than ``n`` within ``timeout`` seconds.
        """
        with self._client_change:
            if not self._client_change.wait_for(lambda: self._clients >= n, timeout):
                raise TimeoutError(f"{self._clients} authenticated RELAY clients after {timeout} s, wanted {n}")

    # -- the state machine (loop thread) --------------------------------------------

    def advance(self, record: MessageRecord, state: str, outcome: Outcome) -> None:
        """Move ``record`` to ``state`` and tell every listener (RELAY events, callbacks)."""
        self.store.advance(record, state, outcome)
        for hook in self.listeners.on_state:
            hook(record, state)

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

    def cancel_progress(self) -> None:
        """Stop every state progression under way."""
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
        """Store a REST or cXML outbound message and start its progression."""
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

    def receive_inbound(
        self, to: str, from_: str, body: str | None, context: str, media: list[str]
    ) -> tuple[MessageRecord, int]:
        """Store an inbound message and hand it to the listeners (arguments valid).

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
        sessions = 0
        for hook in self.listeners.on_received:
            sessions += hook(record)
        return record, sessions

    def reset(self, *, faults: bool = False) -> None:
        """Clear messages, sessions, pending work, stats and the log; the faults too with ``faults=True``.

        Loop thread (what ``Emulator.reset()`` and ``POST /_emulator/api/reset`` run).
        """
        if faults:
            self.faults.reset()
        self.cancel_progress()
        for listener in self.listeners.all:
            listener.reset()
        self.store.clear()
        self.counters.reset()
