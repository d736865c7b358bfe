"""The whole swsync exception tree.

::

    SwsyncError
     ├── ConfigurationError        (also a ValueError)
     ├── RelayError                (.code, .message)
     │    └── AuthenticationError
     ├── ConnectionClosedError     (.may_have_been_sent)
     │    ├── OutcomeUnknownError  (.message_id; accepted, outcome unknown)
     │    └── RestConnectionError  (.method, .url)
     │         └── RestTimeout     (also a WaitTimeout)
     ├── WaitTimeout               (also a TimeoutError)
     ├── RateLimited               (.may_have_been_sent is False)
     │    └── RedisUnavailable     (.url; shared limit or send records unreachable)
     ├── OptedOutError             (.number; also a ValueError)
     └── RestError                 (.status, .code, .message, .more_info, .method, .url)

Every exception swsync raises on purpose is one of these (bad arguments raise the
built-in ``ValueError`` or ``TypeError``). Third-party errors are wrapped with
``raise ... from exc`` so the original stays available as ``__cause__``.
"""

from __future__ import annotations

from typing import Any

__all__ = [
    "AuthenticationError",
    "ConfigurationError",
    "ConnectionClosedError",
    "OptedOutError",
    "OutcomeUnknownError",
    "RateLimited",
    "RedisUnavailable",
    "RelayError",
    "RestConnectionError",
    "RestError",
    "RestTimeout",
    "SwsyncError",
    "WaitTimeout",
]


class SwsyncError(Exception):
    """Base class of every error swsync raises on purpose."""


class ConfigurationError(SwsyncError, ValueError):
    """A credential, host or option is missing or invalid.

    Raised before any network activity; the message names the argument and the
    ``SIGNALWIRE_*`` environment variable that can supply it.
    """


class RelayError(SwsyncError):
    """The RELAY server refused a request.

    ``code`` is the server's code (an ``int``: a JSON-RPC error code such as
    ``-32602`` or an HTTP-like result code such as ``400``) and ``message`` its text.
    """

    def __init__(self, code: int, message: str) -> None:
        super().__init__(f"{message} (code {code})")
        self.code = code
        self.message = message

    def __reduce__(self) -> tuple[Any, ...]:
        return (type(self), (self.code, self.message))


class AuthenticationError(RelayError):
    """The RELAY server rejected the credentials (raised by ``connect()``).

    Also the reason a client stops for good when re-authentication fails during a
    reconnect; every waiter is then woken with this error.
    """


class ConnectionClosedError(SwsyncError):
    """The connection was closed, or lost and not recovered, before an answer.

    ``may_have_been_sent`` is ``True`` when the request's frame was already written
    to the socket: the server may have acted on it (a ``messaging.send`` may have
    been accepted), so it is never re-sent automatically. ``False`` means the
    request provably never left this process.
    """

    def __init__(self, message: str, *, may_have_been_sent: bool = False) -> None:
        super().__init__(message)
        self.may_have_been_sent = may_have_been_sent

    def __reduce__(self) -> tuple[Any, ...]:
        return (_rebuild, (type(self), self.args, dict(self.__dict__)))


class OutcomeUnknownError(ConnectionClosedError):
    """SignalWire accepted the message, but its outcome can no longer be learned.

    Raised by ``Message.wait()`` when the message has a ``message_id`` (the server
    accepted it) and the session that would have carried its state events is gone
    (``disconnect()``, a fresh session replacing the old one, a lost connection that
    is not resumed). ``may_have_been_sent`` is always ``True``: never send it again;
    look the message up over REST by ``message_id`` (``rest.messages(id).fetch()``).
    """

    def __init__(self, message: str, *, message_id: str) -> None:
        super().__init__(message, may_have_been_sent=True)
        self.message_id = message_id


