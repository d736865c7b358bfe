"""The emulator's RELAY side: a JSON-RPC 2.0 WebSocket server on path ``/``.

Implements the server half of ``signalwire.connect`` (fresh and resumed sessions),
``messaging.send``, ``signalwire.receive``/``unreceive``, ``signalwire.ping`` and the
``signalwire.execute`` wrapper, and sends ``signalwire.event`` frames
(``messaging.state``, ``messaging.receive``, ``signalwire.authorization.state``),
``signalwire.ping`` and ``signalwire.disconnect``.

A *session* (keyed by its ``protocol`` string) outlives its socket for ``session_ttl`` seconds so a
client can resume it; events produced while it has no socket wait in its un-ACKed
queue and are delivered, in order, after the resume.

Routing by context, as SignalWire documents it: a session *receives* the contexts
it subscribed to (``signalwire.connect`` ``contexts``, ``signalwire.receive``) and
always its own ``protocol`` string, the default context of ``messaging.send``.
``messaging.state`` events go to every session receiving the message's context
(the sender included only if it receives that context). Each ``messaging.receive``
goes to exactly one of them, in turn (round-robin per context) among the sessions
connected at that moment, or, when none is, to one that can still resume.
"""

from __future__ import annotations

import asyncio
import base64
import json
import logging
import os
import struct
import time
import uuid
from collections import OrderedDict
from collections.abc import Callable, Coroutine, Iterable
from typing import Any, cast

from aiohttp import WSMsgType, web

from .. import _validate
from .engine import Engine, Listener
from .pacing import backlog_message
from .store import REJECTED_NUMBER, MessageRecord, outcome_for

__all__ = ["RelayServer"]

logger = logging.getLogger(__name__)

MAX_FRAME = 10 * 1024 * 1024
MAX_UNACKED = 10000  # per session; the oldest un-ACKed events fall off beyond this
MAX_PENDING = 1000  # per connection: server pings/disconnects awaiting a reply
CLOSE_TIMEOUT = 1.0  # seconds to wait for the client's close frame
MAX_BUFFER = 64 * 1024 * 1024  # a client this far behind is dropped

_HEAD1 = struct.Struct("!BB").pack
_HEAD2 = struct.Struct("!BBH").pack
_HEAD3 = struct.Struct("!BBQ").pack

# JSON-RPC error codes: the standard ones (JSON-RPC 2.0 specification, section 5.1) and
# those the RELAY service answers refused connects with (docs/design.md, "Refused connects").
PARSE_ERROR = -32700
INVALID_REQUEST = -32600
METHOD_NOT_FOUND = -32601
INVALID_PARAMS = -32602
AUTH_FAILED = -32002
REQUESTER_INVALID = -32003

_dumps = json.dumps
_loads = json.loads
_uuid4 = uuid.uuid4


def _new_authorization_state() -> str:
    """A fresh opaque ``<b64>:<b64>`` blob, like the real encrypted grant."""
    blob = base64.b64encode(os.urandom(48)).decode()
    tag = base64.b64encode(os.urandom(16)).decode()
    return f"{blob}:{tag}"


def _error(mid: Any, code: int, message: str, sw_code: str | None = None) -> str:
    err: dict[str, Any] = {"code": code, "message": message}
    if sw_code is not None:
        err["data"] = {"signalwire_error_code": sw_code}
    return _dumps({"jsonrpc": "2.0", "id": mid, "error": err})


def _result(mid: Any, result: Any) -> str:
    return _dumps({"jsonrpc": "2.0", "id": mid, "result": result})


def _message_payload(record: MessageRecord, direction: str, state: str) -> dict[str, Any]:
    """The inner params of a messaging.state / messaging.receive event.

    SignalWire's RELAY messaging docs: the message object.
    """
    return {
        "message_id": record.sid,
        "message_state": state,
        "context": record.context,
        "direction": direction,
        "from_number": record.from_,
        "to_number": record.to,
        "body": record.body if record.body is not None else "",
        "media": [m.url for m in record.media],
        "segments": record.num_segments,
        "tags": record.tags,
    }


