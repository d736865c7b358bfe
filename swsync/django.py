"""Django integration: ``@validate_webhook`` and ``WebhookMiddleware`` for SignalWire webhooks.

Install with ``pip install "swsync[django]"``. ::

    # views.py
    from swsync.cxml import MessagingResponse
    from swsync.django import validate_webhook
    from swsync.webhooks import InboundMessage, StatusCallback

    @validate_webhook
    def sms(request, message: InboundMessage):
        return MessagingResponse().message(f"Got it: {message.body}")

    @validate_webhook
    def status(request, callback: StatusCallback):
        print(callback.message_sid, callback.message_status)   # None -> <Response/>

The decorated view is exempt from CSRF protection (a provider's POST carries no
CSRF token), checks the signature (form and JSON bodies) against the URL the
provider signed, answers 403 and logs why when it does not match, runs a retried
webhook once, records STOP/START in an opt-out store, and is called as
``view(request, webhook, *args, **kwargs)`` with a typed
:class:`~swsync.webhooks.InboundMessage` or :class:`~swsync.webhooks.StatusCallback`.
A view annotated with one of the two types only receives that kind; the other is
answered with an empty ``<Response/>``. Returning ``None`` answers an empty
``<Response/>`` (``text/xml``); a :class:`~swsync.cxml.MessagingResponse` is
rendered; an ``HttpResponse`` is returned as it is.

:class:`WebhookMiddleware` does the same for every view under the URL prefix in
the ``SWSYNC_WEBHOOK_PREFIX`` setting; list it before
``django.middleware.csrf.CsrfViewMiddleware``.

Settings (each overridden by the decorator's argument of the same meaning):
``SIGNALWIRE_SIGNING_KEY`` (else the environment variable of that name),
``SWSYNC_PUBLIC_URL``, ``SWSYNC_TRUSTED_PROXIES``, ``SWSYNC_RUN_ONCE`` (a store, or
``False``), ``SWSYNC_OPT_OUTS`` (a store or an SQLite path). Without them the URL
is Django's own ``request.scheme`` and ``request.get_host()``, so Django's
``SECURE_PROXY_SSL_HEADER`` and ``USE_X_FORWARDED_HOST`` apply as usual.
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Callable
from typing import Any

from django.conf import settings  # type: ignore[import-untyped]
from django.core.exceptions import ImproperlyConfigured  # type: ignore[import-untyped]
from django.http import HttpRequest, HttpResponse, HttpResponseBase  # type: ignore[import-untyped]
from django.views.decorators.csrf import csrf_exempt  # type: ignore[import-untyped]

from . import _webhook_app as core
from .cxml import CONTENT_TYPE

__all__ = ["WebhookMiddleware", "validate_webhook"]

logger = logging.getLogger(__name__)

MIDDLEWARE_PATH = "swsync.django.WebhookMiddleware"
CSRF_MIDDLEWARE = "django.middleware.csrf.CsrfViewMiddleware"


def _setting(name: str) -> Any:
    return getattr(settings, name, None)


def _incoming(request: HttpRequest) -> core.Incoming:
    content_type = request.content_type or ""
    return core.Incoming(
        method=request.method or "POST",
        path=request.path,
        environ=request.META,
        origin=f"{request.scheme}://{request.get_host()}",
        headers=request.headers,
        is_json=content_type == "application/json" or content_type.endswith("+json"),
        body=lambda: request.body,
        form=lambda: request.GET if request.method == "GET" else request.POST,
    )


def _answer(decision: core.Decision) -> HttpResponse:
    if decision.status == 200:
        return HttpResponse(decision.replay or core.cxml_text(None), content_type=CONTENT_TYPE)
    text = f"Bad Request: {decision.reason}\n" if decision.status == 400 else "Forbidden\n"
    return HttpResponse(text, status=decision.status, content_type="text/plain; charset=utf-8")


def _run(
    options: core.Options, accept: core.Accept, view: Callable[..., Any], request: HttpRequest, args: Any, kwargs: Any
) -> HttpResponseBase:
    config = core.resolve(options, _setting)
    decision = core.decide(config, _incoming(request), accept, logger)
    if not decision.call_view:
        return _answer(decision)
    try:
        result = view(request, decision.webhook, *args, **kwargs)
    except BaseException:
        core.release(config, decision)  # let the provider's retry run it again
        raise
    text = core.cxml_text(result)
    response = HttpResponse(text, content_type=CONTENT_TYPE) if text is not None else result
    if not isinstance(response, HttpResponseBase) or response.status_code >= 500:
        core.release(config, decision)
    elif (
        isinstance(response, HttpResponse) and response.status_code == 200 and core.is_xml(response.get("Content-Type"))
    ):
        core.save_reply(config, decision, response.content.decode(response.charset or "utf-8"))
    return response


# The public decorator's options and docstring; this function is its framework glue.
@core.webhook_decorator(position=1)
def validate_webhook(fn: Callable[..., Any], options: core.Options, kind: core.Accept) -> Callable[..., Any]:
    """Decorate a Django view that receives SignalWire messaging webhooks.

    Use bare (``@validate_webhook``) or with options (``@validate_webhook(public_url=...)``).

    Args:
        view: the view; called as ``view(request, webhook, *args, **kwargs)``.
        signing_key: the project's Signing Key; default the ``SIGNALWIRE_SIGNING_KEY``
            setting, else the environment variable. A request with no key
            configured is refused (403), never let through.
        public_url: the public scheme and host (plus any path prefix a proxy
            strips) the provider calls, e.g. ``https://hooks.example.com``.
        trusted_proxies: how many reverse proxies in front of the app append
            ``X-Forwarded-Proto/Host/Port/Prefix`` (Werkzeug ``ProxyFix``
            semantics); 0 (default) uses Django's own ``request.scheme`` and
            ``request.get_host()``.
        run_once: a :class:`~swsync.runonce.RunOnceStore` (e.g.
            ``CacheRunOnceStore(django.core.cache.cache)``), or ``False``; default
            an in-process LRU per view.
        opt_outs: an :class:`~swsync.optouts.OptOutStore` or SQLite path that
            STOP/START messages update; default none (STOP still never reaches the view).
        accept: ``"inbound"``, ``"status"`` or ``"any"``; default from the
            annotation of the view's webhook parameter, else ``"any"``.

    Raises:
        ConfigurationError: a malformed ``public_url`` or ``trusted_proxies``.

    Thread-safety: the decorated view may run on any number of threads at once.
    """

    @functools.wraps(fn)
    def wrapper(request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponseBase:
        return _run(options, kind, fn, request, args, kwargs)

    exempt: Callable[..., Any] = csrf_exempt(wrapper)
    return exempt


class WebhookMiddleware:
    """Treat every view under ``settings.SWSYNC_WEBHOOK_PREFIX`` as ``@validate_webhook``.

    Views under the prefix are called as ``view(request, webhook, *args, **kwargs)``
    and are exempt from CSRF checks; views already decorated are left alone. Must
    come before ``CsrfViewMiddleware`` in ``MIDDLEWARE`` (checked at startup).

    Raises:
        ImproperlyConfigured: no prefix setting, or listed after ``CsrfViewMiddleware``.
    """

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponseBase]) -> None:
        self.get_response = get_response
        prefix = _setting("SWSYNC_WEBHOOK_PREFIX")
        if not isinstance(prefix, str) or not prefix.startswith("/"):
            raise ImproperlyConfigured("WebhookMiddleware needs SWSYNC_WEBHOOK_PREFIX, a path such as '/signalwire/'")
        middleware = list(_setting("MIDDLEWARE") or [])
        if (
            CSRF_MIDDLEWARE in middleware
            and MIDDLEWARE_PATH in middleware
            and middleware.index(CSRF_MIDDLEWARE) < middleware.index(MIDDLEWARE_PATH)
        ):
            raise ImproperlyConfigured(
                f"list {MIDDLEWARE_PATH} before {CSRF_MIDDLEWARE} in MIDDLEWARE, or Django "
                "refuses webhooks (they carry no CSRF token) before they are validated"
            )
        self.prefix = prefix
        self._options = core.Options()
        # Each view's accepted kind; racing requests store the same value (dict ops are atomic).
        self._accepts: dict[Any, core.Accept] = {}

    def __call__(self, request: HttpRequest) -> HttpResponseBase:
        return self.get_response(request)

    def process_view(
        self, request: HttpRequest, view: Callable[..., Any], args: Any, kwargs: Any
    ) -> HttpResponseBase | None:
        """Validate and run a view under the prefix (Django then skips CSRF checks)."""
        if not request.path_info.startswith(self.prefix) or getattr(view, "swsync_webhook", False):
            return None
        accept = self._accepts.get(view)
        if accept is None:
            accept = self._accepts[view] = core.accept_from_annotation(view, 1)
        return _run(self._options, accept, view, request, args, kwargs)
