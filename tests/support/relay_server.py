"""A small scriptable RELAY websocket server for behaviours the emulator does not offer.

It answers ``signalwire.connect`` through a test-supplied function (so a test can
omit ``session_restored``, refuse attempts with chosen codes, or return another
protocol), accepts ``messaging.send`` and ``signalwire.receive``, records every
frame the client sends, and lets the test push frames or cut connections. It runs
aiohttp on its own event loop in a thread, on 127.0.0.1 and a free port.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import threading
import time
from collections.abc import Callable
from typing import Any

from aiohttp import WSMsgType, web

Reply = dict[str, Any]
ConnectHook = Callable[[int, dict[str, Any]], Reply]
RequestHook = Callable[[dict[str, Any]], "Reply | None"]


def accept(protocol: str = "signalwire_test-session", **extra: Any) -> Reply:
    """A connect result with ``protocol`` and no ``session_restored`` flag (unless given)."""
    return {"result": {"protocol": protocol, "identity": "test", **extra}}


def refuse(code: int, message: str = "refused") -> Reply:
    """A JSON-RPC error answering ``signalwire.connect``."""
    return {"error": {"code": code, "message": message}}


class RelayServer:
    """The server; a context manager. ``frames`` lists every frame received, in order."""

    def __init__(
        self,
        on_connect: ConnectHook | None = None,
        on_request: RequestHook | None = None,
        *,
        accept_upgrade: bool = True,
        answer_connect: bool = True,
    ) -> None:
        self.on_connect = on_connect or (lambda attempt, params: accept())
        self.on_request = on_request
        self.accept_upgrade = accept_upgrade  # False: accept TCP and the request, never answer
        self.answer_connect = answer_connect  # False: never answer signalwire.connect
        self.frames: list[dict[str, Any]] = []
        self.connect_params: list[dict[str, Any]] = []
        self.sends: list[dict[str, Any]] = []
        self.upgrades = 0  # websocket upgrade requests seen
        self._sockets: list[web.WebSocketResponse] = []
        self._ids = itertools.count(1)
        self._cond = threading.Condition()
        self._loop = asyncio.new_event_loop()
        self._started = threading.Event()
        self._thread = threading.Thread(target=self._serve, name="test-relay-server", daemon=True)
        self._thread.start()
        assert self._started.wait(10), "test server did not start"

    # ---------------------------------------------------------------- test side

    @property
    def url(self) -> str:
        return f"ws://127.0.0.1:{self.port}"

    def wait_for(self, predicate: Callable[[], bool], timeout: float = 10.0) -> None:
        """Block until ``predicate()`` (checked on every received frame) holds."""
        with self._cond:
            assert self._cond.wait_for(predicate, timeout), "condition not met in time"

    def push(self, frame: dict[str, Any]) -> None:
        """Send ``frame`` on the newest connection."""
        self.push_raw(json.dumps(frame))

    def push_raw(self, text: str) -> None:
        """Send ``text`` as a text frame on the newest connection."""

        async def send() -> None:
            await self._sockets[-1].send_str(text)

        asyncio.run_coroutine_threadsafe(send(), self._loop).result(5)

    def inbound(self, message_id: str, body: str = "hi", context: str = "office") -> None:
        """Push a ``messaging.receive`` event for ``message_id``."""
        self.push(
            event(
                "messaging.receive",
                {
                    "message_id": message_id,
                    "message_state": "received",
                    "context": context,
                    "direction": "inbound",
                    "from_number": "+15557654321",
                    "to_number": "+15551234567",
                    "body": body,
                    "media": [],
                    "segments": 1,
                    "tags": [],
                },
                next(self._ids),
            )
        )

    def drop(self) -> None:
        """Cut every connection (TCP close, no close frame)."""

        def abort() -> None:
            for ws in self._sockets:
                req = getattr(ws, "_req", None)
                if req is not None and req.transport is not None:
                    req.transport.abort()

        self._loop.call_soon_threadsafe(abort)

    def close(self) -> None:
        async def stop() -> None:
            self._closing.set()
            await self._runner.cleanup()

        asyncio.run_coroutine_threadsafe(stop(), self._loop).result(10)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(10)

    def __enter__(self) -> RelayServer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -------------------------------------------------------------- server side

    def _serve(self) -> None:
        asyncio.set_event_loop(self._loop)
        self._closing = asyncio.Event()
        app = web.Application()
        app.router.add_get("/", self._handle)
        self._runner = web.AppRunner(app, handle_signals=False, shutdown_timeout=1.0)
        self._loop.run_until_complete(self._runner.setup())
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        self._loop.run_until_complete(site.start())
        self.port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        self._started.set()
        self._loop.run_forever()
        self._loop.close()

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        with self._cond:
            self.upgrades += 1
            self._cond.notify_all()
        if not self.accept_upgrade:
            await self._closing.wait()
            return web.Response(status=503)
        ws = web.WebSocketResponse(autoping=True)
        await ws.prepare(request)
        self._sockets.append(ws)
        async for msg in ws:
            if msg.type != WSMsgType.TEXT:
                continue
            frame = json.loads(msg.data)
            reply = self._answer(frame)
            with self._cond:
                self.frames.append(frame)
                self._cond.notify_all()
            if reply is not None:
                await ws.send_str(json.dumps({"jsonrpc": "2.0", "id": frame["id"], **reply}))
        return ws

    def _answer(self, frame: dict[str, Any]) -> Reply | None:
        method = frame.get("method")
        params = frame.get("params") or {}
        if method is None:
            return None  # an ACK or a reply to our request
        if method == "signalwire.connect":
            self.connect_params.append(params)
            if not self.answer_connect:
                return None
            return self.on_connect(len(self.connect_params), params)
        if self.on_request is not None:
            reply = self.on_request(frame)
            if reply is not None:
                return reply
        if method == "messaging.send":
            self.sends.append(params)
            return {"result": {"code": "200", "message": "Message accepted", "message_id": f"m-{len(self.sends)}"}}
        if method == "signalwire.ping":
            return {"result": {"timestamp": time.time()}}
        return {"result": {"code": "200", "message": "OK"}}


def event(event_type: str, params: dict[str, Any], n: int) -> dict[str, Any]:
    """A ``signalwire.event`` request frame."""
    return {
        "jsonrpc": "2.0",
        "id": f"ev-{n}",
        "method": "signalwire.event",
        "params": {"event_type": event_type, "timestamp": time.time(), "params": params},
    }
