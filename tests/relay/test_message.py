"""Message, events, callbacks, timeouts, media URLs and contexts of the RELAY client."""

from __future__ import annotations

import copy
import math
import multiprocessing
import os
import pickle
import queue
import subprocess
import sys
import textwrap
import threading
from collections.abc import Iterator
from typing import Any
from urllib.parse import parse_qsl

import pytest
import responses

from swsync import (
    AuthenticationError,
    ConfigurationError,
    ConnectionClosedError,
    MessageReceiveEvent,
    MessageStateEvent,
    OptedOutError,
    OutcomeUnknownError,
    RateLimited,
    RelayClient,
    RelayError,
    RelayEvent,
    RestClient,
    RestError,
    WaitTimeout,
    _validate,
)
from swsync.emulator import FAILED_NUMBER, NO_DLR_NUMBER, Emulator
from swsync.errors import RestConnectionError, RestTimeout
from swsync.relay.dispatcher import Dispatcher
from swsync.relay.message import Message, MessageTracker

from ..helpers import credentials, make_client, stop_process

TO = "+15557654321"
FROM = "+15551234567"


@pytest.fixture
def client(emu: Emulator) -> Iterator[RelayClient]:
    with make_client(emu, contexts=["office"]) as c:
        yield c


def run_script(code: str, *args: str, timeout: float = 30) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ, PYTHONPATH=os.getcwd())
    return subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code), *args], capture_output=True, text=True, timeout=timeout, env=env
    )


# -------------------------------------------------------- sends on a named context


class TestContexts:
    def test_send_on_a_received_named_context_is_tracked(self, emu: Emulator) -> None:
        with make_client(emu, contexts=["billing"]) as c:
            msg = c.send_message(to_number=TO, from_number=FROM, body="x", context="billing")
            assert msg.wait(5).message_state == "delivered" and msg.context == "billing"

    def test_send_after_receive_is_tracked(self, client: RelayClient) -> None:
        client.receive(["billing"])
        msg = client.send_message(to_number=TO, from_number=FROM, body="x", context="billing")
        assert msg.wait(5).message_state == "delivered"

    def test_own_protocol_is_always_received(self, client: RelayClient) -> None:
        msg = client.send_message(to_number=TO, from_number=FROM, body="x", context=client.protocol)
        assert msg.wait(5).message_state == "delivered"

    def test_unreceived_context_raises_at_once_naming_the_fix(self, client: RelayClient, emu: Emulator) -> None:
        with pytest.raises(ValueError) as info:
            client.send_message(to_number=TO, from_number=FROM, body="x", context="billing")
        text = str(info.value)
        assert "contexts=['billing']" in text and "receive(['billing'])" in text
        assert "check_context=False" in text
        assert emu.stats.send_requests == 0  # nothing was sent

    def test_unreceive_makes_the_context_unusable_again(self, client: RelayClient) -> None:
        client.unreceive(["office"])
        with pytest.raises(ValueError, match="not one this client receives"):
            client.send_message(to_number=TO, from_number=FROM, body="x", context="office")

    def test_check_context_false_sends_anyway(self, client: RelayClient, emu: Emulator) -> None:
        msg = client.send_message(to_number=TO, from_number=FROM, body="x", context="billing", check_context=False)
        assert emu.wait_for_status(msg.message_id, "delivered")["context"] == "billing"


# ------------------------------------------------------------------ callback errors


