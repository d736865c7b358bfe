"""A Flask app that answers SignalWire messaging webhooks with swsync.flask.

Routes:

* ``POST /sms``: inbound-message webhook; replies with cXML ("Thanks, we got: ...").
  STOP and the other opt-out keywords are recorded in the opt-out store and get no
  reply; START opts back in.
* ``POST /status``: status callback (pass its URL as ``status_callback=``); the
  typed callback is recorded in memory and answered with an empty ``<Response/>``.
* ``GET /status-log``: the recorded callbacks as JSON, oldest first. Demo and tests
  only: it is unauthenticated and shows message bodies and numbers, so it exists
  only with ``create_app(..., expose_status_log=True)``.

``@validate_webhook`` refuses a webhook without a valid signature
(``X-SignalWire-Signature`` or ``X-Twilio-Signature``) with 403, runs a retried
webhook once, and never hands a status callback to the reply logic. Run it::

    pip install "swsync[flask]"
    SIGNALWIRE_SIGNING_KEY=PSK_... python examples/flask_app.py

Environment variables (``SIGNALWIRE_SIGNING_KEY`` is read by swsync itself; the
others are this example's convention):

* ``SIGNALWIRE_SIGNING_KEY``: the project's Signing Key (not the API token).
* ``PUBLIC_URL``: behind a reverse proxy or tunnel, the public scheme and host
  (plus any path prefix the proxy strips), e.g. ``https://hooks.example.com``.
* ``OPT_OUTS``: the SQLite file of opted-out numbers (``python examples/flask_app.py``
  defaults it to ``optouts.db``).
* ``HOST``, ``PORT``: where ``python examples/flask_app.py`` listens
  (default ``127.0.0.1:5000``). In production serve ``create_app()`` with a WSGI
  server such as gunicorn.
"""

from __future__ import annotations

import os
import threading
from collections import deque
from collections.abc import Callable
from dataclasses import fields

from flask import Flask, Response, jsonify

from swsync.cxml import MessagingResponse
from swsync.errors import ConfigurationError
from swsync.flask import validate_webhook
from swsync.optouts import OptOutStore
from swsync.webhooks import InboundMessage, StatusCallback

__all__ = ["StatusLog", "create_app"]

MAX_BODY_CHARS = 1600  # cXML <Message> body limit
MAX_WEBHOOK_BYTES = 64 * 1024  # real webhooks are a few hundred bytes


class StatusLog:
    """The last ``maxlen`` status callbacks, oldest first. Thread-safe.

    Callbacks are best effort (late, out of order), so this is a log, not the
    truth about a message: fetch it over REST for that.
    """

    def __init__(self, maxlen: int = 1000) -> None:
        # Guards _entries.
        self._lock = threading.Lock()
        self._entries: deque[StatusCallback] = deque(maxlen=maxlen)

    def record(self, callback: StatusCallback) -> None:
        with self._lock:
            self._entries.append(callback)

    def entries(self) -> list[StatusCallback]:
        with self._lock:
            return list(self._entries)


def reply_text(message: InboundMessage) -> str:
    """The reply, kept within the 1600-character cXML limit."""
    if not message.body:
        return f"Thanks, we got your {message.num_media} attachment(s)."
    prefix = "Thanks, we got: "
    room = MAX_BODY_CHARS - len(prefix)
    body = message.body if len(message.body) <= room else message.body[: room - 1] + "…"
    return prefix + body


def create_app(
    signing_key: str | None = None,
    *,
    public_url: str | None = None,
    trusted_proxies: int = 0,
    opt_outs: OptOutStore | str | None = None,
    on_status: Callable[[StatusCallback], None] | None = None,
    max_log: int = 1000,
    expose_status_log: bool = False,
) -> Flask:
    """Build the webhook app.

    Args:
        signing_key: the project's Signing Key; default ``SIGNALWIRE_SIGNING_KEY``.
        public_url: the public URL prefix behind a proxy; default ``PUBLIC_URL``.
        trusted_proxies: reverse proxies whose ``X-Forwarded-*`` headers to trust.
        opt_outs: opt-out store or SQLite path; default ``OPT_OUTS``, else none
            (STOP still gets no reply).
        on_status: called with each new status callback (exceptions are logged).
        max_log: how many status callbacks the in-memory log keeps.
        expose_status_log: serve the log, unauthenticated, at ``GET /status-log``.

    Raises:
        ConfigurationError: no signing key, or a malformed public URL.
    """
    key = (signing_key if signing_key is not None else os.environ.get("SIGNALWIRE_SIGNING_KEY")) or ""
    if not key.strip():
        raise ConfigurationError(
            "missing signing_key: pass signing_key=... or set the "
            "SIGNALWIRE_SIGNING_KEY environment variable (the Signing Key)"
        )
    app = Flask(__name__, static_folder=None)
    app.config.update(
        SIGNALWIRE_SIGNING_KEY=key.strip(),
        MAX_CONTENT_LENGTH=MAX_WEBHOOK_BYTES,
        SWSYNC_TRUSTED_PROXIES=trusted_proxies,
        SWSYNC_OPT_OUTS=opt_outs or os.environ.get("OPT_OUTS") or None,
    )
    public = public_url or os.environ.get("PUBLIC_URL") or None
    log = app.extensions["status_log"] = StatusLog(max_log)

    @app.post("/sms")
    @validate_webhook(public_url=public)
    def sms(message: InboundMessage) -> MessagingResponse:
        try:
            return MessagingResponse().message(reply_text(message))
        except ValueError:  # e.g. a control character XML cannot carry
            return MessagingResponse().message("Thanks, we got your message.")

    @app.post("/status")
    @validate_webhook(public_url=public)
    def status(callback: StatusCallback) -> None:
        log.record(callback)
        if callback.message_status in ("undelivered", "failed"):
            app.logger.warning(
                "message %s %s (error %s)", callback.message_sid, callback.message_status, callback.error_code
            )
        if on_status is not None:
            try:
                on_status(callback)
            except Exception:  # the hook's bug must not make SignalWire retry
                app.logger.exception("on_status hook failed")

    if expose_status_log:

        @app.get("/status-log")
        def status_log() -> Response:
            return jsonify(
                [{f.name: getattr(cb, f.name) for f in fields(cb) if f.name != "raw"} for cb in log.entries()]
            )

    return app


if __name__ == "__main__":
    os.environ.setdefault("OPT_OUTS", "optouts.db")
    try:
        application = create_app()
    except ConfigurationError as exc:
        raise SystemExit(f"flask_app: {exc}") from None
    application.run(host=os.environ.get("HOST", "127.0.0.1"), port=int(os.environ.get("PORT", "5000")))
