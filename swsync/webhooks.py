"""Verify SignalWire webhook signatures and read webhook parameters as typed objects.

SignalWire signs every webhook it sends with the project's *Signing Key* (from the
dashboard, not the API token) in the ``X-SignalWire-Signature`` header; cXML
webhooks may carry the same value as ``X-Twilio-Signature``. Two schemes exist:

* **Form webhooks** (inbound messages, status callbacks): base64 HMAC-SHA1 over the
  full URL followed by every POST parameter as ``name + value``, sorted by name.
  Use :meth:`RequestValidator.validate` with the parsed form.
* **Raw-body webhooks** (JSON): lowercase hex HMAC-SHA1 over ``url + raw_body``
  (hex HMAC-SHA256 for ``X-SignalWire-SHA256-Signature``). Pass the raw body bytes.

Always validate against the public URL the webhook was configured with (a proxy or
tunnel changes scheme, host or port) and read the raw body before parsing it.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any, Literal, NamedTuple, Union
from urllib.parse import parse_qs

__all__ = [
    "SHA256_SIGNATURE_HEADER",
    "SIGNATURE_HEADER",
    "TWILIO_SIGNATURE_HEADER",
    "InboundMessage",
    "Media",
    "RequestValidator",
    "StatusCallback",
    "signature_from_headers",
]

SIGNATURE_HEADER = "X-SignalWire-Signature"
TWILIO_SIGNATURE_HEADER = "X-Twilio-Signature"
SHA256_SIGNATURE_HEADER = "X-SignalWire-SHA256-Signature"

#: Form parameters: a mapping (``dict``, Flask's ``request.form``, a ``parse_qs``
#: result with list values), or ``(name, value)`` pairs (a ``parse_qsl`` result).
# typing.Union on purpose: these aliases were Union objects in 0.1 (typing.get_origin() of them is Union).
Params = Union[Mapping[str, Any], Iterable[tuple[str, str]]]  # noqa: UP007
RawBody = Union[bytes, bytearray, memoryview, str]  # noqa: UP007

# scheme://netloc rest  (netloc = [userinfo@]host[:port]; host may be [IPv6]).
_URL = re.compile(r"([A-Za-z][A-Za-z0-9+.-]*)://([^/?#]*)(.*)", re.DOTALL)
_HOSTPORT = re.compile(r"(\[[^\]]*\]|[^:\[\]]*)(?::([0-9]*))?")
_DEFAULT_PORTS = {"https": "443", "http": "80"}


def _url_variants(url: str) -> list[str]:
    """The URL as given, without its port, and with the default port added."""
    variants = [url]
    m = _URL.fullmatch(url)
    if m is None:
        return variants
    scheme, netloc, rest = m.groups()
    userinfo, at, hostport = netloc.rpartition("@")
    hp = _HOSTPORT.fullmatch(hostport)
    if hp is None:
        return variants
    host, port = hp.groups()
    head = f"{scheme}://{userinfo}{at}{host}"
    if port is not None:
        variants.append(head + rest)
    else:
        # twilio adds :80 for every non-https scheme; we only know http and https.
        default = _DEFAULT_PORTS.get(scheme.lower())
        if default is not None:
            variants.append(f"{head}:{default}{rest}")
    return variants


def _values(params: Mapping[str, Any], name: str) -> list[str]:
    # Multi-value mappings: aiohttp/multidict (getall), werkzeug/Django (getlist).
    getall = getattr(params, "getall", None)
    if callable(getall):
        return list(getall(name))
    getlist = getattr(params, "getlist", None)
    if callable(getlist):
        return list(getlist(name))
    value = params[name]
    if isinstance(value, (list, tuple)):  # parse_qs() output
        return list(value)
    return [value]


def _grouped(params: Params | None) -> list[tuple[str, list[str]]]:
    """Parameters as ``(name, values in submission order)``, sorted by name."""
    if params is None:
        return []
    groups: dict[str, list[str]] = {}
    if isinstance(params, Mapping):
        for name in params:
            groups[name] = _values(params, name)
    elif isinstance(params, (str, bytes, bytearray, memoryview)):
        raise TypeError("form parameters must be a mapping or (name, value) pairs")
    else:
        for pair in params:
            name, value = pair
            groups.setdefault(name, []).append(value)
    for name, values in groups.items():
        if not isinstance(name, str) or not all(isinstance(v, str) for v in values):
            raise TypeError(f"form parameter names and values must be str (parameter {name!r})")
    return sorted(groups.items())


def _b64_hmac_sha1(key: bytes, data: str) -> str:
    digest = hmac.new(key, data.encode("utf-8"), hashlib.sha1).digest()
    return base64.b64encode(digest).decode("ascii")


def _same(expected: str, signature: str) -> bool:
    # Real signatures and digests are base64 or hex; anything non-ASCII (it may come
    # from the request, e.g. a bodySHA256 query value) simply does not match.
    if not (expected.isascii() and signature.isascii()):
        return False
    return hmac.compare_digest(expected.encode("ascii"), signature.encode("ascii"))


def _as_signature(signature: str | bytes | None) -> str | None:
    if isinstance(signature, (bytes, bytearray)):
        signature = bytes(signature).decode("ascii", "replace")
    if not isinstance(signature, str) or not signature or not signature.isascii():
        return None
    return signature


def _as_bytes(body: RawBody) -> bytes:
    if isinstance(body, str):
        return body.encode("utf-8")
    if isinstance(body, (bytes, bytearray, memoryview)):
        return bytes(body)
    raise TypeError(f"body must be bytes or str, got {type(body).__name__}")


class RequestValidator:
    """Compute and check webhook signatures with a project's signing key.

    Args:
        signing_key: the project's Signing Key (``PSK_...``); never shown in
            ``repr()`` or error messages.

    Raises:
        ValueError: the key is empty or not a string.

    Immutable after construction, so one instance may be shared by any number of
    threads.
    """

    __slots__ = ("_key",)

    def __init__(self, signing_key: str) -> None:
        if not isinstance(signing_key, str) or not signing_key:
            raise ValueError("signing_key must be a non-empty string")
        self._key = signing_key.encode("utf-8")

    def __repr__(self) -> str:
        return f"{type(self).__name__}(signing_key=<hidden>)"

    def __reduce__(self) -> Any:
        # Keep the key out of pickles, which are often logged or stored.
        raise TypeError(f"{type(self).__name__} cannot be pickled")

    def compute_signature(self, url: str, params: Params | None = None) -> str:
        """Return the base64 HMAC-SHA1 signature of a form webhook (scheme B).

        The string signed is ``url`` exactly as given (query string included, in
        its original order) followed by ``name + value`` for every POST parameter,
        names sorted by code point, values decoded (not URL-encoded). A name that
        occurs more than once contributes its values sorted and de-duplicated, as
        twilio's validator does; :meth:`validate` also accepts the other
        convention (submission order, duplicates kept).

        Args:
            url: the full webhook URL.
            params: the POST parameters: a mapping (``dict``, Flask/werkzeug
                ``MultiDict``, Django ``QueryDict``, aiohttp ``MultiDict``, a
                ``parse_qs`` result), ``(name, value)`` pairs, or ``None``.

        Returns:
            The signature as SignalWire puts it in ``X-SignalWire-Signature``.

        Raises:
            TypeError: a parameter name or value is not a ``str``.
        """
        return self._sign(url, _grouped(params), submission_order=False)

    def compute_body_signature(self, url: str, body: RawBody, *, algorithm: Literal["sha1", "sha256"] = "sha1") -> str:
        """Return the lowercase hex HMAC of ``url + body`` (raw-body scheme).

        Args:
            url: the full webhook URL.
            body: the raw request body (``str`` is encoded as UTF-8).
            algorithm: ``"sha1"`` (``X-SignalWire-Signature``) or ``"sha256"``
                (``X-SignalWire-SHA256-Signature``).

        Raises:
            ValueError: unknown ``algorithm``.
        """
        if algorithm not in ("sha1", "sha256"):
            raise ValueError(f"algorithm must be 'sha1' or 'sha256', got {algorithm!r}")
        data = url.encode("utf-8") + _as_bytes(body)
        return hmac.new(self._key, data, algorithm).hexdigest()

    def validate(self, url: str, params: Params | RawBody | None, signature: str | bytes | None) -> bool:
        """Return ``True`` if ``signature`` is valid for this request.

        A form webhook (``params`` a mapping or pairs, ``None`` for a GET webhook)
        is checked with the form scheme; a raw body (``bytes`` or ``str``) is
        handed to :meth:`validate_body`. The signature is accepted when computed
        over the URL as given, without its port, or with the default port added
        (``:443`` for https, ``:80`` for http), as twilio's validator does. All
        comparisons are constant-time.

        Args:
            url: the public URL the webhook was sent to, with its query string.
            params: the parsed POST form, or the raw body.
            signature: the header value; ``None`` or empty gives ``False``.

        Raises:
            TypeError: ``params`` holds something other than ``str`` names/values.
        """
        if isinstance(params, (bytes, bytearray, memoryview, str)):
            return self.validate_body(url, params, signature)
        sig = _as_signature(signature)
        groups = _grouped(params)
        if sig is None:
            return False
        return self._check_form(url, groups, sig)

    def validate_body(self, url: str, body: RawBody, signature: str | bytes | None) -> bool:
        """Return ``True`` if ``signature`` is valid for a request with raw ``body``.

        Accepted, each over the URL variants :meth:`validate` describes:

        * hex HMAC-SHA1 of ``url + body`` (40 hex digits) or hex HMAC-SHA256
          (64 hex digits, the ``X-SignalWire-SHA256-Signature`` header);
        * when the URL carries ``bodySHA256=<hex>``: the form signature of the
          URL alone, provided the body's SHA-256 matches that value;
        * when the body is a JSON object of strings: the form signature over its
          members, as the ``signalwire`` 2.x validator accepts.

        Args:
            url: the public URL the webhook was sent to, with its query string.
            body: the raw request body, exactly as received.
            signature: the header value; ``None`` or empty gives ``False``.
        """
        sig = _as_signature(signature)
        raw = _as_bytes(body)
        if sig is None:
            return False
        variants = _url_variants(url)
        algorithm = {40: "sha1", 64: "sha256"}.get(len(sig))
        if algorithm is not None:
            sig_lower = sig.lower()
            for candidate in variants:
                data = candidate.encode("utf-8") + raw
                if _same(hmac.new(self._key, data, algorithm).hexdigest(), sig_lower):
                    return True
        query = url.partition("?")[2].partition("#")[0]
        body_hash = parse_qs(query, keep_blank_values=True).get("bodySHA256")
        if body_hash:
            if _same(hashlib.sha256(raw).hexdigest(), body_hash[0].lower()) and self._check_form(url, [], sig):
                return True
        params = _json_object(raw)
        if params is not None:
            return self._check_form(url, sorted((k, [v]) for k, v in params.items()), sig)
        return False

    def _check_form(self, url: str, groups: list[tuple[str, list[str]]], sig: str) -> bool:
        orders = [False]
        if any(len(values) > 1 for _, values in groups):
            orders.append(True)
        for candidate in _url_variants(url):
            for submission_order in orders:
                if _same(self._sign(candidate, groups, submission_order=submission_order), sig):
                    return True
        return False

    def _sign(self, url: str, groups: list[tuple[str, list[str]]], *, submission_order: bool) -> str:
        parts = [url]
        for name, values in groups:
            for value in values if submission_order else sorted(set(values)):
                parts.append(name)
                parts.append(value)
        return _b64_hmac_sha1(self._key, "".join(parts))


def _json_object(raw: bytes) -> dict[str, str] | None:
    if not raw.lstrip().startswith(b"{"):
        return None
    try:
        data = json.loads(raw)
    except ValueError:
        return None
    if not isinstance(data, dict) or not all(isinstance(v, str) for v in data.values()):
        return None
    return data


def signature_from_headers(headers: Mapping[str, str]) -> str | None:
    """Return the webhook signature from request headers, or ``None``.

    Looks for ``X-SignalWire-Signature`` first, then ``X-Twilio-Signature``; an
    empty header counts as missing. Header names match case-insensitively even
    when ``headers`` is a plain ``dict``.

    Args:
        headers: Flask's ``request.headers``, a ``requests``/aiohttp header
            mapping, or any ``Mapping[str, str]``.
    """
    for name in (SIGNATURE_HEADER, TWILIO_SIGNATURE_HEADER):
        value = headers.get(name)
        if value:
            return value
    lowered = {k.lower(): v for k, v in headers.items() if isinstance(k, str)}
    for name in (SIGNATURE_HEADER, TWILIO_SIGNATURE_HEADER):
        value = lowered.get(name.lower())
        if value:
            return value
    return None


# ---------------------------------------------------------------------------
# Typed views of webhook parameters


class Media(NamedTuple):
    """One media item of an inbound message: unpacks as ``(url, content_type)``."""

    url: str
    content_type: str | None


_MAX_INT_DIGITS = 9


def _str(form: Mapping[str, Any], name: str, *, keep_empty: bool = False) -> str | None:
    value = form.get(name)
    if value is None or (value == "" and not keep_empty):
        return None
    if not isinstance(value, str):
        raise ValueError(f"webhook parameter {name} must be a string, got {type(value).__name__}")
    return value


def _required(form: Mapping[str, Any], name: str) -> str:
    value = _str(form, name)
    if value is None:
        raise ValueError(f"webhook parameter {name} is missing or empty")
    return value


def _int(form: Mapping[str, Any], name: str) -> int | None:
    value = form.get(name)
    if value is None or value == "":
        return None
    if isinstance(value, int) and not isinstance(value, bool) and value >= 0:
        return value  # a JSON payload may carry numbers
    if isinstance(value, str) and value.isascii() and value.isdigit() and len(value) <= _MAX_INT_DIGITS:
        return int(value)
    raise ValueError(f"webhook parameter {name} must be a non-negative integer, got {value!r}")


def _raw(form: Mapping[str, Any]) -> Mapping[str, Any]:
    if not isinstance(form, Mapping):
        raise TypeError(f"form must be a mapping of parameters, got {type(form).__name__}")
    # form[k] is the first value of a werkzeug MultiDict, which is what webhooks send.
    return MappingProxyType({k: form[k] for k in form})


@dataclass(frozen=True, kw_only=True)
class StatusCallback:
    """A message status callback (the POST to a message's ``StatusCallback`` URL).

    ``message_status`` is the wire string (``queued``, ``sending``, ``sent``,
    ``delivered``, ``undelivered``, ``failed``, ...); unknown values are kept as
    they are. ``error_code`` is set for ``failed``/``undelivered``. Callbacks are
    best effort: they can arrive late, twice or out of order. Optional parameters
    that are absent or empty read as ``None``. Every parameter as sent stays
    available in ``raw``. Immutable; safe to share between threads.
    """

    message_sid: str
    message_status: str
    account_sid: str | None = None
    from_: str | None = None
    to: str | None = None
    body: str | None = None
    num_media: int | None = None
    num_segments: int | None = None
    error_code: int | None = None
    error_message: str | None = None
    api_version: str | None = None
    raw: Mapping[str, Any] = field(default_factory=dict, repr=False, hash=False)

    @classmethod
    def from_params(cls, form: Mapping[str, Any]) -> StatusCallback:
        """Build the view from the callback's parameters.

        Args:
            form: the POST form (Flask's ``request.form``, a ``dict``, ...).

        Raises:
            ValueError: ``MessageSid`` or ``MessageStatus`` is missing, or a
                numeric parameter is not a non-negative integer.
            TypeError: ``form`` is not a mapping.
        """
        raw = _raw(form)
        return cls(
            message_sid=_required(raw, "MessageSid"),
            message_status=_required(raw, "MessageStatus"),
            account_sid=_str(raw, "AccountSid"),
            from_=_str(raw, "From"),
            to=_str(raw, "To"),
            body=_str(raw, "Body", keep_empty=True),
            num_media=_int(raw, "NumMedia"),
            num_segments=_int(raw, "NumSegments"),
            error_code=_int(raw, "ErrorCode"),
            error_message=_str(raw, "ErrorMessage"),
            api_version=_str(raw, "ApiVersion"),
            raw=raw,
        )


@dataclass(frozen=True, kw_only=True)
class InboundMessage:
    """An inbound message webhook (the POST to a number's messaging request URL).

    ``media`` holds one :class:`Media` ``(url, content_type)`` per ``MediaUrlN`` /
    ``MediaContentTypeN`` pair, in index order. ``body`` is ``""`` for a
    media-only message and ``None`` when the parameter is absent; other optional
    parameters read as ``None`` when absent or empty. Reply with a cXML document
    (:class:`swsync.cxml.MessagingResponse`). Every parameter as sent stays
    available in ``raw``. Immutable; safe to share between threads.
    """

    message_sid: str
    account_sid: str | None = None
    from_: str
    to: str
    body: str | None = None
    num_media: int = 0
    num_segments: int | None = None
    media: tuple[Media, ...] = ()
    raw: Mapping[str, Any] = field(default_factory=dict, repr=False, hash=False)

    @classmethod
    def from_params(cls, form: Mapping[str, Any]) -> InboundMessage:
        """Build the view from the webhook's parameters.

        Args:
            form: the POST form (Flask's ``request.form``, a ``dict``, ...).

        Raises:
            ValueError: ``MessageSid``, ``From`` or ``To`` is missing, a numeric
                parameter is not a non-negative integer, or ``NumMedia`` counts
                more media than there are ``MediaUrlN`` parameters.
            TypeError: ``form`` is not a mapping.
        """
        raw = _raw(form)
        message_sid = _required(raw, "MessageSid")
        from_ = _required(raw, "From")
        to = _required(raw, "To")
        num_media = _int(raw, "NumMedia")
        media: list[Media] = []
        if num_media is None:
            # No count given: take the contiguous MediaUrl0, MediaUrl1, ...
            while f"MediaUrl{len(media)}" in raw:
                i = len(media)
                media.append(_media(raw, i))
            num_media = len(media)
        else:
            # Bounded by the form's size, so a huge NumMedia cannot make us loop.
            for i in range(num_media):
                if f"MediaUrl{i}" not in raw:
                    raise ValueError(f"webhook parameter NumMedia is {num_media} but MediaUrl{i} is missing")
                media.append(_media(raw, i))
        return cls(
            message_sid=message_sid,
            from_=from_,
            to=to,
            account_sid=_str(raw, "AccountSid"),
            body=_str(raw, "Body", keep_empty=True),
            num_media=num_media,
            num_segments=_int(raw, "NumSegments"),
            media=tuple(media),
            raw=raw,
        )


def _media(raw: Mapping[str, Any], i: int) -> Media:
    return Media(_required(raw, f"MediaUrl{i}"), _str(raw, f"MediaContentType{i}"))