class TestCallbackErrors:
    @pytest.mark.parametrize("exc", [SystemExit(3), KeyboardInterrupt(), GeneratorExit(), ZeroDivisionError()])
    def test_dispatcher_survives_any_exception(self, exc: BaseException, caplog: pytest.LogCaptureFixture) -> None:
        d = Dispatcher()
        ran = threading.Event()

        def boom() -> None:
            raise exc

        d.submit("k", boom)
        d.submit("k", ran.set)
        try:
            assert ran.wait(5)
            assert all(t.is_alive() for t in d.threads)
        finally:
            d.stop()
        assert type(exc).__name__ in caplog.text and "raised" in caplog.text

    def test_system_exit_in_on_message_keeps_later_messages(
        self, client: RelayClient, emu: Emulator, caplog: pytest.LogCaptureFixture
    ) -> None:
        got: queue.SimpleQueue[str] = queue.SimpleQueue()

        @client.on_message
        def handler(message: Message) -> None:
            got.put(message.body or "")
            if message.body == "exit":
                sys.exit(1)

        @client.on_message
        def second(message: Message) -> None:  # still runs after the first one raised
            got.put("second:" + (message.body or ""))

        emu.inject_inbound(to_number=FROM, from_number=TO, body="exit", context="office")
        assert [got.get(timeout=5), got.get(timeout=5)] == ["exit", "second:exit"]
        emu.inject_inbound(to_number=FROM, from_number=TO, body="after", context="office")
        assert [got.get(timeout=5), got.get(timeout=5)] == ["after", "second:after"]
        assert "SystemExit" in caplog.text

    def test_system_exit_in_on_completed_keeps_dispatching(self, client: RelayClient) -> None:
        first = client.send_message(to_number=TO, from_number=FROM, body="x", on_completed=lambda e: sys.exit(2))
        first.wait(5)
        done: queue.SimpleQueue[str] = queue.SimpleQueue()
        client.send_message(to_number=TO, from_number=FROM, body="y", on_completed=lambda e: done.put(e.message_state))
        assert done.get(timeout=5) == "delivered"

    def test_unhandled_callback_error_goes_to_stderr_without_logging_config(self, emu: Emulator) -> None:
        code = """
            import sys
            from swsync import RelayClient
            project, token, url = sys.argv[1:4]
            def boom(event):
                raise ZeroDivisionError("from the callback")
            with RelayClient(project, token, url) as c:
                c.send_message("+15557654321", "+15551234567", "x", on_completed=boom).wait(5)
            print("finished")
        """
        proc = run_script(code, emu.project, emu.token, emu.relay_url)
        assert proc.returncode == 0, proc.stderr
        assert "finished" in proc.stdout
        assert "Exception in swsync callback" in proc.stderr
        assert "ZeroDivisionError: from the callback" in proc.stderr and "Traceback" in proc.stderr

    def test_configured_logging_gets_the_error_instead(self, emu: Emulator) -> None:
        code = """
            import logging, sys
            from swsync import RelayClient
            logging.basicConfig(stream=sys.stdout, format="LOG %(levelname)s %(name)s %(message)s")
            project, token, url = sys.argv[1:4]
            def boom(event):
                raise ZeroDivisionError("from the callback")
            with RelayClient(project, token, url) as c:
                c.send_message("+15557654321", "+15551234567", "x", on_completed=boom).wait(5)
        """
        proc = run_script(code, emu.project, emu.token, emu.relay_url)
        assert proc.returncode == 0, proc.stderr
        assert "LOG ERROR swsync.relay" in proc.stdout and "ZeroDivisionError" in proc.stdout
        assert "Exception in swsync" not in proc.stderr

    def test_logging_is_never_configured_by_swsync(self, emu: Emulator) -> None:
        code = """
            import logging, sys
            from swsync import RelayClient
            project, token, url = sys.argv[1:4]
            with RelayClient(project, token, url) as c:
                c.send_message("+15557654321", "+15551234567", "x", on_completed=lambda e: 1 / 0).wait(5)
            print(logging.getLogger().handlers, logging.getLogger().level)
        """
        proc = run_script(code, emu.project, emu.token, emu.relay_url)
        assert proc.stdout.strip() == "[] 30", proc.stderr


# -------------------------------------------------------------- pickle and copy


def _round_trips(obj: Any) -> list[Any]:
    return [pickle.loads(pickle.dumps(obj)), copy.copy(obj), copy.deepcopy(obj)]


def _send_and_wait(args: tuple[str, str, str, str]) -> tuple[RelayEvent, Message]:
    """A multiprocessing.Pool worker: send one message and return what users return."""
    project, token, url, to = args
    with RelayClient(project, token, url) as c:
        message = c.send_message(to, FROM, "from a pool worker")
        event = message.wait(10)
        return event, message


