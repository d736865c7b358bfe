"""RelayClient against the real emulator over loopback websockets."""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from functools import partial

import pytest

import swsync
from swsync import (
    AuthenticationError,
    ConnectionClosedError,
    Message,
    MessageStateEvent,
    RelayClient,
    RelayError,
    WaitTimeout,
)
from swsync.emulator import FAILED_NUMBER, NO_DLR_NUMBER, REJECTED_NUMBER, UNDELIVERED_NUMBER, Emulator

from ..helpers import make_client

TO = "+15557654321"
FROM = "+15551234567"


office_client = partial(make_client, contexts=["office"])  # these tests receive on context "office"


@pytest.fixture
def client(emu: Emulator) -> Iterator[RelayClient]:
    with office_client(emu) as c:
        yield c


def swsync_threads() -> list[str]:
    return [t.name for t in threading.enumerate() if t.name.startswith("swsync-") and t.name != "swsync-emulator"]


class TestConnect:
    def test_connect_and_disconnect_join_every_thread(self, emu: Emulator) -> None:
        before = swsync_threads()
        with office_client(emu) as c:
            assert c.connected and c.protocol.startswith("signalwire_")
            assert set(swsync_threads()) - set(before)  # the reader and dispatcher run
        assert not c.connected
        assert swsync_threads() == before

    def test_bad_token_raises_authentication_error_once(self, emu: Emulator) -> None:
        c = RelayClient(project=emu.project, token="PTwrong", host=emu.relay_url)
        with pytest.raises(AuthenticationError) as info:
            c.connect()
        assert info.value.code == -32002
        assert "PTwrong" not in str(info.value)
        assert emu.stats.connections == 0
        assert not c.connected and swsync_threads() == []

    def test_jwt_token(self, emu: Emulator) -> None:
        with RelayClient(jwt_token=emu.jwt_token, host=emu.relay_url) as c:
            assert c.send_message(to_number=TO, from_number=FROM, body="hi").wait(5).message_state == "delivered"

    def test_unreachable_server_raises_connection_closed(self) -> None:
        from socket import socket

        with socket() as s:  # a port with nothing listening
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        c = RelayClient(project="p", token="t", host=f"ws://127.0.0.1:{port}", connect_timeout=5)
        with pytest.raises(ConnectionClosedError, match="could not connect"):
            c.connect()

    def test_send_before_connect_is_a_clear_error(self, emu: Emulator) -> None:
        c = office_client(emu)
        with pytest.raises(ConnectionClosedError, match="not connected"):
            c.send_message(to_number=TO, from_number=FROM, body="x")

    def test_reconnect_after_disconnect(self, emu: Emulator) -> None:
        c = office_client(emu)
        for _ in range(2):
            with c:
                assert c.send_message(to_number=TO, from_number=FROM, body="x").wait(5).message_state == "delivered"
        assert emu.stats.connections == 2


class TestSend:
    def test_body_tags_context_and_progression(self, client: RelayClient, emu: Emulator) -> None:
        msg = client.send_message(
            to_number=TO, from_number=FROM, body="Your code is 123456", tags=["otp"], context="office", region="us"
        )
        assert isinstance(msg, Message) and msg.direction == "outbound"
        event = msg.wait(timeout=5)
        assert isinstance(event, MessageStateEvent) and event.message_state == "delivered"
        assert msg.state == "delivered" and msg.is_done and msg.result is event and msg.reason == ""
        assert msg.segments == 1 and msg.tags == ["otp"] and msg.context == "office"
        stored = emu.get_message(msg.message_id)
        assert stored is not None and stored["body"] == "Your code is 123456"

    def test_media_only(self, client: RelayClient) -> None:
        msg = client.send_message(to_number=TO, from_number=FROM, media=["https://example.com/a.png"])
        assert msg.wait(5).message_state == "delivered"
        assert msg.media == ["https://example.com/a.png"] and msg.body is None

    def test_default_context_is_the_protocol(self, client: RelayClient) -> None:
        msg = client.send_message(to_number=TO, from_number=FROM, body="x")
        assert msg.context == client.protocol

    @pytest.mark.parametrize(
        ("number", "state", "reason"),
        [(UNDELIVERED_NUMBER, "undelivered", "carrier_blocked"), (FAILED_NUMBER, "failed", "unreachable")],
    )
    def test_failure_states_and_reasons(self, client: RelayClient, number: str, state: str, reason: str) -> None:
        msg = client.send_message(to_number=number, from_number=FROM, body="x")
        event = msg.wait(5)
        assert (event.message_state, event.reason) == (state, reason)
        assert (msg.state, msg.reason) == (state, reason)

    def test_refused_send_raises_relay_error(self, client: RelayClient) -> None:
        with pytest.raises(RelayError) as info:
            client.send_message(to_number=REJECTED_NUMBER, from_number=FROM, body="x")
        assert info.value.code == 422

    @pytest.mark.parametrize(
        "kwargs",
        [
            {"body": None},
            {"body": ""},
            {"body": "x" * 1601},
            {"media": [f"https://e.com/{i}.png" for i in range(11)]},
            {"to_number": "5551234567"},
            {"from_number": "+1 555 123"},
            {"media": "https://e.com/a.png"},
            {"tags": "otp"},
        ],
    )
    def test_bad_arguments_raise_before_sending(self, client: RelayClient, emu: Emulator, kwargs: dict) -> None:
        args = {"to_number": TO, "from_number": FROM, "body": "hi", **kwargs}
        with pytest.raises(ValueError):
            client.send_message(**args)
        assert emu.stats.accepted_sends == 0 and emu.stats.send_requests == 0

    def test_execute_raw(self, client: RelayClient) -> None:
        result = client.execute("signalwire.ping", {})
        assert isinstance(result.get("timestamp"), float)
        with pytest.raises(RelayError) as info:
            client.execute("no.such.method", {})
        assert info.value.code == -32601


