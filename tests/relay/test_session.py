"""Sessions and lifecycle: resume, refused reconnects, aborts, outcomes that become unknown.

Against the emulator where it can play the part, and against the small scriptable
server in tests/support/relay_server.py where a production behaviour must be reproduced
exactly (a connect result without ``session_restored``, refusals with chosen codes).
"""

from __future__ import annotations

import logging
import os
import select
import threading
from typing import Any

import pytest

from swsync import AuthenticationError, ConnectionClosedError, OutcomeUnknownError, RelayClient
from swsync.emulator import NO_DLR_NUMBER, Emulator
from swsync.relay import connection as connection_module
from swsync.relay.dispatcher import Dispatcher
from swsync.relay.events import MessageStateEvent
from swsync.relay.handshake import FIRST_CONNECT_AUTH_CODES, Handshake

from ..helpers import in_thread
from ..support.proxy import TcpProxy
from ..support.relay_server import RelayServer, accept, event, refuse

TO, FROM = "+15557654321", "+15551234567"


def client_for(server: RelayServer, **kw: Any) -> RelayClient:
    kw.setdefault("max_reconnect_delay", 0.05)
    kw.setdefault("ping_interval", None)
    return RelayClient(project="p", token="t", host=server.url, **kw)


def state_event(message_id: str, state: str, n: int) -> dict[str, Any]:
    return event("messaging.state", {"message_id": message_id, "message_state": state}, n)


# -------------------------------------------------------------------------- resume


def test_same_protocol_without_session_restored_is_a_resume() -> None:
    """The official SDK never reads session_restored; a server may omit it."""
    with RelayServer() as server, client_for(server) as client:
        msg = client.send_message(to_number=TO, from_number=FROM, body="hi")
        server.drop()
        server.wait_for(lambda: len(server.connect_params) == 2)
        assert server.connect_params[1]["protocol"] == "signalwire_test-session"
        client.execute("signalwire.ping", {})  # returns once (re)connected
        server.push(state_event(msg.message_id, "delivered", 1))
        assert msg.wait(10).message_state == "delivered"  # the waiter was kept


@pytest.mark.parametrize(
    "second",
    [accept("signalwire_other"), accept(session_restored=False)],
    ids=["another-protocol", "session_restored-false"],
)
def test_another_protocol_or_restored_false_is_a_fresh_session(second: dict[str, Any]) -> None:
    replies = [accept(), second]
    with RelayServer(on_connect=lambda n, params: replies[min(n, 2) - 1]) as server, client_for(server) as client:
        msg = client.send_message(to_number=TO, from_number=FROM, body="hi")
        server.drop()
        with pytest.raises(OutcomeUnknownError, match="not resumed") as info:
            msg.wait(10)
        assert info.value.message_id == msg.message_id


def test_emulator_resume_and_restart_are_told_apart(slow_emu: Emulator, proxy: TcpProxy) -> None:
    with RelayClient(
        project=slow_emu.project, token=slow_emu.token, host=proxy.url, max_reconnect_delay=0.05
    ) as client:
        kept = client.send_message(to_number=TO, from_number=FROM, body="resumed")
        proxy.drop_all()
        assert kept.wait(10).message_state == "delivered"
        lost = client.send_message(to_number=NO_DLR_NUMBER, from_number=FROM, body="restarted")
        slow_emu.server_disconnect(restart=True)
        with pytest.raises(OutcomeUnknownError):
            lost.wait(10)


# -------------------------------------------------------------- refusals on reconnect


