"""Configuration: credentials from arguments or SIGNALWIRE_* variables, host validation."""

from __future__ import annotations

import pytest

from swsync import ConfigurationError, RelayClient
from swsync._config import relay_url, rest_origin

# Each test starts without the host's SIGNALWIRE_* variables.
pytestmark = pytest.mark.usefixtures("clean_signalwire_env")


@pytest.mark.parametrize(
    ("kwargs", "names"),
    [
        ({"token": "t", "host": "h.example.com"}, ("project", "SIGNALWIRE_PROJECT_ID")),
        ({"project": "p", "host": "h.example.com"}, ("token", "SIGNALWIRE_API_TOKEN")),
    ],
)
def test_missing_credential_names_argument_and_variable(kwargs: dict, names: tuple[str, str]) -> None:
    with pytest.raises(ConfigurationError) as info:
        RelayClient(**kwargs)
    assert all(n in str(info.value) for n in names)
    assert isinstance(info.value, ValueError)


def test_no_host_and_no_space_means_signalwire_public_relay_host() -> None:
    # As in the official SDKs: relay.signalwire.com serves every project.
    client = RelayClient(project="p", token="t")
    assert repr(client).startswith("<RelayClient wss://relay.signalwire.com ")
    assert not client.connected  # resolved without any network activity


def test_environment_supplies_credentials(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SIGNALWIRE_PROJECT_ID", "proj")
    monkeypatch.setenv("SIGNALWIRE_API_TOKEN", "PTsecret")
    monkeypatch.setenv("SIGNALWIRE_SPACE", "example.signalwire.com")
    client = RelayClient()
    assert "wss://example.signalwire.com" in repr(client)
    assert "PTsecret" not in repr(client)


@pytest.mark.parametrize(
    ("host", "url"),
    [
        ("example.signalwire.com", "wss://example.signalwire.com"),
        ("ws://127.0.0.1:8765", "ws://127.0.0.1:8765"),
        ("wss://example.signalwire.com/", "wss://example.signalwire.com"),
        ("[::1]:9000", "wss://[::1]:9000"),
        ("http://127.0.0.1:8765", "ws://127.0.0.1:8765"),
        ("https://example.signalwire.com", "wss://example.signalwire.com"),
    ],
)
def test_relay_url(host: str, url: str) -> None:
    assert relay_url(host) == url


@pytest.mark.parametrize(
    "host",
    [
        "user:pw@example.com",
        "example.com/path",
        "example.com?x=1",
        "exa mple.com",
        "example.com\r\nX: y",
        "ftp://example.com",
        "wss://example.com/path",
        "https://example.com/x",
        "wss://u@example.com",
        "",
        "example.com\t",
        "ex\\ample",
    ],
)
def test_bad_hosts_rejected(host: str) -> None:
    with pytest.raises(ConfigurationError):
        relay_url(host)


def test_rest_origin() -> None:
    assert rest_origin("example.signalwire.com") == "https://example.signalwire.com"
    assert rest_origin("http://127.0.0.1:8080") == "http://127.0.0.1:8080"
    assert rest_origin("ws://127.0.0.1:8080") == "http://127.0.0.1:8080"
    assert rest_origin("wss://example.com") == "https://example.com"
    with pytest.raises(ConfigurationError):
        rest_origin("ftp://example.com")


def test_missing_ca_file_is_a_configuration_error(tmp_path) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(ConfigurationError, match="ca_file"):
        RelayClient(project="p", token="t", host="example.com", ca_file=str(tmp_path / "nope.pem"))


@pytest.mark.parametrize("opt", [{"request_timeout": 0}, {"ping_interval": -1}, {"handler_workers": 0}])
def test_bad_options(opt: dict) -> None:
    with pytest.raises(ConfigurationError):
        RelayClient(project="p", token="t", host="example.com", **opt)


@pytest.mark.parametrize("bad", ["example.com:abc", "example.com:99999", "ws://127.0.0.1:x"])
def test_bad_ports_rejected(bad: str) -> None:
    with pytest.raises(ConfigurationError, match="port"):
        relay_url(bad)
    with pytest.raises(ConfigurationError, match="port"):
        rest_origin(bad.replace("ws://", "http://"))


def test_api_token_wins_over_an_exported_jwt(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SIGNALWIRE_PROJECT_ID", "proj")
    monkeypatch.setenv("SIGNALWIRE_API_TOKEN", "PTtoken")
    monkeypatch.setenv("SIGNALWIRE_JWT_TOKEN", "stale.jwt")
    monkeypatch.setenv("SIGNALWIRE_SPACE", "example.signalwire.com")
    assert set(RelayClient()._auth) == {"project", "token"}
    assert set(RelayClient(jwt_token="explicit.jwt")._auth) == {"project", "jwt_token"}
    monkeypatch.delenv("SIGNALWIRE_API_TOKEN")
    assert set(RelayClient()._auth) == {"project", "jwt_token"}


def test_star_import_needs_only_the_runtime_dependencies() -> None:
    import swsync

    assert "Emulator" not in swsync.__all__
    assert all(hasattr(swsync, name) for name in swsync.__all__ if name != "RestClient")
