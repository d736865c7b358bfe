"""``RestClient``: the public face of the REST API; builds the transport and the resources.

The session, base URL, credentials and the retry policy live in
:mod:`swsync.rest._transport`; resources (``rest.messages``, its media, pages) keep
only that transport and never import this module. Their public constructors still
take a client (``MessageList(rest)``): they read its :attr:`RestClient.transport`.
``API_PATH``, ``BACKOFF_BASE``, ``BACKOFF_CAP``, ``RETRY_AFTER_CAP``, ``RestError`` and
``logger`` stay importable from here, where they used to be defined.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Generic, TypeVar, overload

import requests

from .._config import ENV_PROJECT, ENV_SPACE, ENV_TOKEN, rest_origin, setting
from ..errors import ConfigurationError, RestConnectionError, RestTimeout
from ..errors import RestError as RestError
from ..optouts import OptOutStore, as_store
from ..ratelimit import RateLimit, checked_rate_limit
from ._transport import API_PATH as API_PATH
from ._transport import BACKOFF_BASE as BACKOFF_BASE
from ._transport import BACKOFF_CAP as BACKOFF_CAP
from ._transport import RETRY_AFTER_CAP as RETRY_AFTER_CAP
from ._transport import Transport
from ._transport import logger as logger
from .messages import MessageList

if TYPE_CHECKING:
    from collections.abc import Mapping
    from types import TracebackType

__all__ = ["RestClient", "RestConnectionError", "RestTimeout"]

T = TypeVar("T")

_NO_SPACE = (
    "missing space: the REST client needs your space's host name (example.signalwire.com); "
    f"pass space=... or set the {ENV_SPACE} environment variable. Unlike RelayClient, which "
    "defaults to relay.signalwire.com, the REST API has no default host"
)


def _check_timeout(value: float | None, arg: str) -> None:
    if value is not None and (isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 < value < 1e9):
        raise ConfigurationError(f"{arg} must be a positive number or None, got {value!r}")


class _OnTransport(Generic[T]):
    """A ``RestClient`` attribute kept on its transport: reads and writes go there.

    So ``rest.total_timeout = 5`` after construction still applies to the next call, as
    it did when the client sent requests itself.
    """

    def __init__(self, doc: str) -> None:
        self.name = ""
        self.__doc__ = doc

    def __set_name__(self, owner: type[Any], name: str) -> None:
        self.name = name

    @overload
    def __get__(self, obj: None, owner: type[Any] | None = None) -> _OnTransport[T]: ...

    @overload
    def __get__(self, obj: RestClient, owner: type[Any] | None = None) -> T: ...

    def __get__(self, obj: RestClient | None, owner: type[Any] | None = None) -> Any:
        if obj is None:
            return self
        return getattr(obj._transport, self.name)

    def __set__(self, obj: RestClient, value: T) -> None:
        setattr(obj._transport, self.name, value)


class RestClient:
    """Client for the cXML (LaML) compatibility REST API: messages and their media.

    Args:
        project: Project ID; default ``SIGNALWIRE_PROJECT_ID``.
        token: API token; default ``SIGNALWIRE_API_TOKEN``. Never logged or shown by repr.
        space: space host (``example.signalwire.com`` -> ``https://example.signalwire.com``)
            or a full ``http(s)://host[:port]`` origin for the emulator and tests;
            default ``SIGNALWIRE_SPACE``.
        timeout: seconds for connecting and for each read of one attempt (``None``: no limit).
        max_retries: retries after the first attempt when the policy allows (0 disables).
        total_timeout: seconds a whole call may take, every retry and ``Retry-After`` wait
            included (default 60; ``None``: bounded only by ``max_retries`` and the caps on
            waits). Attempts are cut short and retries skipped to end by then.
        ca_file: CA bundle to verify TLS with; default ``SIGNALWIRE_REST_CA_FILE``, else the
            system/certifi bundle. Verification is always on.
        rate_limit: a :class:`~swsync.RateLimit` pacing ``messages.create`` (shareable).
        session: a ``requests.Session`` to use (proxies, adapters); it is not closed by
            :meth:`close`. By default the client creates and owns one.
        opt_outs: an opt-out store (``swsync.optouts``) or an SQLite path;
            ``messages.create`` to a number in it raises ``OptedOutError`` before
            anything is sent.

    Raises:
        ConfigurationError: a credential or the space is missing or invalid, or an
            option is out of range.

    Thread-safety: one client may be shared by many threads. It keeps no per-call state;
    calls share its connection pool (``requests``/``urllib3`` pools are thread-safe), and
    its own session refuses cookies so nothing in it changes after construction. A session
    you pass in is used as is: do not reconfigure it while calls are running.
    """

    project = _OnTransport[str]("The Project ID.")
    origin = _OnTransport[str]("``scheme://host[:port]`` of the space.")
    base_url = _OnTransport[str]("The account's URL, which relative paths are joined to.")
    timeout = _OnTransport[float | None]("Seconds for connecting and for each read of one attempt.")
    total_timeout = _OnTransport[float | None]("Seconds a whole call may take, retries and waits included.")
    max_retries = _OnTransport[int]("Retries after the first attempt, where the policy allows.")
    opt_outs = _OnTransport[OptOutStore | None]("The opt-out store ``messages.create`` checks, if any.")
    rate_limit = _OnTransport[RateLimit | None]("The rate limit pacing ``messages.create``, if any.")

    def __init__(
        self,
        project: str | None = None,
        token: str | None = None,
        space: str | None = None,
        *,
        timeout: float | None = 10.0,
        max_retries: int = 3,
        ca_file: str | None = None,
        session: requests.Session | None = None,
        opt_outs: OptOutStore | str | None = None,
        rate_limit: RateLimit | None = None,
        total_timeout: float | None = 60.0,
    ) -> None:
        project = setting(project, ENV_PROJECT, "project")
        token = setting(token, ENV_TOKEN, "token")
        space = setting(space, ENV_SPACE, "space", required=False)
        if space is None:
            raise ConfigurationError(_NO_SPACE)
        assert project is not None and token is not None
        _check_timeout(timeout, "timeout")
        _check_timeout(total_timeout, "total_timeout")
        if isinstance(max_retries, bool) or not isinstance(max_retries, int) or max_retries < 0:
            raise ConfigurationError(f"max_retries must be an int >= 0, got {max_retries!r}")
        if session is not None and not isinstance(session, requests.Session):
            raise ConfigurationError("session must be a requests.Session")
        origin = rest_origin(space)
        store = as_store(opt_outs)
        self._transport = Transport(
            project,
            token,
            origin,
            timeout=timeout,
            total_timeout=total_timeout,
            max_retries=max_retries,
            ca_file=ca_file,
            session=session,
            opt_outs=store,
        )
        self.rate_limit = checked_rate_limit(rate_limit)
        self.messages: MessageList = MessageList(self._transport)

    @property
    def transport(self) -> Transport:
        """Internal: the transport this client's resources send through.

        Not part of the public API; it is how ``MessageList(rest)``, ``Page.fetch(rest, ...)``
        and the other resource constructors find what to send through.
        """
        return self._transport

    def __repr__(self) -> str:
        return f"RestClient(project={self.project!r}, origin={self.origin!r})"

    def __reduce__(self) -> Any:
        # Pickling would write the credentials (and a live session) to disk or a pipe.
        raise TypeError("RestClient is not picklable; create one per process")

    def __enter__(self) -> RestClient:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def close(self) -> None:
        """Close the client's own session and its pooled connections (idempotent).

        A session passed in by the caller is left open.
        """
        self._transport.close()

    def url(self, path: str) -> str:
        """Return the absolute URL for ``path``.

        ``path`` is relative to the account base (``"Messages.json"``), root-relative
        (``"/api/laml/..."``, as the server's page URIs are; joined to the origin only),
        or an absolute URL on this client's origin.

        Raises:
            ValueError: an absolute URL on another origin, or a protocol-relative ``//`` path;
                credentials are never sent to another host.
        """
        return self._transport.url(path)

    def request(
        self,
        method: str,
        path: str,
        *,
        params: Mapping[str, str] | None = None,
        data: list[tuple[str, str]] | Mapping[str, str] | None = None,
    ) -> Any:
        """Send one API request (with retries) and return its decoded JSON body.

        The escape hatch for endpoints this package does not wrap. ``path`` is resolved
        by :meth:`url`; ``params`` go to the query string, ``data`` is sent form-encoded
        (a list of pairs repeats a key, as ``MediaUrl`` needs).

        Returns:
            The parsed JSON, or ``None`` for an empty body (204).

        Raises:
            RestError: a non-2xx answer (after retries), or a 2xx body that is not JSON.
            RestConnectionError: the exchange failed below HTTP (``RestTimeout`` on a timeout).
        """
        return self._transport.send(method, path, params=params, data=data)[1]
