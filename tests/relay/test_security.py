"""TLS verification, secrets never shown, and hostile frames from the server."""

from __future__ import annotations

import functools
import logging
import os
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from swsync import ConnectionClosedError, RelayClient
from swsync.emulator import Emulator
from swsync.relay.connection import Connection
from swsync.relay.dispatcher import Dispatcher
from swsync.relay.message import MessageTracker

TO, FROM = "+15557654321", "+15551234567"


def test_tls_with_ca_file(tls_emu: Emulator, tls_files: dict[str, str]) -> None:
    assert tls_emu.relay_url.startswith("wss://")
    with RelayClient(
        project=tls_emu.project, token=tls_emu.token, host=tls_emu.relay_url, ca_file=tls_files["ca"]
    ) as client:
        assert client.send_message(to_number=TO, from_number=FROM, body="tls").wait(5).message_state == "delivered"


def test_tls_ca_file_from_environment(
    tls_emu: Emulator, tls_files: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SIGNALWIRE_RELAY_CA_FILE", tls_files["ca"])
    with RelayClient(project=tls_emu.project, token=tls_emu.token, host=tls_emu.relay_url) as client:
        assert client.send_message(to_number=TO, from_number=FROM, body="tls").wait(5).message_state == "delivered"


def test_tls_is_verified_by_default(tls_emu: Emulator) -> None:
    client = RelayClient(project=tls_emu.project, token=tls_emu.token, host=tls_emu.relay_url)
    with pytest.raises(ConnectionClosedError, match="CERTIFICATE_VERIFY_FAILED|certificate verify failed"):
        client.connect()
    assert tls_emu.stats.connections == 0


def test_full_session_at_debug_never_logs_secrets(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    with Emulator(state_delay=0.0) as emu:
        client = RelayClient(
            project=emu.project, token=emu.token, host=emu.relay_url, contexts=["office"], max_reconnect_delay=0.2
        )
        with client:
            client.on_message(lambda m: None)
            client.send_message(to_number=TO, from_number=FROM, body="x").wait(5)
            emu.inject_inbound(to_number=FROM, from_number=TO, body="in", context="office")
            emu.drop_connections()  # a resume sends the authorization state back
            emu.wait_until(lambda: emu.stats.resumes >= 1, timeout=10)
            client.execute("signalwire.ping", {}, timeout=10)
            conn = client._session.connection
            assert conn is not None
            auth_state = conn._authorization_state
            assert auth_state, "the emulator sends an authorization state"
            seen = repr(client) + repr(conn) + caplog.text
        jwt_client = RelayClient(jwt_token=emu.jwt_token, host=emu.relay_url)
        with jwt_client:
            jwt_client.execute("signalwire.ping", {})
        seen += repr(jwt_client) + caplog.text
    for secret in (emu.token, emu.jwt_token, auth_state):
        assert secret not in seen


# --- hostile frames: the router must log and drop, never raise --------------------

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=12), children, max_size=5),
    max_leaves=10,
)
keys = st.sampled_from(
    [
        "jsonrpc",
        "id",
        "method",
        "params",
        "result",
        "error",
        "event_type",
        "message_id",
        "message_state",
        "reason",
        "media",
        "tags",
        "segments",
        "body",
        "code",
        "message",
        "restart",
        "timestamp",
        "authorization_state",
    ]
)
methods = st.sampled_from(["signalwire.event", "signalwire.ping", "signalwire.disconnect", "other", ""])
event_types = st.sampled_from(["messaging.state", "messaging.receive", "signalwire.authorization.state", "x"])


@st.composite
def frames(draw: st.DrawFn) -> dict[str, Any]:
    inner = draw(st.dictionaries(keys, json_values, max_size=8))
    if draw(st.booleans()):
        inner["message_id"] = draw(st.sampled_from(["known", "unknown", 3, None]))
        inner["message_state"] = draw(st.sampled_from(["queued", "sent", "delivered", "bogus", 7]))
    params = draw(st.dictionaries(keys, json_values, max_size=5))
    params["event_type"] = draw(event_types | json_values)
    params["params"] = inner if draw(st.booleans()) else draw(json_values)
    frame = draw(st.dictionaries(keys, json_values, max_size=6))
    if draw(st.booleans()):
        frame["method"] = draw(methods | json_values)
        frame["params"] = params
    return frame


def _router() -> tuple[Connection, RelayClient]:
    client = RelayClient(project="p", token="t", host="ws://127.0.0.1:9")
    tracker = MessageTracker(_NullDispatcher())
    tracker.register("known", {}, lambda e: None)
    conn = Connection(
        "ws://127.0.0.1:9",
        auth={"project": "p", "token": "t"},
        contexts=list,
        on_event=functools.partial(client._on_event, tracker, tracker.dispatcher),
        on_lost=lambda r: None,
        on_fresh_session=lambda: None,
        on_tick=lambda: None,
        on_batch_end=tracker.notify_deferred,
        ssl_context=None,
        connect_timeout=1,
        request_timeout=1,
        queue_timeout=1,
        reconnect=False,
        max_reconnect_delay=1,
        ping_interval=None,
    )
    return conn, client


