"""RestClient: the per-call deadline, short-code list filters, ``send_as_mms``, and the
errors a misconfigured space gets (mocked at the HTTP boundary with ``responses``, an
injected clock, and the real emulator where a plain-HTTP server is needed)."""

from __future__ import annotations

from typing import Any
from urllib.parse import parse_qsl, urlsplit

import pytest
import responses

from swsync.errors import ConfigurationError, RestError
from swsync.rest import RestClient, RestConnectionError
from swsync.rest import _transport as transport_mod

from ..helpers import PROJECT, SID, TOKEN, message_json, page_json  # PROJECT, TOKEN: the ``rest`` fixture's

BASE = f"https://example.signalwire.com/api/laml/2010-04-01/Accounts/{PROJECT}"


class FakeClock:
    """A monotonic clock that only moves when the client sleeps."""

    def __init__(self) -> None:
        self.now = 1000.0
        self.sleeps: list[float] = []

    def monotonic(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> FakeClock:
    fake = FakeClock()
    monkeypatch.setattr(transport_mod, "_monotonic", fake.monotonic)
    monkeypatch.setattr(transport_mod, "_sleep", fake.sleep)
    monkeypatch.setattr(transport_mod, "_uniform", lambda low, high: high)
    return fake


# --- the deadline: every attempt and every wait of one call ends within it -------------


def test_a_retry_after_past_the_deadline_is_not_waited_for(rsps: responses.RequestsMock, clock: FakeClock) -> None:
    rsps.add(
        responses.POST,
        f"{BASE}/Messages.json",
        status=429,
        headers={"Retry-After": "20"},
        json={"code": 20429, "message": "Too Many Requests"},
    )
    with RestClient(PROJECT, TOKEN, "example.signalwire.com", total_timeout=3) as rest:
        with pytest.raises(RestError) as info:
            rest.messages.create(to="+15557654321", from_="+15551234567", body="x")
    assert info.value.status == 429
    assert clock.sleeps == [] and len(rsps.calls) == 1


def test_retries_stop_where_the_next_wait_would_pass_the_deadline(
    rsps: responses.RequestsMock, clock: FakeClock
) -> None:
    url = f"{BASE}/Messages/{SID}.json"
    rsps.add(responses.GET, url, status=429, headers={"Retry-After": "1"}, json={"code": 20429})
    start = clock.now
    with RestClient(PROJECT, TOKEN, "example.signalwire.com", total_timeout=2.5) as rest:
        with pytest.raises(RestError):
            rest.messages(SID).fetch()
    assert clock.sleeps == [1.0, 1.0] and len(rsps.calls) == 3
    assert clock.now - start <= 2.5


def test_each_attempt_timeout_is_cut_to_what_the_deadline_leaves(
    rsps: responses.RequestsMock, clock: FakeClock
) -> None:
    url = f"{BASE}/Messages/{SID}.json"
    rsps.add(responses.GET, url, status=503, headers={"Retry-After": "2"})
    rsps.add(responses.GET, url, json=message_json())
    with RestClient(PROJECT, TOKEN, "example.signalwire.com", timeout=10, total_timeout=5) as rest:
        rest.messages(SID).fetch()
    timeouts = [call.request.req_kwargs["timeout"] for call in rsps.calls]
    assert timeouts == [5.0, 3.0]


def test_default_total_timeout_keeps_capped_retry_after_waits(
    rsps: responses.RequestsMock, clock: FakeClock, rest: RestClient
) -> None:
    url = f"{BASE}/Messages/{SID}.json"
    rsps.add(responses.GET, url, status=429, headers={"Retry-After": "3600"}, json={"code": 20429})
    rsps.add(responses.GET, url, json=message_json())
    assert rest.total_timeout == 60.0
    rest.messages(SID).fetch()
    assert clock.sleeps == [30.0]


@pytest.mark.parametrize("bad", [0, -1, float("inf"), float("nan"), "10", True])
def test_bad_total_timeout_is_a_configuration_error(bad: Any) -> None:
    with pytest.raises(ConfigurationError, match="total_timeout"):
        RestClient(PROJECT, TOKEN, "example.signalwire.com", total_timeout=bad)


# --- short codes in list filters -------------------------------------------------------


def test_list_filters_accept_short_codes(rsps: responses.RequestsMock, rest: RestClient) -> None:
    rsps.add(responses.GET, f"{BASE}/Messages.json", json=page_json([message_json(**{"from": "12345"})]))
    assert [r.from_ for r in rest.messages.list(to="+15557654321", from_="12345")] == ["12345"]
    list(rest.messages.stream(to="123"))
    rest.messages.page(from_="12345678")
    queries = [parse_qsl(urlsplit(c.request.url).query) for c in rsps.calls]
    assert ("From", "12345") in queries[0] and ("To", "+15557654321") in queries[0]
    assert ("To", "123") in queries[1] and ("From", "12345678") in queries[2]


@pytest.mark.parametrize("bad", ["12", "123456789", "555-1234", "+0123", "1555123456a", " 12345"])
@pytest.mark.parametrize("arg", ["to", "from_"])
def test_list_filters_refuse_anything_else_before_sending(
    rsps: responses.RequestsMock, rest: RestClient, arg: str, bad: str
) -> None:
    for call in (rest.messages.list, rest.messages.stream, rest.messages.page):
        with pytest.raises(ValueError, match="short code"):
            call(**{arg: bad})
    assert len(rsps.calls) == 0


# --- send_as_mms ------------------------------------------------------------------------


def test_send_as_mms_is_sent_as_send_as_mms_true(rsps: responses.RequestsMock, rest: RestClient) -> None:
    rsps.add(responses.POST, f"{BASE}/Messages.json", json=message_json(), status=201)
    rest.messages.create(to="+15557654321", from_="12345", body="a long text", send_as_mms=True)
    rest.messages.create(to="+15557654321", from_="12345", body="plain")
    first, second = (parse_qsl(c.request.body) for c in rsps.calls)
    assert first == [("To", "+15557654321"), ("From", "12345"), ("Body", "a long text"), ("SendAsMms", "true")]
    assert "SendAsMms" not in dict(second)


def test_send_as_mms_must_be_a_bool(rsps: responses.RequestsMock, rest: RestClient) -> None:
    with pytest.raises(ValueError, match="send_as_mms"):
        rest.messages.create(to="+15557654321", from_="12345", body="x", send_as_mms="yes")  # type: ignore[arg-type]
    assert len(rsps.calls) == 0


# --- a missing or mistaken space ---------------------------------------------------------


def test_missing_space_says_the_rest_client_needs_it(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("SIGNALWIRE_SPACE", raising=False)
    with pytest.raises(ConfigurationError) as info:
        RestClient(PROJECT, TOKEN)
    text = str(info.value)
    assert "REST client needs your space" in text and "SIGNALWIRE_SPACE" in text
    assert "relay.signalwire.com" in text  # says why RelayClient needs none


def test_bare_space_on_a_plain_http_server_hints_at_http(emu: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(transport_mod, "_sleep", lambda seconds: None)
    hostport = urlsplit(emu.rest_url).netloc  # the emulator serves plain HTTP
    with RestClient(emu.project, emu.token, hostport) as rest:
        with pytest.raises(RestConnectionError) as info:
            rest.messages.list(limit=1)
    assert f"http://{hostport}" in str(info.value) and "not TLS" in str(info.value)