class TestPickleAndCopy:
    def test_events_round_trip(self) -> None:
        events: list[RelayEvent] = [
            MessageStateEvent(
                "messaging.state",
                {"message_id": "m1", "message_state": "failed", "reason": "unreachable"},
                12.5,
                "m1",
                "failed",
                "unreachable",
            ),
            MessageReceiveEvent("messaging.receive", {"message_id": "m2", "body": "hi"}, None, "m2"),
            RelayEvent("custom.event", {"a": [1, 2]}, 1.0),
        ]
        for event in events:
            for clone in _round_trips(event):
                assert type(clone) is type(event) and clone == event and repr(clone) == repr(event)
                with pytest.raises(AttributeError, match="immutable"):
                    clone.timestamp = 0  # type: ignore[misc]

    @pytest.mark.parametrize(
        "error",
        [
            WaitTimeout("late"),
            ConnectionClosedError("gone", may_have_been_sent=True),
            OutcomeUnknownError("accepted, outcome unknown", message_id="m1"),
            RelayError(-32602, "bad params"),
            AuthenticationError(-32002, "no"),
            ConfigurationError("missing"),
            RestError(404, "nope", code=20404, more_info="https://x", method="GET", url="https://e/x"),
            RestConnectionError("down", method="POST", url="https://e/x", may_have_been_sent=False),
            RestTimeout("slow", method="GET", url="https://e/x", may_have_been_sent=True),
            RateLimited("wait", key="+1555", retry_after=2.0),
            OptedOutError("stop", number="+1555"),
        ],
    )
    def test_errors_round_trip(self, error: Exception) -> None:
        for clone in _round_trips(error):
            assert type(clone) is type(error) and str(clone) == str(error)
            assert vars(clone) == vars(error)

    def test_done_message_snapshot_round_trips(self, client: RelayClient) -> None:
        msg = client.send_message(to_number=FAILED_NUMBER, from_number=FROM, body="x", tags=["t"])
        event = msg.wait(5)
        for clone in _round_trips(msg):
            assert isinstance(clone, Message) and clone is not msg
            assert (clone.message_id, clone.state, clone.reason, clone.tags, clone.body, clone.is_done) == (
                msg.message_id,
                "failed",
                "unreachable",
                ["t"],
                "x",
                True,
            )
            assert clone.wait(0) == event and clone.result == event

    def test_snapshot_of_a_pending_message_does_not_hang(self, client: RelayClient) -> None:
        msg = client.send_message(to_number=NO_DLR_NUMBER, from_number=FROM, body="x")
        for clone in _round_trips(msg):
            with pytest.raises(OutcomeUnknownError) as info:
                clone.wait(30)  # at once: a snapshot gets no events
            assert info.value.message_id == msg.message_id and info.value.may_have_been_sent

    def test_inbound_message_round_trips(self, client: RelayClient, emu: Emulator) -> None:
        inbox: queue.SimpleQueue[Message] = queue.SimpleQueue()
        client.on_message(inbox.put)
        emu.inject_inbound(to_number=FROM, from_number=TO, body="hello", context="office")
        msg = inbox.get(timeout=5)
        for clone in _round_trips(msg):
            assert (clone.body, clone.state, clone.direction, clone.from_number) == ("hello", "received", "inbound", TO)
            assert clone.wait(0) == msg.result

    @pytest.mark.timeout(120)
    def test_multiprocessing_pool_worker_returns_wait_result(self, emu: Emulator) -> None:
        jobs = [(emu.project, emu.token, emu.relay_url, to) for to in (TO, FAILED_NUMBER)]
        with multiprocessing.get_context("spawn").Pool(2) as pool:
            results = pool.map_async(_send_and_wait, jobs).get(timeout=90)
        (ok_event, ok_msg), (failed_event, failed_msg) = results
        assert isinstance(ok_event, MessageStateEvent) and ok_event.message_state == "delivered"
        assert ok_msg.state == "delivered" and ok_msg.wait(0) == ok_event
        assert (failed_event.message_state, failed_event.reason) == ("failed", "unreachable")
        assert failed_msg.reason == "unreachable"


