"""The emulator is as strict as SignalWire where SignalWire is strict, and as liberal where it is liberal.

Context routing of ``messaging.state``, one consumer per inbound message, short codes,
and the liberal corners of ``messaging.send`` and the REST API. Raw websocket clients
(``helpers.WireClient``) pin the wire behaviour where swsync's own
``RelayClient`` would refuse or hide it; to prove that nothing arrived, a client
reads up to the reply of a ``signalwire.ping`` (see its docstring).
"""

from __future__ import annotations

import queue
from typing import Any

import pytest
import requests

from swsync import RelayClient
from swsync.emulator import SERVICE_NUMBER, Emulator
from swsync.rest import RestClient

from ..helpers import FROM, TO, Api, Hook, WireClient, assert_error, open_client, state_events, states

SHORT = "12345"  # a short code we "own"
DELIVERED = ["queued", "initiated", "sent", "delivered"]


def receives(client: WireClient) -> list[dict[str, Any]]:
    """The ``messaging.receive`` params that arrived before a ping's reply."""
    return [f["params"]["params"] for f in client.barrier() if f["params"]["event_type"] == "messaging.receive"]


# -- state events are routed by context ----------------------------------------------------------------------------


def test_state_events_go_to_every_session_receiving_a_subscribed_named_context(
    emu: Emulator, clients: list[WireClient]
) -> None:
    sender, colleague, outsider = (open_client(emu, clients) for _ in range(3))
    sender.connect(emu, contexts=["billing"])
    colleague.connect(emu, contexts=["billing", "office"])
    outsider.connect(emu, contexts=["office"])

    reply = sender.send_message(context="billing")
    message_id = reply["result"]["message_id"]
    emu.wait_for_status(message_id, "delivered", timeout=5)
    for c in (sender, colleague):
        frames = state_events(c, 4)
        assert states(frames) == DELIVERED
        assert {f["params"]["params"]["message_id"] for f in frames} == {message_id}
        assert {f["params"]["context"] for f in frames} == {"billing"}
    assert outsider.barrier() == []
    assert sender.barrier() == [] and colleague.barrier() == []


def test_a_send_on_a_context_the_session_does_not_receive_gets_no_state_events(
    emu: Emulator, clients: list[WireClient]
) -> None:
    sender = open_client(emu, clients)
    sender.connect(emu, contexts=["office"])
    reply = sender.send_message(context="billing")  # accepted, as SignalWire accepts it
    assert reply["result"]["code"] == "200"
    emu.wait_for_status(reply["result"]["message_id"], "delivered", timeout=5)
    assert sender.barrier() == []  # in production this sender would wait forever

    # Subscribing later makes later events arrive, as in production.
    sender.call("signalwire.receive", {"contexts": ["billing"]})
    reply = sender.send_message(context="billing")
    assert states(state_events(sender, 4)) == DELIVERED


def test_the_session_protocol_is_the_default_context_and_always_received(
    emu: Emulator, clients: list[WireClient]
) -> None:
    sender, other = open_client(emu, clients), open_client(emu, clients)
    sender.connect(emu, contexts=[])
    other.connect(emu, contexts=["office"])
    params = {"to_number": TO, "from_number": FROM, "body": "no context"}  # as the Node SDK sends it
    reply = sender.call("messaging.send", params)
    assert reply["result"]["code"] == "200"
    frames = state_events(sender, 4)
    assert states(frames) == DELIVERED
    assert {f["params"]["context"] for f in frames} == {sender.protocol}
    assert {f["params"]["params"]["context"] for f in frames} == {sender.protocol}
    stored = emu.get_message(reply["result"]["message_id"])
    assert stored is not None and stored["context"] == sender.protocol
    # Explicitly naming the own protocol works the same; unreceive cannot remove it.
    sender.call("signalwire.unreceive", {"contexts": [sender.protocol]})
    sender.send_message(context=sender.protocol)
    assert states(state_events(sender, 4)) == DELIVERED
    assert other.barrier() == []


