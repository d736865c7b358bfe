"""Emulator(mps=..., backlog=...): carrier pacing, backlog refusal, REST request rate."""

from __future__ import annotations

from typing import Any

import pytest
import requests

from swsync import RelayClient, RestClient
from swsync.emulator import Emulator
from swsync.emulator.pacing import BACKLOG_CODE, REST_LIMIT, Pacer
from swsync.emulator.store import FAILED_NUMBER
from swsync.errors import RelayError, RestError

FROM = "+15550001111"


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_turns_per_sender_in_order_weighted_by_segments() -> None:
    clock = Clock()
    p = Pacer(10, clock=clock)
    assert p.enabled
    assert p.book("+15551230001", FROM, "hi", None) == (True, 100.0)
    assert p.book("+15551230002", FROM, "x" * 200, None) == (True, pytest.approx(100.1))  # 2 segments
    assert p.book("+15551230003", FROM, "hi", None) == (True, pytest.approx(100.3))
    assert p.book("+15551230004", FROM, "x" * 500, ["https://e.com/a.png"]) == (True, pytest.approx(100.4))
    assert p.book("+15551230001", "+15550002222", "hi", None) == (True, 100.0)  # other sender
    assert p.book(FAILED_NUMBER, FROM, "hi", None) == (True, None)  # fails first: no turn
    assert p.queued() == 3
    clock.now = 100.35
    assert p.queued() == 1


def test_backlog_refuses_only_what_would_wait() -> None:
    clock = Clock()
    p = Pacer(1, backlog=2, clock=clock)
    assert p.book("+15551230001", FROM, "a", None)[0]  # leaves now: not queued
    assert p.book("+15551230002", FROM, "b", None)[0]
    assert p.book("+15551230003", FROM, "c", None)[0]
    assert p.book("+15551230004", FROM, "d", None) == (False, None)
    assert p.book("+15551230004", "+15550002222", "d", None)[0]  # leaves at once: no backlog
    assert p.refused == 1
    clock.now += 1.0  # one left
    assert p.book("+15551230004", FROM, "d", None) == (True, pytest.approx(103.0))


def test_rest_request_rate_sliding_window() -> None:
    clock = Clock()
    p = Pacer(1, clock=clock)
    assert p.rest_limit == REST_LIMIT == (13_800, 10.0)
    p.rest_limit = (3, 10.0)
    assert [p.rest_request("POST") for _ in range(3)] == [None, None, None]
    assert p.rest_request("GET") is None and p.rest_request("DELETE") is None
    assert p.rest_request("POST") == 10
    clock.now += 9.2
    assert p.rest_request("POST") == 1  # whole seconds, rounded up
    clock.now += 0.8
    assert p.rest_request("POST") is None


def test_off_by_default() -> None:
    p = Pacer(None)
    assert not p.enabled
    assert p.book("+15551230001", FROM, "hi", None) == (True, None)
    assert p.rest_request("POST") is None
    with pytest.raises(ValueError):
        Pacer(0)
    with pytest.raises(ValueError):
        Pacer(1, backlog=-1)


def test_messages_leave_in_order_no_faster_than_mps() -> None:
    mps, n = 40.0, 9
    with Emulator(state_delay=0.0, mps=mps) as emu:
        with RelayClient(emu.project, emu.token, emu.relay_url) as client:
            msgs = [client.send_message(f"+1555123{i:04d}", FROM, f"m{i}") for i in range(n)]
            other = client.send_message("+15551239999", "+15550002222", "other sender")
            for m in msgs + [other]:
                assert m.wait(timeout=30).message_state == "delivered"
        sent = [emu.store.get(m.message_id).date_sent for m in msgs]
        snapshot = emu.get_message(msgs[0].message_id)
    assert sent == sorted(sent)  # in order
    span = (sent[-1] - sent[0]).total_seconds()
    assert span >= (n - 1) / mps - 0.002  # never faster than the limit
    assert snapshot is not None and snapshot["date_sent"] and snapshot["history"][-2:] == ["sent", "delivered"]


def test_backlog_refusal_over_relay_and_rest() -> None:
    with Emulator(state_delay=0.0, mps=0.01, backlog=2) as emu:
        with RelayClient(emu.project, emu.token, emu.relay_url) as client:
            first = client.send_message("+15551230001", FROM, "leaves now")
            assert first.wait(timeout=10).message_state == "delivered"
            client.send_message("+15551230002", FROM, "queued 1")
            client.send_message("+15551230003", FROM, "queued 2")
            with pytest.raises(RelayError) as info:
                client.send_message("+15551230004", FROM, "refused")
            assert info.value.code == 400 and "Queue overflow (21611)" in info.value.message
        with RestClient(emu.project, emu.token, emu.rest_url, max_retries=0) as rest:
            with pytest.raises(RestError) as rinfo:
                rest.messages.create(to="+15551230005", from_=FROM, body="refused too")
            assert rinfo.value.status == 400 and rinfo.value.code == BACKLOG_CODE
            ok = rest.messages.create(to="+15551230006", from_="+15550002222", body="other sender")
            assert ok.status in ("queued", "sent", "delivered")
            tos = {m.to for m in rest.messages.list()}
        assert "+15551230004" not in tos and "+15551230005" not in tos  # nothing stored
        assert emu.pacing.refused == 2


def test_rest_post_rate_answers_429_with_retry_after() -> None:
    with Emulator(state_delay=0.0, mps=100) as emu:
        emu.pacing.rest_limit = (2, 60.0)
        url = f"{emu.rest_url}/api/laml/2010-04-01/Accounts/{emu.project}/Messages.json"
        auth = (emu.project, emu.token)
        data = {"To": "+15551230001", "From": FROM, "Body": "hi"}
        codes = [requests.post(url, data=data, auth=auth, timeout=10).status_code for _ in range(2)]
        third = requests.post(url, data=data, auth=auth, timeout=10)
        listed = requests.get(url, auth=auth, timeout=10)  # reads are not limited
    assert codes == [201, 201]
    assert third.status_code == 429
    assert third.json()["code"] == 20429
    assert 1 <= int(third.headers["Retry-After"]) <= 60
    assert listed.status_code == 200


@pytest.mark.usefixtures("clean_signalwire_env")
def test_cli_options() -> None:
    from swsync.cli import _emulator_server
    from swsync.emulator.__main__ import build_parser

    kwargs, _ = _emulator_server.emulator_kwargs(build_parser().parse_args(["--mps", "4", "--backlog", "50"]))
    assert (kwargs["mps"], kwargs["backlog"]) == (4.0, 50)
    kwargs, _ = _emulator_server.emulator_kwargs(build_parser().parse_args([]))
    assert (kwargs["mps"], kwargs["backlog"]) == (None, 10_000)
    with pytest.raises(SystemExit):
        build_parser().parse_args(["--mps", "0"])
    kwargs["mps"] = 3.0
    emu: Any = Emulator(**kwargs)  # the keywords fit the constructor
    assert emu.pacing.mps == 3.0 and emu.pacing.backlog == 10_000