# --------------------------------------------------------------------- timeouts


def _pending(tracker: MessageTracker, mid: str = "m1") -> Message:
    return tracker.register(mid, {"message_state": "queued", "direction": "outbound"}, None)


class TestTimeouts:
    @pytest.mark.parametrize("bad", [math.nan, -1, -0.001, "5", True])
    def test_wait_rejects_nan_negative_and_non_numbers(self, bad: Any) -> None:
        msg = _pending(MessageTracker(Dispatcher()))
        with pytest.raises(ValueError, match="timeout"):
            msg.wait(bad)

    @pytest.mark.parametrize("huge", [math.inf, 1e10, 10**400])
    def test_wait_with_inf_or_huge_timeout_waits_without_overflow(self, huge: Any) -> None:
        tracker = MessageTracker(Dispatcher())
        msg = _pending(tracker)
        outcome: queue.SimpleQueue[BaseException] = queue.SimpleQueue()

        def waiter() -> None:
            try:
                msg.wait(huge)
            except BaseException as exc:  # noqa: BLE001 - reported to the test thread
                outcome.put(exc)

        t = threading.Thread(target=waiter)
        t.start()
        t.join(0.2)
        assert t.is_alive()  # still waiting: neither OverflowError nor a timeout
        tracker.closed("client disconnected")
        t.join(5)
        assert isinstance(outcome.get(timeout=5), ConnectionClosedError)

    def test_wait_zero_on_a_pending_message_times_out_at_once(self) -> None:
        with pytest.raises(WaitTimeout):
            _pending(MessageTracker(Dispatcher())).wait(0)

    def test_wait_inf_on_a_done_message_returns(self, client: RelayClient) -> None:
        msg = client.send_message(to_number=TO, from_number=FROM, body="x")
        assert msg.wait(math.inf).message_state == "delivered"
        assert msg.wait(1e10).message_state == "delivered"

    @pytest.mark.parametrize(
        "option",
        ["request_timeout", "connect_timeout", "queue_timeout", "max_reconnect_delay", "message_ttl", "ping_interval"],
    )
    @pytest.mark.parametrize("bad", [math.nan, -5, 0])
    def test_client_options_reject_nan_and_negative(self, emu: Emulator, option: str, bad: float) -> None:
        with pytest.raises(ConfigurationError, match=option):
            make_client(emu, **{option: bad})

    def test_client_options_accept_infinity(self, emu: Emulator) -> None:
        options = {
            name: math.inf
            for name in (
                "request_timeout",
                "connect_timeout",
                "queue_timeout",
                "max_reconnect_delay",
                "message_ttl",
                "ping_interval",
            )
        }
        with make_client(emu, **options) as c:
            assert c.send_message(to_number=TO, from_number=FROM, body="x").wait(math.inf).message_state == "delivered"

    def test_execute_timeouts(self, client: RelayClient) -> None:
        for bad in (math.nan, -1.0):
            with pytest.raises(ValueError, match="timeout"):
                client.execute("signalwire.receive", {"contexts": ["office"]}, timeout=bad)
        for huge in (math.inf, 1e10):
            assert isinstance(client.execute("signalwire.receive", {"contexts": ["office"]}, timeout=huge), dict)


# -------------------------------------------------------------------- media URLs

GOOD_URLS = [
    "https://example.com/a.png",
    "HTTPS://EXAMPLE.COM/a.png",
    "Http://example.com:8080/x?y=1",
    "http://127.0.0.1/a.gif",
    "https://[::1]/a.png",
]
BAD_URLS = [
    "http://",
    "https://",
    "http:///path",
    "ftp://example.com/a.png",
    "example.com/a.png",
    "http://exa mple.com/a.png",
    "https://example.com/a b.png",
    "https://example.com/a\r\nX-Evil: 1",
    "https://example.com/a\n",
    " https://example.com/a",
    "https://example.com/\ta",
    "https://example.com/\u00a0a",
    "http://example.com:port/",
    "http://[::1/a",
    "javascript:alert(1)",
]
BAD_MEDIA: list[Any] = [
    {"url": "https://example.com/a.png"},
    "https://example.com/a.png",
    b"https://example.com/a.png",
    5,
    [5],
    [None],
]


