"""The emulator's control API: HTTP endpoints under ``/_emulator/api/`` that drive it.

They let a shell, a script in another language or another process do what the
Python helpers do in-process, against a running emulator. They share the inbox's
access rule (``swsync.emulator.inbox``): on a loopback address, open to this
machine; bound to any other address, HTTP Basic with the emulator's project and
token (as for REST). Bodies are JSON.

``POST /_emulator/api/inbound``
    ``{"to", "from", "body", "media", "context"}`` (``body`` and/or ``media``;
    ``context`` defaults to ``"default"``): an inbound message, exactly as
    :meth:`Emulator.inject_inbound` makes one. Answers 201 with ``{"sid", "to",
    "from", "body", "media", "context", "sessions"}``, ``sessions`` being how many
    RELAY sessions it went to (0 or 1). Bad input: 400; bad credentials: 401.
    Errors are ``{"status", "message"}``.

Threads and locks: docs/design.md, "Threads" and "Locks".
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable
from typing import Any

from aiohttp import web

from .engine import Engine, check_inbound

__all__ = ["PREFIX", "ControlApi"]

#: Every control endpoint lives under this path (never a cXML REST path).
PREFIX = "/_emulator/api"

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]

_INBOUND_FIELDS = frozenset(("to", "from", "body", "media", "context"))


def _fail(status: int, message: str) -> web.HTTPException:
    exc = web.HTTPException(
        text=json.dumps({"status": status, "message": message}),
        content_type="application/json",
    )
    exc.set_status(status)
    return exc


class ControlApi:
    """The control endpoints. Loop thread only."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    def add_routes(self, app: web.Application, guard: Callable[[Handler], Handler]) -> None:
        """Register the endpoints on ``app`` (before the REST catch-all route) behind ``guard``."""
        app.router.add_post(f"{PREFIX}/inbound", guard(self.inbound))

    async def json_object(self, request: web.Request) -> dict[str, Any]:
        """The request body as a JSON object, or a 400."""
        try:
            data = await request.json()
        except ValueError:
            raise _fail(400, "the body must be a JSON object") from None
        if not isinstance(data, dict):
            raise _fail(400, "the body must be a JSON object")
        return data

    async def inbound(self, request: web.Request) -> web.Response:
        """``POST /_emulator/api/inbound``: inject one inbound message."""
        data = await self.json_object(request)
        unknown = sorted(set(data) - _INBOUND_FIELDS)
        if unknown:
            raise _fail(400, f"unknown fields {unknown}; expected {sorted(_INBOUND_FIELDS)}")
        context = data.get("context", "default")
        media = data.get("media")
        try:
            if media is not None and not isinstance(media, list):
                raise ValueError("media must be a list of URLs")
            to, from_, body, urls = check_inbound(
                data.get("to"), data.get("from"), data.get("body"), media, context, ("to", "from")
            )
        except (ValueError, TypeError) as exc:
            raise _fail(400, str(exc)) from None
        record, sessions = self.engine.receive_inbound(to, from_, body, context, urls)
        reply = {
            "sid": record.sid,
            "to": record.to,
            "from": record.from_,
            "body": record.body,
            "media": [m.url for m in record.media],
            "context": record.context,
            "sessions": sessions,
        }
        return web.json_response(reply, status=201)
