"""The framework-neutral core of the Flask and Django webhook helpers.

``swsync.flask`` and ``swsync.django`` turn a request into an :class:`Incoming`,
call :func:`decide`, and either call the view with the typed webhook or answer
for it. Everything that does not depend on the framework lives here: the signed
URL (own, ``public_url``, or trusted ``X-Forwarded-*`` headers with Werkzeug
``ProxyFix`` semantics), signature checks (delegated to
:class:`~swsync.webhooks.RequestValidator`), telling status callbacks from inbound
messages, opt-out keywords and the run-once claim.
"""

from __future__ import annotations

import json
import logging
import os
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol, TypeVar, cast, overload
from urllib.parse import parse_qs, quote, urlsplit

from . import _validate
from .cxml import MessagingResponse
from .errors import ConfigurationError
from .optouts import Keyword, OptOutStore, SQLiteOptOutStore, keyword
from .runonce import MemoryRunOnceStore, RunOnceStore
from .webhooks import (
    SHA256_SIGNATURE_HEADER,
    InboundMessage,
    RequestValidator,
    StatusCallback,
    signature_from_headers,
)

Webhook = InboundMessage | StatusCallback
Accept = Literal["inbound", "status", "any"]
F = TypeVar("F", bound=Callable[..., Any])

ENV_SIGNING_KEY = "SIGNALWIRE_SIGNING_KEY"
SETTING_KEY = "SIGNALWIRE_SIGNING_KEY"
SETTING_PUBLIC_URL = "SWSYNC_PUBLIC_URL"
SETTING_TRUSTED_PROXIES = "SWSYNC_TRUSTED_PROXIES"
SETTING_RUN_ONCE = "SWSYNC_RUN_ONCE"
SETTING_OPT_OUTS = "SWSYNC_OPT_OUTS"
# Characters left as they are when a path is re-encoded (RFC 3986 pchar + "/").
_PATH_SAFE = "/%!$&'()*+,;=:@~"
_ACCEPTS = ("inbound", "status", "any")


@dataclass(frozen=True)
class Options:
    """A decorator's (or middleware's) explicit arguments; ``None``: from settings."""

    signing_key: str | None = None
    public_url: str | None = None
    trusted_proxies: int | None = None
    run_once: RunOnceStore | bool | None = None
    opt_outs: OptOutStore | str | None = None
    accept: Accept | None = None
    # The store used when neither the argument nor the settings name one.
    default_run_once: RunOnceStore = field(default_factory=MemoryRunOnceStore)

    def __post_init__(self) -> None:
        if self.accept is not None and self.accept not in _ACCEPTS:
            raise ValueError(f"accept must be one of {_ACCEPTS}, got {self.accept!r}")
        if self.public_url is not None:
            check_public_url(self.public_url)
        if self.trusted_proxies is not None:
            check_hops(self.trusted_proxies)


@dataclass(frozen=True)
class Config:
    """Options resolved for one request."""

    signing_key: str | None
    public_url: str | None
    trusted_proxies: int
    run_once: RunOnceStore | None
    opt_outs: OptOutStore | None


def check_public_url(value: str) -> str:
    """Return ``value`` without a trailing slash; refuse anything but http(s)://host[/prefix]."""
    parts = urlsplit(value) if isinstance(value, str) else None
    if parts is None or parts.scheme not in ("http", "https") or not parts.netloc or parts.query or parts.fragment:
        raise ConfigurationError(
            f"public_url ({SETTING_PUBLIC_URL}) must be an http(s) URL such as "
            "'https://hooks.example.com' (plus any path prefix a proxy strips), "
            "without query or fragment"
        )
    return value.rstrip("/")


def check_hops(value: object) -> int:
    """Return ``value`` if it is a valid number of trusted proxies (0 = none)."""
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise ConfigurationError(f"trusted_proxies ({SETTING_TRUSTED_PROXIES}) must be an int >= 0, got {value!r}")
    return value


# Guards _SQLITE_STORES: one store (one connection) per path for the process.
_SQLITE_LOCK = threading.Lock()
_SQLITE_STORES: dict[str, SQLiteOptOutStore] = {}


def _opt_out_store(value: object) -> OptOutStore | None:
    if value is None or value is False:
        return None
    if isinstance(value, str):
        with _SQLITE_LOCK:
            store = _SQLITE_STORES.get(value)
            if store is None:
                store = _SQLITE_STORES[value] = SQLiteOptOutStore(value)
            return store
    if isinstance(value, OptOutStore):
        return value
    raise ConfigurationError(f"{SETTING_OPT_OUTS} must be an opt-out store or an SQLite path")