@pytest.mark.parametrize("restart", [False, True], ids=["resume", "after-restart"])
def test_transient_refusals_on_reconnect_are_retried_and_the_listener_carries_on(restart: bool) -> None:
    """The service refuses two reconnects (-32000, -32603), then accepts: the listener lives on."""
    script = [
        accept(),
        refuse(-32000, "auth backend unavailable"),
        refuse(-32603, "internal error"),
        accept("signalwire_new"),
    ]
    got: list[str] = []
    arrived = threading.Event()
    with RelayServer(on_connect=lambda n, params: script[min(n, 4) - 1]) as server:
        client = client_for(server, contexts=["office"])
        client.on_message(lambda m: (got.append(m.body or ""), arrived.set()))
        running = in_thread(client.run)
        server.wait_for(lambda: len(server.connect_params) == 1)
        client.execute("signalwire.ping", {})  # returns once connected
        if restart:  # the service restarts the session: the next connect is a fresh one
            server.push({"jsonrpc": "2.0", "id": "d-1", "method": "signalwire.disconnect", "params": {"restart": True}})
            server.wait_for(lambda: any(f.get("id") == "d-1" for f in server.frames))
        server.drop()
        server.wait_for(lambda: len(server.connect_params) == 4)
        client.execute("signalwire.ping", {})  # returns once reconnected
        # A refused resume dropped the resume state: every later attempt was fresh.
        assert ("protocol" in server.connect_params[1]) is not restart
        assert all("protocol" not in p for p in server.connect_params[2:])
        assert server.connect_params[3]["contexts"] == ["office"]
        server.inbound("in-1", body="after the outage")
        assert arrived.wait(10)
        assert not running.done()
        client.disconnect()
        running.result(10)
    assert got == ["after the outage"]


@pytest.mark.parametrize("code", [-32002, -32003])
def test_genuine_authentication_failure_on_reconnect_stops_the_client(code: int) -> None:
    with RelayServer(on_connect=lambda n, p: accept() if n == 1 else refuse(code)) as server:
        client = client_for(server)
        running = in_thread(client.run)
        server.wait_for(lambda: len(server.connect_params) == 1)
        client.execute("signalwire.ping", {})  # returns once (re)connected
        server.drop()
        with pytest.raises(AuthenticationError) as info:
            running.result(10)
        assert info.value.code == code
        # One resume attempt, then one fresh attempt: both refused, no more.
        assert len(server.connect_params) == 3 and "protocol" not in server.connect_params[2]
        client.disconnect()


def test_first_connect_still_reports_refused_credentials_at_once() -> None:
    with RelayServer(on_connect=lambda n, p: refuse(-32000, "auth rejected: bad token")) as server:
        with pytest.raises(AuthenticationError):
            client_for(server).connect()
        assert len(server.connect_params) == 1


def test_requests_queued_during_a_refused_first_connect_fail_with_its_error(monkeypatch: pytest.MonkeyPatch) -> None:
    """Not after queue_timeout with "no connection": nothing was sent, and the refusal is the reason."""
    opening, queued = threading.Event(), threading.Event()
    real_open, real_enqueue = connection_module.Connection.open, connection_module.Connection._enqueue

    def open_(self: connection_module.Connection) -> None:
        opening.set()
        real_open(self)

    def enqueue(self: connection_module.Connection, item: Any) -> None:
        real_enqueue(self, item)
        queued.set()

    monkeypatch.setattr(connection_module.Connection, "open", open_)
    monkeypatch.setattr(connection_module.Connection, "_enqueue", enqueue)

    def refuse_once_queued(attempt: int, params: Any) -> dict[str, Any]:
        assert queued.wait(10)  # a request is waiting for this very handshake
        return refuse(-32000, "auth rejected: bad token")

    with RelayServer(on_connect=refuse_once_queued) as server:
        client = client_for(server, auto_connect=True, queue_timeout=60)
        connecting = in_thread(client.connect)
        assert opening.wait(10)
        requesting = in_thread(client.execute, "signalwire.ping", {})
        with pytest.raises(ConnectionClosedError, match="auth rejected") as info:
            requesting.result(10)
        assert isinstance(info.value.__cause__, AuthenticationError)
        assert info.value.may_have_been_sent is False
        with pytest.raises(AuthenticationError):
            connecting.result(10)
        assert not client.connected


# --------------------------------------- disconnect() aborts a connect in progress