class Session:
    """A RELAY session: credentials' project, contexts, resume state, un-ACKed events."""

    __slots__ = (
        "auth_state",
        "conn",
        "contexts",
        "event_acks",
        "expire_handle",
        "expired",
        "identity",
        "project",
        "protocol",
        "unacked",
    )

    def __init__(self, project: str, contexts: set[str]) -> None:
        self.protocol = f"signalwire_{_uuid4()}"
        self.project = project
        self.identity = f"{_uuid4()}@emulator"
        self.contexts = contexts
        self.auth_state = ""
        self.conn: Connection | None = None
        # event id -> (kind, frame text), oldest first: sent-but-un-ACKed events
        # and events produced while the session had no socket.
        self.unacked: OrderedDict[Any, tuple[str, str]] = OrderedDict()
        self.event_acks = True
        self.expire_handle: asyncio.TimerHandle | None = None
        self.expired = False


def _send_fields(session: Session, params: dict[str, Any]) -> dict[str, Any]:
    """Validate ``messaging.send`` params; return ``Store.new_message`` keywords.

    Without a context the message's events go to the sender's own protocol, as with
    SignalWire (the Node SDK never sends one).

    Raises:
        ValueError: a param is missing or invalid.
    """
    context = params.get("context")
    if context is None:
        context = session.protocol
    if not isinstance(context, str) or not context:
        raise ValueError("context must be a non-empty string")
    to = _validate.phone_number(params.get("to_number"), "to_number")
    from_ = _validate.phone_number(params.get("from_number"), "from_number")
    body, media = _validate.content(params.get("body"), params.get("media"))
    tags = _validate.str_list(params.get("tags"), "tags")
    region = params.get("region")
    if region is not None and not isinstance(region, str):
        raise ValueError("region must be a string")
    return {"to": to, "from_": from_, "body": body, "media": media, "context": context, "tags": tags}


class Connection:
    """One accepted WebSocket, with a write buffer flushed once per loop pass.

    Frames are encoded here and written straight to the transport: everything a
    burst of incoming frames causes (responses, state events) goes out in one
    ``write()`` call instead of one syscall per frame.
    """

    __slots__ = (
        "closed",
        "closing",
        "flush_scheduled",
        "frames",
        "loop",
        "out",
        "pending",
        "session",
        "transport",
        "ws",
    )

    def __init__(
        self,
        ws: web.WebSocketResponse,
        transport: asyncio.BaseTransport | None,
        loop: asyncio.AbstractEventLoop,
    ) -> None:
        self.ws = ws
        self.transport = cast("asyncio.Transport | None", transport)
        self.loop = loop
        self.session: Session | None = None
        self.frames = 0
        self.pending: dict[Any, str] = {}  # server request id -> "ping" | "disconnect"
        self.closed = False
        self.closing = False
        self.out: list[bytes] = []
        self.flush_scheduled = False

    def write(self, text: str) -> bool:
        """Queue one text frame; it is written at the end of this loop pass."""
        if self.closed or self.closing:
            return False
        data = text.encode()
        n = len(data)
        if n < 126:
            self.out.append(_HEAD1(0x81, n) + data)
        else:
            self.out.append((_HEAD2(0x81, 126, n) if n < 65536 else _HEAD3(0x81, 127, n)) + data)
        if not self.flush_scheduled:
            self.flush_scheduled = True
            self.loop.call_soon(self.flush)
        return True

    def flush(self) -> None:
        """Write every queued frame in one go."""
        self.flush_scheduled = False
        if not self.out:
            return
        data = b"".join(self.out) if len(self.out) > 1 else self.out[0]
        self.out.clear()
        transport = self.transport
        if self.closed or transport is None or transport.is_closing():
            self.closed = True
            return
        transport.write(data)
        if transport.get_write_buffer_size() > MAX_BUFFER:
            logger.warning("RELAY client is not reading (over %d bytes buffered): dropping it", MAX_BUFFER)
            self.abort()

    def abort(self) -> None:
        """Drop the TCP connection at once: no WebSocket close frame."""
        self.closed = True
        self.out.clear()
        if self.transport is not None:
            self.transport.abort()