class TestMediaUrls:
    @pytest.mark.parametrize("url", GOOD_URLS)
    def test_good_urls(self, url: str) -> None:
        assert _validate.media_urls([url]) == [url]
        assert _validate.content(None, (url,)) == (None, [url])

    @pytest.mark.parametrize("url", BAD_URLS)
    def test_bad_urls(self, url: str) -> None:
        with pytest.raises(ValueError, match="media"):
            _validate.media_urls([url])

    @pytest.mark.parametrize("media", BAD_MEDIA)
    def test_not_a_list_of_urls(self, media: Any) -> None:
        with pytest.raises(ValueError, match="media"):
            _validate.media_urls(media)

    @pytest.mark.parametrize("media", [[u] for u in BAD_URLS] + BAD_MEDIA)
    def test_relay_refuses_before_sending(self, client: RelayClient, emu: Emulator, media: Any) -> None:
        with pytest.raises(ValueError, match="media"):
            client.send_message(to_number=TO, from_number=FROM, body="x", media=media)
        assert emu.stats.send_requests == 0

    def test_relay_accepts_an_uppercase_scheme(self, client: RelayClient, emu: Emulator) -> None:
        msg = client.send_message(to_number=TO, from_number=FROM, media=["HTTPS://example.com/a.png"])
        assert emu.wait_for_status(msg.message_id, "delivered")["media"] == ["HTTPS://example.com/a.png"]

    @pytest.mark.parametrize("media", [[u] for u in BAD_URLS] + BAD_MEDIA)
    def test_rest_refuses_the_same(self, media: Any) -> None:
        with responses.RequestsMock() as rsps, RestClient("p", "t", "example.signalwire.com") as rest:
            with pytest.raises(ValueError, match="media_url"):
                rest.messages.create(to=TO, from_=FROM, body="x", media_url=media)
            assert len(rsps.calls) == 0

    def test_rest_accepts_an_uppercase_scheme(self) -> None:
        url = "https://example.signalwire.com/api/laml/2010-04-01/Accounts/p/Messages.json"
        with responses.RequestsMock() as rsps, RestClient("p", "t", "example.signalwire.com") as rest:
            rsps.add(responses.POST, url, status=201, json={"sid": "SM1", "status": "queued"})
            rest.messages.create(to=TO, from_=FROM, media_url=["HTTPS://example.com/a.png"])
            assert ("MediaUrl", "HTTPS://example.com/a.png") in parse_qsl(rsps.calls[0].request.body)


# --------------------------------------------------------------- failure reasons


class TestReason:
    def test_reason_is_empty_string_until_a_failure_reason(self) -> None:
        tracker = MessageTracker(Dispatcher())
        msg = _pending(tracker)
        assert msg.reason == ""
        tracker.apply_state({"message_id": "m1", "message_state": "sent"}, {})
        assert msg.reason == ""
        tracker.apply_state({"message_id": "m1", "message_state": "failed", "reason": "unreachable"}, {})
        assert msg.reason == "unreachable" and msg.result is not None and msg.result.reason == "unreachable"  # type: ignore[attr-defined]

    def test_delivered_message_and_event_have_empty_reason(self, client: RelayClient) -> None:
        msg = client.send_message(to_number=TO, from_number=FROM, body="x")
        event = msg.wait(5)
        assert msg.reason == "" and event.reason == ""  # type: ignore[attr-defined]
        assert msg.reason.upper() == ""

    def test_readme_example_no_longer_prints_none(self) -> None:
        with open(os.path.join(os.path.dirname(__file__), "..", "..", "README.md"), encoding="utf-8") as f:
            assert "delivered None" not in f.read()