def resolve(options: Options, setting: Callable[[str], Any]) -> Config:
    """Fill the options not given explicitly from ``setting(name)`` (app config, settings).

    The signing key falls back to the ``SIGNALWIRE_SIGNING_KEY`` environment variable.
    """
    key = options.signing_key or setting(SETTING_KEY) or os.environ.get(ENV_SIGNING_KEY)
    public_url = options.public_url or setting(SETTING_PUBLIC_URL)
    hops = options.trusted_proxies
    if hops is None:
        hops = check_hops(setting(SETTING_TRUSTED_PROXIES) or 0)
    run_once = options.run_once
    if run_once is None:
        run_once = setting(SETTING_RUN_ONCE)
    if run_once is None or run_once is True:
        run_once = options.default_run_once
    elif not (run_once is False or isinstance(run_once, RunOnceStore)):
        raise ConfigurationError(f"{SETTING_RUN_ONCE} must be a run-once store or False")
    opt_outs = options.opt_outs if options.opt_outs is not None else setting(SETTING_OPT_OUTS)
    return Config(
        signing_key=key.strip() if isinstance(key, str) and key.strip() else None,
        public_url=None if not public_url else check_public_url(public_url),
        trusted_proxies=hops,
        run_once=None if run_once is False else run_once,
        opt_outs=_opt_out_store(opt_outs),
    )


# ---------------------------------------------------------------------------
# The URL the provider signed


def raw_target(environ: Mapping[str, Any]) -> str:
    """The request's path and query string as sent (still percent-encoded)."""
    raw = environ.get("RAW_URI") or environ.get("REQUEST_URI") or ""
    if isinstance(raw, str) and raw.startswith("/"):
        return raw
    # The server did not pass the raw target on (wsgiref): rebuild it. WSGI strings
    # carry the request's bytes as latin-1.
    path = environ.get("SCRIPT_NAME", "") + environ.get("PATH_INFO", "")
    target = quote(path.encode("latin-1", "replace"), safe=_PATH_SAFE) or "/"
    query = environ.get("QUERY_STRING", "")
    return f"{target}?{query}" if query else target


def _trusted(environ: Mapping[str, Any], header: str, hops: int) -> str | None:
    # Werkzeug ProxyFix._get_real_value: each proxy appends its value, so the
    # n-th value from the right was set by the n-th trusted proxy; anything to its
    # left came from the client and is ignored.
    value = environ.get("HTTP_X_FORWARDED_" + header)
    if not value:
        return None
    values = [v.strip() for v in str(value).split(",")]
    return values[-hops] if len(values) >= hops and values[-hops] else None


def forwarded_origin(environ: Mapping[str, Any], origin: str, hops: int) -> tuple[str, str]:
    """``(scheme://host[:port], prefix)`` from trusted ``X-Forwarded-*`` headers."""
    scheme, _, host = origin.partition("://")
    scheme = _trusted(environ, "PROTO", hops) or scheme
    host = _trusted(environ, "HOST", hops) or host
    port = _trusted(environ, "PORT", hops)
    if port:
        if ":" in host and not host.endswith("]"):
            host = host.rsplit(":", 1)[0]
        host = f"{host}:{port}"
    # As werkzeug's Request.host does: the scheme's default port is left out.
    default = {"http": ":80", "https": ":443"}.get(scheme)
    if default and host.endswith(default):
        host = host[: -len(default)]
    prefix = (_trusted(environ, "PREFIX", hops) or "").rstrip("/")
    return f"{scheme}://{host}", prefix


def signed_url(environ: Mapping[str, Any], origin: str, config: Config) -> str:
    """The URL to validate: ``public_url``, trusted proxy headers, or the request's own."""
    target = raw_target(environ)
    if config.public_url:
        return config.public_url + target
    if config.trusted_proxies:
        origin, prefix = forwarded_origin(environ, origin, config.trusted_proxies)
        return origin + prefix + target
    return origin + target


# ---------------------------------------------------------------------------
# Deciding what to do with a request


@dataclass(frozen=True)
class Incoming:
    """What the core needs of a request; built by each framework adapter."""

    method: str
    path: str
    environ: Mapping[str, Any]
    origin: str  # the framework's scheme://host (already honouring its own proxy settings)
    headers: Mapping[str, str]
    is_json: bool
    body: Callable[[], bytes]  # the raw body, read on demand
    form: Callable[[], Mapping[str, Any]]  # the parsed form (or query for a GET)


@dataclass(frozen=True)
class Decision:
    """What to answer: call the view with ``webhook`` (``status`` 0) or answer ``status``."""

    status: int
    reason: str = ""
    webhook: Webhook | None = None
    claim: str | None = None  # release it if the view fails
    replay: str | None = None  # for a retry: the first answer's cXML, when saved

    @property
    def call_view(self) -> bool:
        """Whether the view should run."""
        return self.status == 0


