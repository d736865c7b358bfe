"""``on_message(handler, ack_after=True)``: the inbound event is ACKed only after the handler."""

from __future__ import annotations

import threading
from functools import partial
from typing import Any

from swsync.relay import Message

from ..helpers import make_client

office_client = partial(make_client, contexts=["office"])  # receiving where inject_when_settled sends


def inject_when_settled(emu: Any) -> str:
    """Inject one inbound message once the connect's own events are ACKed.

    The authorization-state event's ACK can still be on its way on a loaded machine,
    and the tests count un-ACKed events.
    """
    emu.wait_until(lambda: emu.unacked_events == 0)
    mid: str = emu.inject_inbound(to_number="+15551110000", from_number="+15552220000", body="hi", context="office")
    return mid


def test_the_ack_waits_for_the_handler(emu: Any) -> None:
    started, release = threading.Event(), threading.Event()
    seen: list[str] = []

    def handler(message: Message) -> None:
        seen.append(message.message_id)
        started.set()
        assert release.wait(10)

    with office_client(emu) as client:
        client.on_message(handler, ack_after=True)
        mid = inject_when_settled(emu)
        assert started.wait(5)
        assert emu.unacked_events == 1  # the handler has not returned: no ACK yet
        release.set()
        emu.wait_until(lambda: emu.unacked_events == 0)
    assert seen == [mid]


def test_plain_handlers_are_acked_first(emu: Any) -> None:
    started, release = threading.Event(), threading.Event()

    def handler(message: Message) -> None:
        started.set()
        assert release.wait(10)

    with office_client(emu) as client:
        client.on_message(handler)
        emu.inject_inbound(to_number="+15551110000", from_number="+15552220000", body="hi", context="office")
        assert started.wait(5)
        emu.wait_until(lambda: emu.unacked_events == 0)  # ACKed while the handler still runs
        release.set()


def test_a_failed_handler_leaves_the_event_unacked_and_it_comes_again(emu: Any) -> None:
    calls: list[str] = []
    done = threading.Event()

    client = office_client(emu)

    @client.on_message(ack_after=True)
    def handler(message: Message) -> None:
        calls.append(message.message_id)
        if len(calls) == 1:
            raise RuntimeError("queue unavailable")
        done.set()

    with client:
        mid = emu.inject_inbound(to_number="+15551110000", from_number="+15552220000", body="hi", context="office")
        emu.wait_until(lambda: len(calls) == 1)
        assert emu.unacked_events == 1
        emu.drop_connections()  # the client resumes its session; the server redelivers
        assert done.wait(15)
        emu.wait_until(lambda: emu.unacked_events == 0, timeout=10)
    assert calls == [mid, mid]


def test_a_copy_redelivered_during_the_hand_off_waits_for_its_outcome(emu: Any) -> None:
    # The session drops while the handler still runs; the resumed session redelivers
    # the un-ACKed event. That copy is not handled twice, and it is not ACKed before
    # the hand-off succeeded either: a failed hand-off must leave the event with the server.
    started, release = threading.Event(), threading.Event()
    calls: list[str] = []
    outcome = {"fail": True}

    def handler(message: Message) -> None:
        calls.append(message.message_id)
        started.set()
        assert release.wait(10)
        if outcome["fail"]:
            raise RuntimeError("broker unavailable")

    with office_client(emu) as client:
        client.on_message(handler, ack_after=True)
        mid = inject_when_settled(emu)
        assert started.wait(5)
        emu.drop_connections()
        emu.wait_for_clients(1, timeout=15)  # resumed: the copy is redelivered and held
        emu.wait_until(lambda: len(client._inbound._held_acks.get(mid) or ()) == 1, timeout=10)
        client.execute("signalwire.ping", {})  # the server has read everything written before
        assert emu.unacked_events == 1 and calls == [mid]
        release.set()  # the hand-off fails: nothing is ACKed
        emu.wait_until(lambda: len(calls) == 1 and not client._inbound._held_acks)
        assert emu.unacked_events == 1
        started.clear()
        outcome["fail"] = False
        emu.drop_connections()  # redelivered again: handled, and ACKed this time
        assert started.wait(15)
        emu.wait_until(lambda: emu.unacked_events == 0, timeout=10)
    assert calls == [mid, mid]
