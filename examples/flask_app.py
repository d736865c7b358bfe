"""A Flask app that answers SignalWire messaging webhooks with swsync.

Routes:

* ``POST /sms``: inbound-message webhook; replies with cXML ("Thanks, we got: ...").
* ``POST /status``: status callback (pass its URL as ``status_callback=``); the
  typed callback is recorded in memory and answered with 204.
* ``GET /status-log``: the recorded callbacks as JSON, oldest first. Demo and tests
  only: it is unauthenticated and shows message bodies and numbers, so it exists
  only with ``create_app(..., expose_status_log=True)``.

Every other request must carry a valid signature
(``X-SignalWire-Signature`` or ``X-Twilio-Signature``); a missing or bad one gets
403. That includes URLs the app does not serve, so nothing unsigned gets further.

Run it::

    pip install "swsync[dev]"   # Flask is an example dependency, not a runtime one
    SIGNALWIRE_SIGNING_KEY=PSK_... python examples/flask_app.py

Environment variables (this example's own convention; swsync itself reads none
of them):

* ``SIGNALWIRE_SIGNING_KEY``: the project's Signing Key from the dashboard (not
  the API token). Used when ``create_app()`` gets no key.
* ``PUBLIC_URL``: set it when the app runs behind a reverse proxy or tunnel, to
  the public scheme and host (plus any path prefix the proxy strips), such as
  ``https://hooks.example.com``. The signature covers the URL SignalWire
  called, which the app cannot see behind a proxy: the URL checked is
  ``PUBLIC_URL`` followed by the path and query string as received. Without
  it, the scheme and ``Host`` of the request as received are used.
* ``HOST``, ``PORT``: where ``python examples/flask_app.py`` listens
  (default ``127.0.0.1:5000``).

``app.run()`` is Flask's development server; in production run ``create_app()``
under a WSGI server such as gunicorn.
"""

from __future__ import annotations

import os
import threading
from collections import deque
from collections.abc import Callable, Mapping
from dataclasses import fields
from typing import Any
from urllib.parse import quote, urlsplit

from flask import Flask, Response, abort, jsonify, request

from swsync.cxml import CONTENT_TYPE, MessagingResponse
from swsync.errors import ConfigurationError
from swsync.webhooks import (
    InboundMessage,
    RequestValidator,
    StatusCallback,
    signature_from_headers,
)

__all__ = ["PUBLIC_URL_ENV", "SIGNING_KEY_ENV", "StatusLog", "create_app"]

SIGNING_KEY_ENV = "SIGNALWIRE_SIGNING_KEY"
PUBLIC_URL_ENV = "PUBLIC_URL"

MAX_BODY_CHARS = 1600  # cXML <Message> body limit
MAX_WEBHOOK_BYTES = 64 * 1024  # real webhooks are a few hundred bytes
# Endpoints answered without a signature; every other request needs one.
UNSIGNED_ENDPOINTS = frozenset({"status_log"})

StatusHook = Callable[[StatusCallback], None]


class StatusLog:
    """The status callbacks received so far, oldest first, at most ``maxlen``.

    Callbacks are best effort: they can come late, twice or out of order, so
    this is a log, not the truth about a message (fetch it over REST for that).
    Thread-safe: the WSGI server may run requests in several threads.
    """

    def __init__(self, maxlen: int = 1000) -> None:
        # Guards _entries; held only to append or copy, never while calling out.
        self._lock = threading.Lock()
        self._entries: deque[StatusCallback] = deque(maxlen=maxlen)

    def record(self, callback: StatusCallback) -> None:
        """Append ``callback`` (dropping the oldest one when full)."""
        with self._lock:
            self._entries.append(callback)

    def entries(self) -> list[StatusCallback]:
        """Return a copy of the recorded callbacks, oldest first."""
        with self._lock:
            return list(self._entries)


def _as_json(callback: StatusCallback) -> dict[str, Any]:
    # The typed fields only; raw holds every parameter as sent and may be large.
    return {f.name: getattr(callback, f.name) for f in fields(callback) if f.name != "raw"}


def _check_public_url(value: str) -> str:
    parts = urlsplit(value)
    if parts.scheme not in ("http", "https") or not parts.netloc or parts.query or parts.fragment:
        raise ConfigurationError(
            f"public_url (or {PUBLIC_URL_ENV}) must be an http(s) URL such as "
            "'https://hooks.example.com', without query or fragment"
        )
    return value.rstrip("/")


def _request_target() -> str:
    """The path and query string exactly as received (still percent-encoded)."""
    raw = request.environ.get("RAW_URI") or request.environ.get("REQUEST_URI") or ""
    if isinstance(raw, str) and raw.startswith("/"):
        return raw
    # The WSGI server did not pass the raw target on: rebuild it.
    path = quote(request.script_root + request.path, safe="/%!$&'()*+,;=:@~")
    query = request.query_string.decode("latin-1")
    return f"{path}?{query}" if query else path