@pytest.mark.parametrize("phase", ["upgrade", "authentication"])
def test_disconnect_aborts_a_connect_in_progress(phase: str) -> None:
    upgrade = phase != "upgrade"
    with RelayServer(accept_upgrade=upgrade, answer_connect=False) as server:
        client = client_for(server, connect_timeout=60)
        connecting = in_thread(client.connect)
        if upgrade:
            server.wait_for(lambda: len(server.connect_params) == 1)
        else:
            server.wait_for(lambda: server.upgrades == 1)
        stopping = in_thread(client.disconnect)
        # Both return long before connect_timeout (60 s): the handshake was aborted.
        stopping.result(5)
        with pytest.raises(ConnectionClosedError, match="disconnected while connecting"):
            connecting.result(5)
        assert not client.connected


def test_an_abort_before_the_socket_exists_still_ends_the_handshake(emu: Emulator) -> None:
    emu.faults.response_delay = 30.0  # a handshake that reached authentication would wait 30 s
    attempt = Handshake(emu.relay_url, ssl_context=None, timeout=60)
    attempt.abort()  # as close() does while TCP is still connecting: no socket to shut down yet
    params = {"project": emu.project, "token": emu.token}
    running = in_thread(attempt.run, "1", lambda: params, FIRST_CONNECT_AUTH_CODES)
    with pytest.raises(ConnectionClosedError, match="aborted"):
        running.result(10)


def _swsync_threads_of_clients() -> set[threading.Thread]:
    return {t for t in threading.enumerate() if t.name.startswith("swsync-") and t.name != "swsync-emulator"}


