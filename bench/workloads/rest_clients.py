"""REST (cXML API) clients doing the same calls: swsync ``RestClient``, twilio 9, a bare ``requests.Session``.

Each has ``create(body)`` (one POST Messages), ``stream()`` (visit every record,
:data:`PAGE` per page; returns how many), ``list()`` (every record, kept in one
list), ``warm()`` and ``close()``; swsync and the bare session also have
``fetcher(sid)`` (a callable doing one GET of that message).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from typing import Any

from bench.workloads.harness import FROM, TO, Meter, ready, result

PAGE = 1000


class BareRest:
    """The calls made with a plain ``requests.Session``: what the clients are compared with."""

    def __init__(self, emu: dict[str, str], ca: str | None = None) -> None:
        import requests

        self.origin = emu["rest_url"]
        self.base = f"{self.origin}/api/laml/2010-04-01/Accounts/{emu['project']}/"
        self.session = requests.Session()
        self.session.auth = (emu["project"], emu["token"])
        self.session.headers["Accept"] = "application/json"
        if ca:
            self.session.verify = ca

    def create(self, body: str) -> None:
        """One POST Messages with this text; the reply decoded."""
        r = self.session.post(self.base + "Messages.json", data={"To": TO, "From": FROM, "Body": body}, timeout=10)
        r.raise_for_status()
        r.json()

    def fetcher(self, sid: str) -> Callable[[], None]:
        """A callable doing one GET of message ``sid``."""
        url, get = f"{self.base}Messages/{sid}.json", self.session.get

        def fetch() -> None:
            r = get(url, timeout=10)
            r.raise_for_status()
            r.json()

        return fetch

    def pages(self, page_size: int = PAGE) -> Iterator[list[dict[str, Any]]]:
        """Yield each page's records, following next_page_uri."""
        url: str | None = self.base + "Messages.json"
        params: dict[str, str] | None = {"PageSize": str(page_size)}
        while url:
            r = self.session.get(url, params=params, timeout=10)
            r.raise_for_status()
            page = r.json()
            yield page["messages"]
            nxt = page["next_page_uri"]
            url, params = (self.origin + nxt if nxt else None), None

    def stream(self) -> int:
        """Visit every record, :data:`PAGE` per page; return how many."""
        seen = 0
        for records in self.pages():
            for _ in records:  # visit each record, as the other clients' loops do
                seen += 1
        return seen

    def list(self) -> list[dict[str, Any]]:
        """Every record, kept in one list."""
        kept: list[dict[str, Any]] = []
        for records in self.pages():
            kept.extend(records)
        return kept

    def warm(self) -> None:
        """One small request: connections, caches and the server warm."""
        next(self.pages(1))

    def close(self) -> None:
        """Release the connection pool."""
        self.session.close()


class SwsyncRest:
    """swsync's ``RestClient`` doing the same calls."""

    def __init__(self, emu: dict[str, str], ca: str | None = None) -> None:
        from swsync.rest import RestClient

        self.rest = RestClient(emu["project"], emu["token"], emu["rest_url"], ca_file=ca)

    def create(self, body: str) -> None:
        """One POST Messages with this text; the reply decoded."""
        self.rest.messages.create(to=TO, from_=FROM, body=body)

    def fetcher(self, sid: str) -> Callable[[], Any]:
        """A callable doing one GET of message ``sid``."""
        return self.rest.messages(sid).fetch  # type: ignore[no-any-return]

    def stream(self) -> int:
        """Visit every record, :data:`PAGE` per page; return how many."""
        return sum(1 for _ in self.rest.messages.stream(page_size=PAGE))

    def list(self) -> list[Any]:
        """Every record, kept in one list."""
        return self.rest.messages.list(page_size=PAGE)  # type: ignore[no-any-return]

    def warm(self) -> None:
        """One small request: connections, caches and the server warm."""
        self.rest.messages.list(limit=1, page_size=1)

    def close(self) -> None:
        """Release the connection pool."""
        self.rest.close()


class TwilioRest:
    """twilio 9's ``Client``, pointed at the emulator's cXML (LaML) API by an ``HttpClient`` subclass."""

    def __init__(self, emu: dict[str, str], ca: str | None = None) -> None:
        from twilio.http.http_client import TwilioHttpClient  # type: ignore[import-untyped]
        from twilio.rest import Client  # type: ignore[import-untyped]

        base = emu["rest_url"]

        class EmulatorHttpClient(TwilioHttpClient):  # type: ignore[misc]
            """Sends twilio's api.twilio.com requests to the emulator's cXML (LaML) API."""

            def request(self, method: str, url: str, *args: Any, **kwargs: Any) -> Any:
                if url.startswith("https://api.twilio.com"):
                    path = url[len("https://api.twilio.com") :]
                    if path.startswith("/2010-04-01"):
                        path = "/api/laml" + path  # as SignalWire's own twilio-based SDK did
                    url = base + path
                return super().request(method, url, *args, **kwargs)

        http = EmulatorHttpClient()
        assert http.session is not None
        if ca:
            http.session.verify = ca
        self.client = Client(emu["project"], emu["token"], http_client=http)

    def create(self, body: str) -> None:
        """One POST Messages with this text; the reply decoded."""
        self.client.messages.create(to=TO, from_=FROM, body=body)

    def stream(self) -> int:
        """Visit every record, :data:`PAGE` per page; return how many."""
        return sum(1 for _ in self.client.messages.stream(page_size=PAGE))

    def list(self) -> list[Any]:
        """Every record, kept in one list."""
        return list(self.client.messages.list(page_size=PAGE))

    def warm(self) -> None:
        """One small request: connections, caches and the server warm."""
        self.client.messages.list(limit=1, page_size=1)

    def close(self) -> None:
        """Nothing to release: twilio's session lives as long as the process."""


CLIENTS: dict[str, type[BareRest] | type[SwsyncRest] | type[TwilioRest]] = {
    "swsync": SwsyncRest,
    "twilio": TwilioRest,
    "requests": BareRest,
}


def run(spec: dict[str, Any]) -> dict[str, Any]:
    """Client subprocess: ``create`` (``n`` sequential POSTs, timed each) or ``stream`` (every record)."""
    client = CLIENTS[spec["client"]](spec["emu"], spec["ca"])
    client.warm()
    lat: list[float] = []
    ready()
    meter = Meter()
    if spec["workload"] == "create":
        for _ in range(spec["n"]):
            t0 = time.perf_counter()
            client.create("benchmark")
            lat.append(time.perf_counter() - t0)
        count = spec["n"]
    else:
        count = client.stream()
    usage = meter.stop()
    return result(count, usage, lat or None)