class RateLimited(SwsyncError):
    """A send waited ``max_wait`` seconds for its pacing limit and was not admitted.

    Nothing was sent: ``may_have_been_sent`` is always ``False``, so the caller may
    retry later. ``key`` names the limited sender (or the account) and
    ``retry_after`` estimates, in seconds, when the send would have been admitted.
    """

    may_have_been_sent = False

    def __init__(self, message: str, *, key: str = "", retry_after: float | None = None) -> None:
        super().__init__(message)
        self.key = key
        self.retry_after = retry_after

    def __reduce__(self) -> tuple[Any, ...]:
        return (_rebuild, (type(self), self.args, dict(self.__dict__)))


class RedisUnavailable(RateLimited):
    """The Redis server behind a shared rate limit or Celery send records is unreachable.

    swsync fails closed: without Redis it cannot prove a send is within the shared
    limit, or that its key was not sent already, so it sends nothing.
    ``may_have_been_sent`` is ``False`` (a ``RateLimited``), so retrying later is
    safe. ``url`` names the server (its password removed); the redis-py error is
    the ``__cause__``.
    """

    def __init__(self, message: str, *, url: str = "", key: str = "") -> None:
        super().__init__(message, key=key)
        self.url = url


class OptedOutError(SwsyncError, ValueError):
    """The destination number opted out (it sent STOP), so the send was refused.

    Raised before anything is sent (``may_have_been_sent`` is ``False``) by clients
    told to honour an opt-out store. ``number`` is the opted-out destination.
    """

    may_have_been_sent = False

    def __init__(self, message: str, *, number: str) -> None:
        super().__init__(message)
        self.number = number

    def __reduce__(self) -> tuple[Any, ...]:
        return (_rebuild, (type(self), self.args, dict(self.__dict__)))


class WaitTimeout(SwsyncError, TimeoutError):
    """A wait (``Message.wait``, a request's reply) did not finish in time.

    A subclass of the built-in ``TimeoutError`` (which ``asyncio.TimeoutError`` is
    an alias of on Python 3.11+), so existing ``except TimeoutError`` code works.
    """


class RestError(SwsyncError):
    """A REST request got a non-2xx response.

    Carries the HTTP ``status``, the cXML error ``code`` (an ``int`` when the body
    had one, else ``None``), the server's ``message`` and ``more_info`` link, and
    the request's ``method`` and ``url``. Credentials are never part of it.
    """

    def __init__(
        self,
        status: int,
        message: str,
        *,
        code: int | None = None,
        more_info: str | None = None,
        method: str = "",
        url: str = "",
    ) -> None:
        detail = f"HTTP {status}"
        if code is not None:
            detail += f", code {code}"
        super().__init__(f"{method} {url} failed ({detail}): {message}".strip())
        self.status = status
        self.code = code
        self.message = message
        self.more_info = more_info
        self.method = method
        self.url = url

    def __reduce__(self) -> tuple[Any, ...]:
        return (_rebuild, (type(self), self.args, dict(self.__dict__)))


class RestConnectionError(ConnectionClosedError):
    """A REST request failed below HTTP: connection refused or lost, DNS, TLS, timeout.

    Raised after any retries the policy allows; the ``requests`` exception is the
    ``__cause__``. ``may_have_been_sent`` is ``False`` only when the request provably
    never reached the server (the connection could not be opened), so a POST that
    fails with ``True`` may have created a message. ``method`` and ``url`` name the
    request (never with credentials).
    """

    def __init__(self, message: str, *, method: str, url: str, may_have_been_sent: bool) -> None:
        super().__init__(message, may_have_been_sent=may_have_been_sent)
        self.method = method
        self.url = url


class RestTimeout(RestConnectionError, WaitTimeout):
    """A REST request timed out (connecting or waiting for the reply).

    Also a :class:`~swsync.errors.WaitTimeout` and so a built-in ``TimeoutError``.
    """


def _rebuild(cls: type[BaseException], args: tuple[Any, ...], state: dict[str, Any]) -> BaseException:
    """Recreate an exception whose ``__init__`` takes keyword-only context (copy, pickle)."""
    exc = cls.__new__(cls)
    exc.args = args
    exc.__dict__.update(state)
    return exc