def _refuse(log: logging.Logger, req: Incoming, status: int, reason: str) -> Decision:
    level = logging.ERROR if reason.startswith("no signing key") else logging.WARNING
    log.log(level, "swsync: refused webhook %s %s (%d): %s", req.method, req.path, status, reason)
    return Decision(status, reason)


def _verify(config: Config, req: Incoming) -> str | None:
    """Return why the signature is refused, or ``None`` when it is valid."""
    if config.signing_key is None:
        return (
            f"no signing key configured (pass signing_key=, or set {SETTING_KEY} in the "
            "app's config/settings or the environment)"
        )
    signature = signature_from_headers(req.headers) or req.headers.get(SHA256_SIGNATURE_HEADER)
    if not signature:
        return "no X-SignalWire-Signature header"
    url = signed_url(req.environ, req.origin, config)
    validator = RequestValidator(config.signing_key)
    payload: Any
    if req.is_json or "bodySHA256=" in url:
        payload = req.body()
    else:
        payload = None if req.method == "GET" else req.form()
    if validator.validate(url, payload, signature):
        return None
    hint = (
        ""
        if config.public_url or config.trusted_proxies
        else "; behind a proxy or tunnel set public_url or trusted_proxies"
    )
    return f"signature does not match (URL checked: {loggable(url)}; wrong signing key?{hint})"


def loggable(url: str) -> str:
    """``url`` with its query values replaced by ``...``: they may carry secrets."""
    base, sep, query = url.partition("?")
    if not sep:
        return url
    names = [pair.partition("=")[0] for pair in query.split("&")]
    return base + "?" + "&".join(f"{name}=..." for name in names)


def _params(req: Incoming) -> Mapping[str, Any]:
    if not req.is_json:
        return req.form()
    try:
        data = json.loads(req.body())
    except ValueError:
        data = None
    if not isinstance(data, dict):
        raise ValueError("a JSON webhook body must be a JSON object")
    return data


def parse(params: Mapping[str, Any]) -> Webhook:
    """The typed webhook: a status callback has a ``MessageStatus`` (other than ``received``).

    Raises:
        ValueError: a required parameter is missing or a number is malformed.
    """
    status = params.get("MessageStatus")
    if status and status != "received":
        return StatusCallback.from_params(params)
    message = InboundMessage.from_params(params)
    for name, value in (("From", message.from_), ("To", message.to)):
        if not _validate.is_phone_number(value):
            raise ValueError(f"webhook parameter {name} is not an E.164 number or short code")
    return message


def _claim_key(webhook: Webhook) -> str:
    if isinstance(webhook, StatusCallback):
        return f"status:{webhook.message_sid}:{webhook.message_status}"
    return f"inbound:{webhook.message_sid}"


def _kind(webhook: Webhook) -> str:
    return "status" if isinstance(webhook, StatusCallback) else "inbound"


def _update_opt_outs(config: Config, webhook: Webhook, log: logging.Logger) -> Keyword | None:
    if not isinstance(webhook, InboundMessage):
        return None
    word = keyword(webhook.body)
    if config.opt_outs is not None and word is Keyword.OPT_OUT:
        config.opt_outs.opt_out(webhook.from_)
        log.info("swsync: %s opted out (message %s)", webhook.from_, webhook.message_sid)
    elif config.opt_outs is not None and word is Keyword.OPT_IN:
        config.opt_outs.opt_in(webhook.from_)
        log.info("swsync: %s opted back in (message %s)", webhook.from_, webhook.message_sid)
    return word


def decide(config: Config, req: Incoming, accept: Accept, log: logging.Logger) -> Decision:
    """Validate, parse and classify a webhook request; see :class:`Decision`."""
    why = _verify(config, req)
    if why is not None:
        return _refuse(log, req, 403, why)
    try:
        webhook = parse(_params(req))
    except (TypeError, ValueError) as exc:
        return _refuse(log, req, 400, str(exc))
    word = _update_opt_outs(config, webhook, log)
    if accept != "any" and _kind(webhook) != accept:
        log.info(
            "swsync: %s webhook %s posted to an %s view %s; answered without calling it",
            _kind(webhook),
            webhook.message_sid,
            accept,
            req.path,
        )
        return Decision(200, "wrong kind")
    if word is Keyword.OPT_OUT:
        return Decision(200, "opt-out")  # never reply to a STOP
    key = _claim_key(webhook)
    if config.run_once is not None and not config.run_once.claim(key):
        log.info(
            "swsync: %s webhook %s already handled (%s); answered without calling %s",
            _kind(webhook),
            webhook.message_sid,
            key,
            req.path,
        )
        saved = getattr(config.run_once, "reply", None)
        return Decision(200, "duplicate", replay=saved(key) if callable(saved) else None)
    return Decision(0, webhook=webhook, claim=key if config.run_once is not None else None)