# ----------------------------------------------- SIGTERM drains queued callbacks

RUN_SCRIPT = """
import signal, sys, threading
from swsync import RelayClient
project, token, url = sys.argv[1:4]
client = RelayClient(project, token, url, contexts=["office"])
sigterm_seen = threading.Event()
real_signal = signal.signal

def spy(signum, handler):
    # Wrap the handler run() installs, to learn when it has run.
    if signum == signal.SIGTERM and callable(handler):
        def wrapped(*a):
            handler(*a)
            sigterm_seen.set()
        return real_signal(signum, wrapped)
    return real_signal(signum, handler)

signal.signal = spy

@client.on_message
def reply(message):
    if message.body == "first":
        print("busy", flush=True)
        sys.stdin.readline()               # the test injects more, then lets us go on
        import os
        os.kill(os.getpid(), signal.SIGTERM)
        assert sigterm_seen.wait(10)
    out = client.send_message(message.from_number, message.to_number, "re: " + message.body).wait(5)
    print("replied", message.body, out.message_state, flush=True)

client.connect()
print("ready", flush=True)
client.run()
print("run returned", flush=True)
"""


@pytest.mark.timeout(90)
def test_sigterm_drains_queued_callbacks_before_disconnecting(emu: Emulator) -> None:
    proc = subprocess.Popen(
        [sys.executable, "-c", RUN_SCRIPT, emu.project, emu.token, emu.relay_url],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=dict(os.environ, PYTHONPATH=os.getcwd()),
    )
    try:
        assert proc.stdout is not None and proc.stdin is not None
        assert proc.stdout.readline().strip() == "ready"
        emu.inject_inbound(to_number=FROM, from_number=TO, body="first", context="office")
        assert proc.stdout.readline().strip() == "busy"
        for body in ("second", "third"):  # queued behind the busy callback, already ACKed
            emu.inject_inbound(to_number=FROM, from_number=TO, body=body, context="office")
        emu.wait_until(lambda: emu.unacked_events == 0)
        proc.stdin.write("go\n")
        proc.stdin.flush()
        out, err = proc.communicate(timeout=60)
    finally:
        stop_process(proc)
    assert proc.returncode == 0, err
    lines = out.splitlines()
    assert lines == [
        "replied first delivered",
        "replied second delivered",
        "replied third delivered",
        "run returned",
    ], err


def test_readme_documents_the_drain_bound() -> None:
    with open(os.path.join(os.path.dirname(__file__), "..", "..", "README.md"), encoding="utf-8") as f:
        text = f.read()
    assert "10 s" in text and "SIGTERM" in text and "queued callbacks" in text


def test_cli_send_on_a_named_context_subscribes_to_it(emu: Emulator, capsys: pytest.CaptureFixture[str]) -> None:
    from swsync import cli

    code = cli.main(
        [
            *credentials(emu.relay_url, emu.project, emu.token),
            "send",
            "--to",
            TO,
            "--from",
            FROM,
            "--body",
            "x",
            "--context",
            "billing",
            "--json",
        ]
    )
    out, err = capsys.readouterr()
    assert code == 0, err
    last = [line for line in out.splitlines() if line.strip()][-1]
    assert '"state": "delivered"' in last and '"reason": null' in last


# -------------------------------------------------------------------------------- on_message_state


def _state(mid: str, state: str, **extra: str) -> tuple[dict[str, Any], dict[str, Any]]:
    fields = {"message_id": mid, "message_state": state, **extra}
    return fields, dict(fields)


class _Collect:
    def __init__(self) -> None:
        self.events: queue.SimpleQueue[MessageStateEvent] = queue.SimpleQueue()

    def __call__(self, event: MessageStateEvent) -> None:
        self.events.put(event)

    def take(self, n: int) -> list[tuple[str, str]]:
        return [(e.message_id, e.message_state) for e in (self.events.get(timeout=5) for _ in range(n))]

    def until_done(self) -> list[tuple[str, str]]:
        got = self.take(1)
        while got[-1][1] not in ("delivered", "undelivered", "failed"):
            got += self.take(1)
        return got


