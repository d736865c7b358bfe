"""Credentials, hosts and CA bundles from arguments or ``SIGNALWIRE_*`` variables.

Everything here is validated once, before any network activity, and raises
:class:`~swsync.errors.ConfigurationError` naming both the argument and the
environment variable that can supply a missing value.
"""

from __future__ import annotations

import os
import re
from urllib.parse import urlsplit

from .errors import ConfigurationError

ENV_PROJECT = "SIGNALWIRE_PROJECT_ID"
ENV_TOKEN = "SIGNALWIRE_API_TOKEN"
ENV_JWT = "SIGNALWIRE_JWT_TOKEN"
ENV_SPACE = "SIGNALWIRE_SPACE"
ENV_RELAY_CA = "SIGNALWIRE_RELAY_CA_FILE"
ENV_REST_CA = "SIGNALWIRE_REST_CA_FILE"

# Characters the official SDK refuses in a host, plus every other control or space.
_BAD_HOST = re.compile(r"[@/?#\\\s\x00-\x1f\x7f]")


def setting(value: str | None, env: str, arg: str, *, required: bool = True) -> str | None:
    """Return ``value``, else the environment variable ``env``, else fail.

    Args:
        value: the value passed by the caller, or ``None``.
        env: the environment variable consulted when ``value`` is ``None``.
        arg: the argument's name, used in the error message.
        required: raise when neither source has a non-empty value.

    Raises:
        ConfigurationError: the setting is required and missing, or not a string.
    """
    if value is None:
        value = os.environ.get(env) or None
    if value is None:
        if required:
            raise ConfigurationError(f"missing {arg}: pass {arg}=... or set the {env} environment variable")
        return None
    if not isinstance(value, str) or not value.strip():
        raise ConfigurationError(f"{arg} must be a non-empty string")
    return value.strip()


def _check_hostport(netloc: str, arg: str) -> None:
    if not netloc or _BAD_HOST.search(netloc):
        raise ConfigurationError(
            f"{arg} must be a bare host name such as 'example.signalwire.com' "
            "(no credentials, path, query, whitespace or control characters)"
        )
    try:
        _ = urlsplit("//" + netloc).port  # the property raises ValueError on a bad port
    except ValueError:
        raise ConfigurationError(f"{arg} has an invalid port: {netloc!r}") from None


def _split_url(value: str, schemes: tuple[str, ...], arg: str) -> tuple[str, str]:
    if any(c in value for c in "\r\n\t "):
        raise ConfigurationError(f"{arg} must not contain whitespace or line breaks")
    parts = urlsplit(value)
    if parts.scheme not in schemes:
        raise ConfigurationError(f"{arg} URL scheme must be one of {', '.join(schemes)}")
    if parts.path not in ("", "/") or parts.query or parts.fragment:
        raise ConfigurationError(f"{arg} URL must have no path, query or fragment")
    _check_hostport(parts.netloc, arg)
    return parts.scheme, parts.netloc


def relay_url(host: str) -> str:
    """Turn a RELAY ``host`` (bare name, or a ``ws://``/``wss://`` URL) into a URL.

    A bare host means ``wss://{host}``; full URLs are for the emulator and tests.
    An ``http(s)://`` URL means the same host's websocket (``ws(s)://``): one
    ``SIGNALWIRE_SPACE`` serves both clients, as one space serves both APIs.
    """
    if host.startswith(("http://", "https://")):
        host = "ws" + host[4:]
    if "://" in host:
        scheme, netloc = _split_url(host, ("ws", "wss"), "host")
        return f"{scheme}://{netloc}"
    _check_hostport(host, "host")
    return f"wss://{host}"


def rest_origin(space: str) -> str:
    """Turn a REST ``space`` (bare name, or an ``http(s)://`` URL) into an origin.

    A ``ws(s)://`` URL means the same host over ``http(s)://`` (see :func:`relay_url`).
    """
    if space.startswith(("ws://", "wss://")):
        space = "http" + space[2:]
    if "://" in space:
        scheme, netloc = _split_url(space, ("http", "https"), "space")
        return f"{scheme}://{netloc}"
    _check_hostport(space, "space")
    return f"https://{space}"


def ca_file(value: str | None, env: str) -> str | None:
    """Return the CA bundle path from the argument or ``env``, checking it exists."""
    path = setting(value, env, "ca_file", required=False)
    if path is not None and not os.path.isfile(path):
        raise ConfigurationError(f"ca_file {path!r} (or {env}) is not a readable file")
    return path
