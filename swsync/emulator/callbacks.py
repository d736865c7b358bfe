"""Webhooks the emulator sends: status callbacks and inbound-message requests.

Both are form POSTs signed like SignalWire's cXML webhooks (HMAC-SHA1 scheme B,
in ``X-SignalWire-Signature`` and ``X-Twilio-Signature``) with the emulator's
signing key. Status callbacks for one message are posted one after the other, in
state order. The reply to an inbound-message request is read as cXML: each
``<Message>`` verb becomes a new outbound message (``direction`` ``outbound-reply``).

Sent with aiohttp's client. A webhook that fails
(refused, times out, answers non-2xx, replies with bad XML) is logged at WARNING
and never disturbs anything else.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import time
import xml.etree.ElementTree as ET
from collections.abc import Coroutine
from typing import Any, TypeVar

import aiohttp
import yarl

from .. import _validate
from ..webhooks import SIGNATURE_HEADER, TWILIO_SIGNATURE_HEADER, RequestValidator
from .engine import Engine, Listener
from .store import API_VERSION, MessageRecord

__all__ = ["Webhooks", "parse_cxml_messages"]

logger = logging.getLogger(__name__)

T = TypeVar("T")

POST_TIMEOUT = 10.0
MAX_REPLY = 64 * 1024  # bytes of a cXML reply we are willing to parse


def _message_params(record: MessageRecord, status: str) -> dict[str, str]:
    """The parameters every messaging webhook carries about ``record``."""
    return {
        "MessageSid": record.sid,
        "SmsSid": record.sid,
        "AccountSid": record.account_sid,
        "From": record.from_,
        "To": record.to,
        "Body": record.body or "",
        "NumMedia": str(len(record.media)),
        "NumSegments": str(record.num_segments),
        "SmsStatus": status,
        "ApiVersion": API_VERSION,
    }


def status_params(record: MessageRecord, state: str) -> dict[str, str]:
    """The form parameters of a status callback for ``record`` reaching ``state``."""
    params = _message_params(record, state)
    params["MessageStatus"] = state
    if state in ("failed", "undelivered"):
        params["ErrorCode"] = record.error_code or ""
        params["ErrorMessage"] = record.error_message or ""
    return params


def inbound_params(record: MessageRecord) -> dict[str, str]:
    """The form parameters of an inbound-message webhook (SignalWire Compatibility API docs: messaging webhooks)."""
    params = _message_params(record, "received")
    params["SmsMessageSid"] = record.sid
    for i, media in enumerate(record.media):
        params[f"MediaUrl{i}"] = media.url
        params[f"MediaContentType{i}"] = media.content_type
    return params


def parse_cxml_messages(text: str) -> list[dict[str, Any]]:
    """Return the ``<Message>`` verbs of a cXML document as dicts.

    Each dict has ``to``, ``from`` (``None`` when the attribute is absent),
    ``body`` (text plus every ``<Body>`` noun, concatenated) and ``media`` (list of
    ``<Media>`` URLs). Other verbs are ignored.

    Raises:
        ValueError: not a cXML ``<Response>`` document (or it declares a DTD).
    """
    if "<!DOCTYPE" in text or "<!ENTITY" in text:
        raise ValueError("cXML with a DTD is refused")
    try:
        root = ET.fromstring(text)
    except ET.ParseError as exc:
        raise ValueError(f"not XML: {exc}") from exc
    if root.tag != "Response":
        raise ValueError(f"root element is <{root.tag}>, not <Response>")
    found = []
    for verb in root:
        if verb.tag != "Message":
            continue
        parts = [verb.text or ""]
        media = []
        for noun in verb:
            if noun.tag == "Body":
                parts.append(noun.text or "")
            elif noun.tag == "Media" and noun.text:
                media.append(noun.text.strip())
            parts.append(noun.tail or "")
        found.append(
            {
                "to": verb.get("to"),
                "from": verb.get("from"),
                "body": "".join(parts).strip(),
                "media": media,
            }
        )
    return found


class Webhooks(Listener):
    """Sends the emulator's webhooks; an engine listener. Loop thread only."""

    def __init__(self, engine: Engine) -> None:
        self._engine = engine
        self._session: aiohttp.ClientSession | None = None
        self._chains: dict[str, asyncio.Task[None]] = {}  # message sid -> its latest callback
        self._tasks: set[asyncio.Task[Any]] = set()
        self._signer: RequestValidator | None = None

    @property
    def busy(self) -> bool:
        """Whether any webhook is still being sent."""
        return bool(self._tasks)

    def _spawn(self, coro: Coroutine[Any, Any, T]) -> asyncio.Task[T]:
        task = asyncio.get_running_loop().create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return task

    def message_state(self, record: MessageRecord, state: str) -> None:
        """Queue the status callback of ``record`` reaching ``state`` (in order), if it has one."""
        url = record.status_callback
        if not url:
            return
        params = status_params(record, state)
        previous = self._chains.get(record.sid)
        task = self._spawn(self._post_after(previous, url, params))
        self._chains[record.sid] = task
        task.add_done_callback(functools.partial(self._chain_done, record.sid))

    def _chain_done(self, sid: str, task: asyncio.Task[None]) -> None:
        if self._chains.get(sid) is task:
            del self._chains[sid]

    async def _post_after(self, previous: asyncio.Task[None] | None, url: str, params: dict[str, str]) -> None:
        if previous is not None:
            await asyncio.wait([previous])
        await self._post(url, params)

    def message_received(self, record: MessageRecord) -> int:
        """POST an inbound message to ``inbound_webhook_url`` (if set) and act on the cXML reply."""
        url = self._engine.inbound_webhook_url
        if url:
            self._spawn(self._inbound(record, url))
        return 0  # RELAY sessions it went to: none from here

    async def _inbound(self, record: MessageRecord, url: str) -> None:
        reply = await self._post(url, inbound_params(record))
        if not reply or not reply.strip():
            return
        try:
            verbs = parse_cxml_messages(reply)
        except ValueError as exc:
            logger.warning("inbound webhook %s replied with unusable cXML: %s", url, exc)
            return
        for verb in verbs:
            to = verb["to"] or record.from_
            from_ = verb["from"] or record.to
            try:
                _validate.phone_number(to, "to")
                _validate.phone_number(from_, "from")
                body, media = _validate.content(verb["body"] or None, verb["media"])
            except ValueError as exc:
                logger.warning("cXML <Message> from %s skipped: %s", url, exc)
                continue
            self._engine.create_outbound(
                to=to,
                from_=from_,
                body=body or "",
                media=media,
                direction="outbound-reply",
                origin="cxml",
            )

    def _sign(self, url: str, params: dict[str, str]) -> str:
        if self._signer is None:
            self._signer = RequestValidator(self._engine.signing_key)
        return self._signer.compute_signature(url, params)

    async def _post(self, url: str, params: dict[str, str]) -> str | None:
        """POST ``params`` signed to ``url``; return the reply text on 2xx, else ``None``."""
        self._engine.counters.webhooks_sent += 1
        started = time.time()
        signature = self._sign(url, params)
        headers = {SIGNATURE_HEADER: signature, TWILIO_SIGNATURE_HEADER: signature}
        if self._session is None:
            self._session = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=POST_TIMEOUT))
        try:
            # encoded=True: send the URL exactly as signed (yarl would re-quote %2F, %7E...).
            async with self._session.post(yarl.URL(url, encoded=True), data=params, headers=headers) as resp:
                raw = await resp.content.read(MAX_REPLY)
                self._posted(url, params, started, resp.status, None)
                if not 200 <= resp.status < 300:
                    logger.warning("webhook %s answered HTTP %s", url, resp.status)
                    return None
                return raw.decode(resp.charset or "utf-8", errors="replace")
        except (asyncio.TimeoutError, aiohttp.ClientError, OSError, ValueError) as exc:
            logger.warning("webhook POST to %s failed: %s", url, exc)
            self._posted(url, params, started, None, str(exc) or type(exc).__name__)
            return None

    def _posted(self, url: str, params: dict[str, str], started: float, status: int | None, error: str | None) -> None:
        """Tell the store's listeners (the inbox) that a webhook was posted."""
        store = self._engine.store
        record = store.get(params["MessageSid"])
        info = {
            "sid": params["MessageSid"],
            "kind": "status_callback" if "MessageStatus" in params else "inbound",
            "url": url,
            "state": params.get("MessageStatus", params["SmsStatus"]),
            "at": started,
            "duration_ms": round((time.time() - started) * 1000, 1),
            "status": status,
            "error": error,
        }
        store.notify("webhook", record, info)

    def reset(self) -> None:
        """Cancel every pending webhook (``Emulator.reset()``)."""
        for task in list(self._tasks):
            task.cancel()
        self._chains.clear()

    async def close(self) -> None:
        """Cancel pending webhooks and close the HTTP client."""
        self.reset()
        if self._tasks:
            await asyncio.wait(list(self._tasks), timeout=1.0)
        if self._session is not None:
            await self._session.close()
            self._session = None
