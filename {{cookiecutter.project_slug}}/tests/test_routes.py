"""The HTTP API through an ASGI client, with real peers behind it: statuses and bodies."""

from __future__ import annotations

import asyncio
import json

import httpx
import pytest

from {{ cookiecutter.package_name }}.app import create_app
from {{ cookiecutter.package_name }}.client import Door, connect, wait_until
from {{ cookiecutter.package_name }}.services.streams import StreamService
from {{ cookiecutter.package_name }}.settings import Settings

from .conftest import Connect


def error_of(response: httpx.Response, status: int, code: str) -> dict[str, object]:
    assert response.status_code == status, response.text
    body = response.json()
    assert body["error"] == code, body
    assert isinstance(body["detail"], str)
    assert body["detail"]
    return dict(body)


async def test_listing_shows_both_doors(http: httpx.AsyncClient, peer: Connect) -> None:
    assert (await http.get("/connections")).json() == []
    api = await peer(Door.API)
    ui = await peer(Door.UI)

    listed = (await http.get("/connections")).json()

    assert sorted(listed, key=lambda c: c["source"]) == [
        {"id": api.connection_id, "source": "api", "state": "connected"},
        {"id": ui.connection_id, "source": "ui", "state": "connected"},
    ]
    one = await http.get(f"/connections/{ui.connection_id}")
    assert one.json() == {"id": ui.connection_id, "source": "ui", "state": "connected"}


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
    http: httpx.AsyncClient, streams: StreamService, method: str, path: str, body: object
) -> None:
    response = await http.request(method, path, json=body)

    assert error_of(response, 404, "unknown_connection")["connection_id"] == "nope_no_such_id"
    assert response.headers["content-type"] == "application/json"
    assert "nope_no_such_id" not in streams


@pytest.mark.parametrize("door", [Door.API, Door.UI])
async def test_delete_closes_the_peer(http: httpx.AsyncClient, peer: Connect, door: Door) -> None:
    client = await peer(door)

    response = await http.delete(f"/connections/{client.connection_id}")

    assert response.status_code == 204
    assert (await http.get("/connections")).json() == []
    error_of(await http.get(f"/connections/{client.connection_id}"), 404, "unknown_connection")
    await wait_until(lambda: client.state == "closed", within=5)


@pytest.mark.parametrize("door", [Door.API, Door.UI])
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
    client = await peer(Door.UI)

    response = await http.post(f"/connections/{client.connection_id}/input", json=body)

    error = error_of(response, 422, "invalid_request")
    assert where in str(error["detail"])
    assert error["errors"]


async def test_malformed_json_is_422(http: httpx.AsyncClient, peer: Connect) -> None:
    client = await peer(Door.API)
    response = await http.post(
        f"/connections/{client.connection_id}/input",
        content=b"{not json",
        headers={"content-type": "application/json"},
    )
    error_of(response, 422, "invalid_request")


async def test_before_media_input_is_409_and_no_output_is_404(
    http: httpx.AsyncClient, peer: Connect
) -> None:
    client = await peer(Door.API, audio=False)
    url = f"/connections/{client.connection_id}"

    error_of(await http.post(f"{url}/input", json={"gain": 1}), 409, "connection_not_ready")
    error_of(await http.get(f"{url}/outputs/latest"), 404, "no_output_yet")


async def test_echo_handler_cannot_be_triggered(http: httpx.AsyncClient, peer: Connect) -> None:
    client = await peer(Door.UI)
    response = await http.post(f"/connections/{client.connection_id}/response")
    error_of(response, 409, "response_not_supported")


async def test_outputs_are_server_sent_events_until_close(
    http: httpx.AsyncClient, peer: Connect
) -> None:
    client = await peer(Door.UI)
    url = f"/connections/{client.connection_id}"
    # The in-process transport hands back the body once the stream ends: end it by closing.
    events = asyncio.create_task(http.get(f"{url}/outputs"))
    await client.wait_frames(60)
    await http.delete(url)

    async with asyncio.timeout(10):
        response = await events

    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/event-stream")
    data = [json.loads(line[5:]) for line in response.text.splitlines() if line.startswith("data:")]
    assert data
    assert all(set(d) == {"frames", "level_dbfs", "gain"} for d in data)
    assert [d["frames"] for d in data] == sorted(d["frames"] for d in data)


async def test_health_and_readiness(
    http: httpx.AsyncClient, peer: Connect, streams: StreamService
) -> None:
    assert (await http.get("/health")).json() == {"status": "ok"}
    assert (await http.get("/ready")).json() == {
        "status": "ready",
        "connections": 0,
        "concurrency_limit": 4,
    }
    for door in (Door.API, Door.UI, Door.API, Door.UI):
        await peer(door)
    full = await http.get("/ready")
    assert full.status_code == 503
    assert full.json()["status"] == "full"


async def test_root_redirects_to_the_ui(http: httpx.AsyncClient) -> None:
    response = await http.get("/")
    assert response.status_code == 307
    assert response.headers["location"] == "/ui/"
    assert (await http.get("/ui/")).status_code == 200


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


async def test_the_ui_path_is_configurable() -> None:
    settings = Settings(_env_file=None, ui_path="studio/")  # type: ignore[call-arg]
    assert settings.ui_path == "/studio"
    app = create_app(settings)
    try:
        async with httpx.AsyncClient(
            transport=httpx.ASGITransport(app=app), base_url="http://app"
        ) as http:
            assert (await http.get("/")).headers["location"] == "/studio/"
            assert (await http.get("/studio/")).status_code == 200
            client = await connect(http, Door.UI, ui_path="/studio")
            await client.wait_connected()
            listed = (await http.get("/connections")).json()
            assert [c["source"] for c in listed] == ["ui"]
            await client.close()
    finally:
        await app.state.streams.close_all()


@pytest.mark.parametrize("ui_path", ["/", "", "//"])
def test_the_ui_cannot_take_the_root(ui_path: str) -> None:
    with pytest.raises(ValueError, match="ui_path"):
        Settings(_env_file=None, ui_path=ui_path)  # type: ignore[call-arg]
