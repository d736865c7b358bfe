"""The emulator's RELAY side, driven over real sockets with a bare websocket-client.

The client (``helpers.WireClient``) is deliberately not swsync's RelayClient: these
tests pin the server's wire behaviour. To prove that something did *not* arrive, a
test sends ``signalwire.ping`` and reads up to its reply: the emulator handles one
socket's frames in order and writes everything a frame causes before reading the
next, so anything that was going to be sent is in front of that reply.
"""

from __future__ import annotations

import base64
import json
import socket
import ssl
import subprocess
import sys
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
import websocket

from swsync.emulator import (
    FAILED_NUMBER,
    NO_DLR_NUMBER,
    REJECTED_NUMBER,
    UNDELIVERED_NUMBER,
    Emulator,
)

from ..helpers import FROM, TO, WireClient, open_client, state_events, states


@pytest.fixture
def client(emu: Emulator, clients: list[WireClient]) -> WireClient:
    return open_client(emu, clients)


@pytest.fixture
def slow_emu() -> Iterator[Emulator]:
    """An emulator whose states come 0.1 s apart (resume and ordering tests)."""
    with Emulator(state_delay=0.1, session_ttl=30) as e:
        yield e


# -- connect -------------------------------------------------------------------------


def test_connect_returns_session_and_authorization_state(emu: Emulator, client: WireClient) -> None:
    mid = client.send(
        "signalwire.connect",
        {"authentication": {"project": emu.project, "token": emu.token}, "contexts": ["office"]},
    )
    reply = client.recv()
    assert reply["id"] == mid and reply["jsonrpc"] == "2.0"
    result = reply["result"]
    assert result["protocol"].startswith("signalwire_")
    uuid.UUID(result["protocol"][len("signalwire_") :])
    assert result["session_restored"] is False
    assert result["authorization"] == {"project_id": emu.project}
    assert result["identity"] and result["nodeid"]

    event = client.recv()
    assert event["method"] == "signalwire.event"
    uuid.UUID(event["id"])
    params = event["params"]
    assert params["event_type"] == "signalwire.authorization.state"
    assert params["project_id"] == emu.project
    assert isinstance(params["timestamp"], float)
    blob, tag = params["params"]["authorization_state"].split(":")
    assert base64.b64decode(blob, validate=True) and base64.b64decode(tag, validate=True)
    emu.wait_for_clients(1, timeout=5)
    assert emu.stats.connections == 1


def test_connect_with_jwt(emu: Emulator, client: WireClient) -> None:
    reply = client.call("signalwire.connect", {"authentication": {"jwt_token": emu.jwt_token}})
    assert reply["result"]["authorization"]["project_id"] == emu.project


def test_each_connect_issues_a_new_authorization_state(emu: Emulator, clients: list[WireClient]) -> None:
    a, b = open_client(emu, clients), open_client(emu, clients)
    a.connect(emu)
    b.connect(emu)
    assert a.auth_state and b.auth_state and a.auth_state != b.auth_state
    assert a.protocol != b.protocol


@pytest.mark.parametrize(
    "auth",
    [
        {"project": "wrong", "token": "wrong"},
        {"project": "PROJECT", "token": "wrong"},
        {"jwt_token": "not-the-jwt"},
        {},
    ],
)
def test_bad_credentials_are_refused_and_the_socket_closed(
    emu: Emulator, client: WireClient, auth: dict[str, str]
) -> None:
    auth = {k: (emu.project if v == "PROJECT" else v) for k, v in auth.items()}
    reply = client.call("signalwire.connect", {"authentication": auth})
    assert reply["error"]["code"] == -32002
    assert reply["error"]["message"] == "Authentication failed"
    assert reply["error"]["data"] == {"signalwire_error_code": "AUTH_REQUIRED"}
    opcode, _ = client.ws.recv_data(control_frame=True)
    assert opcode == websocket.ABNF.OPCODE_CLOSE
    assert emu.stats.connections == 0


def test_missing_authentication_is_invalid_params(client: WireClient) -> None:
    reply = client.call("signalwire.connect", {"contexts": ["office"]})
    assert reply["error"]["code"] == -32602
    assert reply["error"]["data"]["signalwire_error_code"] == "INVALID_PARAMS"


