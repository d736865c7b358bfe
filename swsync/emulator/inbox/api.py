"""The inbox's HTTP side: the page, its static files, the JSON API and the event stream.

Everything is under ``/_emulator/`` on the emulator's own port (documented in
docs/emulator.md); the control API's endpoints (``swsync.emulator.control``) sit
behind the same :meth:`InboxApi.guard`. On a loopback address the page and the
API are open to this machine only: requests must name a loopback host (a guard
against DNS rebinding), and writes from another web origin or as an HTML form
are refused (so another web site cannot drive it). Bound to any other address,
every request needs HTTP Basic credentials: the emulator's project ID and API
token, as its REST API does. Credentials, when sent, must be right.

Threads and locks: docs/design.md, "Threads" and "Locks".
"""

from __future__ import annotations

import asyncio
import ipaddress
import json
import time
from collections.abc import Awaitable, Callable
from importlib import resources
from typing import Any, TypeVar

from aiohttp import web

from ..engine import Engine
from .journal import Journal, Watcher, sse
from .views import detail, parse_filter, summary

__all__ = ["PREFIX", "InboxApi", "is_loopback"]

PREFIX = "/_emulator"
MAX_WAIT = 60.0  # seconds a long poll may be asked to wait
HEARTBEAT = 15.0  # seconds between keep-alive comments on an idle event stream
_STATIC = {"index.html": "text/html", "inbox.css": "text/css", "inbox.js": "text/javascript"}
# What an HTML form on another site can post without a CORS preflight.
_FORM_TYPES = frozenset(("application/x-www-form-urlencoded", "multipart/form-data", "text/plain"))
_LOCAL_NAMES = frozenset(("localhost", "127.0.0.1", "::1", "[::1]"))

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
N = TypeVar("N", int, float)

#: Fault knobs the API reads and sets: name -> converter from JSON.
FAULTS: dict[str, Callable[[Any], Any]] = {
    "silent": bool,
    "state_before_response": bool,
    "reject_resume": bool,
    "duplicate_events": bool,
    "response_delay": float,
    "drop_every": lambda v: None if v in (None, "", 0) else int(v),
    "rest_throttle": int,
    "rest_error": int,
    "retry_after": str,
}


def is_loopback(host: str) -> bool:
    """Whether ``host`` (a name or an address) is this machine only."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def _hostname(host: str) -> str:
    """The name in a ``Host`` header: ``[::1]:80`` -> ``::1``, ``localhost:80`` -> ``localhost``."""
    if host.startswith("["):
        return host[1:].partition("]")[0]
    return host.rpartition(":")[0] if host.count(":") == 1 else host


class HttpError(Exception):
    """An error answer: HTTP ``status`` and a message (sent as ``{"status", "message"}``)."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


def _json(data: Any, status: int = 200) -> web.Response:
    return web.json_response(data, status=status, dumps=lambda d: json.dumps(d, ensure_ascii=False))