@pytest.fixture
def foreign_tracker() -> Iterator[tuple[MessageTracker, _Collect]]:
    seen = _Collect()
    dispatcher = Dispatcher()
    yield MessageTracker(dispatcher, foreign=lambda: (seen,)), seen
    dispatcher.stop()


class TestOnMessageState:
    def test_two_clients_on_one_context(self, emu: Emulator) -> None:
        with make_client(emu, contexts=["office"]) as sender, make_client(emu, contexts=["office"]) as watcher:
            mine, theirs = _Collect(), _Collect()
            sender.on_message_state(mine)

            @watcher.on_message_state
            def watch(event: MessageStateEvent) -> None:
                theirs(event)

            assert watch is not None  # usable as a decorator: the function is returned
            msg = sender.send_message(to_number=FAILED_NUMBER, from_number=FROM, body="x", context="office")
            msg.wait(5)
            got = theirs.until_done()
            assert {mid for mid, _ in got} == {msg.message_id}
            assert [s for _, s in got][0] == "queued" and got[-1][1] == "failed"
            # The watcher's own message: its events reach the sender's handler, not its own.
            other = watcher.send_message(to_number=TO, from_number=FROM, body="y", context="office")
            other.wait(5)
            assert mine.until_done()[-1] == (other.message_id, "delivered")
            assert theirs.events.empty() and mine.events.empty()  # nobody saw its own message

    def test_default_context_events_stay_private(self, emu: Emulator) -> None:
        with make_client(emu, contexts=["office"]) as sender, make_client(emu, contexts=["office"]) as watcher:
            theirs = _Collect()
            watcher.on_message_state(theirs)
            sender.send_message(to_number=TO, from_number=FROM, body="x").wait(5)  # sender's protocol
            shared = sender.send_message(to_number=TO, from_number=FROM, body="x", context="office")
            shared.wait(5)
            assert {mid for mid, _ in theirs.until_done()} == {shared.message_id}

    def test_status_only_context_for_fleet_tracking(self, emu: Emulator) -> None:
        # The README pattern: senders do not receive the status context; one tracker does.
        with make_client(emu) as sender, make_client(emu, contexts=["fleet-status"]) as tracker:
            seen = _Collect()
            tracker.on_message_state(seen)
            msg = sender.send_message(
                to_number=TO, from_number=FROM, body="x", context="fleet-status", check_context=False
            )
            assert seen.until_done()[-1] == (msg.message_id, "delivered")
            with pytest.raises(WaitTimeout):
                msg.wait(0)  # the sender gets no events on a context it does not receive

    def test_handler_must_be_callable(self, client: RelayClient) -> None:
        with pytest.raises(TypeError):
            client.on_message_state("nope")  # type: ignore[arg-type]

    def test_unknown_id_with_no_send_in_flight_is_foreign_at_once(
        self, foreign_tracker: tuple[MessageTracker, _Collect]
    ) -> None:
        tracker, seen = foreign_tracker
        tracker.apply_state(*_state("x1", "queued"))
        tracker.apply_state(*_state("x1", "failed", reason="unreachable"))
        events = [seen.events.get(timeout=5) for _ in range(2)]
        assert [(e.message_state, e.reason) for e in events] == [("queued", ""), ("failed", "unreachable")]

    def test_early_event_of_an_own_send_is_not_foreign(self, foreign_tracker: tuple[MessageTracker, _Collect]) -> None:
        tracker, seen = foreign_tracker
        seq = tracker.send_started()
        tracker.apply_state(*_state("own", "queued"))  # before the send's reply: held
        tracker.apply_state(*_state("theirs", "queued"))  # also held: the send could own it
        assert seen.events.empty()
        msg = tracker.register("own", {"message_state": "queued"}, None, seq)
        assert msg._seen_rank == 0  # the early event was replayed to the own message
        assert seen.take(1) == [("theirs", "queued")]  # released once the send was answered
        assert seen.events.empty()

    def test_held_events_wait_for_every_send_in_flight(self, foreign_tracker: tuple[MessageTracker, _Collect]) -> None:
        tracker, seen = foreign_tracker
        first, second = tracker.send_started(), tracker.send_started()
        tracker.apply_state(*_state("m", "sent"))
        tracker.send_finished(first)  # a failed send: "m" could still be the second one's
        tracker.register("other", {"message_state": "queued"}, None, None)
        assert seen.events.empty()
        third = tracker.send_started()  # started after "m" arrived: cannot own it
        tracker.send_finished(second)
        assert seen.take(1) == [("m", "sent")]
        tracker.send_finished(third)

    def test_late_or_repeated_events_are_not_foreign(self, foreign_tracker: tuple[MessageTracker, _Collect]) -> None:
        tracker, seen = foreign_tracker
        tracker.register("own", {"message_state": "queued"}, None, tracker.send_started())
        tracker.apply_state(*_state("own", "delivered"))
        tracker.apply_state(*_state("own", "delivered"))  # repeated after done
        tracker.apply_state(*_state("f", "sent"))
        tracker.apply_state(*_state("f", "sent"))  # repeated foreign state
        tracker.apply_state(*_state("f", "queued"))  # backwards
        tracker.apply_state(*_state("f", "delivered"))
        assert seen.take(2) == [("f", "sent"), ("f", "delivered")]
        assert seen.events.empty()

    def test_without_handlers_unknown_ids_stay_early_events(self) -> None:
        tracker = MessageTracker(Dispatcher())
        tracker.apply_state(*_state("later", "delivered"))
        assert tracker.early_count == 1
        msg = tracker.register("later", {"message_state": "queued"}, None)
        assert msg.state == "delivered"


