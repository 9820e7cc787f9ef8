"""The HTTP API through an ASGI client, with real peers behind it: statuses and bodies."""

from __future__ import annotations

import asyncio
import json

import httpx
import pytest

from {{ cookiecutter.package_name }}.client import Door, OfferRefused, connect, wait_until
from {{ cookiecutter.package_name }}.handlers.io import Stats
from {{ cookiecutter.package_name }}.media import AppStreams
from {{ cookiecutter.package_name }}.services.streams import Source

from .conftest import CLIENT_SENDS, DOORS, NO_MEDIA, SERVER_CLOSED, Connect, next_stats


def error_of(response: httpx.Response, status: int, code: str) -> dict[str, object]:
    assert response.status_code == status, response.text
    body = response.json()
    assert body["error"] == code, body
    assert isinstance(body["detail"], str)
    assert body["detail"]
    return dict(body)


async def test_listing_shows_every_door(http: httpx.AsyncClient, peer: Connect) -> None:
    assert (await http.get("/connections")).json() == []
    clients = {door: await peer(door) for door in DOORS}

    listed = (await http.get("/connections")).json()

    expected = [
        {"id": client.connection_id, "source": door.value, "state": "connected"}
        for door, client in clients.items()
    ]
    assert sorted(listed, key=lambda c: c["source"]) == expected
    for connection in expected:
        one = await http.get(f"/connections/{connection['id']}")
        assert one.json() == connection


async def test_the_listing_comes_in_pages_on_request(
    http: httpx.AsyncClient, streams: AppStreams
) -> None:
    ids = [streams.reserve({"webrtc_id": f"listed-{n}"}, Source.WEBSOCKET) for n in range(4)]

    async def listed(query: str) -> list[str]:
        response = await http.get(f"/connections{query}")
        assert response.status_code == 200, response.text
        return [c["id"] for c in response.json()]

    assert await listed("") == ids
    assert await listed("?limit=2") == ids[:2]
    assert await listed("?offset=2&limit=2") == ids[2:4]
    assert await listed("?offset=3&limit=1000") == ids[3:]
    assert await listed("?offset=4&limit=2") == []
    for query, field in [("?limit=0", "limit"), ("?limit=1001", "limit"), ("?offset=-1", "offset")]:
        response = await http.get(f"/connections{query}")
        assert field in str(error_of(response, 422, "invalid_request"))
    for connection_id in ids:
        streams.withdraw(connection_id)


@pytest.mark.parametrize(
    ("method", "path", "body"),
    [
        ("GET", "/connections/nope_no_such_id", None),
        ("DELETE", "/connections/nope_no_such_id", None),
        ("POST", "/connections/nope_no_such_id/input", {"gain": 1.0}),
        ("POST", "/connections/nope_no_such_id/response", None),
        ("GET", "/connections/nope_no_such_id/outputs/latest", None),
        ("GET", "/connections/nope_no_such_id/outputs", None),
    ],
)
async def test_unknown_id_is_404_naming_it(
    http: httpx.AsyncClient, streams: AppStreams, method: str, path: str, body: object
) -> None:
    response = await http.request(method, path, json=body)

    assert error_of(response, 404, "unknown_connection")["connection_id"] == "nope_no_such_id"
    assert response.headers["content-type"] == "application/json"
    assert "nope_no_such_id" not in streams


@pytest.mark.parametrize("door", DOORS)
async def test_delete_closes_the_peer(http: httpx.AsyncClient, peer: Connect, door: Door) -> None:
    client = await peer(door)

    response = await http.delete(f"/connections/{client.connection_id}")

    assert response.status_code == 204
    assert (await http.get("/connections")).json() == []
    error_of(await http.get(f"/connections/{client.connection_id}"), 404, "unknown_connection")
    await wait_until(lambda: client.state in SERVER_CLOSED, within=15)


@pytest.mark.parametrize("door", DOORS)
async def test_input_then_outputs(http: httpx.AsyncClient, peer: Connect, door: Door) -> None:
    client = await peer(door)
    url = f"/connections/{client.connection_id}"

    assert (await http.post(f"{url}/input", json={"gain": 0.5})).status_code == 204

    async def gain_reported() -> bool:
        latest = await http.get(f"{url}/outputs/latest")
        return latest.status_code == 200 and latest.json()["gain"] == 0.5

    await wait_until(gain_reported)
    assert (await http.get(f"{url}/outputs/latest")).json()["frames"] > 0


@pytest.mark.parametrize(
    ("body", "where"),
    [
        ({"gain": 9}, "body.gain"),
        ({"gain": "loud"}, "body.gain"),
        (None, "body"),
        ([1, 2], "body"),
    ],
)
async def test_bad_input_is_422_naming_the_field(
    http: httpx.AsyncClient, peer: Connect, body: object, where: str
) -> None:
    client = await peer(DOORS[-1])

    response = await http.post(f"/connections/{client.connection_id}/input", json=body)

    error = error_of(response, 422, "invalid_request")
    assert where in str(error["detail"])
    assert error["errors"]