def test_disconnect_ends_the_connect_and_run_waiting_for_the_attempt_it_aborted(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A connect() (or run()) waiting for another thread's handshake takes that attempt's outcome.

    disconnect() aborts the handshake: the waiters must not start a connection of their own
    (which would leave the client connected and run() running after disconnect()).
    """
    opening = threading.Event()
    real_open = connection_module.Connection.open

    def open_(self: connection_module.Connection) -> None:
        opening.set()
        real_open(self)

    monkeypatch.setattr(connection_module.Connection, "open", open_)
    before = _swsync_threads_of_clients()
    with Emulator() as emu:
        emu.faults.response_delay = 30.0  # the handshake waits until disconnect() aborts it
        client = RelayClient(project=emu.project, token=emu.token, host=emu.relay_url, connect_timeout=60)
        try:
            first = in_thread(client.connect)
            assert opening.wait(10)
            attempt = client._connecting  # installed before open(): the attempt the others wait for
            assert attempt is not None
            waiters: set[threading.Thread] = set()
            entered = threading.Condition()
            real_wait = attempt.wait

            def wait(timeout: float | None = None) -> bool:
                with entered:
                    waiters.add(threading.current_thread())
                    entered.notify_all()
                return real_wait(timeout)

            attempt.wait = wait  # type: ignore[method-assign]
            running = in_thread(client.run)
            second = in_thread(client.connect)
            with entered:
                assert entered.wait_for(lambda: len(waiters) == 2, timeout=10)
            client.disconnect()
            assert running.result(10) is None  # run() returned, as after any disconnect()
            for connecting in (first, second):
                with pytest.raises(ConnectionClosedError, match="disconnected while connecting"):
                    connecting.result(10)
            assert not client.connected
            left = _swsync_threads_of_clients() - before
            for t in left:
                t.join(5)
            assert not [t.name for t in left if t.is_alive()]
        finally:
            client.disconnect()


class _ClearInterrupted(threading.Event):
    """A ``_stopped`` whose ``clear()`` is hit by a Ctrl-C, right after the attempt is installed."""

    def clear(self) -> None:
        raise KeyboardInterrupt


def test_an_interrupted_connect_never_blocks_the_next_one(emu: Emulator) -> None:
    client = RelayClient(project=emu.project, token=emu.token, host=emu.relay_url)
    client._stopped = _ClearInterrupted()
    with pytest.raises(KeyboardInterrupt):
        client.connect()
    assert client._connecting is None  # uninstalled (and its Event set) by the interrupted connect()
    client._stopped = threading.Event()
    assert in_thread(client.connect).result(10) is client
    client.disconnect()
    # An attempt whose owner was stopped between uninstalling it and setting its Event, or
    # before uninstalling it but after setting it, does not hold connect() up either.
    for left_set in (False, True):
        orphan = threading.Event()
        waiting = threading.Event()
        real_wait = orphan.wait

        def wait(timeout: float | None = None, real_wait: Any = real_wait, waiting: Any = waiting) -> bool:
            waiting.set()
            return bool(real_wait(timeout))

        orphan.wait = wait  # type: ignore[method-assign]
        if left_set:
            orphan.set()
        client._connecting = orphan
        connecting = in_thread(client.connect)
        if not left_set:
            assert waiting.wait(10)
            client._connecting = None
        assert connecting.result(10) is client
        assert client.connected and client._connecting is None
        client.disconnect()


def test_dispatcher_stop_has_one_deadline(monkeypatch: pytest.MonkeyPatch) -> None:
    dispatcher = Dispatcher(3)
    release = threading.Event()
    started = threading.Semaphore(0)

    def block() -> None:
        started.release()
        release.wait(30)

    keys: dict[int, str] = {}
    for i in range(1000):
        keys.setdefault(hash(f"k{i}") % 3, f"k{i}")
    for key in keys.values():
        dispatcher.submit(key, block)
    for _ in range(3):
        assert started.acquire(timeout=10)
    given: list[float | None] = []
    join = threading.Thread.join

    def spy(self: threading.Thread, timeout: float | None = None) -> None:
        if self.name.startswith("swsync-dispatch"):
            given.append(timeout)
        join(self, timeout)

    monkeypatch.setattr(threading.Thread, "join", spy)
    try:
        dispatcher.stop(timeout=0.2)
    finally:
        release.set()
        monkeypatch.undo()
    assert len(given) == 3
    assert sum(t or 0.0 for t in given) <= 0.2 + 1e-6  # not 0.2 per worker
    for t in dispatcher._threads or []:
        t.join(5)


def test_submit_after_stop_is_refused_and_logged(caplog: pytest.LogCaptureFixture) -> None:
    dispatcher = Dispatcher(1)
    dispatcher.stop()
    ran: list[int] = []
    with caplog.at_level(logging.WARNING, logger="swsync"):
        assert dispatcher.submit("m-1", ran.append, 1) is False
    assert ran == [] and "m-1" in caplog.text and "stopped" in caplog.text


def test_inbound_refused_by_a_stopped_dispatcher_is_kept_for_the_next_connect(emu: Emulator) -> None:
    got: list[str] = []
    arrived = threading.Event()
    client = RelayClient(project=emu.project, token=emu.token, host=emu.relay_url, contexts=["office"])
    client.on_message(lambda m: (got.append(m.message_id), arrived.set()))
    client.connect()
    session = client._session
    client.disconnect()
    # As if the old connection's reader handed over one more inbound message just now.
    client._on_event(session, "messaging.receive", {"message_id": "late-1", "body": "late", "context": "office"}, {})
    assert got == []
    with client:
        assert arrived.wait(10)
    assert got == ["late-1"]


# ------------------------------------------------------------- the default host


def test_default_host_is_the_public_relay_host(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("SIGNALWIRE_SPACE", raising=False)
    client = RelayClient(project="p", token="t")
    assert client._url == "wss://relay.signalwire.com"


# ----------------------------------------------------------- outcomes that become unknown


def _unknown_after(scenario: str, emu: Emulator, proxy: TcpProxy, completed: list[Any]) -> Any:
    kw: dict[str, Any] = {"reconnect": scenario != "drop-no-reconnect", "max_reconnect_delay": 0.05}
    client = RelayClient(project=emu.project, token=emu.token, host=proxy.url, **kw)
    client.connect()
    msg = client.send_message(to_number=NO_DLR_NUMBER, from_number=FROM, body=scenario, on_completed=completed.append)
    if scenario == "disconnect":
        client.disconnect()
    elif scenario == "restart":
        emu.server_disconnect(restart=True)
    elif scenario == "refused-resume":
        emu.faults.reject_resume = True
        proxy.drop_all()
    else:
        proxy.drop_all()
    try:
        with pytest.raises(OutcomeUnknownError) as info:
            msg.wait(10)
    finally:
        client.disconnect()  # runs queued callbacks before it returns
    return msg, info.value


@pytest.mark.parametrize("scenario", ["disconnect", "restart", "refused-resume", "drop-no-reconnect"])
def test_accepted_message_is_never_reported_as_not_sent(slow_emu: Emulator, proxy: TcpProxy, scenario: str) -> None:
    completed: list[Any] = []
    msg, error = _unknown_after(scenario, slow_emu, proxy, completed)
    assert isinstance(error, ConnectionClosedError) and error.may_have_been_sent is True
    assert error.message_id == msg.message_id
    assert "fetch()" in str(error) and "do not send it again" in str(error)
    # on_completed ran once, told that the outcome is unknown.
    assert len(completed) == 1
    event = completed[0]
    assert isinstance(event, MessageStateEvent)
    assert event.message_state == "unknown" and event.message_id == msg.message_id
    assert not event.is_terminal and event.reason


def test_on_completed_hears_about_eviction(emu: Emulator) -> None:
    completed: list[MessageStateEvent] = []
    done = threading.Event()
    with RelayClient(project=emu.project, token=emu.token, host=emu.relay_url, max_tracked_messages=1) as client:
        first = client.send_message(
            to_number=NO_DLR_NUMBER,
            from_number=FROM,
            body="1",
            on_completed=lambda e: (completed.append(e), done.set()),
        )
        client.send_message(to_number=NO_DLR_NUMBER, from_number=FROM, body="2")
        assert done.wait(10)
    assert [(e.message_id, e.message_state) for e in completed] == [(first.message_id, "unknown")]
    assert "tracks at most 1" in (completed[0].reason or "")


# --------------------------------------------------------------------- inbound dedupe


def test_redelivered_inbound_message_runs_handlers_once() -> None:
    seen: list[str] = []
    last = threading.Event()
    with RelayServer() as server, client_for(server, contexts=["office"]) as client:
        client.on_message(lambda m: (seen.append(m.message_id), m.message_id == "in-2" and last.set()))
        server.inbound("in-1")
        server.inbound("in-1")  # redelivered: its ACK was lost before a resume
        server.inbound("in-2")
        assert last.wait(10)
    assert seen == ["in-1", "in-2"]


def test_inbound_dedupe_memory_is_bounded(monkeypatch: pytest.MonkeyPatch) -> None:
    from swsync.relay import client as client_module

    monkeypatch.setattr(client_module, "MAX_SEEN_INBOUND", 3)
    client = RelayClient(project="p", token="t", host="ws://127.0.0.1:9")
    for i in range(10):
        client._on_event(client._session, "messaging.receive", {"message_id": f"m{i}"}, {})
    assert len(client._inbound._seen) == 3
    assert len(client._inbound._buffer) == 10  # no handler yet: all kept, none deduplicated


# ------------------------------------------------------ a send while the session is discarded


def test_send_refused_because_the_session_was_discarded_goes_out_on_the_next_one(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(connection_module, "SESSION_GONE_DRAIN", 0.1)
    refused: list[dict[str, Any]] = []

    def on_request(frame: dict[str, Any]) -> dict[str, Any] | None:
        if frame["method"] == "messaging.send" and not refused:
            refused.append(frame)
            return {"error": {"code": -32002, "message": "Authentication required"}}
        return None

    with (
        RelayServer(on_request=on_request, on_connect=lambda n, p: accept(f"signalwire_s{n}")) as server,
        client_for(server) as client,
    ):
        msg = client.send_message(to_number=TO, from_number=FROM, body="held")
        assert msg.message_id == "m-1"
        assert len(refused) == 1 and len(server.sends) == 1
        assert len(server.connect_params) == 2  # held, then written on the next session
        # Its default context followed the session: the old protocol is received by nobody.
        assert refused[0]["params"]["context"] == "signalwire_s1"
        assert server.sends[0]["context"] == "signalwire_s2"


# --------------------------------------- a connect timeout is reported as a timeout


def test_connect_timeout_says_timeout_not_connection_lost() -> None:
    with RelayServer(accept_upgrade=False) as server:
        with pytest.raises(ConnectionClosedError) as info:
            client_for(server, connect_timeout=0.3).connect()
    text = str(info.value)
    assert "connect_timeout=0.3" in text and "lost" not in text


def test_tls_against_a_plain_port_hints_at_ws(emu: Emulator) -> None:
    client = RelayClient(project=emu.project, token=emu.token, host=f"wss://127.0.0.1:{emu.port}", connect_timeout=5)
    with pytest.raises(ConnectionClosedError) as info:
        client.connect()
    assert "ws://" in str(info.value) and "does not speak TLS" in str(info.value)


def test_a_non_json_frame_logs_one_warning(caplog: pytest.LogCaptureFixture) -> None:
    with RelayServer() as server, client_for(server) as client:
        with caplog.at_level(logging.WARNING, logger="swsync"):
            server.push_raw("this is not json")
            client.execute("signalwire.ping", {})  # the garbage was read before this reply
    warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1 and "not valid JSON" in warnings[0].getMessage()


# --------------------------------------------------------------------- pre-fork servers


def _child(work: Any) -> int:
    """Fork; the child runs ``work()`` and exits with its return code (1 on an exception)."""
    pid = os.fork()
    if pid == 0:
        code = 1
        try:
            code = work()
        finally:
            os._exit(code)
    return pid


def _exit_code(pid: int) -> int:
    _, status = os.waitpid(pid, 0)
    return os.WEXITSTATUS(status) if os.WIFEXITED(status) else -1


def test_prefork_pattern_connects_in_each_worker_and_never_in_the_master(emu: Emulator) -> None:
    # What gunicorn --preload does: the app module (and its client) is imported in the
    # master, which then forks the workers.
    client = RelayClient(
        project=emu.project, token=emu.token, host=emu.relay_url, contexts=["office"], auto_connect=True
    )
    handled_r, handled_w = os.pipe()
    stop_r, stop_w = os.pipe()

    @client.on_message
    def handle(message: Any) -> None:
        os.write(handled_w, f"{os.getpid()} {message.body}\n".encode())

    def worker() -> int:
        # The first use connects, in this process.
        state = client.send_message(to_number=TO, from_number=FROM, body="from a worker").wait(10).message_state
        ready, _, _ = select.select([stop_r], [], [], 30)
        client.disconnect()
        return 0 if state == "delivered" and ready else 2

    workers = [_child(worker) for _ in range(2)]
    handled: list[tuple[int, str]] = []
    try:
        emu.wait_for_clients(2, timeout=10)
        assert not client.connected and client._session.connection is None  # the master never connected
        bodies = {f"in-{i}" for i in range(4)}
        for body in sorted(bodies):
            emu.inject_inbound(to_number=FROM, from_number=TO, body=body, context="office")
        data = b""
        while bodies - {body for _, body in handled}:
            ready, _, _ = select.select([handled_r], [], [], 10)
            assert ready, f"inbound not handled in time; got {handled}"
            data += os.read(handled_r, 65536)
            *lines, rest = data.split(b"\n")
            data = rest
            handled += [(int(pid), body) for pid, body in (ln.decode().split(" ", 1) for ln in lines)]
    finally:
        os.write(stop_w, b"xx")
        codes = [_exit_code(pid) for pid in workers]
    assert codes == [0, 0]
    assert {pid for pid, _ in handled} <= set(workers)  # never the master
    assert emu.stats.connections == 2  # one per worker, none for the master


def test_client_connected_before_fork_says_so_in_the_child(emu: Emulator) -> None:
    with RelayClient(project=emu.project, token=emu.token, host=emu.relay_url) as client:
        master = os.getpid()

        def worker() -> int:
            try:
                client.send_message(to_number=TO, from_number=FROM, body="x")
            except ConnectionClosedError as exc:
                text = str(exc)
                return 0 if f"forked from pid {master}" in text and "auto_connect=True" in text else 3
            return 4

        assert _exit_code(_child(worker)) == 0
        assert client.send_message(to_number=TO, from_number=FROM, body="y").wait(10).message_state == "delivered"