class InboxApi:
    """The ``/_emulator/`` routes. Loop thread only."""

    def __init__(self, engine: Engine, journal: Journal) -> None:
        self.engine = engine
        self.journal = journal
        self.closing = False

    def mount(self, app: web.Application) -> None:
        """Add the inbox routes to ``app`` (before the REST catch-all route)."""
        api = PREFIX + "/api"
        routes: list[tuple[str, str, Handler]] = [
            ("GET", PREFIX, self.redirect),
            ("GET", PREFIX + "/", self.page),
            ("GET", PREFIX + "/static/{name}", self.static),
            ("GET", api + "/info", self.info),
            ("GET", api + "/events", self.events),
            ("GET", api + "/messages", self.list_messages),
            ("DELETE", api + "/messages", self.delete_all),
            ("GET", api + "/messages/{sid}", self.get_message),
            ("DELETE", api + "/messages/{sid}", self.delete_one),
            ("GET", api + "/wait", self.wait),
            ("POST", api + "/reset", self.reset),
            ("GET", api + "/faults", self.get_faults),
            ("POST", api + "/faults", self.set_faults),
            ("POST", api + "/drop-connections", self.drop_connections),
            ("POST", api + "/server-disconnect", self.server_disconnect),
        ]
        for method, path, handler in routes:
            app.router.add_route(method, path, self.guard(handler))

    # -- guards ----------------------------------------------------------------------------

    def guard(self, handler: Handler) -> Handler:
        """Wrap ``handler`` in the access rule of every ``/_emulator/`` route.

        Loopback-bound: only loopback host names, no cross-origin writes.
        Otherwise: the emulator's credentials (HTTP Basic). Errors are JSON
        ``{"status", "message"}``, as in the control API.
        """

        async def guarded(request: web.Request) -> web.StreamResponse:
            try:
                self._check(request)
                return await handler(request)
            except HttpError as err:
                headers = {"WWW-Authenticate": 'Basic realm="swsync emulator"'} if err.status == 401 else None
                return web.json_response(
                    {"status": err.status, "message": str(err)}, status=err.status, headers=headers
                )

        return guarded

    def _check(self, request: web.Request) -> None:
        host = self.engine.host
        if not is_loopback(host) or "Authorization" in request.headers:
            # Credentials, when given, must be right.
            if not self.engine.basic_auth_ok(request.headers.get("Authorization", "")):
                raise HttpError(401, "authentication failed: use the emulator's project and token")
        if is_loopback(host) and _hostname(request.host) not in _LOCAL_NAMES | {host}:
            raise HttpError(403, "the inbox only answers requests for a loopback host name")
        if request.method in ("POST", "PUT", "DELETE"):
            origin = request.headers.get("Origin")
            if origin is not None and origin != f"{request.scheme}://{request.host}":
                raise HttpError(403, f"cross-origin request from {origin} refused")
            if request.can_read_body and request.content_type in _FORM_TYPES:
                raise HttpError(415, "send JSON (Content-Type: application/json)")

    async def _body(self, request: web.Request) -> dict[str, Any]:
        if not request.can_read_body:
            return {}
        try:
            data = await request.json()
        except ValueError:
            raise HttpError(400, "the body is not valid JSON") from None
        if not isinstance(data, dict):
            raise HttpError(400, "the body must be a JSON object")
        return data

    # -- page --------------------------------------------------------------------------------

    async def redirect(self, request: web.Request) -> web.StreamResponse:
        raise web.HTTPFound(PREFIX + "/")

    async def page(self, request: web.Request) -> web.StreamResponse:
        return self._file("index.html")

    async def static(self, request: web.Request) -> web.StreamResponse:
        name = request.match_info["name"]
        if name not in _STATIC:
            raise HttpError(404, f"no such file: {name}")
        return self._file(name)

    def _file(self, name: str) -> web.Response:
        data = resources.files(__package__).joinpath("static").joinpath(name).read_bytes()
        return web.Response(
            body=data,
            content_type=_STATIC[name],
            charset="utf-8",
            headers={"Cache-Control": "no-cache", "X-Content-Type-Options": "nosniff"},
        )

    async def info(self, request: web.Request) -> web.StreamResponse:
        engine = self.engine
        return _json(
            {
                "project": engine.project,
                "relay_url": engine.relay_url,
                "rest_url": engine.rest_url,
                "state_delay": engine.state_delay,
                "inbound_webhook_url": engine.inbound_webhook_url,
                "clients": engine.clients,
                "messages": len(engine.store),
                "faults": self._faults(),
            }
        )

    # -- messages ----------------------------------------------------------------------------

    def _select(self, request: web.Request) -> list[Any]:
        try:
            match = parse_filter(request.query)
        except ValueError as exc:
            raise HttpError(400, str(exc)) from None
        return self.engine.store.select(match)

    async def list_messages(self, request: web.Request) -> web.StreamResponse:
        found = self._select(request)
        limit = _param(request, "limit", len(found), int)
        return _json({"total": len(found), "messages": [summary(r) for r in found[:limit]]})

    async def get_message(self, request: web.Request) -> web.StreamResponse:
        found = self._detail(request.match_info["sid"])
        if found is None:
            raise HttpError(404, "no such message")
        return _json(found)

    def _detail(self, sid: str) -> dict[str, Any] | None:
        record = self.engine.store.get(sid)
        snap = self.engine.store.snapshot(sid)
        if record is None or snap is None:
            return None
        times = self.journal.times.get(sid) or [(s, record.date_created.timestamp()) for s in record.history]
        return detail(
            snap, list(times), list(self.journal.webhooks.get(sid, ())), [m.content_type for m in record.media]
        )

    async def delete_one(self, request: web.Request) -> web.StreamResponse:
        if self.engine.store.delete(request.match_info["sid"]) is None:
            raise HttpError(404, "no such message")
        return web.Response(status=204)

    async def delete_all(self, request: web.Request) -> web.StreamResponse:
        self.engine.store.clear()
        return web.Response(status=204)

    async def wait(self, request: web.Request) -> web.StreamResponse:
        """Long poll: answer once ``count`` messages match, or 408 after ``timeout``."""
        count = _param(request, "count", 1, int)
        timeout = min(_param(request, "timeout", 10.0, float), MAX_WAIT)
        deadline = time.monotonic() + timeout
        watcher = Watcher()
        self.journal.watchers.add(watcher)
        try:
            while True:
                found = self._select(request)
                if len(found) >= count:
                    return _json({"total": len(found), "messages": [summary(r) for r in found]})
                remaining = deadline - time.monotonic()
                if remaining <= 0 or self.closing:
                    raise HttpError(408, f"{len(found)} matching message(s) after {timeout} s, wanted {count}")
                try:
                    await asyncio.wait_for(watcher.ready.wait(), remaining)
                except asyncio.TimeoutError:
                    pass
                watcher.take()
        finally:
            self.journal.watchers.discard(watcher)

    async def reset(self, request: web.Request) -> web.StreamResponse:
        """What ``Emulator.reset()`` does: messages, faults, sessions, stats, log."""
        self.engine.reset(faults=True)
        return web.Response(status=204)

    # -- faults ------------------------------------------------------------------------------

    def _faults(self) -> dict[str, Any]:
        values = {name: getattr(self.engine.faults, name) for name in FAULTS}
        values["mps"] = self.engine.pacing.mps  # Emulator(mps=...): carrier pacing, None when off
        return values

    async def get_faults(self, request: web.Request) -> web.StreamResponse:
        return _json(self._faults())

    async def set_faults(self, request: web.Request) -> web.StreamResponse:
        """Set fault knobs and ``mps`` (pacing); answer with every knob's value."""
        data = await self._body(request)
        unknown = set(data) - set(FAULTS) - {"mps"}
        if unknown:
            raise HttpError(400, f"unknown fault knob(s): {sorted(unknown)}; known: {sorted(self._faults())}")
        try:
            converted = {k: FAULTS[k](v) if k in FAULTS else _mps(v) for k, v in data.items()}
        except (TypeError, ValueError) as exc:
            raise HttpError(400, f"bad value: {exc}") from None
        for name, value in converted.items():
            setattr(self.engine.pacing if name == "mps" else self.engine.faults, name, value)
        return _json(self._faults())

    async def drop_connections(self, request: web.Request) -> web.StreamResponse:
        return _json({"dropped": self.engine.drop_connections()})

    async def server_disconnect(self, request: web.Request) -> web.StreamResponse:
        restart = bool((await self._body(request)).get("restart", False))
        return _json({"disconnected": self.engine.server_disconnect(restart)})

    # -- the event stream --------------------------------------------------------------------

    async def events(self, request: web.Request) -> web.StreamResponse:
        """Server-sent events: a ``snapshot`` of every message, then ``update`` batches."""
        resp = web.StreamResponse(
            headers={"Content-Type": "text/event-stream", "Cache-Control": "no-cache", "X-Accel-Buffering": "no"}
        )
        await resp.prepare(request)
        watcher = Watcher()
        journal = self.journal
        journal.watchers.add(watcher)
        journal.streams += 1
        try:
            messages = [summary(r) for r in self.engine.store.select(None)]
            await resp.write(sse("snapshot", {"messages": messages, "faults": self._faults()}))
            while not (watcher.overflow or self.closing):
                try:
                    await asyncio.wait_for(watcher.ready.wait(), HEARTBEAT)
                except asyncio.TimeoutError:
                    await resp.write(b": keep-alive\n\n")
                    continue
                await resp.write(watcher.take())
        except ConnectionResetError:  # the page went away
            pass
        finally:
            journal.streams -= 1
            journal.watchers.discard(watcher)
        return resp


def _param(request: web.Request, name: str, default: N, kind: type[N]) -> N:
    """Query parameter ``name`` as a number >= 0 of ``kind`` (``default`` when absent), else a 400."""
    text = request.query.get(name)
    if not text:
        return default
    try:
        value = kind(text)
    except ValueError:
        raise HttpError(400, f"{name} must be {'an integer' if kind is int else 'a number'}") from None
    if not value >= 0:  # also refuses NaN
        raise HttpError(400, f"{name} must be >= 0")
    return value


def _mps(value: Any) -> float | None:
    if value in (None, "", 0):
        return None
    mps = float(value)
    if not 0 < mps < 1e9:
        raise ValueError(f"mps must be a positive number (or null: no pacing), got {value!r}")
    return mps
