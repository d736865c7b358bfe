"""``Transport``: what every REST resource sends through (session, base URL, auth, retries).

:class:`~swsync.rest.RestClient` builds one transport and hands it to its resources
(messages, media, pages), which never see the client itself. Their public constructors
still take a client, as they always have: :func:`transport_of` takes its ``transport``.

Retry policy (the one place it lives):

* GET and DELETE are retried on connection errors, timeouts, HTTP 429 and 5xx.
* A POST is retried only when the request provably never reached the server (the TCP
  connection could not be opened: refused, DNS failure, connect timeout) or when the
  server answered 429. Never after a 5xx, a read timeout or a connection lost mid-way:
  the message may have been accepted, and sending it twice would send two SMS.
* Delays: exponential backoff with full jitter (``uniform(0, min(cap, base * 2**n))``),
  or the server's ``Retry-After`` (seconds or an HTTP date) when it sends one, capped.
* Deadline: a whole call, every attempt and every wait included, ends within
  ``total_timeout``. Each attempt's connect and read timeouts are cut to what remains,
  and a retry whose wait would end past the deadline is not made: the call raises the
  error it has (a 429 ``RestError``, say) at once instead of sleeping in vain.
"""

from __future__ import annotations

import email.utils
import json
import logging
import math
import os
import random
import time
from base64 import b64encode
from collections.abc import Callable, Mapping
from http.cookiejar import DefaultCookiePolicy
from typing import Any, Protocol, TypeAlias, TypeVar
from urllib.parse import quote, urlsplit

import requests
from requests.__version__ import __version__ as _requests_version
from requests.auth import AuthBase

from .._config import ENV_REST_CA
from .._config import ca_file as _ca_file
from .._version import __version__
from ..errors import RestConnectionError, RestError, RestTimeout
from ..optouts import OptOutStore
from ..ratelimit import RateLimit
from ._fields import opt_int, opt_str

__all__ = [
    "API_PATH",
    "BACKOFF_BASE",
    "BACKOFF_CAP",
    "RETRY_AFTER_CAP",
    "ClientOrTransport",
    "Transport",
    "TransportOwner",
    "transport_of",
]

# The name these records always had (the retry messages were logged from client.py).
logger = logging.getLogger("swsync.rest.client")

T = TypeVar("T")

API_PATH = "/api/laml/2010-04-01/Accounts/"
BACKOFF_BASE = 0.5  # seconds; first retry waits up to this long
BACKOFF_CAP = 8.0  # seconds; no computed backoff is longer
RETRY_AFTER_CAP = 30.0  # seconds; a longer Retry-After is shortened to this
_IDEMPOTENT = frozenset({"GET", "HEAD", "OPTIONS", "DELETE", "PUT"})
_MAX_ERROR_TEXT = 200

# Tests replace these to run retries without waiting (and with a clock of their own).
_sleep: Callable[[float], None] = time.sleep
_uniform: Callable[[float, float], float] = random.uniform
_monotonic: Callable[[], float] = time.monotonic

_NOT_TLS_HINT = (
    "; the server answered in plain text, not TLS: for a local emulator give the space as an http:// URL ({url})"
)
_NEVER_SENT_ERRORS = (
    requests.exceptions.InvalidURL,
    requests.exceptions.InvalidHeader,
    requests.exceptions.MissingSchema,
    requests.exceptions.InvalidSchema,
)
_RETRYABLE_IF_IDEMPOTENT = (
    requests.exceptions.ConnectionError,
    requests.exceptions.Timeout,
    requests.exceptions.ChunkedEncodingError,
)


class _BasicAuth(AuthBase):
    """HTTP Basic auth with the header computed once; its repr hides the secret."""

    __slots__ = ("_header",)

    def __init__(self, user: str, password: str) -> None:
        self._header = "Basic " + b64encode(f"{user}:{password}".encode()).decode("ascii")

    def __call__(self, request: requests.PreparedRequest) -> requests.PreparedRequest:
        request.headers["Authorization"] = self._header
        return request

    def __repr__(self) -> str:
        return "<BasicAuth ***>"

    def __reduce__(self) -> Any:
        raise TypeError("credentials are not picklable")


