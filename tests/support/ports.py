"""Loopback ports for tests (standard library only: the benchmarks import tests.support too)."""

from __future__ import annotations

import socket


def free_port() -> int:
    """A TCP port on 127.0.0.1 that was free a moment ago: nothing listens there (a connection is
    refused), and a server started next can bind it."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])