def test_methods_before_connect_are_refused_but_the_socket_stays(emu: Emulator, client: WireClient) -> None:
    for method in ("messaging.send", "signalwire.receive", "signalwire.ping", "no.such.method"):
        reply = client.call(method, {})
        assert reply["error"]["code"] == -32002, method
        assert reply["error"]["data"]["signalwire_error_code"] == "AUTH_REQUIRED"
    assert client.connect(emu)["session_restored"] is False


def test_second_connect_on_one_socket_is_refused(emu: Emulator, client: WireClient) -> None:
    client.connect(emu)
    reply = client.call("signalwire.connect", {"authentication": {"project": emu.project, "token": emu.token}})
    assert reply["error"]["code"] == -32600


# -- framing errors ----------------------------------------------------------------------


def test_unparseable_json_gets_parse_error_and_connection_survives(emu: Emulator, client: WireClient) -> None:
    client.connect(emu)
    client.ws.send("{not json")
    reply = client.recv()
    assert reply == {
        "jsonrpc": "2.0",
        "id": None,
        "error": {"code": -32700, "message": "Parse error"},
    }
    client.ws.send("[1, 2]")
    assert client.recv()["error"]["code"] == -32600
    assert "result" in client.call("signalwire.ping", {})


def test_unknown_method(emu: Emulator, client: WireClient) -> None:
    client.connect(emu)
    reply = client.call("calling.dial", {})
    assert reply["error"]["code"] == -32601


def test_binary_frame_closes_with_1003(emu: Emulator, client: WireClient) -> None:
    client.connect(emu)
    client.ws.send_binary(b"\x00\x01")
    opcode, data = client.ws.recv_data(control_frame=True)
    assert opcode == websocket.ABNF.OPCODE_CLOSE
    assert int.from_bytes(data[:2], "big") == 1003


@pytest.mark.parametrize(
    "params",
    [
        {"context": 5, "to_number": TO, "from_number": FROM, "body": "x"},
        {"context": "office", "to_number": "12", "from_number": FROM, "body": "x"},  # too short
        {"context": "office", "to_number": "123456789", "from_number": FROM, "body": "x"},  # too long
        {"context": "office", "to_number": TO, "from_number": "1234a", "body": "x"},
        {"context": "office", "to_number": TO, "from_number": " 12345", "body": "x"},
        {"context": "", "to_number": TO, "from_number": FROM, "body": "x"},
        {"context": "office", "to_number": "5551230001", "from_number": FROM, "body": "x"},
        {"context": "office", "to_number": TO, "from_number": "+0123", "body": "x"},
        {"context": "office", "to_number": TO, "from_number": FROM},  # no body, no media
        {"context": "office", "to_number": TO, "from_number": FROM, "body": "", "media": []},
        {"context": "office", "to_number": TO, "from_number": FROM, "body": "x" * 1601},
        {"context": "office", "to_number": TO, "from_number": FROM, "media": ["ftp://x/y.png"]},
        {"context": "office", "to_number": TO, "from_number": FROM, "body": "x", "tags": "otp"},
    ],
)
def test_send_with_invalid_params(emu: Emulator, client: WireClient, params: dict[str, Any]) -> None:
    client.connect(emu)
    reply = client.call("messaging.send", params)
    assert reply["error"]["code"] == -32602
    assert reply["error"]["data"] == {"signalwire_error_code": "INVALID_PARAMS"}
    assert emu.stats.accepted_sends == 0


# -- messaging.send and its states -------------------------------------------------------------