def test_relay_client_on_a_subscribed_named_context_sees_its_states(emu: Emulator) -> None:
    with RelayClient(emu.project, emu.token, emu.relay_url, contexts=["billing"]) as client:
        message = client.send_message(TO, FROM, "invoice ready", context="billing")
        assert message.wait(timeout=10).message_state == "delivered"
        assert message.context == "billing"


def test_state_events_reach_a_resumable_session_of_the_context(clients: list[WireClient]) -> None:
    with Emulator(state_delay=0, session_ttl=30) as emu:
        away, sender = open_client(emu, clients), open_client(emu, clients)
        away.connect(emu, contexts=["billing"])
        emu.wait_for_clients(1)
        away.close()  # its session stays resumable for 30 s
        emu.wait_until(lambda: emu.clients == 0, timeout=5)
        sender.connect(emu, contexts=["billing"])
        reply = sender.send_message(context="billing")
        assert states(state_events(sender, 4)) == DELIVERED
        back = open_client(emu, clients)
        result = back.connect(emu, protocol=away.protocol, authorization_state=away.auth_state)
        assert result["session_restored"] is True
        frames = state_events(back, 4)
        assert states(frames) == DELIVERED
        assert frames[0]["params"]["params"]["message_id"] == reply["result"]["message_id"]


# -- each inbound message goes to exactly one subscribed session --------------------------------------------------


def test_inbound_messages_are_spread_round_robin_over_the_listeners(emu: Emulator, clients: list[WireClient]) -> None:
    listeners = [open_client(emu, clients) for _ in range(3)]
    for c in listeners:
        c.connect(emu, contexts=["office"])
    bystander = open_client(emu, clients)
    bystander.connect(emu, contexts=["sales"])
    sids = [emu.inject_inbound(FROM, TO, body=f"m{i}", context="office") for i in range(9)]
    got = [[p["message_id"] for p in receives(c)] for c in listeners]
    assert [len(g) for g in got] == [3, 3, 3]  # each took its turn
    assert sorted(sid for g in got for sid in g) == sorted(sids)  # each message exactly once
    assert got[0] == sids[0::3] and got[1] == sids[1::3] and got[2] == sids[2::3]
    assert receives(bystander) == []


def test_two_relay_clients_on_one_context_split_1000_inbound_messages(emu: Emulator) -> None:
    import threading

    seen: list[list[str]] = [[], []]
    lock = threading.Condition()

    def handler(i: int) -> Any:
        def on_message(message: Any) -> None:
            with lock:
                seen[i].append(message.message_id)
                lock.notify_all()

        return on_message

    clients = [RelayClient(emu.project, emu.token, emu.relay_url, contexts=["office"]) for _ in range(2)]
    for i, client in enumerate(clients):
        client.on_message(handler(i))
        client.connect()
    try:
        sids = [emu.inject_inbound(FROM, TO, body=f"m{i}", context="office") for i in range(1000)]
        with lock:
            assert lock.wait_for(lambda: len(seen[0]) + len(seen[1]) >= 1000, timeout=30)
    finally:
        for client in clients:
            client.disconnect()
    assert len(seen[0]) == len(seen[1]) == 500  # round-robin: each handled half
    assert sorted(seen[0] + seen[1]) == sorted(sids)  # together all of them, exactly once


def test_inbound_state_events_and_inbound_together(emu: Emulator, clients: list[WireClient]) -> None:
    """A sender on a shared context gets every state event of its message but only its share of inbound."""
    a, b = open_client(emu, clients), open_client(emu, clients)
    a.connect(emu, contexts=["office"])
    b.connect(emu, contexts=["office"])
    message_id = a.send_message(context="office")["result"]["message_id"]
    emu.wait_for_status(message_id, "delivered", timeout=5)
    for c in (a, b):
        assert states(state_events(c, 4)) == DELIVERED
    emu.inject_inbound(FROM, TO, body="one", context="office")
    emu.inject_inbound(FROM, TO, body="two", context="office")
    assert sorted(len(receives(c)) for c in (a, b)) == [1, 1]


