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
* ``swsync_outbox``: an :class:`Outbox` on ``swsync_emulator``: what the code under
  test sent, helpers to assert on it, and ``reply()`` to answer as the phone.

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

import json
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any
from urllib.parse import quote

import pytest

if TYPE_CHECKING:
    from .emulator import Emulator
    from .relay import RelayClient
    from .rest import RestClient

__all__ = [
    "DEFAULT_EMULATOR_OPTIONS",
    "Outbox",
    "SentMessage",
    "swsync_emulator",
    "swsync_emulator_options",
    "swsync_outbox",
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
def swsync_emulator(request: pytest.FixtureRequest, swsync_emulator_options: dict[str, Any]) -> Iterator[Emulator]:
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


# ----------------------------------------------------------------------------- outbox


@dataclass(frozen=True)
class SentMessage:
    """One message the code under test sent, as the emulator saw it (a snapshot).

    ``status`` and ``reason`` are as of when the outbox was read; ``from_``
    is the sender (your number), ``to`` the phone.
    """

    sid: str
    to: str
    from_: str
    body: str | None
    media: tuple[str, ...]
    status: str
    reason: str | None
    segments: int
    tags: tuple[str, ...]
    context: str | None
    direction: str

    @classmethod
    def from_summary(cls, data: dict[str, Any]) -> SentMessage:
        """Build one from a message summary of the emulator's JSON API."""
        return cls(
            sid=data["sid"], to=data["to"], from_=data["from"], body=data.get("body"),
            media=tuple(data.get("media") or ()), status=data["status"], reason=data.get("reason"),
            segments=int(data.get("segments") or 1), tags=tuple(data.get("tags") or ()),
            context=data.get("context"), direction=data["direction"],
        )  # fmt: skip


class Outbox:
    """What the code under test sent through an emulator, like pytest-django's ``mailoutbox``.

    Reads the emulator's JSON API (``/_emulator/api/``), so it works against an
    emulator in this process (``Outbox.for_emulator(emu)``) or one running
    elsewhere (``Outbox("http://127.0.0.1:8765", auth=(project, token))``).
    Iterating, ``len()`` and indexing read the outbound messages afresh, oldest
    first. ``reply()`` answers as the phone: an inbound message over RELAY and to
    the inbound webhook, exactly like ``Emulator.inject_inbound``.

    Thread-safe (each call is one HTTP request on its own connection).
    """

    def __init__(self, url: str, *, auth: tuple[str, str] | None = None, timeout: float = 10.0) -> None:
        self.api_url = url.rstrip("/") + "/_emulator/api/"
        self.auth = auth
        self.timeout = timeout

    @classmethod
    def for_emulator(cls, emulator: Emulator) -> Outbox:
        """The outbox of an :class:`~swsync.emulator.Emulator` (its credentials included)."""
        return cls(emulator.rest_url, auth=(emulator.project, emulator.token))

    def __repr__(self) -> str:
        return f"<Outbox {self.api_url!r}>"

    def _call(
        self,
        method: str,
        path: str,
        *,
        params: dict[str, Any] | None = None,
        body: dict[str, Any] | None = None,
        timeout: float | None = None,
    ) -> Any:
        import requests

        resp = requests.request(
            method, self.api_url + path, params=params, json=body, auth=self.auth, timeout=timeout or self.timeout
        )
        if resp.status_code == 408:
            raise TimeoutError(resp.json().get("message", "timed out"))
        if resp.status_code >= 400:
            try:
                message = resp.json().get("message")
            except ValueError:
                message = resp.text
            raise AssertionError(f"emulator API {method} {path}: HTTP {resp.status_code}: {message}")
        return None if resp.status_code == 204 else resp.json()

    @staticmethod
    def _filters(to: str | None, from_: str | None, contains: str | None, state: str | None) -> dict[str, str]:
        wanted = {"direction": "outbound", "to": to, "from": from_, "contains": contains, "state": state}
        return {k: v for k, v in wanted.items() if v is not None}

    def filter(
        self, *, to: str | None = None, from_: str | None = None, contains: str | None = None, state: str | None = None
    ) -> list[SentMessage]:
        """The sent messages that match every given filter, oldest first.

        ``contains`` is a case-insensitive substring of the body; ``state`` one
        status or a comma-separated list.
        """
        found = self._call("GET", "messages", params=self._filters(to, from_, contains, state))
        return [SentMessage.from_summary(m) for m in reversed(found["messages"])]

    @property
    def messages(self) -> list[SentMessage]:
        """Every message sent so far (RELAY, REST and cXML replies), oldest first."""
        return self.filter()

    def __iter__(self) -> Iterator[SentMessage]:
        return iter(self.messages)

    def __len__(self) -> int:
        return len(self.messages)

    def __getitem__(self, index: int) -> SentMessage:
        return self.messages[index]

    @property
    def last(self) -> SentMessage:
        """The newest sent message.

        Raises:
            AssertionError: nothing was sent.
        """
        found = self.messages
        if not found:
            raise AssertionError("nothing was sent")
        return found[-1]

    def wait_for(
        self,
        *,
        to: str | None = None,
        from_: str | None = None,
        contains: str | None = None,
        state: str | None = None,
        count: int = 1,
        timeout: float = 5.0,
    ) -> list[SentMessage]:
        """Block until at least ``count`` sent messages match (long poll); return them, oldest first.

        For code under test that sends from another thread or process.

        Raises:
            TimeoutError: fewer than ``count`` matched within ``timeout`` seconds.
        """
        params = self._filters(to, from_, contains, state)
        params.update(count=str(count), timeout=str(timeout))
        found = self._call("GET", "wait", params=params, timeout=timeout + self.timeout)
        return [SentMessage.from_summary(m) for m in reversed(found["messages"])]

    def assert_sent(
        self,
        *,
        to: str | None = None,
        from_: str | None = None,
        body: str | None = None,
        contains: str | None = None,
        count: int | None = None,
    ) -> SentMessage:
        """Assert that a message matching every given filter was sent; return the newest one.

        ``body`` must match exactly; ``count`` asks for exactly that many matches.

        Raises:
            AssertionError: no match (or not ``count``), with every sent message listed.
        """
        found = [m for m in self.filter(to=to, from_=from_, contains=contains) if body is None or m.body == body]
        if found and (count is None or len(found) == count):
            return found[-1]
        wanted = {k: v for k, v in {"to": to, "from_": from_, "body": body, "contains": contains}.items() if v}
        seen = "\n".join(f"  {m.from_} -> {m.to}: {m.body!r} ({m.status})" for m in self.messages) or "  (nothing)"
        how_many = f"{count} message(s)" if count is not None else "a message"
        raise AssertionError(f"expected {how_many} matching {wanted}, found {len(found)}; sent:\n{seen}")

    def assert_nothing_sent(self) -> None:
        """Assert that nothing was sent.

        Raises:
            AssertionError: something was, listed.
        """
        found = self.messages
        if found:
            raise AssertionError(
                f"expected no message, {len(found)} sent: "
                + json.dumps([f"{m.to}: {m.body}" for m in found], ensure_ascii=False)
            )

    def reply(
        self,
        message: SentMessage | str,
        body: str | None = None,
        *,
        from_: str | None = None,
        media: Sequence[str] | None = None,
        context: str = "default",
    ) -> str:
        """Answer as the phone; return the inbound message's sid.

        ``message`` is a :class:`SentMessage` (the reply goes from its ``to`` back
        to its ``from_``) or your number to text (then give ``from_``, the phone).
        It reaches a RELAY client receiving ``context`` and the inbound webhook.
        """
        sender: str | None
        if isinstance(message, SentMessage):
            to, sender = message.from_, from_ or message.to
        else:
            to, sender = message, from_
        if sender is None:
            raise TypeError("reply(number, ...) needs from_=, the phone that answers")
        payload: dict[str, Any] = {"to": to, "from": sender, "context": context, "body": body}
        if media:
            payload["media"] = list(media)
        return str(self._call("POST", "inbound", body=payload)["sid"])

    def get(self, sid: str) -> dict[str, Any]:
        """One message with its state timeline and the webhooks posted for it (see docs/emulator.md)."""
        return dict(self._call("GET", f"messages/{quote(sid, safe='')}"))

    def clear(self) -> None:
        """Forget every message (sent and received) in the emulator."""
        self._call("DELETE", "messages")


@pytest.fixture
def swsync_outbox(swsync_emulator: Emulator) -> Outbox:
    """An :class:`Outbox` on ``swsync_emulator``: what the code under test sent.

    ``len(swsync_outbox)``, ``swsync_outbox[0].body``, ``swsync_outbox.assert_sent(to=...)``,
    ``swsync_outbox.wait_for(contains=...)`` and ``swsync_outbox.reply(message, "YES")``.
    """
    return Outbox.for_emulator(swsync_emulator)
