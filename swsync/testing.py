"""pytest plugin: a local SignalWire emulator and clients connected to it, as fixtures.

Installed with swsync (entry point ``pytest11: swsync``), so the fixtures are
available in every test without imports::

    def test_alert_is_delivered(swsync_relay_client):
        message = swsync_relay_client.send_message("+15551234567", "+15559876543", "disk full")
        assert message.wait(timeout=5).message_state == "delivered"

Fixtures (all function-scoped):

* ``swsync_emulator``: a running :class:`~swsync.emulator.Emulator` (state_delay 0:
  every state change is sent at once), closed after the test.
* ``swsync_relay_client``: a connected :class:`~swsync.RelayClient` pointed at it,
  receiving on context ``"default"``; disconnected after the test.
* ``swsync_rest_client``: a :class:`~swsync.RestClient` pointed at it.
* ``swsync_emulator_options``: the keyword arguments the emulator is built with.

Change the emulator's options with a marker (per test, class or module)::

    @pytest.mark.swsync_emulator(state_delay=0.2)
    def test_progress(swsync_emulator): ...

or by overriding ``swsync_emulator_options`` in a ``conftest.py``, or indirectly::

    @pytest.mark.parametrize("swsync_emulator_options", [{"state_delay": 0.1}], indirect=True)

Marker arguments win over the options fixture. The fixtures skip the test with a
clear message when the emulator's dependency (aiohttp) is missing. Importing this
module is cheap: the emulator is imported only when a fixture is first used.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

import pytest

if TYPE_CHECKING:
    from .emulator import Emulator
    from .relay import RelayClient
    from .rest import RestClient

__all__ = [
    "DEFAULT_EMULATOR_OPTIONS",
    "swsync_emulator",
    "swsync_emulator_options",
    "swsync_relay_client",
    "swsync_rest_client",
]

#: What ``swsync_emulator`` passes to ``Emulator(...)`` unless told otherwise.
DEFAULT_EMULATOR_OPTIONS: dict[str, Any] = {"state_delay": 0.0}

_MARKER = "swsync_emulator"
_MISSING = "the swsync_emulator fixture needs aiohttp: pip install 'swsync[emulator]'"


def pytest_configure(config: pytest.Config) -> None:
    """Register the ``swsync_emulator`` marker."""
    config.addinivalue_line(
        "markers",
        f"{_MARKER}(**options): keyword arguments for the Emulator of the "
        "swsync_emulator fixture, e.g. state_delay=0.2",
    )


@pytest.fixture
def swsync_emulator_options(request: pytest.FixtureRequest) -> dict[str, Any]:
    """Keyword arguments for the test's ``Emulator`` (override or parametrize indirectly).

    Defaults to ``{"state_delay": 0.0}``; an indirect parameter (a dict) updates them.
    """
    options = dict(DEFAULT_EMULATOR_OPTIONS)
    options.update(getattr(request, "param", None) or {})
    return options


@pytest.fixture
def swsync_emulator(
    request: pytest.FixtureRequest, swsync_emulator_options: dict[str, Any]
) -> Iterator[Emulator]:
    """A running local emulator (RELAY and REST on one 127.0.0.1 port), closed after the test.

    Its ``project``, ``token``, ``relay_url`` and ``rest_url`` are what a client
    needs; ``inject_inbound(...)`` simulates an inbound message. Skips the test
    when aiohttp (``swsync[emulator]``) is not installed.
    """
    try:
        import aiohttp  # noqa: F401  - the emulator's server library
    except ImportError:
        pytest.skip(_MISSING)
    from .emulator import Emulator

    options = dict(swsync_emulator_options)
    # Closest marker last, so a test's marker beats its class's and module's.
    for marker in reversed(list(request.node.iter_markers(_MARKER))):
        if marker.args:
            raise pytest.UsageError(f"@pytest.mark.{_MARKER} takes keyword arguments only")
        options.update(marker.kwargs)
    with Emulator(**options) as emulator:
        yield emulator


@pytest.fixture
def swsync_relay_client(swsync_emulator: Emulator) -> Iterator[RelayClient]:
    """A ``RelayClient`` connected to ``swsync_emulator`` (context ``"default"``).

    Disconnected after the test. For a TLS emulator, build the client yourself
    with ``ca_file=``.
    """
    from .relay import RelayClient

    client = RelayClient(
        project=swsync_emulator.project,
        token=swsync_emulator.token,
        host=swsync_emulator.relay_url,
        contexts=["default"],
    )
    client.connect()
    try:
        yield client
    finally:
        client.disconnect()


@pytest.fixture
def swsync_rest_client(swsync_emulator: Emulator) -> Iterator[RestClient]:
    """A ``RestClient`` for ``swsync_emulator``'s REST API, closed after the test."""
    from .rest import RestClient

    rest = RestClient(
        project=swsync_emulator.project,
        token=swsync_emulator.token,
        space=swsync_emulator.rest_url,
    )
    try:
        yield rest
    finally:
        rest.close()