class RelayServer(Listener):
    """The RELAY WebSocket endpoint and its sessions; an engine listener. Loop thread only."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self.faults = engine.faults
        self.counters = engine.counters
        self.sessions: dict[str, Session] = {}
        # context -> sessions that subscribed to it, in subscription order (a dict
        # used as an ordered set). A session's own protocol is not listed here.
        self.listeners: dict[str, dict[Session, None]] = {}
        self.turns: dict[str, int] = {}  # context -> inbound messages handed out so far
        self.conns: set[Connection] = set()
        self.tasks: set[asyncio.Task[Any]] = set()
        self._methods: dict[str, Callable[[Connection, Any, dict[str, Any]], None]] = {
            "messaging.send": self._m_send,
            "signalwire.receive": self._m_receive,
            "signalwire.unreceive": self._m_unreceive,
            "signalwire.ping": self._m_ping,
        }

    # -- plumbing ---------------------------------------------------------------

    def spawn(self, coro: Coroutine[Any, Any, Any]) -> None:
        """Run ``coro`` as a task the emulator cancels on reset/close."""
        task = asyncio.get_running_loop().create_task(coro)
        self.tasks.add(task)
        task.add_done_callback(self.tasks.discard)

    def _send(self, conn: Connection, text: str) -> bool:
        if self.faults.silent:
            return False
        return conn.write(text)

    def _reply(self, conn: Connection, text: str, *, then_close: bool = False) -> None:
        delay = self.faults.response_delay
        if delay and delay > 0:
            self.spawn(self._reply_later(conn, text, delay, then_close))
            return
        self._send(conn, text)
        if then_close:
            self.spawn(self._close(conn, 1008))

    async def _reply_later(self, conn: Connection, text: str, delay: float, then_close: bool) -> None:
        await asyncio.sleep(delay)
        self._send(conn, text)
        if then_close:
            await self._close(conn, 1008)

    async def _close(self, conn: Connection, code: int = 1000) -> None:
        if conn.closing or conn.closed:
            return
        conn.flush()  # what was queued goes out before the close frame
        conn.closing = True
        try:
            await conn.ws.close(code=code)
        except Exception:
            logger.debug("websocket close failed", exc_info=True)
        conn.abort()

    def deliver(self, session: Session, eid: Any, kind: str, text: str) -> None:
        """Send one event to a session; keep it until ACKed (or while detached)."""
        if session.expired:
            return
        conn = session.conn
        if session.event_acks or conn is None:
            unacked = session.unacked
            unacked[eid] = (kind, text)
            if len(unacked) > MAX_UNACKED:
                unacked.popitem(last=False)
        if conn is not None and self._send(conn, text):
            self.counters.events_sent += 1

    def _event(self, session: Session, event_type: str, context: str | None, params: Any) -> tuple[str, str]:
        eid = str(_uuid4())
        text = _dumps(
            {
                "jsonrpc": "2.0",
                "id": eid,
                "method": "signalwire.event",
                "params": {
                    "event_type": event_type,
                    "timestamp": time.time(),
                    "project_id": session.project,
                    "space_id": self.engine.space_id,
                    "context": context,
                    "params": params,
                },
            }
        )
        return eid, text

    # -- events from the engine ----------------------------------------------------

    def message_state(self, record: MessageRecord, state: str) -> None:
        """Send ``messaging.state`` for ``record`` to every session receiving its context.

        Only messages sent over RELAY have such events (REST and cXML ones have no context).
        """
        if record.origin != "relay":
            return
        receivers = self.receivers(record.account_sid, record.context)
        if not receivers:
            return
        payload = _message_payload(record, "outbound", state)
        if state == "undelivered" or state == "failed":
            payload["reason"] = record.reason
        copies = 2 if self.faults.duplicate_events else 1
        for session in receivers:
            for _ in range(copies):
                eid, text = self._event(session, "messaging.state", record.context, payload)
                self.deliver(session, eid, "state", text)

    def message_received(self, record: MessageRecord) -> int:
        """Send ``messaging.receive`` to ONE session receiving the message's context.

        Sessions take turns (round-robin per context) among those connected now;
        when none is connected, one that can still resume queues it. Returns the
        number of sessions it went to (0 or 1).
        """
        candidates = self.receivers(record.account_sid, record.context)
        pool = [s for s in candidates if s.conn is not None] or candidates
        if not pool:
            return 0
        context = record.context or ""
        turn = self.turns.get(context, 0)
        self.turns[context] = turn + 1
        session = pool[turn % len(pool)]
        payload = _message_payload(record, "inbound", "received")
        eid, text = self._event(session, "messaging.receive", record.context, payload)
        self.deliver(session, eid, "receive", text)
        return 1

    def receivers(self, project: str, context: str | None) -> list[Session]:
        """The live or resumable sessions of ``project`` that receive ``context``."""
        if context is None:
            return []
        found = list(self.listeners.get(context, ()))
        own = self.sessions.get(context)
        if own is not None and context not in own.contexts:
            found.append(own)
        return [s for s in found if s.project == project and not s.expired]

    def listen(self, session: Session, contexts: Iterable[str]) -> None:
        """Make ``session`` receive ``contexts`` (besides its own protocol)."""
        for context in contexts:
            session.contexts.add(context)
            self.listeners.setdefault(context, {})[session] = None

    def unlisten(self, session: Session, contexts: Iterable[str]) -> None:
        """Stop ``session`` receiving ``contexts`` (its own protocol always stays)."""
        for context in list(contexts):
            session.contexts.discard(context)
            listening = self.listeners.get(context)
            if listening is not None:
                listening.pop(session, None)
                if not listening:
                    del self.listeners[context]

    # -- the WebSocket handler -----------------------------------------------------

    async def handle(self, request: web.Request) -> web.StreamResponse:
        """aiohttp handler for ``GET /``: upgrade to WebSocket and serve RELAY."""
        ws = web.WebSocketResponse(
            timeout=CLOSE_TIMEOUT,
            autoping=True,
            compress=False,
            max_msg_size=MAX_FRAME,
        )
        if not ws.can_prepare(request).ok:
            return web.Response(
                text=f"swsync emulator: RELAY WebSocket at {self.engine.relay_url}, "
                f"REST at {self.engine.rest_url}/api/laml/2010-04-01\n"
            )
        await ws.prepare(request)
        conn = Connection(ws, request.transport, asyncio.get_running_loop())
        self.conns.add(conn)
        try:
            while True:
                msg = await ws.receive()
                kind = msg.type
                if kind is WSMsgType.TEXT:
                    self._on_text(conn, msg.data)
                    conn.frames += 1
                    every = self.faults.drop_every
                    if every and conn.frames % every == 0:
                        conn.abort()
                        break
                elif kind is WSMsgType.BINARY:
                    conn.frames += 1
                    await self._close(conn, 1003)  # unsupported data
                    break
                else:  # CLOSE, CLOSING, CLOSED, ERROR
                    break
        except ConnectionError:
            pass
        finally:
            self._detach(conn)
        return ws

    def _detach(self, conn: Connection) -> None:
        conn.closed = True
        self.conns.discard(conn)
        session = conn.session
        conn.session = None
        if session is None or session.conn is not conn:
            return
        session.conn = None
        self.engine.count_client(-1)
        if session.expired:
            return
        ttl = self.engine.session_ttl
        loop = asyncio.get_running_loop()
        session.expire_handle = loop.call_later(ttl, self._expire, session)

    def _expire(self, session: Session) -> None:
        if session.conn is None:
            self._forget(session)

    def _forget(self, session: Session) -> None:
        session.expired = True
        self.unlisten(session, session.contexts)
        session.unacked.clear()
        if session.expire_handle is not None:
            session.expire_handle.cancel()
            session.expire_handle = None
        if self.sessions.get(session.protocol) is session:
            del self.sessions[session.protocol]

    def _on_text(self, conn: Connection, data: str) -> None:
        if self.faults.silent:
            return
        try:
            msg = _loads(data)
        except ValueError:
            self._reply(conn, _error(None, PARSE_ERROR, "Parse error"))
            return
        if not isinstance(msg, dict):
            self._reply(conn, _error(None, INVALID_REQUEST, "Invalid Request"))
            return
        mid = msg.get("id")
        if mid is not None and not isinstance(mid, (str, int, float)):
            self._reply(conn, _error(None, INVALID_REQUEST, "Invalid Request: bad id"))
            return
        method = msg.get("method")
        if method is None:
            if "result" in msg or "error" in msg:
                self._on_response(conn, mid)
            else:
                self._reply(conn, _error(mid, INVALID_REQUEST, "Invalid Request"))
            return
        if not isinstance(method, str):
            self._reply(conn, _error(mid, INVALID_REQUEST, "Invalid Request: bad method"))
            return
        params = msg.get("params")
        if params is None:
            params = {}
        elif not isinstance(params, dict):
            self._reply(conn, _error(mid, INVALID_PARAMS, "params must be an object", "INVALID_PARAMS"))
            return
        if method == "signalwire.connect":
            self._connect(conn, mid, params)
            return
        if conn.session is None:
            text = "Authentication required: call signalwire.connect first"
            self._reply(conn, _error(mid, AUTH_FAILED, text, "AUTH_REQUIRED"))
            return
        if method == "signalwire.execute":
            inner = params.get("method")
            params = params.get("params")
            if params is None:
                params = {}
            if not isinstance(inner, str) or not isinstance(params, dict):
                text = "signalwire.execute needs method and params"
                self._reply(conn, _error(mid, INVALID_PARAMS, text, "INVALID_PARAMS"))
                return
            method = inner
        handler = self._methods.get(method)
        if handler is None:
            self._reply(conn, _error(mid, METHOD_NOT_FOUND, f"Method not found: {method}"[:200]))
            return
        handler(conn, mid, params)

    def _on_response(self, conn: Connection, mid: Any) -> None:
        session = conn.session
        if session is not None and session.unacked.pop(mid, None) is not None:
            self.counters.acks_received += 1
            return
        kind = conn.pending.pop(mid, None)
        if kind == "ping":
            self.counters.pongs_received += 1
        elif kind == "disconnect":
            self.spawn(self._close(conn, 1000))

    # -- signalwire.connect ---------------------------------------------------------

    def _credentials_ok(self, auth: dict[str, Any]) -> bool:
        engine = self.engine
        project = auth.get("project")
        token = auth.get("token")
        jwt = auth.get("jwt_token")
        if jwt is not None:
            return jwt == engine.jwt_token and (project is None or project == engine.project)
        return project == engine.project and token == engine.token

    def _connect_refusal(self, conn: Connection, mid: Any, params: dict[str, Any]) -> tuple[str, bool] | None:
        """The error answer to a ``signalwire.connect`` refused outright, and whether to close; else None."""
        if conn.session is not None:
            return _error(mid, INVALID_REQUEST, "Already connected"), False
        auth = params.get("authentication")
        if not isinstance(auth, dict):
            return _error(mid, INVALID_PARAMS, "Missing authentication", "INVALID_PARAMS"), True
        if not self._credentials_ok(auth):
            return _error(mid, AUTH_FAILED, "Authentication failed", "AUTH_REQUIRED"), True
        contexts = params.get("contexts")
        if contexts is not None and (
            not isinstance(contexts, list) or not all(isinstance(c, str) and c for c in contexts)
        ):
            return _error(mid, INVALID_PARAMS, "contexts must be a list of strings", "INVALID_PARAMS"), False
        return None

    def _connect(self, conn: Connection, mid: Any, params: dict[str, Any]) -> None:
        refusal = self._connect_refusal(conn, mid, params)
        if refusal is not None:
            text, then_close = refusal
            self._reply(conn, text, then_close=then_close)
            return
        contexts: list[str] = params.get("contexts") or []
        protocol = params.get("protocol")
        backlog: list[tuple[Any, str]] = []
        if protocol is not None:
            resumed = self._resume(conn, mid, protocol, params.get("authorization_state"))
            if resumed is None:
                return
            session, backlog = resumed
        else:
            session = Session(self.engine.project, set())
            self.sessions[session.protocol] = session
        restored = protocol is not None
        self.listen(session, contexts)
        session.event_acks = params.get("event_acks", True) is not False
        session.conn = conn
        conn.session = session
        self.counters.connections += 1
        self.engine.count_client(+1)
        result = _result(
            mid,
            {
                "protocol": session.protocol,
                "identity": session.identity,
                "session_restored": restored,
                "nodeid": self.engine.node_id,
                "authorization": {"project_id": session.project},
            },
        )
        delay = self.faults.response_delay
        if delay and delay > 0:
            self.spawn(self._connected_later(conn, session, result, backlog, delay))
        else:
            self._connected(conn, session, result, backlog)

    def _resume(
        self, conn: Connection, mid: Any, protocol: Any, state: Any
    ) -> tuple[Session, list[tuple[Any, str]]] | None:
        """Take over session ``protocol`` for ``conn``; reply with the error and return None if refused.

        Returns the session and its backlog: every un-ACKed event except superseded
        authorization grants (only the fresh one sent after the connect result counts).
        """
        if self.faults.reject_resume:
            self._reply(conn, _error(mid, REQUESTER_INVALID, "Requester validation failed"))
            return None
        session = self.sessions.get(protocol) if isinstance(protocol, str) else None
        if session is None or session.expired or session.project != self.engine.project:
            self._reply(
                conn,
                _error(mid, AUTH_FAILED, "Authentication failed: unknown session", "AUTH_REQUIRED"),
            )
            return None
        if state is not None and state != session.auth_state:
            self._reply(conn, _error(mid, REQUESTER_INVALID, "Requester validation failed"))
            return None
        old = session.conn
        if old is not None:  # the client noticed the drop before we did
            old.session = None
            old.abort()
            self.engine.count_client(-1)
        if session.expire_handle is not None:
            session.expire_handle.cancel()
            session.expire_handle = None
        backlog = [(e, t) for e, (k, t) in session.unacked.items() if k != "auth"]
        for eid in [e for e, (k, _) in session.unacked.items() if k == "auth"]:
            del session.unacked[eid]
        self.counters.resumes += 1
        return session, backlog

    async def _connected_later(
        self,
        conn: Connection,
        session: Session,
        result: str,
        backlog: list[tuple[Any, str]],
        delay: float,
    ) -> None:
        await asyncio.sleep(delay)
        self._connected(conn, session, result, backlog)

    def _connected(self, conn: Connection, session: Session, result: str, backlog: list[tuple[Any, str]]) -> None:
        # Order on the wire: connect result, fresh grant, then the backlog.
        self._send(conn, result)
        session.auth_state = _new_authorization_state()
        eid, text = self._event(
            session,
            "signalwire.authorization.state",
            session.protocol,
            {"authorization_state": session.auth_state},
        )
        self.deliver(session, eid, "auth", text)
        for eid, text in backlog:
            if session.conn is not conn:
                break
            if self._send(conn, text):
                self.counters.events_sent += 1
                if not session.event_acks:  # nobody will ACK it: delivered is done
                    session.unacked.pop(eid, None)

    # -- client methods ----------------------------------------------------------------

    def _m_send(self, conn: Connection, mid: Any, params: dict[str, Any]) -> None:
        session = conn.session
        assert session is not None
        self.counters.send_requests += 1
        try:
            fields = _send_fields(session, params)
        except (ValueError, TypeError) as exc:
            self._reply(conn, _error(mid, INVALID_PARAMS, f"Invalid params: {exc}", "INVALID_PARAMS"))
            return
        to = fields["to"]
        if to == REJECTED_NUMBER:
            self._reply(
                conn,
                _result(
                    mid,
                    {
                        "code": "422",
                        "message": f"Destination {to} rejected: not a valid, SMS-capable number",
                    },
                ),
            )
            return
        pacing = self.engine.pacing  # Emulator(mps=...): carrier turns and backlog
        admitted, departure = pacing.book(to, fields["from_"], fields["body"], fields["media"])
        if not admitted:
            self._reply(conn, _result(mid, {"code": "400", "message": backlog_message(pacing.backlog)}))
            return
        record = self.engine.store.new_message(account_sid=session.project, origin="relay", **fields)
        pacing.assign(record.sid, departure)
        self.counters.accepted_sends += 1
        self._accepted(conn, mid, record)

    def _accepted(self, conn: Connection, mid: Any, record: MessageRecord) -> None:
        """Answer an accepted send and run its states (some before the answer on request)."""
        engine = self.engine
        outcome = outcome_for(record.to)
        states = outcome.states
        response = _result(mid, {"code": "200", "message": "Message accepted", "message_id": record.sid})
        delay = engine.state_delay
        advance = engine.advance
        if self.faults.state_before_response:
            first = len(states) if not delay else 1
            for state in states[:first]:
                advance(record, state, outcome)
            self._reply(conn, response)
            if first < len(states):
                engine.launch(record, outcome, start=first)
        else:
            self._reply(conn, response)
            if not delay and not engine.pacing.has_turn(record.sid):
                for state in states:
                    advance(record, state, outcome)
            else:
                advance(record, states[0], outcome)
                engine.launch(record, outcome, start=1)

    def _contexts(self, params: dict[str, Any]) -> list[str]:
        contexts = params.get("contexts")
        if not isinstance(contexts, list) or not contexts or not all(isinstance(c, str) and c for c in contexts):
            raise ValueError("contexts must be a non-empty list of strings")
        return contexts

    def _m_receive(self, conn: Connection, mid: Any, params: dict[str, Any]) -> None:
        self._subscribe(conn, mid, params, True)

    def _m_unreceive(self, conn: Connection, mid: Any, params: dict[str, Any]) -> None:
        self._subscribe(conn, mid, params, False)

    def _subscribe(self, conn: Connection, mid: Any, params: dict[str, Any], add: bool) -> None:
        try:
            contexts = self._contexts(params)
        except ValueError as exc:
            self._reply(conn, _error(mid, INVALID_PARAMS, str(exc), "INVALID_PARAMS"))
            return
        assert conn.session is not None
        if add:
            self.listen(conn.session, contexts)
        else:
            self.unlisten(conn.session, contexts)
        text = "Receiving events" if add else "Unreceiving events"
        self._reply(conn, _result(mid, {"code": "200", "message": text}))

    def _m_ping(self, conn: Connection, mid: Any, params: dict[str, Any]) -> None:
        self._reply(conn, _result(mid, {"timestamp": time.time()}))

    # -- server-initiated traffic ----------------------------------------------------

    def _authenticated(self) -> list[Connection]:
        return [c for c in self.conns if c.session is not None and not c.closed]

    def _request(self, conn: Connection, kind: str, method: str, params: dict[str, Any]) -> bool:
        rid = str(_uuid4())
        pending = conn.pending
        if len(pending) >= MAX_PENDING:
            pending.pop(next(iter(pending)))
        pending[rid] = kind
        text = _dumps({"jsonrpc": "2.0", "id": rid, "method": method, "params": params})
        return self._send(conn, text)

    async def ping_loop(self, interval: float) -> None:
        """Send ``signalwire.ping`` to every authenticated connection forever."""
        while True:
            await asyncio.sleep(interval)
            for conn in self._authenticated():
                if self._request(conn, "ping", "signalwire.ping", {"timestamp": time.time()}):
                    self.counters.pings_sent += 1

    def send_raw(self, text: str) -> int:
        """Write ``text`` as-is to every authenticated connection; return the count."""
        sent = 0
        for conn in self._authenticated():
            sent += self._send(conn, text)
        return sent

    def server_disconnect(self, restart: bool) -> int:
        """Send ``signalwire.disconnect`` everywhere; close each socket once ACKed (or 1 s)."""
        conns = self._authenticated()
        loop = asyncio.get_running_loop()
        for conn in conns:
            session = conn.session
            if restart and session is not None:
                # The client must start afresh: its session cannot be resumed.
                session.conn = None
                conn.session = None
                self.engine.count_client(-1)
                self._forget(session)
            self._request(conn, "disconnect", "signalwire.disconnect", {"restart": restart})
            loop.call_later(1.0, self._close_soon, conn)
        return len(conns)

    def _close_soon(self, conn: Connection) -> None:
        if not conn.closed and not conn.closing:
            self.spawn(self._close(conn, 1000))

    def drop_connections(self) -> int:
        """Abort every socket (TCP close, no close frame); return how many."""
        conns = list(self.conns)
        for conn in conns:
            conn.abort()
        return len(conns)

    async def close_all(self) -> None:
        """Close every socket with 1001 (going away), bounded in time."""
        conns = list(self.conns)
        if conns:
            await asyncio.wait(
                [asyncio.ensure_future(self._close(c, 1001)) for c in conns],
                timeout=CLOSE_TIMEOUT + 0.5,
            )
        for conn in conns:
            conn.abort()

    def cancel_tasks(self) -> None:
        """Cancel delayed replies and pending close tasks."""
        for task in list(self.tasks):
            task.cancel()

    def unacked_count(self) -> int:
        """How many events (across all sessions) still await their ACK."""
        return sum(len(s.unacked) for s in self.sessions.values())

    def reset(self) -> None:
        """Drop every connection and forget every session."""
        self.cancel_tasks()
        self.drop_connections()
        for session in list(self.sessions.values()):
            if session.conn is not None:
                session.conn.session = None
                session.conn = None
                self.engine.count_client(-1)
            self._forget(session)
        self.turns.clear()