def test_inbound_waits_for_a_resumable_session_only_when_none_is_connected(clients: list[WireClient]) -> None:
    with Emulator(state_delay=0, session_ttl=30) as emu:
        away, here = open_client(emu, clients), open_client(emu, clients)
        away.connect(emu, contexts=["office"])
        here.connect(emu, contexts=["office"])
        away.close()
        emu.wait_until(lambda: emu.clients == 1, timeout=5)
        first = emu.inject_inbound(FROM, TO, body="while one is away", context="office")
        second = emu.inject_inbound(FROM, TO, body="still away", context="office")
        assert [p["message_id"] for p in receives(here)] == [first, second]
        here.close()
        emu.wait_until(lambda: emu.clients == 0, timeout=5)
        queued = emu.inject_inbound(FROM, TO, body="nobody connected", context="office")
        got: list[str] = []
        for old in (away, here):
            back = open_client(emu, clients)
            back.connect(emu, protocol=old.protocol, authorization_state=old.auth_state)
            got += [p["message_id"] for p in receives(back)]
        assert got == [queued]


def test_inbound_with_no_listener_is_stored_and_not_sent(emu: Emulator, clients: list[WireClient]) -> None:
    c = open_client(emu, clients)
    c.connect(emu, contexts=["sales"])
    sid = emu.inject_inbound(FROM, TO, body="nobody listens", context="office")
    assert receives(c) == []
    assert emu.get_message(sid) is not None


# -- short codes, end to end; garbage still refused ----------------------------------------------------------------


def test_short_codes_over_relay_end_to_end(emu: Emulator) -> None:
    inbox: queue.SimpleQueue[Any] = queue.SimpleQueue()
    with RelayClient(emu.project, emu.token, emu.relay_url, contexts=["office"]) as client:
        client.on_message(inbox.put)
        emu.inject_inbound(to_number=SHORT, from_number=TO, body="STOP", context="office")
        received = inbox.get(timeout=10)
        assert (received.to_number, received.from_number) == (SHORT, TO)
        reply = client.send_message(received.from_number, received.to_number, "You are unsubscribed")
        assert reply.wait(timeout=10).message_state == "delivered"
        to_short = client.send_message("22395", FROM, "to a short code")
        assert to_short.wait(timeout=10).message_state == "delivered"
    stored = emu.get_message(reply.message_id)
    assert stored is not None and (stored["from"], stored["to"]) == (SHORT, TO)


def test_short_codes_over_rest_and_in_webhooks(hook: Hook) -> None:
    hook.reply = (200, "text/xml", "<Response><Message>Thanks</Message><Message to='12'>bad</Message></Response>")
    with Emulator(state_delay=0, inbound_webhook_url=f"{hook.url}/sms") as emu:
        a = Api(emu)
        try:
            m = a.create(To="22395", From=SHORT, StatusCallback=f"{hook.url}/status")
            assert (m["to"], m["from"]) == ("22395", SHORT)
            forms = [hook.next()[2] for _ in range(4)]
            assert {(f["From"], f["To"]) for f in forms} == {(SHORT, "22395")}
            assert [f["MessageStatus"] for f in forms] == DELIVERED
            listed = a.get("/Messages.json", params={"From": SHORT}).json()["messages"]
            assert [x["sid"] for x in listed] == [m["sid"]]

            emu.inject_inbound(to_number=SHORT, from_number="987654", body="HELP")
            form = hook.next()[2]
            assert (form["To"], form["From"], form["Body"]) == (SHORT, "987654", "HELP")
            emu.wait_idle(timeout=10)
            replies = a.get("/Messages.json", params={"To": "987654"}).json()["messages"]
            assert [(x["from"], x["body"], x["direction"]) for x in replies] == [(SHORT, "Thanks", "outbound-reply")]
            assert a.get("/Messages.json", params={"To": "12"}).json()["messages"] == []  # skipped
        finally:
            a.close()


