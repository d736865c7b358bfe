"""Shared fixtures: a fresh emulator per test, clients and servers around it, no leaked swsync thread."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from typing import Any

import pytest

from .helpers import ENV_VARS, PROJECT, TOKEN, Api, Hook, WireClient


def _swsync_threads() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name.startswith("swsync-") and t.is_alive()]


@pytest.fixture(autouse=True)
def no_leaked_threads() -> Iterator[None]:
    """Fail a test that leaves any ``swsync-*`` thread running after its fixtures end."""
    before = set(_swsync_threads())
    yield
    leaked = [t for t in _swsync_threads() if t not in before]
    # A thread that was told to stop may need a moment to finish returning.
    for t in leaked:
        t.join(timeout=5)
    still = [t.name for t in leaked if t.is_alive()]
    assert not still, f"swsync threads still alive after the test: {still}"


@pytest.fixture(scope="session")
def tls_files(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    """A test CA (``ca``) and a server certificate (``cert``, ``key``) for 127.0.0.1, as PEM files."""
    import trustme

    ca = trustme.CA()
    cert = ca.issue_cert("127.0.0.1", "localhost")
    d = tmp_path_factory.mktemp("tls")
    files = {"ca": str(d / "ca.pem"), "cert": str(d / "cert.pem"), "key": str(d / "key.pem")}
    ca.cert_pem.write_to_path(files["ca"])
    cert.cert_chain_pems[0].write_to_path(files["cert"])
    for extra in cert.cert_chain_pems[1:]:
        extra.write_to_path(files["cert"], append=True)
    cert.private_key_pem.write_to_path(files["key"])
    return files


@pytest.fixture
def tls_emu(tls_files: dict[str, str], request: pytest.FixtureRequest) -> Iterator[object]:
    """A running emulator over TLS (``wss://``, ``https://``) with ``tls_files``' certificate.

    Its ``state_delay`` is the fixture's indirect parameter, 0 when not parametrized.
    """
    from swsync.emulator import Emulator

    delay = getattr(request, "param", 0.0)
    with Emulator(state_delay=delay, certfile=tls_files["cert"], keyfile=tls_files["key"]) as emulator:
        assert emulator.relay_url.startswith("wss://")
        yield emulator


@pytest.fixture
def emu() -> Iterator[object]:
    """A running emulator with zero state delay, closed after the test."""
    from swsync.emulator import Emulator

    with Emulator(state_delay=0.0) as emulator:
        yield emulator


@pytest.fixture(scope="session")
def redis_server() -> Iterator[object]:
    """A real ``redis-server`` for the whole session (``.url``, ``.port``, ``.db_url(n)``).

    Started on a free port in a temporary directory and stopped by PID at the end.
    Tests share it: use your own key prefix or logical database, or flush what you use.
    """
    from .support.redisd import RedisServer

    server = RedisServer().start()
    try:
        yield server
    finally:
        server.close()


@pytest.fixture
def clean_signalwire_env(monkeypatch: pytest.MonkeyPatch) -> None:
    """Remove the ``SIGNALWIRE_*`` variables swsync reads (see ``helpers.ENV_VARS``)."""
    for name in ENV_VARS:
        monkeypatch.delenv(name, raising=False)


@pytest.fixture
def env(emu: Any, monkeypatch: pytest.MonkeyPatch) -> Any:
    """Point the SIGNALWIRE_* variables at the emulator (RELAY-style ws:// space)."""
    monkeypatch.setenv("SIGNALWIRE_PROJECT_ID", emu.project)
    monkeypatch.setenv("SIGNALWIRE_API_TOKEN", emu.token)
    monkeypatch.setenv("SIGNALWIRE_SPACE", emu.relay_url)
    return emu


@pytest.fixture
def rsps() -> Iterator[Any]:
    """A ``responses`` mock of the HTTP boundary; unused registrations are allowed."""
    import responses

    with responses.RequestsMock(assert_all_requests_are_fired=False) as mock:
        yield mock


@pytest.fixture
def rest() -> Iterator[Any]:
    """A :class:`~swsync.RestClient` for ``example.signalwire.com`` (pair it with ``rsps``)."""
    from swsync import RestClient

    with RestClient(PROJECT, TOKEN, "example.signalwire.com") as client:
        yield client


@pytest.fixture
def slow_emu() -> Iterator[object]:
    """An emulator whose messages take 50 ms per state (so a test can act mid-flight)."""
    from swsync.emulator import Emulator

    with Emulator(state_delay=0.05) as emu:
        yield emu


@pytest.fixture
def proxy(slow_emu: Any) -> Iterator[object]:
    """A TCP proxy in front of ``slow_emu`` that a test can cut (see tests/support/proxy.py)."""
    from .support.proxy import TcpProxy

    p = TcpProxy(slow_emu.port)
    yield p
    p.close()


@pytest.fixture
def sleeps(monkeypatch: pytest.MonkeyPatch) -> list[float]:
    """Record the REST client's retry delays instead of sleeping; jitter always picks its upper bound."""
    from swsync.rest import _transport

    delays: list[float] = []
    monkeypatch.setattr(_transport, "_sleep", delays.append)
    monkeypatch.setattr(_transport, "_uniform", lambda low, high: high)
    return delays


@pytest.fixture
def clients() -> Iterator[list[WireClient]]:
    """The bare RELAY clients a test opens (``helpers.open_client``), closed afterwards."""
    made: list[WireClient] = []
    yield made
    for c in made:
        c.close()


@pytest.fixture
def api(emu: Any) -> Iterator[Api]:
    """The ``emu`` fixture's REST API over plain ``requests``."""
    a = Api(emu)
    yield a
    a.close()


@pytest.fixture
def hook() -> Iterator[Hook]:
    """A running webhook receiver recording every POST (``hook.url``, ``hook.next()``)."""
    h = Hook()
    yield h
    h.close()