class TestWait:
    def test_returns_at_once_when_done(self, client: RelayClient) -> None:
        msg = client.send_message(to_number=TO, from_number=FROM, body="x")
        first = msg.wait(5)
        assert msg.wait(0) is first and msg.wait() is first

    def test_times_out_with_wait_timeout(self, client: RelayClient) -> None:
        msg = client.send_message(to_number=NO_DLR_NUMBER, from_number=FROM, body="mms")
        with pytest.raises(WaitTimeout) as info:
            msg.wait(timeout=0.2)
        assert isinstance(info.value, TimeoutError)
        assert not msg.is_done and msg.result is None

    def test_many_threads_wait_on_one_message(self) -> None:
        with Emulator(state_delay=0.05) as emu, office_client(emu) as c:
            msg = c.send_message(to_number=TO, from_number=FROM, body="x")
            with ThreadPoolExecutor(16) as pool:
                results = list(pool.map(lambda _: msg.wait(10).message_state, range(16)))
        assert results == ["delivered"] * 16

    def test_waiters_woken_on_disconnect(self, emu: Emulator) -> None:
        c = office_client(emu).connect()
        msg = c.send_message(to_number=NO_DLR_NUMBER, from_number=FROM, body="x")
        waiting = threading.Event()
        errors: list[BaseException] = []

        def waiter() -> None:
            waiting.set()
            try:
                msg.wait()  # no timeout: only the disconnect can end it
            except BaseException as exc:
                errors.append(exc)

        t = threading.Thread(target=waiter)
        t.start()
        assert waiting.wait(5)
        c.disconnect()
        t.join(10)
        assert not t.is_alive()
        assert len(errors) == 1 and isinstance(errors[0], ConnectionClosedError)


class TestHandlers:
    def test_on_and_on_completed_run_off_the_reader_in_order(self) -> None:
        with Emulator(state_delay=0.02) as emu, office_client(emu) as c:
            seen: list[tuple[str, str]] = []
            completed = threading.Event()
            done_events: list[MessageStateEvent] = []

            def on_completed(event: MessageStateEvent) -> None:
                done_events.append(event)
                completed.set()

            msg = c.send_message(to_number=TO, from_number=FROM, body="x", on_completed=on_completed)
            msg.on(lambda e: seen.append((e.message_state, threading.current_thread().name)))
            assert completed.wait(5)
        states = [s for s, _ in seen]
        assert states[-1] == "delivered" and states == sorted(
            states, key=["queued", "initiated", "sent", "delivered"].index
        )
        assert all(name.startswith("swsync-dispatch") for _, name in seen)
        assert done_events[0].message_state == "delivered"

    def test_handler_exception_is_logged_and_harmless(
        self, client: RelayClient, caplog: pytest.LogCaptureFixture
    ) -> None:
        ran = threading.Event()
        msg = client.send_message(to_number=TO, from_number=FROM, body="x", on_completed=lambda e: 1 / 0)
        msg.wait(5)
        client.send_message(to_number=TO, from_number=FROM, body="y", on_completed=lambda e: ran.set())
        assert ran.wait(5)
        assert "ZeroDivisionError" in caplog.text
        assert client.connected

    def test_callback_may_send_and_wait(self, client: RelayClient) -> None:
        replies: list[str] = []
        finished = threading.Event()

        def chain(event: MessageStateEvent) -> None:
            replies.append(client.send_message(to_number=TO, from_number=FROM, body="second").wait(5).message_state)
            finished.set()

        client.send_message(to_number=TO, from_number=FROM, body="first", on_completed=chain)
        assert finished.wait(10)
        assert replies == ["delivered"]

    def test_on_message_inbound(self, client: RelayClient, emu: Emulator) -> None:
        got: list[Message] = []
        arrived = threading.Event()

        @client.on_message
        def handler(message: Message) -> None:
            got.append(message)
            arrived.set()

        emu.inject_inbound(to_number=FROM, from_number=TO, body="STOP", context="office")
        assert arrived.wait(5)
        m = got[0]
        assert (m.direction, m.state, m.body, m.from_number, m.to_number) == ("inbound", "received", "STOP", TO, FROM)
        assert m.is_done and m.wait(0) is m.result

    def test_inbound_before_handler_is_buffered(self, client: RelayClient, emu: Emulator) -> None:
        emu.inject_inbound(to_number=FROM, from_number=TO, body="early", context="office")
        # A round trip on the same socket guarantees the injected event was read first.
        client.execute("signalwire.ping", {})
        got: list[str] = []
        arrived = threading.Event()
        client.on_message(lambda m: (got.append(m.body), arrived.set()))
        assert arrived.wait(5) and got == ["early"]

    def test_receive_and_unreceive_contexts(self, client: RelayClient, emu: Emulator) -> None:
        bodies: list[str] = []
        lock = threading.Lock()
        two = threading.Event()

        def handler(m: Message) -> None:
            with lock:
                bodies.append(m.body or "")
                if len(bodies) == 2:
                    two.set()

        client.on_message(handler)
        emu.inject_inbound(to_number=FROM, from_number=TO, body="nobody", context="sales")
        client.receive(["sales"])
        assert client.contexts == ["office", "sales"]
        emu.inject_inbound(to_number=FROM, from_number=TO, body="sales-1", context="sales")
        client.unreceive(["office"])
        emu.inject_inbound(to_number=FROM, from_number=TO, body="office-dropped", context="office")
        emu.inject_inbound(to_number=FROM, from_number=TO, body="sales-2", context="sales")
        assert two.wait(5)
        client.execute("signalwire.ping", {})
        assert bodies == ["sales-1", "sales-2"]