@pytest.mark.parametrize("bad", ["12", "123456789", "1234a", "+0123", "+1 555 123 4567", "", "short"])
def test_garbage_numbers_are_still_refused(emu: Emulator, api: Api, clients: list[WireClient], bad: str) -> None:
    assert_error(api.post("/Messages.json", {"To": bad or "x", "From": FROM, "Body": "x"}), 400, 21211)
    assert_error(api.post("/Messages.json", {"To": TO, "From": bad or "x", "Body": "x"}), 400, 21212)
    with pytest.raises(ValueError, match="short code"):
        emu.inject_inbound(to_number=bad, from_number=FROM, body="x")
    with pytest.raises(ValueError, match="short code"):
        emu.inject_inbound(to_number=TO, from_number=bad, body="x")
    c = open_client(emu, clients)
    c.connect(emu)
    for params in ({"to_number": bad}, {"from_number": bad}):
        reply = c.call("messaging.send", {"to_number": TO, "from_number": FROM, "body": "x", **params})
        assert reply["error"]["code"] == -32602 and "short code" in reply["error"]["message"]
    assert len(emu.store) == 0


# -- liberal where the service is --------------------------------------------------------------------------------


def test_rest_create_with_a_messaging_service_and_no_from(emu: Emulator, api: Api) -> None:
    r = api.post("/Messages.json", {"To": TO, "MessagingServiceSid": "MG123", "Body": "from the pool"})
    assert r.status_code == 201, r.text
    m = r.json()
    assert m["messaging_service_sid"] == "MG123" and m["from"] == SERVICE_NUMBER
    emu.wait_for_status(m["sid"], "delivered", timeout=5)
    with RestClient(emu.project, emu.token, emu.rest_url) as rest:
        record = rest.messages.create(to=TO, messaging_service_sid="MG124", body="via the client")
    assert record.messaging_service_sid == "MG124" and record.from_ == SERVICE_NUMBER
    assert_error(api.post("/Messages.json", {"To": TO, "Body": "x"}), 400, 21212)  # neither


@pytest.mark.parametrize("status", ["initiated", "sending", "sent", "delivered", "undelivered", "failed", "received"])
def test_delete_in_any_state_but_queued(emu: Emulator, api: Api, status: str) -> None:
    sid = emu.add_messages(1, status=status, media=["https://e.com/a.png"])[0]
    media_sid = api.get(f"/Messages/{sid}/Media.json").json()["media_list"][0]["sid"]
    assert api.delete(f"/Messages/{sid}/Media/{media_sid}.json").status_code == 204
    assert api.delete(f"/Messages/{sid}.json").status_code == 204
    assert emu.get_message(sid) is None


def test_delete_of_a_queued_message_is_refused() -> None:
    with Emulator(state_delay=30) as emu:
        a = Api(emu)
        try:
            sid = a.create(MediaUrl="https://e.com/a.png")["sid"]
            media_sid = a.get(f"/Messages/{sid}/Media.json").json()["media_list"][0]["sid"]
            assert_error(a.delete(f"/Messages/{sid}/Media/{media_sid}.json"), 400, 20009)
            body = assert_error(a.delete(f"/Messages/{sid}.json"), 400, 20009)
            assert "queued" in body["message"]
        finally:
            a.close()


