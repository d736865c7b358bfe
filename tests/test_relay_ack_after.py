"""``on_message(handler, ack_after=True)``: the inbound event is ACKed only after the handler."""

from __future__ import annotations

import threading
from typing import Any

from swsync import RelayClient
from swsync.relay import Message


def make_client(emu: Any, **kw: Any) -> RelayClient:
    return RelayClient(emu.project, emu.token, emu.relay_url, contexts=["office"], **kw)


def test_the_ack_waits_for_the_handler(emu: Any) -> None:
    started, release = threading.Event(), threading.Event()
    seen: list[str] = []

    def handler(message: Message) -> None:
        seen.append(message.message_id)
        started.set()
        assert release.wait(10)

    with make_client(emu) as client:
        client.on_message(handler, ack_after=True)
        mid = emu.inject_inbound(to_number="+15551110000", from_number="+15552220000", body="hi",
                                 context="office")
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

    with make_client(emu) as client:
        client.on_message(handler)
        emu.inject_inbound(to_number="+15551110000", from_number="+15552220000", body="hi",
                           context="office")
        assert started.wait(5)
        emu.wait_until(lambda: emu.unacked_events == 0)  # ACKed while the handler still runs
        release.set()


def test_a_failed_handler_leaves_the_event_unacked_and_it_comes_again(emu: Any) -> None:
    calls: list[str] = []
    done = threading.Event()

    client = make_client(emu)

    @client.on_message(ack_after=True)
    def handler(message: Message) -> None:
        calls.append(message.message_id)
        if len(calls) == 1:
            raise RuntimeError("queue unavailable")
        done.set()

    with client:
        mid = emu.inject_inbound(to_number="+15551110000", from_number="+15552220000", body="hi",
                                 context="office")
        emu.wait_until(lambda: len(calls) == 1)
        assert emu.unacked_events == 1
        emu.drop_connections()  # the client resumes its session; the server redelivers
        assert done.wait(15)
        emu.wait_until(lambda: emu.unacked_events == 0, timeout=10)
    assert calls == [mid, mid]
