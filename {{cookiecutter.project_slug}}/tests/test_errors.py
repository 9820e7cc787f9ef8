"""The error model, one row at a time: every bad input gets its status and the one JSON shape."""

from __future__ import annotations

from collections.abc import AsyncIterator

import httpx
import pytest

from {{ cookiecutter.package_name }}.client import Door
from {{ cookiecutter.package_name }}.media import AppStreams

from .conftest import DOORS, Connect
from .test_routes import error_of

GOOD_ID = "abcdefgh12345678"


def offer(**fields: object) -> dict[str, object]:
    """A good offer's fields, with ``fields`` changed (``None`` leaves one out)."""
    body = {"type": "offer", "sdp": "v=0", "webrtc_id": GOOD_ID, **fields}
    return {key: value for key, value in body.items() if value is not None}


UNAPPLICABLE_SDP = "v=0\r\nm=audio x y z\r\n"
"""Passes the media-section check, then aiortc cannot apply it: what it took is freed."""
CANDIDATE = {"type": "ice-candidate", "candidate": {"candidate": ""}, "webrtc_id": GOOD_ID}


@pytest.mark.parametrize(
    ("body", "status", "code"),
    [
        pytest.param(offer(sdp="v=0 garbage"), 400, "invalid_offer", id="bad-sdp"),
        pytest.param(offer(sdp=UNAPPLICABLE_SDP), 400, "invalid_offer", id="unapplicable-sdp"),
        pytest.param(offer(sdp=None), 422, "invalid_request", id="missing-sdp"),
        pytest.param(offer(webrtc_id=None), 422, "invalid_request", id="missing-id"),
        pytest.param(offer(type=None), 422, "invalid_request", id="missing-type"),
        pytest.param(offer(sdp=12), 422, "invalid_request", id="sdp-not-a-string"),
        pytest.param(offer(webrtc_id=["x"]), 422, "invalid_request", id="id-not-a-string"),
        pytest.param(offer(webrtc_id="bad id!"), 422, "invalid_request", id="id-bad-alphabet"),
        pytest.param(offer(type="answer"), 422, "invalid_request", id="wrong-type"),
        pytest.param([1, 2, 3], 422, "invalid_request", id="not-an-object"),
        pytest.param(CANDIDATE, 404, "unknown_connection", id="candidate-for-unknown-connection"),
    ],
)
async def test_malformed_offers(
    http: httpx.AsyncClient, streams: AppStreams, body: object, status: int, code: str
) -> None:
    response = await http.post("/webrtc/offer", json=body)

    error_of(response, status, code)
    assert len(streams) == 0  # a refused offer leaves nothing behind


async def test_offer_that_is_not_json_is_422(http: httpx.AsyncClient) -> None:
    response = await http.post(
        "/webrtc/offer", content=b"{not json", headers={"Content-Type": "application/json"}
    )
    error_of(response, 422, "invalid_request")


async def test_oversized_offer_is_413(http: httpx.AsyncClient, streams: AppStreams) -> None:
    body = {"type": "offer", "sdp": "v=0\r\n" + "a=x\r\n" * 20_000, "webrtc_id": GOOD_ID}
    error_of(await http.post("/webrtc/offer", json=body), 413, "payload_too_large")

    async def chunks() -> AsyncIterator[bytes]:
        for _ in range(40):
            yield b"x" * 4096

    streamed = await http.post(
        "/webrtc/offer", content=chunks(), headers={"Content-Type": "application/json"}
    )
    error_of(streamed, 413, "payload_too_large")
    assert len(streams) == 0


async def test_concurrency_limit_is_429_naming_the_limit(
    http: httpx.AsyncClient, peer: Connect, streams: AppStreams
) -> None:
    for door in [DOORS[n % len(DOORS)] for n in range(4)]:
        await peer(door)
    offer = {"type": "offer", "sdp": "v=0", "webrtc_id": GOOD_ID}

    body = error_of(await http.post("/webrtc/offer", json=offer), 429, "concurrency_limit_reached")

    assert body["limit"] == streams.concurrency_limit == 4
    assert body["connection_id"] == GOOD_ID


async def test_taken_id_is_409(http: httpx.AsyncClient, peer: Connect) -> None:
    taken = await peer(DOORS[-1])
    offer = {"type": "offer", "sdp": "v=0", "webrtc_id": taken.connection_id}

    error_of(await http.post("/webrtc/offer", json=offer), 409, "connection_already_exists")


async def test_unknown_connection_is_404(http: httpx.AsyncClient) -> None:
    error_of(await http.get(f"/connections/{GOOD_ID}"), 404, "unknown_connection")


async def test_malformed_connection_id_is_422(http: httpx.AsyncClient) -> None:
    error_of(await http.get("/connections/no!"), 422, "invalid_request")


async def test_wrong_input_shape_is_422(http: httpx.AsyncClient, peer: Connect) -> None:
    client = await peer(Door.API)
    response = await http.post(f"/connections/{client.connection_id}/input", json={"gain": "x"})
    error_of(response, 422, "invalid_request")


async def test_unknown_route_is_404_and_wrong_method_405(http: httpx.AsyncClient) -> None:
    error_of(await http.get("/no/such/route"), 404, "not_found")
    error_of(await http.put("/connections"), 405, "method_not_allowed")