def _chain(exc: BaseException) -> list[BaseException]:
    """The exception and what it wraps (``args[0]``, urllib3's ``.reason``, causes)."""
    seen: list[BaseException] = []
    todo: list[Any] = [exc]
    while todo:
        item = todo.pop()
        if not isinstance(item, BaseException) or any(item is s for s in seen):
            continue
        seen.append(item)
        todo.extend((getattr(item, "reason", None), item.__cause__, item.__context__))
        todo.extend(item.args[:1])
    return seen


def _never_sent(exc: requests.RequestException) -> bool:
    """True when the connection could not be opened, so no byte of the request left."""
    import urllib3.exceptions as u3

    if isinstance(exc, requests.exceptions.SSLError):
        return False  # handshake failures are not retried; see _retryable
    if isinstance(exc, requests.exceptions.ConnectTimeout):
        return True
    if isinstance(exc, requests.exceptions.ConnectionError):
        return any(isinstance(e, u3.NewConnectionError) for e in _chain(exc))
    return False


def _retryable(exc: requests.RequestException, idempotent: bool) -> bool:
    if isinstance(exc, requests.exceptions.SSLError):
        return False  # a certificate problem does not fix itself
    if _never_sent(exc):
        return True
    return idempotent and isinstance(exc, _RETRYABLE_IF_IDEMPOTENT)


def _retry_after(response: requests.Response) -> float | None:
    """Seconds from a ``Retry-After`` header (delta-seconds or HTTP date), capped."""
    value = response.headers.get("Retry-After")
    if not value:
        return None
    try:
        delay = float(value)
    except ValueError:
        try:
            when = email.utils.parsedate_to_datetime(value)
        except (TypeError, ValueError, IndexError):
            return None
        if when.tzinfo is None:
            return None
        delay = when.timestamp() - time.time()
    if not math.isfinite(delay):
        return None
    return min(max(delay, 0.0), RETRY_AFTER_CAP)


def _backoff(attempt: int) -> float:
    return _uniform(0.0, min(BACKOFF_CAP, BACKOFF_BASE * (2**attempt)))


def _error_from_response(response: requests.Response, method: str, url: str) -> RestError:
    """Build a RestError from any of the three error-body shapes, or a non-JSON body."""
    message: str | None = None
    code: int | None = None
    more_info: str | None = None
    try:
        body: Any = json.loads(response.content) if response.content else None
    except ValueError:
        body = None
    if isinstance(body, dict):
        errors = body.get("errors")
        if isinstance(errors, list) and errors:
            # {"errors": [{"code", "message", "more_info"}]} or {"errors": ["text"]}
            first = errors[0]
            if isinstance(first, str):
                message = first
            body = first if isinstance(first, dict) else {}
        message = message or opt_str(body.get("message"))
        code = opt_int(body.get("code"))
        more_info = opt_str(body.get("more_info"))
    if not message:
        text = response.text.strip() if body is None and response.content else ""
        if len(text) > _MAX_ERROR_TEXT:
            text = text[:_MAX_ERROR_TEXT] + "..."
        message = text or response.reason or f"HTTP {response.status_code}"
    return RestError(response.status_code, message, code=code, more_info=more_info, method=method, url=url)


def _connection_error(
    exc: requests.RequestException, method: str, url: str, reached: bool = False
) -> RestConnectionError:
    """The ``RestConnectionError`` (``RestTimeout`` on a timeout) for a failed exchange."""
    never = _never_sent(exc) or isinstance(exc, _NEVER_SENT_ERRORS)
    cls = RestTimeout if isinstance(exc, requests.exceptions.Timeout) else RestConnectionError
    what = "timed out" if cls is RestTimeout else f"failed ({type(exc).__name__})"
    hint = ""
    if "WRONG_VERSION_NUMBER" in str(exc):
        parts = urlsplit(url)
        hint = _NOT_TLS_HINT.format(url=f"http://{parts.netloc}")
    return cls(f"{method} {url} {what}: {exc}{hint}", method=method, url=url, may_have_been_sent=reached or not never)