def save_reply(config: Config, decision: Decision, reply: str | None) -> None:
    """Keep the cXML answered to a webhook, so its retries get the same answer."""
    save = getattr(config.run_once, "save_reply", None)
    if reply is None or reply == cxml_text(None):
        return  # nothing worth keeping: a retry gets the empty <Response/> anyway
    if decision.claim is not None and callable(save):
        save(decision.claim, reply)


def release(config: Config, decision: Decision) -> None:
    """Forget the run-once claim of a request whose view failed."""
    if config.run_once is not None and decision.claim is not None:
        config.run_once.release(decision.claim)


def is_xml(content_type: str | None) -> bool:
    """Whether a response's content type is XML (a cXML answer worth replaying)."""
    mime = (content_type or "").partition(";")[0].strip().lower()
    return mime in ("text/xml", "application/xml")


def cxml_text(result: object) -> str | None:
    """The cXML to answer for a view's result: ``None`` gives an empty ``<Response/>``."""
    if result is None:
        return str(MessagingResponse())
    if isinstance(result, MessagingResponse):
        return str(result)
    return None


def accept_from_annotation(view: Callable[..., Any], position: int) -> Accept:
    """``inbound``/``status`` when the view's webhook parameter is annotated, else ``any``.

    Raises:
        TypeError: ``view`` is a coroutine function (the helpers call views synchronously).
    """
    import inspect
    import typing

    if inspect.iscoroutinefunction(view):
        raise TypeError("validate_webhook supports synchronous views only")

    try:
        hints = typing.get_type_hints(view)
        params = list(inspect.signature(view).parameters.values())
    except Exception:  # unresolvable annotations: accept both kinds
        return "any"
    if len(params) <= position:
        return "any"
    hint = hints.get(params[position].name)
    if hint is InboundMessage:
        return "inbound"
    if hint is StatusCallback:
        return "status"
    return "any"


def query_params(query: str) -> dict[str, str]:
    """A GET webhook's parameters (first value of each)."""
    return {k: v[0] for k, v in parse_qs(query, keep_blank_values=True).items()}


# ---------------------------------------------------------------------------
# The ``validate_webhook`` decorator shared by the framework modules


class WebhookDecorator(Protocol):
    """The type of each framework's ``validate_webhook``: used bare or with options."""

    @overload
    def __call__(self, view: F) -> F: ...
    @overload
    def __call__(
        self,
        view: None = None,
        *,
        signing_key: str | None = None,
        public_url: str | None = None,
        trusted_proxies: int | None = None,
        run_once: RunOnceStore | bool | None = None,
        opt_outs: OptOutStore | str | None = None,
        accept: Accept | None = None,
    ) -> Callable[[F], F]: ...


# A framework's glue: wrap(view, options, accept) returns the wrapped view.
Wrap = Callable[[Callable[..., Any], Options, Accept], Callable[..., Any]]


def webhook_decorator(position: int) -> Callable[[Wrap], WebhookDecorator]:
    """Turn a framework's ``wrap(view, options, accept)`` into its ``validate_webhook``.

    The returned decorator takes the options as keyword arguments (or none, used
    bare), takes ``accept`` from the annotation of the view's parameter at
    ``position`` when not given, marks the wrapped view ``swsync_webhook`` and
    carries the name, module and docstring of ``wrap``.
    """

    def build(wrap: Wrap) -> WebhookDecorator:
        def validate_webhook(
            view: Callable[..., Any] | None = None,
            *,
            signing_key: str | None = None,
            public_url: str | None = None,
            trusted_proxies: int | None = None,
            run_once: RunOnceStore | bool | None = None,
            opt_outs: OptOutStore | str | None = None,
            accept: Accept | None = None,
        ) -> Any:
            options = Options(
                signing_key=signing_key,
                public_url=public_url,
                trusted_proxies=trusted_proxies,
                run_once=run_once,
                opt_outs=opt_outs,
                accept=accept,
            )

            def decorate(fn: Callable[..., Any]) -> Callable[..., Any]:
                kind = options.accept or accept_from_annotation(fn, position)
                wrapper = wrap(fn, options, kind)
                wrapper.swsync_webhook = True  # type: ignore[attr-defined]
                return wrapper

            return decorate(view) if view is not None else decorate

        for name in ("__module__", "__name__", "__qualname__", "__doc__"):
            setattr(validate_webhook, name, getattr(wrap, name))
        return cast(WebhookDecorator, validate_webhook)

    return build