def test_send_response_then_every_state_with_ack_tracking(emu: Emulator, client: WireClient) -> None:
    client.connect(emu)
    mid = client.send(
        "messaging.send",
        {
            "context": "office",
            "to_number": TO,
            "from_number": FROM,
            "body": "x" * 161,
            "media": ["https://example.com/a.png"],
            "tags": ["otp"],
            "region": "us",
        },
    )
    reply = client.recv()  # the response comes first, before any state event
    assert reply["id"] == mid
    result = reply["result"]
    assert result["code"] == "200" and result["message"] == "Message accepted"
    message_id = result["message_id"]
    uuid.UUID(message_id)

    frames = [client.recv() for _ in range(4)]
    assert states(frames) == ["queued", "initiated", "sent", "delivered"]
    assert len({f["id"] for f in frames}) == 4
    first = frames[0]["params"]
    assert first["event_type"] == "messaging.state"
    assert first["context"] == "office" and first["project_id"] == emu.project
    assert first["params"] == {
        "message_id": message_id,
        "message_state": "queued",
        "context": "office",
        "direction": "outbound",
        "from_number": FROM,
        "to_number": TO,
        "body": "x" * 161,
        "media": ["https://example.com/a.png"],
        "segments": 2,
        "tags": ["otp"],
    }
    # The grant was ACKed by connect(); the four states are outstanding.
    assert emu.unacked_events == 4
    for frame in frames[:2]:
        client.ack(frame)
    client.barrier()
    assert emu.unacked_events == 2
    for frame in frames[2:]:
        client.ack(frame)
    client.barrier()
    assert emu.unacked_events == 0
    stats = emu.stats
    assert stats.accepted_sends == 1 and stats.acks_received == 5 and stats.events_sent == 5
    record = emu.wait_for_status(message_id, "delivered", timeout=5)
    assert record["history"] == ["queued", "initiated", "sent", "delivered"]
    assert record["origin"] == "relay" and record["direction"] == "outbound-api"


def test_events_are_not_tracked_without_event_acks(emu: Emulator, client: WireClient) -> None:
    client.connect(emu, event_acks=False, ack=False)
    client.send_message()
    assert states(client.events + client.barrier(ack=False)) == [
        "queued",
        "initiated",
        "sent",
        "delivered",
    ]
    assert emu.unacked_events == 0 and emu.stats.acks_received == 0


def test_execute_wrapper(emu: Emulator, client: WireClient) -> None:
    client.connect(emu)
    reply = client.call(
        "signalwire.execute",
        {
            "protocol": client.protocol,
            "method": "messaging.send",
            "params": {"context": "office", "to_number": TO, "from_number": FROM, "body": "hi"},
        },
    )
    assert reply["result"]["code"] == "200"
    assert states(state_events(client, 4)) == ["queued", "initiated", "sent", "delivered"]
    reply = client.call("signalwire.execute", {"method": "signalwire.ping", "params": {}})
    assert isinstance(reply["result"]["timestamp"], float)


@pytest.mark.parametrize(
    ("number", "expected", "reason"),
    [
        (UNDELIVERED_NUMBER, ["queued", "initiated", "sent", "undelivered"], "carrier_blocked"),
        (FAILED_NUMBER, ["queued", "failed"], "unreachable"),
        (NO_DLR_NUMBER, ["queued", "initiated", "sent"], None),
        (TO, ["queued", "initiated", "sent", "delivered"], None),
    ],
)
def test_special_numbers(
    emu: Emulator, client: WireClient, number: str, expected: list[str], reason: str | None
) -> None:
    client.connect(emu)
    reply = client.send_message(number)
    message_id = reply["result"]["message_id"]
    seen = client.events + client.barrier()
    assert states(seen) == expected
    last = seen[-1]["params"]["params"]
    assert last["message_id"] == message_id
    assert last.get("reason") == reason
    assert all("reason" not in f["params"]["params"] for f in seen[:-1])
    record = emu.get_message(message_id)
    assert record is not None and record["status"] == expected[-1]


def test_rejected_number_gets_non_2xx_result_and_no_events(emu: Emulator, client: WireClient) -> None:
    client.connect(emu)
    reply = client.send_message(REJECTED_NUMBER)
    assert reply["result"]["code"] == "422"
    assert reply["result"]["message"]
    assert "message_id" not in reply["result"]
    assert client.barrier() == [] and client.events == []
    assert emu.stats.accepted_sends == 0