def decode(response: requests.Response, method: str, url: str) -> Any:
    """The JSON body of a 2xx response, ``None`` when empty (``RestError`` if not JSON)."""
    content = response.content
    if not content:
        return None
    try:
        # json.loads on bytes detects UTF-8/16/32 itself; cheaper than response.json().
        return json.loads(content)
    except ValueError:
        raise RestError(response.status_code, "response body is not valid JSON", method=method, url=url) from None


def _own_session(base_url: str, verify: str | bool) -> tuple[requests.Session, dict[str, str], str | bool]:
    """A new stateless session, with the proxies and CA bundle the environment names."""
    session = requests.Session()
    # No cookies: the API sets none we need, and a stateless session is safe to share.
    session.cookies.set_policy(DefaultCookiePolicy(allowed_domains=[]))
    # Read the proxy and CA-bundle variables requests honours once, here: with trust_env
    # on, requests scans os.environ twice per request, which measured as a quarter of a
    # small request's CPU time.
    proxies = requests.utils.get_environ_proxies(base_url)
    if verify is True:
        verify = os.environ.get("REQUESTS_CA_BUNDLE") or os.environ.get("CURL_CA_BUNDLE") or True
    session.trust_env = False
    return session, proxies, verify


class Transport:
    """One client's connection to the cXML REST API: every resource sends through it.

    Holds the session, the base URL, the credentials and the retry settings, sends with
    the retry policy of this module, decodes JSON and turns error answers into
    ``RestError``/``RestConnectionError``. ``opt_outs`` and ``rate_limit`` are the
    client's send guards, kept here so that resources need nothing but the transport.
    The :class:`~swsync.rest.RestClient` attributes of the same names read and write
    these; the arguments are validated by the client.

    Thread-safety: keeps no per-call state; share freely (see ``RestClient``).
    """

    def __init__(
        self,
        project: str,
        token: str,
        origin: str,
        *,
        timeout: float | None,
        total_timeout: float | None,
        max_retries: int,
        ca_file: str | None,
        session: requests.Session | None,
        opt_outs: OptOutStore | None = None,
        rate_limit: RateLimit | None = None,
    ) -> None:
        self.project = project
        self.origin = origin
        self.base_url = f"{origin}{API_PATH}{quote(project, safe='')}/"
        self.timeout = timeout
        self.total_timeout = total_timeout
        self.max_retries = max_retries
        self.opt_outs = opt_outs
        self.rate_limit = rate_limit
        self._auth = _BasicAuth(project, token)
        self._headers = {
            "User-Agent": f"swsync/{__version__} python-requests/{_requests_version}",
            "Accept": "application/json",
        }
        self.owns_session = session is None
        self._proxies: dict[str, str] | None = None
        self._verify: str | bool = _ca_file(ca_file, ENV_REST_CA) or True
        if session is None:
            session, self._proxies, self._verify = _own_session(self.base_url, self._verify)
        self.session = session

    def __repr__(self) -> str:
        return f"<Transport origin={self.origin!r}>"

    def __reduce__(self) -> Any:
        raise TypeError("a REST transport is not picklable (it holds credentials and a live session)")

    def close(self) -> None:
        """Close the session if this transport created it (idempotent)."""
        if self.owns_session:
            self.session.close()

    def url(self, path: str) -> str:
        """The absolute URL for ``path``; see :meth:`RestClient.url <swsync.rest.RestClient.url>`.

        Raises:
            ValueError: another origin, or a protocol-relative ``//`` path.
        """
        if path.startswith("/"):
            if path.startswith("//"):
                raise ValueError(f"refusing protocol-relative URL {path!r}")
            return self.origin + path
        parts = urlsplit(path)
        if parts.scheme or parts.netloc:
            if f"{parts.scheme}://{parts.netloc}".lower() != self.origin.lower():
                raise ValueError(f"refusing URL {path!r}: not on {self.origin}")
            return path
        return self.base_url + path

    def send(
        self,
        method: str,
        path: str,
        *,
        params: Mapping[str, str] | None = None,
        data: list[tuple[str, str]] | Mapping[str, str] | None = None,
    ) -> tuple[int, Any]:
        """:meth:`exchange`, then :func:`decode`: (HTTP status, JSON body or ``None``)."""
        method = method.upper()
        response, url = self.exchange(method, path, params=params, data=data)
        return response.status_code, decode(response, method, url)

    def record(
        self,
        method: str,
        path: str,
        parse: Callable[[Any], T],
        *,
        data: list[tuple[str, str]] | Mapping[str, str] | None = None,
    ) -> T:
        """:meth:`send`, then ``parse`` the body; a body ``parse`` refuses is a ``RestError``."""
        status, payload = self.send(method, path, data=data)
        try:
            return parse(payload)
        except (TypeError, ValueError) as exc:
            raise RestError(status, f"malformed response: {exc}", method=method, url=self.url(path)) from None

    def exchange(
        self,
        method: str,
        path: str,
        *,
        params: Mapping[str, str] | None = None,
        data: list[tuple[str, str]] | Mapping[str, str] | None = None,
    ) -> tuple[requests.Response, str]:
        """Send with retries; return the 2xx response (body read) and its URL.

        ``method`` is upper-case. Raises ``RestError`` for a non-2xx answer and
        ``RestConnectionError`` below HTTP.
        """
        url = self.url(path)
        idempotent = method in _IDEMPOTENT
        deadline = None if self.total_timeout is None else _monotonic() + self.total_timeout
        attempt = 0
        reached = False  # did any attempt (not only the last) possibly reach the server?
        while True:
            try:
                response = self.session.request(
                    method,
                    url,
                    params=params,
                    data=data,
                    headers=self._headers,
                    proxies=self._proxies,
                    auth=self._auth,
                    timeout=self._attempt_timeout(deadline),
                    verify=self._verify,
                    allow_redirects=False,  # never replay a POST as GET or follow to another host
                )
            except requests.RequestException as exc:
                if _retryable(exc, idempotent) and self._pause(
                    attempt, None, deadline, method, url, type(exc).__name__
                ):
                    reached = reached or not _never_sent(exc)
                    attempt += 1
                    continue
                raise _connection_error(exc, method, url, reached) from exc
            reached = True
            status = response.status_code
            if 200 <= status < 300:
                return response, url
            if (status == 429 or (status >= 500 and idempotent)) and self._pause(
                attempt, _retry_after(response), deadline, method, url, f"HTTP {status}"
            ):
                attempt += 1
                continue
            raise _error_from_response(response, method, url)

    def _attempt_timeout(self, deadline: float | None) -> float | None:
        """One attempt's connect/read timeout: ``timeout``, cut to what the deadline leaves."""
        if deadline is None:
            return self.timeout
        remaining = max(deadline - _monotonic(), 0.001)
        return remaining if self.timeout is None else min(self.timeout, remaining)

    def _pause(
        self,
        attempt: int,
        retry_after: float | None,
        deadline: float | None,
        method: str,
        url: str,
        why: str,
    ) -> bool:
        """Wait before retry ``attempt + 1``; False (no wait) when no retry may be made."""
        if attempt >= self.max_retries:
            return False
        delay = _backoff(attempt) if retry_after is None else retry_after
        if deadline is not None and _monotonic() + delay >= deadline:
            logger.debug(
                "%s %s: %s; not retried: a %.2f s wait would pass the call's deadline", method, url, why, delay
            )
            return False
        logger.debug(
            "%s %s: %s; retry %d of %d in %.2f s",
            method,
            url,
            why,
            attempt + 1,
            self.max_retries,
            delay,
        )
        _sleep(delay)
        return True


class TransportOwner(Protocol):
    """Anything with a ``transport``: a :class:`~swsync.rest.RestClient`, as the resources see it.

    The resource constructors are public and take the client (``MessageList(rest)``);
    this protocol lets them accept it without importing ``client.py``.
    """

    @property
    def transport(self) -> Transport: ...


# What the first parameter (``client``) of a resource constructor, Page and iterate takes.
ClientOrTransport: TypeAlias = Transport | TransportOwner


def transport_of(client: ClientOrTransport) -> Transport:
    """The transport to send through: ``client`` itself, or the client's ``transport``.

    Raises:
        TypeError: ``client`` is neither a ``RestClient`` nor a transport.
    """
    if isinstance(client, Transport):
        return client
    transport = getattr(client, "transport", None)
    if not isinstance(transport, Transport):
        raise TypeError(f"expected a RestClient, got {type(client).__name__}")
    return transport
