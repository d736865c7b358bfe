"""Flask integration: ``@validate_webhook`` for SignalWire messaging webhooks.

Install with ``pip install "swsync[flask]"``. ::

    from flask import Flask
    from swsync.cxml import MessagingResponse
    from swsync.flask import validate_webhook
    from swsync.webhooks import InboundMessage, StatusCallback

    app = Flask(__name__)
    app.config["SIGNALWIRE_SIGNING_KEY"] = "PSK_..."   # or the environment variable

    @app.post("/sms")
    @validate_webhook
    def sms(message: InboundMessage):
        return MessagingResponse().message(f"Got it: {message.body}")

    @app.post("/status")
    @validate_webhook
    def status(callback: StatusCallback):
        print(callback.message_sid, callback.message_status)   # None -> <Response/>

The decorator checks the signature (form and JSON bodies) against the URL the
provider signed, answers 403 and logs why when it does not match, runs a retried
webhook once, records STOP/START in an opt-out store, and calls the view with a
typed :class:`~swsync.webhooks.InboundMessage` or
:class:`~swsync.webhooks.StatusCallback` as its first argument (URL variables
follow as keyword arguments). A view annotated with one of the two types only
receives that kind; the other kind is answered with an empty ``<Response/>``
without calling it, so a status callback can never trigger reply logic. A view
that returns ``None`` answers an empty ``<Response/>`` (``text/xml``); a
:class:`~swsync.cxml.MessagingResponse` is rendered; anything else goes to Flask
as usual. See docs/webhooks.md for the settings and for running behind a proxy.

App config keys (each overridden by the decorator's argument of the same
meaning): ``SIGNALWIRE_SIGNING_KEY`` (else the environment variable of that
name), ``SWSYNC_PUBLIC_URL``, ``SWSYNC_TRUSTED_PROXIES``, ``SWSYNC_RUN_ONCE``
(a store, or ``False``), ``SWSYNC_OPT_OUTS`` (a store or an SQLite path).
Flask itself has no CSRF protection; with Flask-WTF's ``CSRFProtect``, exempt
webhook views with ``csrf.exempt(view)``.
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Callable, Mapping
from typing import Any, cast

import flask

from . import _webhook_app as core
from .cxml import CONTENT_TYPE

__all__ = ["validate_webhook"]

logger = logging.getLogger(__name__)

MAX_BODY_BYTES = 256 * 1024  # real webhooks are a few hundred bytes


def _incoming() -> core.Incoming:
    req = flask.request
    return core.Incoming(
        method=req.method,
        path=req.path,
        environ=req.environ,
        origin=f"{req.scheme}://{req.host}",
        headers=cast("Mapping[str, str]", req.headers),  # werkzeug Headers: get() is all we use
        is_json=req.is_json,
        body=lambda: req.get_data(cache=True),
        form=lambda: req.args if req.method == "GET" else req.form,
    )


def _answer(decision: core.Decision) -> flask.Response:
    if decision.status == 200:
        text = decision.replay or core.cxml_text(None)
        return flask.Response(text, status=200, content_type=CONTENT_TYPE)
    if decision.status == 400:
        return flask.Response(f"Bad Request: {decision.reason}\n", status=400, content_type="text/plain; charset=utf-8")
    text = "Forbidden\n" if decision.status == 403 else "Request Entity Too Large\n"
    return flask.Response(text, status=decision.status, content_type="text/plain; charset=utf-8")


def _run(
    options: core.Options, accept: core.Accept, view: Callable[..., Any], args: tuple[Any, ...], kwargs: dict[str, Any]
) -> flask.Response:
    length = flask.request.content_length
    if length is not None and length > MAX_BODY_BYTES:
        return _answer(core.Decision(413, "too large"))
    config = core.resolve(options, flask.current_app.config.get)
    decision = core.decide(config, _incoming(), accept, logger)
    if not decision.call_view:
        return _answer(decision)
    try:
        result = view(decision.webhook, *args, **kwargs)
        text = core.cxml_text(result)
        if text is not None:
            response = flask.Response(text, status=200, content_type=CONTENT_TYPE)
        else:
            response = flask.make_response(result)
    except BaseException:
        core.release(config, decision)  # let the provider's retry run it again
        raise
    if response.status_code >= 500:
        core.release(config, decision)
    elif response.status_code == 200 and core.is_xml(response.content_type) and not response.is_streamed:
        core.save_reply(config, decision, response.get_data(as_text=True))
    return response


# The public decorator's options and docstring; this function is its framework glue.
@core.webhook_decorator(position=0)
def validate_webhook(fn: Callable[..., Any], options: core.Options, kind: core.Accept) -> Callable[..., Any]:
    """Decorate a Flask view that receives SignalWire messaging webhooks.

    Use bare (``@validate_webhook``) or with options (``@validate_webhook(public_url=...)``).

    Args:
        view: the view; called as ``view(webhook, **url_variables)``.
        signing_key: the project's Signing Key; default ``app.config`` or the
            environment (``SIGNALWIRE_SIGNING_KEY``). A request with no key
            configured is refused (403), never let through.
        public_url: the public scheme and host (plus any path prefix a proxy
            strips) that the provider calls, e.g. ``https://hooks.example.com``.
        trusted_proxies: how many reverse proxies in front of the app append
            ``X-Forwarded-Proto/Host/Port/Prefix`` (Werkzeug ``ProxyFix``
            semantics); 0 (default) trusts none.
        run_once: a :class:`~swsync.runonce.RunOnceStore`, or ``False`` to turn
            run-once off; default an in-process LRU per view.
        opt_outs: an :class:`~swsync.optouts.OptOutStore` or SQLite path that
            STOP/START messages update; default none (STOP still never reaches the view).
        accept: ``"inbound"``, ``"status"`` or ``"any"``; default from the
            annotation of the view's first parameter, else ``"any"``.

    Raises:
        ConfigurationError: a malformed ``public_url`` or ``trusted_proxies``.
        ValueError: an unknown ``accept``.

    Thread-safety: the decorated view may run on any number of threads at once.
    """

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> flask.Response:
        return _run(options, kind, fn, args, kwargs)

    return wrapper