def test_state_before_response_with_zero_delay(emu: Emulator, client: WireClient) -> None:
    client.connect(emu)
    emu.faults.state_before_response = True
    mid = client.send("messaging.send", {"context": "office", "to_number": TO, "from_number": FROM, "body": "b"})
    frames = [client.recv() for _ in range(5)]
    assert states(frames[:4]) == ["queued", "initiated", "sent", "delivered"]
    assert frames[4]["id"] == mid and frames[4]["result"]["code"] == "200"
    assert frames[0]["params"]["params"]["message_id"] == frames[4]["result"]["message_id"]


def test_state_before_response_with_delay(slow_emu: Emulator, clients: list[WireClient]) -> None:
    client = open_client(slow_emu, clients)
    client.connect(slow_emu)
    slow_emu.faults.state_before_response = True
    mid = client.send("messaging.send", {"context": "office", "to_number": TO, "from_number": FROM, "body": "b"})
    first, second = client.recv(), client.recv()
    assert states([first]) == ["queued"]
    assert second["id"] == mid
    assert states(state_events(client, 3)) == ["initiated", "sent", "delivered"]


def test_response_delay_lets_events_overtake_the_response(emu: Emulator, client: WireClient) -> None:
    client.connect(emu)
    emu.faults.response_delay = 0.2
    mid = client.send("messaging.send", {"context": "office", "to_number": TO, "from_number": FROM, "body": "b"})
    frames = [client.recv() for _ in range(5)]
    assert states(frames[:4]) == ["queued", "initiated", "sent", "delivered"]
    assert frames[4]["id"] == mid


def test_duplicate_events(emu: Emulator, client: WireClient) -> None:
    client.connect(emu)
    emu.faults.duplicate_events = True
    client.send_message()
    seen = client.events + client.barrier()
    assert states(seen) == [
        "queued",
        "queued",
        "initiated",
        "initiated",
        "sent",
        "sent",
        "delivered",
        "delivered",
    ]
    assert len({f["id"] for f in seen}) == 8


def test_state_delay_spaces_the_states(slow_emu: Emulator, clients: list[WireClient]) -> None:
    client = open_client(slow_emu, clients)
    client.connect(slow_emu)
    reply = client.send_message()
    assert states(client.events) == []  # only the response so far
    assert states(state_events(client, 4)) == ["queued", "initiated", "sent", "delivered"]
    slow_emu.wait_for_status(reply["result"]["message_id"], "delivered", timeout=5)


# -- contexts and inbound -----------------------------------------------------------------------


def test_inbound_goes_only_to_subscribed_contexts(emu: Emulator, clients: list[WireClient]) -> None:
    office, sales = open_client(emu, clients), open_client(emu, clients)
    office.connect(emu, contexts=["office"])
    sales.connect(emu, contexts=["sales"])

    sid = emu.inject_inbound("+15551234567", "+15550001111", body="STOP", context="office")
    event = office.next_event("messaging.receive")
    assert event["params"]["context"] == "office"
    assert event["params"]["params"] == {
        "message_id": sid,
        "context": "office",
        "direction": "inbound",
        "from_number": "+15550001111",
        "to_number": "+15551234567",
        "body": "STOP",
        "media": [],
        "segments": 1,
        "message_state": "received",
        "tags": [],
    }
    assert sales.barrier() == []

    # Both now listen on "office": each inbound message goes to exactly one of them.
    reply = sales.call("signalwire.receive", {"contexts": ["office"]})
    assert reply["result"] == {"code": "200", "message": "Receiving events"}
    for body in ("again", "and again"):
        emu.inject_inbound("+15551234567", "+15550001111", body=body, context="office",
                           media=["https://example.com/p.jpg"])  # fmt: skip
    got = [[e["params"]["params"] for e in c.barrier() if e["params"]["event_type"] == "messaging.receive"]
           for c in (office, sales)]  # fmt: skip
    assert sorted(len(g) for g in got) == [1, 1]
    assert sorted(g[0]["body"] for g in got) == ["again", "and again"]
    assert all(g[0]["media"] == ["https://example.com/p.jpg"] for g in got)

    reply = office.call("signalwire.unreceive", {"contexts": ["office"]})
    assert reply["result"] == {"code": "200", "message": "Unreceiving events"}
    emu.inject_inbound("+15551234567", "+15550001111", body="third", context="office")
    assert sales.next_event("messaging.receive")["params"]["params"]["body"] == "third"
    assert office.barrier() == []

    record = emu.get_message(sid)
    assert record is not None
    assert record["direction"] == "inbound" and record["status"] == "received"


