"""Each peer's ICE configuration: fixed servers, and TURN credentials minted per peer.

Credentials working with a real TURN server, and media through it: ``test_turn.py``.
"""

from __future__ import annotations

import httpx
import pytest
from pydantic import SecretStr, ValidationError

from {{ cookiecutter.package_name }}.ice import IceConfigurations, turn_password
from {{ cookiecutter.package_name }}.media import build_stream, build_streams
from {{ cookiecutter.package_name }}.settings import IceServer, Settings

SECRET = "north"
TURN_URL = "turn:turn.example.com:3478"
NOW = 1_600_000_000.0
STUN = IceServer(urls="stun:stun.example.com:3478")


def turn_settings(**overrides: object) -> Settings:
    fields: dict[str, object] = {
        "turn_urls": [TURN_URL],
        "turn_secret": SecretStr(SECRET),
        "turn_ttl": 600,
        "ice_servers": [STUN],
        **overrides,
    }
    return Settings(_env_file=None, **fields)  # type: ignore[call-arg, arg-type]


def test_the_password_is_the_turn_rest_api_s() -> None:
    # base64(HMAC-SHA1("north", "1600000000:alice")), computed with openssl
    assert turn_password(SECRET, "1600000000:alice") == "gq98pTOhhHaAu0we9aV79kOVVv0="


def test_each_peer_gets_its_own_credential_valid_for_the_ttl() -> None:
    ice = IceConfigurations(turn_settings(), clock=lambda: NOW)
    first, second = ice.for_peer("api"), ice.for_peer("api")
    assert first.iceServers[0] == STUN  # the fixed servers come first, as they are
    turn = first.iceServers[1]
    assert turn.urls == [TURN_URL]
    assert turn.username is not None
    expiry, tag = turn.username.split(":")
    assert int(expiry) == NOW + 600
    assert tag.startswith("api.")
    assert turn.credential == turn_password(SECRET, turn.username)
    assert second.iceServers[1].username != turn.username
    assert SECRET not in first.model_dump_json()


def test_without_turn_settings_nothing_is_minted() -> None:
    ice = IceConfigurations(Settings(_env_file=None, ice_servers=[STUN]))  # type: ignore[call-arg]
    configuration = ice.for_peer("ui")
    assert configuration.iceServers == [STUN]
    assert configuration.iceTransportPolicy == "all"


@pytest.mark.parametrize(
    ("overrides", "named"),
    [
        ({"turn_urls": []}, "APP_TURN_URLS and APP_TURN_SECRET"),
        ({"turn_secret": None}, "APP_TURN_URLS and APP_TURN_SECRET"),
        ({"turn_urls": ["stun:turn.example.com"]}, "turn_urls"),
        ({"turn_ttl": 10}, "turn_ttl"),
        ({"turn_urls": [], "turn_secret": None, "ice_transport_policy": "relay"}, "relay"),
    ],
)
def test_incomplete_turn_settings_are_refused_naming_them(
    overrides: dict[str, object], named: str
) -> None:
    with pytest.raises(ValidationError, match=named):
        turn_settings(**overrides)


def test_relay_with_a_fixed_turn_server_needs_no_secret() -> None:
    fixed = IceServer(urls=["turn:turn.example.com"], username="u", credential="p")
    settings = Settings(  # type: ignore[call-arg]
        _env_file=None, ice_servers=[fixed], ice_transport_policy="relay"
    )
    configuration = IceConfigurations(settings).for_peer("api")
    assert configuration.iceServers == [fixed]
    assert configuration.iceTransportPolicy == "relay"
    assert configuration.to_aiortc().iceTransportPolicy.value == "relay"


@pytest.mark.parametrize(
    "settings", [{"turn_urls": [TURN_URL], "turn_secret": SECRET}], indirect=True
)
async def test_an_api_client_asks_for_its_configuration_before_each_offer(
    http: httpx.AsyncClient,
) -> None:
    first = await http.get("/webrtc/configuration")
    second = await http.get("/webrtc/configuration")
    assert first.status_code == 200
    assert first.headers["cache-control"] == "no-store"
    turn = first.json()["iceServers"][-1]
    assert turn["username"].split(":")[1].startswith("api.")
    assert turn["credential"] == turn_password(SECRET, turn["username"])
    assert second.json()["iceServers"][-1]["username"] != turn["username"]
    assert SECRET not in first.text


async def test_a_page_asks_for_a_fresh_configuration_and_starts_from_a_valid_one() -> None:
    settings = turn_settings(ice_servers=[])
    stream = build_stream(settings)
    build_streams(stream, settings)
    component = stream.webrtc_component
    # What the page is given to start from (a receive-mode page builds its peer from it):
    # a configuration, not a function's repr, and no credential in it.
    started = component.get_config()["rtc_configuration"]
    assert started == {"iceServers": [], "iceTransportPolicy": "all"}
    first, second = await component.turn(None), await component.turn(None)
    username = first["iceServers"][-1]["username"]
    assert username.split(":")[1].startswith("ui.")
    assert first["iceServers"][-1]["credential"] == turn_password(SECRET, username)
    assert second["iceServers"][-1]["username"] != username
