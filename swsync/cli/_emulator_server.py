"""The local emulator server's options and runner, shared by ``swsync emulator`` and ``python -m swsync.emulator``.

One option table (:func:`add_server_arguments`) serves both entry points, so they
accept the same options with the same meaning and help; only the default port
differs (``swsync emulator``: 8765, a fixed address to export; ``python -m
swsync.emulator``: 0, a free port, for scripts that parse what it prints).
:func:`serve` runs the emulator in the foreground and prints the ``SIGNALWIRE_*``
variables the clients read.

Credentials can stay the same across restarts: ``--project``, ``--token`` and
``--signing-key``, else ``SIGNALWIRE_PROJECT_ID``, ``SIGNALWIRE_API_TOKEN`` and
``SIGNALWIRE_SIGNING_KEY`` from the environment, so the variables exported from
an earlier run keep working. Those variables are reused only while
``SIGNALWIRE_SPACE`` is unset or names a local address: a real space's
credentials are never taken over (nor printed).

This module never imports aiohttp (nor ``swsync.emulator``) at import time:
building the parser must work, and ``--help`` must print, without the
``swsync[emulator]`` extra.
"""

from __future__ import annotations

import argparse
import logging
import os
import signal
import sys
import threading
from collections.abc import Mapping
from types import FrameType
from typing import Any
from urllib.parse import urlsplit

from .. import _config
from ._shared import non_negative_float, positive_number

__all__ = [
    "ENV_SIGNING_KEY",
    "add_server_arguments",
    "announce_inbox",
    "emulator_kwargs",
    "exports",
    "serve",
    "verbose_logging",
]

ENV_SIGNING_KEY = "SIGNALWIRE_SIGNING_KEY"

_LOCAL_HOSTS = ("localhost", "::1", "0.0.0.0")  # plus 127.0.0.0/8


def _backlog(text: str) -> int:
    value = non_negative_float(text)
    if value != int(value):
        raise argparse.ArgumentTypeError(f"backlog must be a whole number, got {text!r}")
    return int(value)


def _port(text: str) -> int:
    value = non_negative_float(text)
    if value != int(value) or value > 65535:
        raise argparse.ArgumentTypeError(f"port must be a whole number 0-65535, got {text!r}")
    return int(value)


def add_server_arguments(parser: argparse.ArgumentParser, *, default_port: int, credentials: bool) -> None:
    """Add the emulator server's options to ``parser``.

    Args:
        parser: the parser of ``swsync emulator`` or ``python -m swsync.emulator``.
        default_port: the ``--port`` default of this entry point.
        credentials: also add ``--project`` and ``--token`` (``swsync`` has them as
            global options already).
    """
    add = parser.add_argument
    add("--host", default="127.0.0.1", help="address to listen on (default: 127.0.0.1)")
    add("--port", type=_port, default=default_port, help=f"TCP port, 0 for any free one (default: {default_port})")
    add(
        "--state-delay",
        type=non_negative_float,
        default=0.05,
        metavar="SECONDS",
        help="seconds between a message's state changes (default: 0.05)",
    )
    add("--certfile", help="serve TLS (wss://, https://) with this PEM certificate")
    add("--keyfile", help="the certificate's PEM private key (if not inside --certfile)")
    if credentials:
        add("--project", help=f"project ID to accept (default: ${_config.ENV_PROJECT}, else random)")
        add("--token", help=f"API token to accept (default: ${_config.ENV_TOKEN}, else random)")
    add("--signing-key", help=f"key webhooks are signed with (default: ${ENV_SIGNING_KEY}, else random)")
    add(
        "--inbound-webhook-url",
        metavar="URL",
        help="POST inbound messages here, cXML style; <Message> verbs in the reply are sent",
    )
    add(
        "--ping-interval",
        type=positive_number,
        metavar="SECONDS",
        help="send signalwire.ping to every RELAY client this often",
    )
    add(
        "--session-ttl",
        type=non_negative_float,
        default=60.0,
        metavar="SECONDS",
        help="how long a dropped RELAY session stays resumable (default: 60)",
    )
    add(
        "--mps",
        type=positive_number,
        metavar="N",
        help="pace each sender to N segments per second like SignalWire's carrier queue (default: off)",
    )
    add(
        "--backlog",
        type=_backlog,
        default=10_000,
        metavar="N",
        help="with --mps: refuse sends past N queued messages (default: 10000)",
    )
    add("--open", action="store_true", help="open the inbox page (the URL printed on stderr) in a web browser")


def _is_local(space: str | None) -> bool:
    """Whether ``space`` is unset or names this machine (a local emulator)."""
    if not space:
        return True
    try:
        host = urlsplit(space if "://" in space else "//" + space).hostname or ""
    except ValueError:
        return False
    return host in _LOCAL_HOSTS or host.startswith("127.")