def test_receive_requires_a_list_of_contexts(emu: Emulator, client: WireClient) -> None:
    client.connect(emu)
    assert client.call("signalwire.receive", {"contexts": "office"})["error"]["code"] == -32602
    assert client.call("signalwire.unreceive", {})["error"]["code"] == -32602


def test_inject_inbound_validates(emu: Emulator) -> None:
    with pytest.raises(ValueError):
        emu.inject_inbound("12", "+15550001111", body="x")
    with pytest.raises(ValueError):
        emu.inject_inbound("+15551234567", "+15550001111")


# -- sessions and resume --------------------------------------------------------------------------


def test_resume_delivers_missed_and_unacked_events(slow_emu: Emulator, clients: list[WireClient]) -> None:
    emu = slow_emu
    first = open_client(emu, clients)
    first.connect(emu, contexts=["office"])
    reply = first.send_message()
    message_id = reply["result"]["message_id"]
    queued = first.recv()  # not ACKed: it must come again after the resume
    assert states([queued]) == ["queued"]

    emu.drop_connections()
    # Frames already on their way may still arrive: read (and never ACK) them until
    # the socket reports the drop. Whatever was not ACKed is redelivered on resume.
    with pytest.raises((websocket.WebSocketConnectionClosedException, OSError)):
        for _ in range(10):
            first.recv()
    emu.wait_for_status(message_id, "delivered", timeout=5)  # produced while away
    inbound_sid = emu.inject_inbound("+15551234567", "+15550001111", body="while away", context="office")

    second = open_client(emu, clients)
    result = second.connect(emu, protocol=first.protocol, authorization_state=first.auth_state)
    assert result["session_restored"] is True
    assert result["protocol"] == first.protocol
    frames = [second.next_event() for _ in range(5)]
    assert frames[0]["id"] == queued["id"]  # redelivered with its original id
    assert states(frames) == ["queued", "initiated", "sent", "delivered"]
    assert frames[4]["params"]["params"]["message_id"] == inbound_sid
    assert second.barrier() == []
    assert emu.stats.resumes == 1
    assert emu.unacked_events == 0


def test_resume_with_stale_authorization_state_is_refused(emu: Emulator, clients: list[WireClient]) -> None:
    first = open_client(emu, clients)
    first.connect(emu)
    stale = first.auth_state
    emu.drop_connections()
    second = open_client(emu, clients)
    second.connect(emu, protocol=first.protocol, authorization_state=stale)
    assert second.auth_state != stale
    emu.drop_connections()

    third = open_client(emu, clients)
    auth = {"project": emu.project, "token": emu.token}
    reply = third.call(
        "signalwire.connect",
        {"authentication": auth, "protocol": first.protocol, "authorization_state": stale},
    )
    assert reply["error"]["code"] == -32003
    # The socket stays usable: the latest state resumes, a fresh connect would too.
    reply = third.call(
        "signalwire.connect",
        {
            "authentication": auth,
            "protocol": first.protocol,
            "authorization_state": second.auth_state,
        },
    )
    assert reply["result"]["session_restored"] is True


def test_resume_of_unknown_protocol_is_auth_required(emu: Emulator, client: WireClient) -> None:
    auth = {"project": emu.project, "token": emu.token}
    reply = client.call("signalwire.connect", {"authentication": auth, "protocol": f"signalwire_{uuid.uuid4()}"})
    assert reply["error"]["code"] == -32002
    assert reply["error"]["data"]["signalwire_error_code"] == "AUTH_REQUIRED"
    assert client.call("signalwire.connect", {"authentication": auth})["result"]["session_restored"] is False


def test_reject_resume_fault(emu: Emulator, clients: list[WireClient]) -> None:
    first = open_client(emu, clients)
    first.connect(emu)
    emu.drop_connections()
    emu.faults.reject_resume = True
    second = open_client(emu, clients)
    reply = second.resume_reply(emu, first)
    assert reply["error"]["code"] == -32003