class TestConcurrencyAndRaces:
    def test_fifty_threads_send_concurrently(self, client: RelayClient, emu: Emulator) -> None:
        def one(i: int) -> tuple[str, str]:
            msg = client.send_message(to_number=TO, from_number=FROM, body=f"n{i}")
            return msg.message_id, msg.wait(10).message_state

        with ThreadPoolExecutor(50) as pool:
            results = list(pool.map(one, range(200)))
        assert len({mid for mid, _ in results}) == 200
        assert all(state == "delivered" for _, state in results)
        assert emu.stats.accepted_sends == 200

    def test_state_events_before_the_send_response_are_not_lost(self, client: RelayClient, emu: Emulator) -> None:
        emu.faults.state_before_response = True
        msgs = [
            client.send_message(to_number=n, from_number=FROM, body="x")
            for n in (TO, UNDELIVERED_NUMBER, FAILED_NUMBER) * 10
        ]
        states = [m.wait(5).message_state for m in msgs]
        assert states == ["delivered", "undelivered", "failed"] * 10

    def test_malformed_and_unknown_frames_are_skipped(
        self, client: RelayClient, emu: Emulator, caplog: pytest.LogCaptureFixture
    ) -> None:
        caplog.set_level(logging.DEBUG, logger="swsync")
        protocol = client.protocol
        for raw in (
            "not json",
            "[1,2]",
            '{"jsonrpc":"2.0"}',
            '{"jsonrpc":"2.0","id":"x","method":"weird.thing"}',
            '{"jsonrpc":"2.0","id":"e","method":"signalwire.event","params":{"event_type":"messaging.state","params":{"message_id":7}}}',
            '{"jsonrpc":"2.0","id":"f","method":"signalwire.event","params":{"event_type":"surprise.event","params":{}}}',
            '{"jsonrpc":"2.0","id":"nobody-asked","result":{}}',
        ):
            emu.send_raw(raw)
        assert (
            client.send_message(to_number=TO, from_number=FROM, body="still fine").wait(5).message_state == "delivered"
        )
        assert client.protocol == protocol and emu.stats.connections == 1
        assert "not valid JSON" in caplog.text

    def test_repr_and_logs_never_show_secrets(self, emu: Emulator, caplog: pytest.LogCaptureFixture) -> None:
        caplog.set_level(logging.DEBUG)
        c = office_client(emu)
        with c:
            c.send_message(to_number=TO, from_number=FROM, body="x").wait(5)
            text = repr(c) + caplog.text
        assert emu.token not in text and emu.project not in repr(c)


def test_run_returns_when_disconnected_from_another_thread(emu: Emulator) -> None:
    c = office_client(emu)
    c.on_message(lambda m: None)
    t = threading.Thread(target=c.run)
    t.start()
    emu.wait_for_clients(1, timeout=5)
    c.disconnect()
    t.join(10)
    assert not t.is_alive() and not c.connected


def test_top_level_exports() -> None:
    assert swsync.WaitTimeout.__mro__[1:3] == (swsync.SwsyncError, TimeoutError)
    assert issubclass(swsync.ConfigurationError, ValueError)
    assert issubclass(swsync.AuthenticationError, swsync.RelayError)