def emulator_kwargs(
    args: argparse.Namespace, environ: Mapping[str, str] | None = None
) -> tuple[dict[str, Any], str | None]:
    """Build ``Emulator(...)`` keywords from parsed options and the environment.

    Returns:
        The keywords, and a note for stderr when credentials in the environment
        were deliberately not reused (``None`` otherwise).
    """
    env = os.environ if environ is None else environ
    creds = {
        "project": (getattr(args, "project", None), _config.ENV_PROJECT),
        "token": (getattr(args, "token", None), _config.ENV_TOKEN),
        "signing_key": (getattr(args, "signing_key", None), ENV_SIGNING_KEY),
    }
    from_env = {k: env.get(var) or None for k, (given, var) in creds.items() if given is None}
    note = None
    if any(from_env.values()) and not _is_local(env.get(_config.ENV_SPACE)):
        names = ", ".join(creds[k][1] for k, v in from_env.items() if v)
        note = (
            f"not reusing {names}: {_config.ENV_SPACE} names a real space, not this machine; "
            "the emulator makes up its own credentials (fix them with --project, --token, --signing-key)"
        )
        from_env = {}
    kwargs: dict[str, Any] = {k: given or from_env.get(k) for k, (given, _) in creds.items()}
    kwargs.update(
        host=args.host,
        port=args.port,
        state_delay=args.state_delay,
        certfile=args.certfile,
        keyfile=args.keyfile,
        inbound_webhook_url=args.inbound_webhook_url,
        ping_interval=args.ping_interval,
        session_ttl=args.session_ttl,
        mps=getattr(args, "mps", None),
        backlog=getattr(args, "backlog", 10_000),
    )
    return kwargs, note


def exports(emu: Any) -> list[tuple[str, str]]:
    """The ``SIGNALWIRE_*`` variables clients read, as (name, value) pairs."""
    return [
        (_config.ENV_PROJECT, emu.project),
        (_config.ENV_TOKEN, emu.token),
        (_config.ENV_SPACE, emu.rest_url),  # RELAY and REST clients both accept this URL
        (ENV_SIGNING_KEY, emu.signing_key),  # what webhook validators read
    ]


def serve(args: argparse.Namespace, *, prefix: str = "", name: str = "swsync emulator") -> int:
    """Run the emulator until SIGINT/SIGTERM; return the exit code (0, or 2 if it cannot start).

    Prints one ``{prefix}NAME=value`` line per variable of :func:`exports`.
    """
    from ..emulator import Emulator

    for path in (args.certfile, args.keyfile):
        if path is not None and not os.path.isfile(path):
            print(f"{name}: error: no such file: {path}", file=sys.stderr)
            return 2
    kwargs, note = emulator_kwargs(args)
    if note:
        print(f"{name}: note: {note}", file=sys.stderr)
    stop = threading.Event()

    def on_signal(signum: int, frame: FrameType | None) -> None:
        stop.set()

    previous = {sig: signal.signal(sig, on_signal) for sig in (signal.SIGINT, signal.SIGTERM)}
    emu = None
    try:
        try:
            emu = Emulator(**kwargs).start()
        except (OSError, ValueError) as exc:  # port in use, unreadable certificate, bad URL...
            print(f"{name}: error: cannot start: {exc}", file=sys.stderr)
            return 2
        for var, value in exports(emu):
            print(f"{prefix}{var}={value}")
        sys.stdout.flush()
        announce_inbox(emu, getattr(args, "open", False), name)
        while not stop.wait(0.5):  # a timed wait keeps the main thread responsive to signals
            pass
    finally:
        if emu is not None:
            emu.close()
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    return 0


def announce_inbox(emu: Any, open_browser: bool, name: str = "swsync emulator") -> None:
    """Say where the inbox is (on stderr: stdout keeps the variables) and maybe open it."""
    from ..emulator.inbox import is_loopback

    print(f"{name}: inbox at {emu.ui_url}", file=sys.stderr)
    if not is_loopback(emu.host):
        print(
            f"{name}: listening on {emu.host}, not only this machine: the inbox and its API "
            "ask for the project ID and API token (HTTP Basic), as the REST API does",
            file=sys.stderr,
        )
    sys.stderr.flush()
    if not open_browser:
        return
    import webbrowser

    try:
        opened = webbrowser.open(emu.ui_url)
    except Exception as exc:  # a broken $BROWSER must not stop the emulator
        print(f"{name}: could not open a browser: {exc}", file=sys.stderr)
        opened = False
    if not opened:
        print(f"{name}: no browser opened; visit {emu.ui_url}", file=sys.stderr)


def verbose_logging(enabled: bool) -> None:
    """Log at DEBUG (``enabled``) or WARNING to stderr (the standalone server's ``-v``)."""
    logging.basicConfig(level=logging.DEBUG if enabled else logging.WARNING, stream=sys.stderr)