def test_session_expires_after_ttl(clients: list[WireClient]) -> None:
    with Emulator(state_delay=0, session_ttl=0.05) as emu:
        first = open_client(emu, clients)
        first.connect(emu)
        emu.drop_connections()
        emu.wait_until(lambda: first.protocol not in emu.relay.sessions, timeout=5)
        second = open_client(emu, clients)
        reply = second.resume_reply(emu, first)
        assert reply["error"]["code"] == -32002


def test_resume_while_old_socket_still_open_takes_over(emu: Emulator, clients: list[WireClient]) -> None:
    first = open_client(emu, clients)
    first.connect(emu, contexts=["office"])
    second = open_client(emu, clients)
    second.connect(emu, protocol=first.protocol, authorization_state=first.auth_state)
    with pytest.raises((websocket.WebSocketConnectionClosedException, OSError)):
        first.recv()
    emu.inject_inbound("+15551234567", "+15550001111", body="hi", context="office")
    assert second.next_event("messaging.receive")["params"]["params"]["body"] == "hi"
    assert emu.clients == 1


# -- liveness and server-initiated traffic ------------------------------------------------------------


def test_client_ping(emu: Emulator, client: WireClient) -> None:
    client.connect(emu)
    reply = client.call("signalwire.ping", {"timestamp": 1.5})
    assert isinstance(reply["result"]["timestamp"], float)


def test_server_pings(clients: list[WireClient]) -> None:
    with Emulator(state_delay=0, ping_interval=0.05) as emu:
        client = open_client(emu, clients)
        client.connect(emu)
        while True:
            frame = client.recv()
            if frame.get("method") == "signalwire.ping":
                break
        assert isinstance(frame["params"]["timestamp"], float)
        client.ws.send(json.dumps({"jsonrpc": "2.0", "id": frame["id"], "result": {}}))
        client.barrier()
        stats = emu.stats
        assert stats.pings_sent >= 1 and stats.pongs_received >= 1


def test_silent_discards_everything(emu: Emulator, client: WireClient) -> None:
    client.connect(emu)
    emu.faults.silent = True
    client.send("signalwire.ping", {})
    client.send("messaging.send", {"context": "office", "to_number": TO, "from_number": FROM, "body": "b"})
    emu.inject_inbound("+15551234567", "+15550001111", body="x", context="default")
    client.ws.settimeout(0.3)
    with pytest.raises(websocket.WebSocketTimeoutException):
        client.ws.recv()
    client.ws.settimeout(5)
    emu.faults.silent = False
    assert client.barrier() == []  # the connection works again once the fault is lifted
    assert emu.stats.accepted_sends == 0


def test_send_raw(emu: Emulator, clients: list[WireClient]) -> None:
    authed, anonymous = open_client(emu, clients), open_client(emu, clients)
    authed.connect(emu)
    emu.send_raw('{"jsonrpc": "2.0", "method": 42')
    assert authed.ws.recv() == '{"jsonrpc": "2.0", "method": 42'
    anonymous.ws.settimeout(0.2)
    with pytest.raises(websocket.WebSocketTimeoutException):
        anonymous.ws.recv()


@pytest.mark.parametrize("restart", [False, True])
def test_server_disconnect(emu: Emulator, clients: list[WireClient], restart: bool) -> None:
    first = open_client(emu, clients)
    first.connect(emu)
    emu.server_disconnect(restart=restart)
    frame = first.recv()
    assert frame["method"] == "signalwire.disconnect"
    assert frame["params"] == {"restart": restart}
    first.ack(frame)
    opcode, _ = first.ws.recv_data(control_frame=True)
    assert opcode == websocket.ABNF.OPCODE_CLOSE

    second = open_client(emu, clients)
    reply = second.resume_reply(emu, first)
    if restart:
        assert reply["error"]["code"] == -32002
    else:
        assert reply["result"]["session_restored"] is True


def test_server_disconnect_closes_unacked_socket_after_a_second(emu: Emulator, client: WireClient) -> None:
    client.connect(emu)
    emu.server_disconnect()
    assert client.recv()["method"] == "signalwire.disconnect"
    opcode, _ = client.ws.recv_data(control_frame=True)  # never ACKed: closed anyway
    assert opcode == websocket.ABNF.OPCODE_CLOSE