def test_send_as_mms(emu: Emulator, api: Api) -> None:
    sms = api.create(Body="x" * 200)
    mms = api.create(Body="x" * 200, SendAsMms="true")
    assert (sms["num_segments"], mms["num_segments"]) == (2, 1)
    assert api.create(SendAsMms="False")["num_segments"] == 1
    emu.wait_for_status(mms["sid"], "delivered", timeout=5)
    emu.wait_for_status(sms["sid"], "delivered", timeout=5)
    fetched = api.get(f"/Messages/{mms['sid']}.json").json()
    assert fetched["price"] == 0.02 and fetched["num_media"] == 0
    assert emu.get_message(mms["sid"])["send_as_mms"] is True  # type: ignore[index]
    assert_error(api.post("/Messages.json", {"To": TO, "From": FROM, "Body": "x", "SendAsMms": "maybe"}), 400, 10000)
    with RestClient(emu.project, emu.token, emu.rest_url) as rest:  # the client's send_as_mms
        record = rest.messages.create(to=TO, from_=SHORT, body="x" * 200, send_as_mms=True)
    assert record.num_segments == 1 and emu.get_message(record.sid)["send_as_mms"] is True  # type: ignore[index]


# -- paging while deleting ------------------------------------------------------------------------------------------


@pytest.mark.timeout(120)
def test_deleting_while_streaming_deletes_everything(emu: Emulator) -> None:
    emu.add_messages(2500)
    with RestClient(emu.project, emu.token, emu.rest_url) as rest:
        deleted = 0
        for record in rest.messages.stream():
            rest.messages(record.sid).delete()
            deleted += 1
        assert deleted == 2500
        assert rest.messages.list() == []
    assert len(emu.store) == 0


def test_a_page_token_survives_deletion_of_its_anchor(emu: Emulator, api: Api) -> None:
    sids = emu.add_messages(5)
    first = api.get("/Messages.json", params={"PageSize": 2}).json()
    for m in first["messages"]:
        assert api.delete(f"/Messages/{m['sid']}.json").status_code == 204
    second = api.follow(first["next_page_uri"]).json()
    assert [m["sid"] for m in second["messages"]] == sids[2:4]
    # A token that never named a message is still refused.
    assert_error(api.get("/Messages.json", params={"Page": 1, "PageToken": "PAnot-a-sid"}), 400, 21481)


def test_message_uri_can_be_fetched(emu: Emulator, api: Api) -> None:
    m = api.create()
    assert m["uri"].endswith(".json") and m["subresource_uris"]["media"].endswith("/Media.json")
    r = requests.get(emu.rest_url + m["subresource_uris"]["media"], auth=(emu.project, emu.token), timeout=10)
    assert r.status_code == 200 and r.json()["media_list"] == []


def test_make_record_puts_every_value_in_its_field() -> None:
    """The store's one record builder passes the fields by position (it runs per message): none is swapped."""
    from datetime import datetime, timezone

    from swsync.emulator.store import make_record

    created = datetime(2026, 1, 2, 3, 4, 5, tzinfo=timezone.utc)
    sent = datetime(2026, 1, 2, 3, 4, 6, tzinfo=timezone.utc)
    r = make_record(
        account_sid="AC1",
        from_="+15550001111",
        to="+15550002222",
        body="hi",
        media=["https://example.com/a.png"],
        direction="inbound",
        status="received",
        origin="inbound",
        created=created,
        date_sent=sent,
        context="ctx",
        tags=["t1"],
        error_code="30004",
        error_message="blocked",
        status_callback="https://example.com/cb",
        messaging_service_sid="MG1",
        send_as_mms=True,
    )
    assert (r.account_sid, r.from_, r.to, r.body) == ("AC1", "+15550001111", "+15550002222", "hi")
    assert (r.direction, r.status, r.origin, r.history) == ("inbound", "received", "inbound", ["received"])
    assert (r.date_created, r.date_updated, r.date_sent) == (created, created, sent)
    assert (r.context, r.tags, r.error_code, r.error_message) == ("ctx", ["t1"], "30004", "blocked")
    assert (r.status_callback, r.messaging_service_sid, r.send_as_mms) == ("https://example.com/cb", "MG1", True)
    assert (r.num_segments, r.price, r.reason, r.seq) == (1, None, None, 0)
    [media] = r.media
    assert (media.parent_sid, media.url, media.content_type) == (r.sid, "https://example.com/a.png", "image/png")
    assert (media.date_created, media.date_updated) == (created, created)
