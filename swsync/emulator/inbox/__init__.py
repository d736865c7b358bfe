"""The emulator's inbox: a web page and a JSON API to see and answer every message.

Served on the emulator's own port under ``/_emulator/`` (``Emulator.ui_url``):
the page (static files shipped in this package, no build step, nothing fetched
from elsewhere), a JSON API (``/_emulator/api/...``, documented in
docs/emulator.md) and one server-sent event stream that pushes batched updates
to open pages. :class:`Inbox` wires the parts to the engine: its journal is an
engine listener (it hears every store change) and it mounts the routes.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

from aiohttp import web

from ..engine import Engine
from .api import PREFIX, InboxApi, is_loopback
from .journal import BATCH_INTERVAL, Journal

__all__ = ["BATCH_INTERVAL", "PREFIX", "Inbox", "is_loopback"]


class Inbox:
    """The inbox of one emulator: an engine listener (its journal) plus the ``/_emulator/`` routes.

    Thread-safe as the store is: its listener may run on any thread; its routes
    run on the emulator's loop thread.
    """

    def __init__(self, engine: Engine) -> None:
        self.journal = Journal()
        self.api = InboxApi(engine, self.journal)
        engine.subscribe(self.journal)

    def mount(self, app: web.Application) -> None:
        """Add the routes to ``app`` and flush live updates on the running loop."""
        self.journal.attach(asyncio.get_running_loop())
        self.api.mount(app)

    def guard(
        self, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
    ) -> Callable[[web.Request], Awaitable[web.StreamResponse]]:
        """Wrap another ``/_emulator/`` handler (the control API's) in the inbox's access rule."""
        return self.api.guard(handler)

    def close(self) -> None:
        """End open event streams and long polls (the emulator is closing; loop thread)."""
        self.api.closing = True
        self.journal.close()