def _reply_text(message: InboundMessage) -> str:
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
    on_status: StatusHook | None = None,
    max_log: int = 1000,
    expose_status_log: bool = False,
) -> Flask:
    """Build the webhook app.

    Args:
        signing_key: the project's Signing Key; default: ``SIGNALWIRE_SIGNING_KEY``.
        public_url: behind a proxy or tunnel, the public scheme and host (plus
            any path prefix the proxy strips), e.g. ``https://hooks.example.com``;
            the URL checked is this followed by the path and query string as
            received. Default: ``PUBLIC_URL``, else the request's own scheme and host.
        on_status: called with each valid status callback after it is recorded,
            in the request's thread; an exception is logged, the reply is still 204.
        max_log: how many status callbacks the in-memory log keeps.
        expose_status_log: serve the log, unauthenticated, at ``GET /status-log``
            (demos and tests only: it shows bodies and phone numbers).

    Returns:
        The Flask app; its :class:`StatusLog` is ``app.extensions["status_log"]``.

    Raises:
        ConfigurationError: no signing key, or a malformed public URL.
    """
    key = signing_key if signing_key is not None else os.environ.get(SIGNING_KEY_ENV, "")
    if not isinstance(key, str) or not key.strip():
        raise ConfigurationError(
            f"missing signing_key: pass signing_key=... or set the {SIGNING_KEY_ENV} "
            "environment variable (the project's Signing Key, not the API token)"
        )
    validator = RequestValidator(key.strip())
    if public_url is None:
        public_url = os.environ.get(PUBLIC_URL_ENV) or None
    base = None if public_url is None else _check_public_url(public_url)
    log = StatusLog(max_log)

    app = Flask(__name__, static_folder=None)
    app.config["MAX_CONTENT_LENGTH"] = MAX_WEBHOOK_BYTES
    app.extensions["status_log"] = log

    def signed_url() -> str:
        # Not request.url: werkzeug 3 decodes it (%2F -> /), but the signature
        # covers the URL as SignalWire sent it, still percent-encoded.
        origin = base if base is not None else f"{request.scheme}://{request.host}"
        return origin + _request_target()

    def params() -> Mapping[str, Any]:
        """The webhook's parameters: the form, or a JSON object's members."""
        if request.mimetype == "application/json":
            data = request.get_json(silent=True)
            if not isinstance(data, dict):
                abort(400, "expected a JSON object")
            return data
        return request.form

    @app.before_request
    def require_signature() -> None:
        if expose_status_log and request.endpoint in UNSIGNED_ENDPOINTS:
            return
        signature = signature_from_headers(request.headers)
        # JSON webhooks are signed over the raw body, form webhooks over the fields.
        if request.mimetype == "application/json":
            payload: Any = request.get_data(cache=True)
        else:
            payload = request.form
        if not validator.validate(signed_url(), payload, signature):
            app.logger.warning(
                "refused %s %s: bad or missing signature", request.method, request.path
            )
            abort(403)

    @app.post("/sms")
    def inbound_sms() -> Response:
        try:
            message = InboundMessage.from_params(params())
        except (TypeError, ValueError) as exc:
            abort(400, str(exc))
        try:
            reply = MessagingResponse().message(_reply_text(message))
        except ValueError:  # e.g. a control character XML cannot carry
            reply = MessagingResponse().message("Thanks, we got your message.")
        return Response(str(reply), status=200, content_type=CONTENT_TYPE)

    @app.post("/status")
    def status_callback() -> tuple[str, int]:
        try:
            callback = StatusCallback.from_params(params())
        except (TypeError, ValueError) as exc:
            abort(400, str(exc))
        log.record(callback)
        if callback.message_status in ("undelivered", "failed"):
            app.logger.warning(
                "message %s %s (error %s)",
                callback.message_sid,
                callback.message_status,
                callback.error_code,
            )
        if on_status is not None:
            try:
                on_status(callback)
            except Exception:  # the hook's bug must not make SignalWire retry
                app.logger.exception("on_status hook failed")
        return "", 204

    if expose_status_log:

        @app.get("/status-log")
        def status_log() -> Response:
            return jsonify([_as_json(cb) for cb in log.entries()])

    return app


if __name__ == "__main__":
    try:
        app = create_app()
    except ConfigurationError as exc:
        raise SystemExit(f"flask_app: {exc}") from None
    app.run(host=os.environ.get("HOST", "127.0.0.1"), port=int(os.environ.get("PORT", "5000")))
