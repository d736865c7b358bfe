"""TLS verification, secrets never shown, and hostile frames from the server."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import trustme
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from swsync import ConnectionClosedError, RelayClient
from swsync.emulator import Emulator
from swsync.relay.connection import Connection
from swsync.relay.dispatcher import Dispatcher
from swsync.relay.message import MessageTracker

TO, FROM = "+15557654321", "+15551234567"


@pytest.fixture(scope="module")
def tls_files(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    ca = trustme.CA()
    cert = ca.issue_cert("127.0.0.1", "localhost")
    d = tmp_path_factory.mktemp("tls")
    paths = {"ca": str(d / "ca.pem"), "cert": str(d / "cert.pem"), "key": str(d / "key.pem")}
    ca.cert_pem.write_to_path(paths["ca"])
    cert.cert_chain_pems[0].write_to_path(paths["cert"])
    cert.private_key_pem.write_to_path(paths["key"])
    return paths


@pytest.fixture
def tls_emu(tls_files: dict[str, str]) -> Iterator[Emulator]:
    with Emulator(state_delay=0.0, certfile=tls_files["cert"], keyfile=tls_files["key"]) as emu:
        yield emu


def test_tls_with_ca_file(tls_emu: Emulator, tls_files: dict[str, str]) -> None:
    assert tls_emu.relay_url.startswith("wss://")
    with RelayClient(project=tls_emu.project, token=tls_emu.token, host=tls_emu.relay_url,
                     ca_file=tls_files["ca"]) as client:
        assert client.send_message(to_number=TO, from_number=FROM, body="tls").wait(5).message_state == "delivered"


def test_tls_ca_file_from_environment(tls_emu: Emulator, tls_files: dict[str, str],
                                      monkeypatch: pytest.MonkeyPatch) -> None:
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
        client = RelayClient(project=emu.project, token=emu.token, host=emu.relay_url,
                             contexts=["office"], max_reconnect_delay=0.2)
        with client:
            client.on_message(lambda m: None)
            client.send_message(to_number=TO, from_number=FROM, body="x").wait(5)
            emu.inject_inbound(to_number=FROM, from_number=TO, body="in", context="office")
            emu.drop_connections()  # a resume sends the authorization state back
            emu.wait_until(lambda: emu.stats.resumes >= 1, timeout=10)
            client.execute("signalwire.ping", {}, timeout=10)
            conn = client._conn
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
    max_leaves=20,
)
keys = st.sampled_from(["jsonrpc", "id", "method", "params", "result", "error", "event_type", "message_id",
                        "message_state", "reason", "media", "tags", "segments", "body", "code", "message",
                        "restart", "timestamp", "authorization_state"])
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
    conn = Connection(
        "ws://127.0.0.1:9", auth={"project": "p", "token": "t"}, contexts=list,
        on_event=client._on_event, on_lost=lambda r: None, on_fresh_session=lambda: None,
        on_tick=lambda: None, ssl_context=None, connect_timeout=1, request_timeout=1,
        queue_timeout=1, reconnect=False, max_reconnect_delay=1, ping_interval=None,
    )
    client._tracker = MessageTracker(_NullDispatcher())
    client._dispatcher = client._tracker.dispatcher
    client._tracker.register("known", {}, lambda e: None)
    return conn, client


class _NullDispatcher(Dispatcher):
    def submit(self, key, fn, *args):  # type: ignore[no-untyped-def]
        fn(*args)  # run inline so handler-path bugs surface here


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
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
    from swsync.relay.connection import _loads

    reader = wsframes.FrameReader(max_message=1000)
    reader.feed(data)
    try:
        msgs = reader.messages()
    except wsframes.ProtocolError:
        return
    for _, payload in msgs:
        _loads(payload)
