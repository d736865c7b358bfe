"""Shared fixtures: a fresh emulator per test and a check that no swsync thread leaks."""

from __future__ import annotations

import threading
from collections.abc import Iterator

import pytest


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


@pytest.fixture
def emu() -> Iterator[object]:
    """A running emulator with zero state delay, closed after the test."""
    from swsync.emulator import Emulator

    with Emulator(state_delay=0.0) as emulator:
        yield emulator
