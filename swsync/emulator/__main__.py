"""``python -m swsync.emulator``: run the emulator until SIGINT or SIGTERM.

Prints the environment a client needs (``SIGNALWIRE_PROJECT_ID``,
``SIGNALWIRE_API_TOKEN``, ``SIGNALWIRE_SPACE`` and ``SIGNALWIRE_RELAY_URL``), one
``NAME=value`` per line, so a shell can ``eval`` them or a benchmark can parse them.
"""

from __future__ import annotations

import argparse
import logging
import os
import signal
import sys
import threading
from types import FrameType

__all__ = ["main"]


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of ``python -m swsync.emulator``."""
    p = argparse.ArgumentParser(
        prog="python -m swsync.emulator",
        description="Run a local SignalWire emulator (RELAY WebSocket + cXML REST on one port).",
    )
    p.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1)")
    p.add_argument("--port", type=_port, default=0, help="TCP port (default 0: a free one)")
    p.add_argument(
        "--state-delay",
        type=float,
        default=0.05,
        help="seconds between message states (default 0.05)",
    )
    p.add_argument("--certfile", help="PEM certificate: serve TLS (wss://, https://)")
    p.add_argument("--keyfile", help="PEM private key for --certfile (if not inside it)")
    p.add_argument("--project", help="project ID to accept (default: random UUID)")
    p.add_argument("--token", help="API token to accept (default: random)")
    p.add_argument("--signing-key", help="webhook signing key (default: random)")
    p.add_argument(
        "--ping-interval", type=float, help="send signalwire.ping to clients every N seconds"
    )
    p.add_argument(
        "--session-ttl", type=float, default=60.0, help="seconds a dropped session stays resumable"
    )
    p.add_argument("--inbound-webhook-url", help="POST injected inbound messages here")
    p.add_argument("-v", "--verbose", action="store_true", help="log at DEBUG level to stderr")
    return p


def _port(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a port number: {text!r}") from None
    if not 0 <= value <= 65535:
        raise argparse.ArgumentTypeError(f"port must be 0-65535, got {value}")
    return value


def main(argv: list[str] | None = None) -> int:
    """Run the emulator until SIGINT/SIGTERM; return the exit code (0 on a clean stop)."""
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.WARNING, stream=sys.stderr)
    from .server import Emulator

    for path in (args.certfile, args.keyfile):
        if path is not None and not os.path.isfile(path):
            print(f"swsync emulator: error: no such file: {path}", file=sys.stderr)
            return 2
    emu = Emulator(
        host=args.host,
        port=args.port,
        project=args.project,
        token=args.token,
        signing_key=args.signing_key,
        certfile=args.certfile,
        keyfile=args.keyfile,
        state_delay=args.state_delay,
        ping_interval=args.ping_interval,
        session_ttl=args.session_ttl,
        inbound_webhook_url=args.inbound_webhook_url,
    )
    stop = threading.Event()

    def on_signal(signum: int, frame: FrameType | None) -> None:
        stop.set()

    previous = {sig: signal.signal(sig, on_signal) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        try:
            emu.start()
        except (OSError, ValueError) as exc:  # port in use, unreadable certificate, ...
            print(f"swsync emulator: error: cannot start: {exc}", file=sys.stderr)
            return 2
        print(f"SIGNALWIRE_PROJECT_ID={emu.project}")
        print(f"SIGNALWIRE_API_TOKEN={emu.token}")
        print(f"SIGNALWIRE_SPACE={emu.rest_url}")
        print(f"SIGNALWIRE_RELAY_URL={emu.relay_url}")
        print(f"SIGNALWIRE_JWT_TOKEN={emu.jwt_token}")
        print(f"SIGNALWIRE_SIGNING_KEY={emu.signing_key}", flush=True)
        while not stop.wait(0.5):  # a timed wait keeps the main thread responsive to signals
            pass
    finally:
        emu.close()
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    return 0


if __name__ == "__main__":
    sys.exit(main())