def test_send_held_across_a_session_restart_gets_its_events(emu: Emulator) -> None:
    # signalwire.disconnect(restart=True) discards the session: a send made before the
    # next session exists must use that session's protocol as its context, never a
    # context ("default") that this client does not receive.
    from ..support.proxy import TcpProxy

    proxy = TcpProxy(emu.port)
    try:
        with RelayClient(project=emu.project, token=emu.token, host=proxy.url, max_reconnect_delay=0.2) as c:
            old = c.protocol
            proxy.refuse()
            emu.server_disconnect(restart=True)
            proxy.wait_refused(1)  # the old session is gone; the client is reconnecting
            done: queue.SimpleQueue[Any] = queue.SimpleQueue()
            sender = threading.Thread(
                target=lambda: done.put(c.send_message(to_number=TO, from_number=FROM, body="held"))
            )
            sender.start()
            proxy.refuse(False)
            sender.join(10)
            msg = done.get(timeout=5)
            assert msg.wait(10).message_state == "delivered"
            assert msg.context == c.protocol != old
    finally:
        proxy.close()


def test_drain_returns_when_the_dispatcher_is_stopped_meanwhile() -> None:
    d = Dispatcher()
    release = threading.Event()
    d.submit("a", release.wait, 10)
    d.submit("a", lambda: None)
    drained: queue.SimpleQueue[bool] = queue.SimpleQueue()
    t = threading.Thread(target=lambda: drained.put(d.drain(30)))
    t.start()
    stopper = threading.Thread(target=d.stop)
    stopper.start()  # e.g. disconnect() from another thread while run() drains
    release.set()
    stopper.join(10)
    assert drained.get(timeout=10) is True  # promptly, not after the 30 s bound
    t.join(5)


def test_drain_waits_for_queued_callbacks_and_is_bounded() -> None:
    d = Dispatcher()
    ran: list[int] = []
    gate = threading.Event()
    d.submit("a", gate.wait, 10)
    for i in range(5):
        d.submit("a", ran.append, i)
    assert d.drain(0.05) is False  # the first callback is still blocked
    gate.set()
    assert d.drain(10) is True and ran == [0, 1, 2, 3, 4]
    d.stop()