async def test_malformed_json_is_422(http: httpx.AsyncClient, peer: Connect) -> None:
    client = await peer(DOORS[0])
    response = await http.post(
        f"/connections/{client.connection_id}/input",
        content=b"{not json",
        headers={"content-type": "application/json"},
    )
    error_of(response, 422, "invalid_request")


async def test_before_media_input_is_409_and_no_output_is_404(
    http: httpx.AsyncClient, peer: Connect
) -> None:
    if not CLIENT_SENDS:
        # The app makes the media: an offer that does not ask for it is refused.
        with pytest.raises(OfferRefused) as refused:
            await connect(http, Door.API, **NO_MEDIA)
        assert refused.value.status_code == 400
        assert "must ask for it" in refused.value.reply["detail"]
        return
    client = await peer(DOORS[0], **NO_MEDIA)
    url = f"/connections/{client.connection_id}"

    error_of(await http.post(f"{url}/input", json={"gain": 1}), 409, "connection_not_ready")
    error_of(await http.get(f"{url}/outputs/latest"), 404, "no_output_yet")


async def test_outputs_are_server_sent_events_until_close(
    http: httpx.AsyncClient, peer: Connect, streams: AppStreams
) -> None:
    client = await peer(DOORS[-1])
    url = f"/connections/{client.connection_id}"
    # The in-process transport hands back the body once the stream ends: end it by closing.
    events = asyncio.create_task(http.get(f"{url}/outputs"))
    for _ in range(3):
        await next_stats(streams, client.connection_id)
    await http.delete(url)

    async with asyncio.timeout(10):
        response = await events

    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/event-stream")
    data = [json.loads(line[5:]) for line in response.text.splitlines() if line.startswith("data:")]
    assert data
    assert all(set(d) == set(Stats.model_fields) for d in data)
    assert all(d["frames"] > 0 for d in data)


async def test_health_and_readiness(
    http: httpx.AsyncClient, peer: Connect, streams: AppStreams
) -> None:
    assert (await http.get("/health")).json() == {"status": "ok"}
    assert (await http.get("/ready")).json() == {
        "status": "ready",
        "connections": 0,
        "concurrency_limit": 4,
    }
    for n in range(4):
        await peer(DOORS[n % len(DOORS)])
    full = await http.get("/ready")
    assert full.status_code == 503
    assert full.json()["status"] == "full"


async def test_root_redirects_to_a_page(http: httpx.AsyncClient) -> None:
    response = await http.get("/")
    assert response.status_code == 307
    assert (await http.get(response.headers["location"])).status_code == 200


async def test_wrong_method_and_path_keep_the_error_shape(http: httpx.AsyncClient) -> None:
    error_of(await http.put("/connections"), 405, "method_not_allowed")
    error_of(await http.get("/no-such-route"), 404, "not_found")


async def test_openapi_documents_the_api(http: httpx.AsyncClient) -> None:
    schema = (await http.get("/openapi.json")).json()
    paths = schema["paths"]

    assert paths["/connections"]["get"]["tags"] == ["connections"]
    listing = paths["/connections"]["get"]["responses"]["200"]["content"]["application/json"]
    assert listing["schema"]["items"]["$ref"].endswith("/ConnectionInfo")
    for path, method in [
        ("/connections/{connection_id}", "get"),
        ("/connections/{connection_id}", "delete"),
        ("/connections/{connection_id}/input", "post"),
        ("/connections/{connection_id}/outputs", "get"),
    ]:
        error = paths[path][method]["responses"]["404"]["content"]["application/json"]
        assert error["schema"]["$ref"].endswith("/ErrorBody"), (path, method)
    assert (
        "text/event-stream"
        in paths["/connections/{connection_id}/outputs"]["get"]["responses"]["200"]["content"]
    )
    assert {"Source", "ConnectionInfo", "Stats", "Input"} <= set(schema["components"]["schemas"])


async def test_a_refused_api_offer_has_a_status_that_says_why(
    http: httpx.AsyncClient, peer: Connect
) -> None:
    taken = await peer(Door.API)
    with pytest.raises(OfferRefused) as refused:
        await connect(http, Door.API, connection_id=taken.connection_id)
    assert (refused.value.status_code, refused.value.reason) == (409, "connection_already_exists")
    for _ in range(3):
        await peer(DOORS[-1])
    with pytest.raises(OfferRefused) as refused:
        await connect(http, Door.API)
    assert (refused.value.status_code, refused.value.reason) == (429, "concurrency_limit_reached")


@pytest.mark.parametrize("door", DOORS)
async def test_a_malformed_id_takes_no_connection(
    http: httpx.AsyncClient, streams: AppStreams, door: Door
) -> None:
    with pytest.raises(OfferRefused) as refused:
        await connect(http, door, connection_id="bad id!")
    assert refused.value.reason in {"invalid_connection_id", "invalid_request"}
    assert streams.list_connections() == []