class _NullDispatcher(Dispatcher):
    def submit(self, key, fn, *args):  # type: ignore[no-untyped-def]
        fn(*args)  # run inline so handler-path bugs surface here


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(frames())
def test_router_survives_arbitrary_frames(frame: dict[str, Any]) -> None:
    conn, _ = _router()
    try:
        conn._route(frame)
        conn._complete_answered()
    finally:
        conn._close_wake()


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=200))
def test_frame_decoder_and_json_survive_arbitrary_bytes(data: bytes) -> None:
    from swsync.relay import wsframes
    from swsync.relay.rpc import decode_frame as _loads

    reader = wsframes.FrameReader(max_message=1000)
    reader.feed(data)
    try:
        msgs = reader.messages()
    except wsframes.ProtocolError:
        return
    for _, payload in msgs:
        _loads(payload)


def test_lone_surrogate_is_a_value_error_not_a_dropped_connection(emu: Emulator) -> None:
    with RelayClient(project=emu.project, token=emu.token, host=emu.relay_url) as client:
        with pytest.raises(ValueError, match="Unicode"):
            client.send_message(to_number=TO, from_number=FROM, body="bad \udc80 text")
        with pytest.raises(ValueError, match="Unicode"):
            client.execute("signalwire.receive", {"contexts": ["\ud800"]})
        assert client.send_message(to_number=TO, from_number=FROM, body="ok").wait(5).message_state == "delivered"
    assert emu.stats.connections == 1


def test_deeply_nested_frame_is_dropped(emu: Emulator) -> None:
    with RelayClient(project=emu.project, token=emu.token, host=emu.relay_url) as client:
        emu.send_raw("[" * 100_000 + "]" * 100_000)
        assert client.send_message(to_number=TO, from_number=FROM, body="ok").wait(5).message_state == "delivered"
    assert emu.stats.connections == 1


def test_redirects_are_never_followed(emu: Emulator) -> None:
    import http.server
    import threading

    class Redirect(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # noqa: N802
            self.send_response(302)
            self.send_header("Location", emu.relay_url)
            self.end_headers()

        def log_message(self, *args: Any) -> None:
            pass

    server = http.server.HTTPServer(("127.0.0.1", 0), Redirect)
    t = threading.Thread(target=server.serve_forever, name="test-redirect", daemon=True)
    t.start()
    try:
        client = RelayClient(project=emu.project, token=emu.token, host=f"ws://127.0.0.1:{server.server_address[1]}")
        with pytest.raises(ConnectionClosedError, match="could not connect"):
            client.connect()
    finally:
        server.shutdown()
        server.server_close()
        t.join(5)
    assert emu.stats.connections == 0


def test_a_trickling_handshake_is_bounded_by_connect_timeout() -> None:
    """A server that answers the upgrade one byte at a time cannot stall connect()."""
    import socket
    import threading

    listener = socket.create_server(("127.0.0.1", 0))
    stop = threading.Event()

    def trickle() -> None:
        conn, _ = listener.accept()
        with conn:
            for byte in b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n" * 100:
                if stop.wait(0.05):  # sleep-ok: the point is a slow server
                    return
                try:
                    conn.sendall(bytes([byte]))
                except OSError:
                    return

    t = threading.Thread(target=trickle, name="test-trickle", daemon=True)
    t.start()
    try:
        client = RelayClient(
            project="p", token="t", host=f"ws://127.0.0.1:{listener.getsockname()[1]}", connect_timeout=0.5
        )
        with pytest.raises(ConnectionClosedError):
            client.connect()
    finally:
        stop.set()
        listener.close()
        t.join(5)


def test_receive_rejects_a_bare_string(emu: Emulator) -> None:
    with RelayClient(project=emu.project, token=emu.token, host=emu.relay_url) as client:
        with pytest.raises(ValueError):
            client.receive("sales")  # type: ignore[arg-type]
        assert client.contexts == []


def test_descriptors_above_1024_work(emu: Emulator) -> None:
    import resource

    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < 1200:
        # A hard limit under 1200 can be raised only by root (CI runs as root); elsewhere the
        # usual hard limit is far above it. If neither holds, setrlimit's error fails the test.
        if hard != resource.RLIM_INFINITY and hard < 1200:
            hard = 1200
        resource.setrlimit(resource.RLIMIT_NOFILE, (1200, hard))
    hogs = [open(os.devnull) for _ in range(1100)]
    try:
        with RelayClient(project=emu.project, token=emu.token, host=emu.relay_url) as client:
            conn = client._session.connection
            assert conn is not None and conn._sock is not None
            assert conn._sock.sock.fileno() > 1024
            assert client.send_message(to_number=TO, from_number=FROM, body="x").wait(5).message_state == "delivered"
    finally:
        for f in hogs:
            f.close()
        if soft < 1200:
            resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))
