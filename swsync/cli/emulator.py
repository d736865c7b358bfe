"""``swsync emulator`` (run the local emulator in the foreground) and ``swsync emulator inject``.

The server's options are the table shared with ``python -m swsync.emulator``
(``_emulator_server``). ``inject`` POSTs an inbound message to a running
emulator's control API.
"""

from __future__ import annotations

import argparse
import os
import sys
from typing import Any
from urllib.parse import urlsplit

from .. import _config, _validate
from ..errors import ConfigurationError, ConnectionClosedError, RestError
from . import _emulator_server
from ._shared import Parser, global_options, import_emulator

__all__ = ["CONTROL_PREFIX", "add_parser", "control_url", "inject", "run"]

#: Path prefix of the emulator's control API (see ``swsync.emulator.control``).
CONTROL_PREFIX = "/_emulator/api"


def add_parser(subparsers: argparse._SubParsersAction[Parser]) -> None:
    """Add ``emulator`` and its ``inject`` action to ``swsync``'s commands."""
    common = global_options()
    p = subparsers.add_parser(
        "emulator",
        parents=[common],
        formatter_class=argparse.RawDescriptionHelpFormatter,
        description="Run a local SignalWire emulator until Ctrl-C. It prints the "
        "export lines a client needs. Needs: pip install 'swsync[emulator]'.\n\n"
        "Credentials: --project, --token, --signing-key, else SIGNALWIRE_PROJECT_ID, "
        "SIGNALWIRE_API_TOKEN and SIGNALWIRE_SIGNING_KEY while SIGNALWIRE_SPACE is unset or "
        "local (so exported lines keep working after a restart), else random.\n\n"
        "'swsync emulator inject --to ... --from ... --body ...' hands a running emulator an "
        "inbound message (credentials and space from the exported variables).",
    )
    _emulator_server.add_server_arguments(p, default_port=8765, credentials=False)
    actions = p.add_subparsers(dest="emulator_command", metavar="ACTION", parser_class=Parser)
    q = actions.add_parser(
        "inject",
        parents=[common],
        help="send a running emulator an inbound message (as if a phone texted you)",
        description="POST an inbound message to a running emulator's control API "
        "(/_emulator/api/inbound), authenticated with its project and token. Prints its SID.",
    )
    add = q.add_argument
    add("--to", required=True, metavar="NUMBER", help="your number that receives it (E.164 or short code)")
    add("--from", dest="from_", required=True, metavar="NUMBER", help="the remote sender (E.164 or short code)")
    add("--body", help="the text")
    add("--media", action="append", default=[], metavar="URL", help="a media URL (repeatable)")
    add("--context", default="default", help="the RELAY context it arrives on (default: default)")
    add("--json", action="store_true", help="print the emulator's answer as JSON")


def run(args: argparse.Namespace) -> int:
    """Run ``swsync emulator`` (until Ctrl-C) or ``swsync emulator inject``; return the exit code."""
    if args.emulator_command == "inject":
        return inject(args)
    import_emulator()
    print(
        "swsync: emulator starting; paste these lines into another shell, Ctrl-C to stop", file=sys.stderr, flush=True
    )
    return _emulator_server.serve(args, prefix="export ")


def control_url(space: str) -> str:
    """The control API's base URL for a space given as the emulator's URL.

    Raises:
        ConfigurationError: ``space`` is a bare host name, not a URL.
    """
    scheme = {"ws": "http", "wss": "https", "http": "http", "https": "https"}.get(
        space.partition("://")[0].lower() if "://" in space else ""
    )
    if scheme is None:
        raise ConfigurationError(
            f"inject talks to a running local emulator: the space must be its URL, such as "
            f"http://127.0.0.1:8765 (swsync emulator prints it as {_config.ENV_SPACE}), got {space!r}"
        )
    netloc = urlsplit(space).netloc
    return f"{scheme}://{netloc}{CONTROL_PREFIX}"


def _required(args: argparse.Namespace, name: str, env: str) -> str:
    value = getattr(args, name, None) or os.environ.get(env) or None
    if value is None:
        raise ConfigurationError(f"missing {name}: pass --{name} or set {env} (swsync emulator prints it)")
    return str(value)


def inject(args: argparse.Namespace) -> int:
    """``swsync emulator inject``: POST one inbound message to a running emulator; 0 on success.

    Raises:
        ConfigurationError, ValueError: bad arguments (exit 2).
        RestError: the emulator refused it (401: exit 4; else exit 1).
        ConnectionClosedError: the emulator could not be reached (exit 4).
    """
    url = control_url(_required(args, "space", _config.ENV_SPACE)) + "/inbound"
    project = getattr(args, "project", None) or os.environ.get(_config.ENV_PROJECT) or None
    token = getattr(args, "token", None) or os.environ.get(_config.ENV_TOKEN) or None
    # An emulator on a loopback address takes control requests from this machine without
    # credentials; bound elsewhere it needs them (a 401 then says so).
    auth = (project, token) if project and token else None
    payload: dict[str, Any] = {
        "to": _validate.phone_number(args.to, "--to"),
        "from": _validate.phone_number(args.from_, "--from"),
        "context": args.context,
    }
    body, media = _validate.content(args.body, args.media)
    payload.update(body=body, media=media)
    import requests

    try:
        reply = requests.post(url, json=payload, auth=auth, timeout=10)
    except requests.RequestException as exc:
        raise ConnectionClosedError(
            f"cannot reach the emulator at {url}: {exc}", may_have_been_sent=isinstance(exc, requests.Timeout)
        ) from exc
    try:
        answer = reply.json()
    except ValueError:
        answer = {}
    if reply.status_code != 201 or not isinstance(answer, dict):
        message = answer.get("message") if isinstance(answer, dict) else None
        if reply.status_code == 404:
            message = "no emulator control API here: is the space a swsync emulator?"
        raise RestError(reply.status_code, str(message or reply.reason), method="POST", url=url)
    return _report(args, answer)


def _report(args: argparse.Namespace, answer: dict[str, Any]) -> int:
    import json

    print(json.dumps(answer, ensure_ascii=False) if args.json else answer.get("sid"), flush=True)
    if answer.get("sessions") == 0:
        print(
            f"swsync: note: no RELAY client receives context {args.context!r}; the message is "
            "stored (and POSTed to the inbound webhook, if the emulator has one)",
            file=sys.stderr,
        )
    return 0