def test_drop_connections_is_abrupt(emu: Emulator, client: WireClient) -> None:
    client.connect(emu)
    emu.drop_connections()
    with pytest.raises((websocket.WebSocketConnectionClosedException, OSError)):
        client.ws.recv_data(control_frame=True)
    emu.wait_until(lambda: emu.clients == 0)


def test_drop_every(emu: Emulator, client: WireClient) -> None:
    client.connect(emu)  # frame 1: connect; frame 2: the grant's ACK
    emu.faults.drop_every = 4
    client.call("signalwire.ping", {})  # frame 3
    client.send("signalwire.ping", {})  # frame 4: dropped after it
    with pytest.raises((websocket.WebSocketConnectionClosedException, OSError)):
        while True:
            client.ws.recv()


def test_wait_for_clients_times_out(emu: Emulator) -> None:
    with pytest.raises(TimeoutError):
        emu.wait_for_clients(1, timeout=0.05)


def test_wait_for_status_times_out(emu: Emulator) -> None:
    with pytest.raises(TimeoutError):
        emu.wait_for_status("no-such-sid", "delivered", timeout=0.05)


def test_plain_http_get_on_root_describes_the_emulator(emu: Emulator) -> None:
    with socket.create_connection(("127.0.0.1", emu.port), timeout=5) as s:
        s.sendall(b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        data = b""
        while chunk := s.recv(4096):
            data += chunk
    assert data.startswith(b"HTTP/1.1 200") and emu.relay_url.encode() in data


# -- TLS, lifecycle, packaging ------------------------------------------------------------------------------


def test_tls(tls_files: dict[str, str], clients: list[WireClient]) -> None:
    cafile = tls_files["ca"]
    with Emulator(state_delay=0, certfile=tls_files["cert"], keyfile=tls_files["key"]) as emu:
        assert emu.relay_url.startswith("wss://127.0.0.1:")
        assert emu.rest_url.startswith("https://127.0.0.1:")
        client = open_client(emu, clients, sslopt={"ca_certs": str(cafile)})
        client.connect(emu)
        reply = client.send_message()
        assert reply["result"]["code"] == "200"
        assert states(client.events + client.barrier()) == [
            "queued",
            "initiated",
            "sent",
            "delivered",
        ]
        import requests

        r = requests.get(
            f"{emu.rest_url}/api/laml/2010-04-01/Accounts/{emu.project}/Messages/{reply['result']['message_id']}",
            auth=(emu.project, emu.token),
            verify=str(cafile),
            timeout=5,
        )
        assert r.status_code == 200 and r.json()["status"] == "delivered"
        with pytest.raises(ssl.SSLError):
            WireClient(emu.relay_url)  # not trusted without the CA


def test_lifecycle() -> None:
    emu = Emulator()
    with pytest.raises(RuntimeError):
        emu.inject_inbound("+15551234567", "+15550001111", body="x")
    emu.start()
    assert emu.start() is emu
    assert emu.port != 0 and emu.relay_url == f"ws://127.0.0.1:{emu.port}"
    assert emu.token.startswith("PT") and emu.signing_key.startswith("PSK_")
    uuid.UUID(emu.project)
    assert emu.token not in repr(emu) and emu.signing_key not in repr(emu)
    thread = emu._thread
    assert thread is not None and thread.name == "swsync-emulator" and thread.is_alive()
    emu.close()
    emu.close()
    assert not thread.is_alive()
    with pytest.raises(RuntimeError):
        emu.start()
    with pytest.raises(RuntimeError):
        emu.send_raw("x")


def test_port_in_use_raises_from_start() -> None:
    with Emulator() as first, pytest.raises(OSError):
        Emulator(port=first.port).start()


def test_importing_swsync_does_not_import_aiohttp() -> None:
    code = "import sys, swsync; assert 'aiohttp' not in sys.modules, 'aiohttp imported'; print('ok')"
    out = subprocess.run([sys.executable, "-c", code], check=False, capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "ok"
