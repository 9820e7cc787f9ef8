"""The security model: the admin token, connection-id validation and CORS."""

from __future__ import annotations

from collections.abc import AsyncIterator

import httpx
import pytest
{%- if cookiecutter.include_ui %}
from fastapi import FastAPI
{%- endif %}
from pydantic import SecretStr

from {{ cookiecutter.package_name }}.app import create_app
from {{ cookiecutter.package_name }}.client import Door
from {{ cookiecutter.package_name }}.media import AppStreams
from {{ cookiecutter.package_name }}.settings import Settings

from .conftest import DOORS, Connect, next_stats

TOKEN = "s3cret-admin-token"


@pytest.fixture
def settings() -> Settings:
    return Settings(  # type: ignore[call-arg]
        _env_file=None,
        concurrency_limit=4,
        admin_token=SecretStr(TOKEN),
        cors_origins=["https://allowed.example"],
    )


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


@pytest.mark.parametrize("headers", [{}, bearer("wrong"), {"Authorization": "Basic eDp5"}])
async def test_listing_and_closing_need_the_token(
    http: httpx.AsyncClient, peer: Connect, headers: dict[str, str]
) -> None:
    client = await peer(Door.API)

    listing = await http.get("/connections", headers=headers)
    closing = await http.delete(f"/connections/{client.connection_id}", headers=headers)

    for response in (listing, closing):
        assert response.status_code == 401, response.text
        assert response.json()["error"] == "unauthorized"
        assert response.headers["www-authenticate"] == "Bearer"
    assert (await http.get(f"/connections/{client.connection_id}")).status_code == 200


async def test_the_token_allows_listing_and_closing(http: httpx.AsyncClient, peer: Connect) -> None:
    client = await peer(DOORS[-1])

    listing = await http.get("/connections", headers=bearer(TOKEN))
    assert [c["id"] for c in listing.json()] == [client.connection_id]
    closing = await http.delete(f"/connections/{client.connection_id}", headers=bearer(TOKEN))
    assert closing.status_code == 204
    assert (await http.get("/connections", headers=bearer(TOKEN))).json() == []


async def test_a_connection_s_own_routes_need_only_its_id(
    http: httpx.AsyncClient, peer: Connect, streams: AppStreams
) -> None:
    client = await peer(Door.API)
    base = f"/connections/{client.connection_id}"
    await next_stats(streams, client.connection_id)  # it has an output to read

    assert (await http.get(base)).status_code == 200
    assert (await http.get(f"{base}/outputs/latest")).status_code == 200
    assert (await http.post(f"{base}/input", json={})).status_code == 204


@pytest.mark.parametrize(
    "connection_id",
    ["x" * 65, "has.dot_inside", "spaces%20in%20it", "semi;colon99"],
)
async def test_malformed_ids_are_422_before_any_lookup(
    http: httpx.AsyncClient, connection_id: str
) -> None:
    for method, path in [
        ("GET", f"/connections/{connection_id}"),
        ("POST", f"/connections/{connection_id}/response"),
        ("GET", f"/connections/{connection_id}/outputs"),
        ("DELETE", f"/connections/{connection_id}"),
    ]:
        response = await http.request(method, path, headers=bearer(TOKEN))
        assert response.status_code == 422, (method, path, response.text)
        assert response.json()["error"] == "invalid_request"


@pytest.mark.parametrize("connection_id", ["k3j5h2g9q1z", "a1b2c3d4", "Zm9vYmFyLWJhei1xdXV4_-"])
async def test_ui_and_client_ids_are_accepted(http: httpx.AsyncClient, connection_id: str) -> None:
    response = await http.get(f"/connections/{connection_id}")
    assert response.status_code == 404
    assert response.json()["error"] == "unknown_connection"


async def test_cors_allows_only_the_configured_origins(http: httpx.AsyncClient) -> None:
    allowed = await http.get("/health", headers={"Origin": "https://allowed.example"})
    other = await http.get("/health", headers={"Origin": "https://evil.example"})

    assert allowed.headers["access-control-allow-origin"] == "https://allowed.example"
    assert "access-control-allow-origin" not in other.headers


@pytest.fixture
async def open_http() -> AsyncIterator[httpx.AsyncClient]:
    app = create_app(Settings(_env_file=None))  # type: ignore[call-arg]
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://app") as client:
        yield client


async def test_defaults_are_no_token_and_no_cors(open_http: httpx.AsyncClient) -> None:
    response = await open_http.get("/connections", headers={"Origin": "https://any.example"})

    assert response.status_code == 200
    assert "access-control-allow-origin" not in response.headers
{%- if cookiecutter.include_ui %}


UI_GETS = ["/ui/", "/ui/config", "/ui/gradio_api/info"]
UI_POSTS = ["/ui/gradio_api/queue/join", "/ui/gradio_api/component_server/"]
"""The UI's pages and Gradio's API: the app's CORS policy holds there, not Gradio's own."""
UNLISTED = [
    # Gradio's own CORS allowed any localhost origin when the host is localhost, and any
    # origin at all on another host.
    pytest.param("http://localhost:1234", "localhost:7860", id="localhost-origin"),
    pytest.param("https://evil.example", "app.example", id="other-origin"),
]


async def ui_cors_answers(http: httpx.AsyncClient, origin: str, host: str) -> list[httpx.Response]:
    """Simple GETs and preflights to the UI from ``origin``, on ``host``."""
    headers = {"Origin": origin, "Host": host}
    answers = []
    for path in UI_GETS:
        answers.append(simple := await http.get(path, headers=headers))
        assert simple.status_code == 200, (path, simple.text)
    for path, method in [*((p, "GET") for p in UI_GETS), *((p, "POST") for p in UI_POSTS)]:
        preflight = {**headers, "Access-Control-Request-Method": method}
        answers.append(await http.options(path, headers=preflight))
    return answers


@pytest.mark.parametrize(("origin", "host"), UNLISTED)
async def test_the_ui_allows_no_unlisted_origin(
    http: httpx.AsyncClient, origin: str, host: str
) -> None:
    for response in await ui_cors_answers(http, origin, host):
        assert "access-control-allow-origin" not in response.headers, response.request


async def test_the_ui_allows_the_configured_origin(http: httpx.AsyncClient) -> None:
    for response in await ui_cors_answers(http, "https://allowed.example", "app.example"):
        allowed = response.headers.get("access-control-allow-origin")
        assert allowed == "https://allowed.example", response.request


@pytest.mark.parametrize(
    ("origin", "host"), [*UNLISTED, pytest.param("https://allowed.example", "app.example")]
)
async def test_by_default_the_ui_allows_no_origin(
    open_http: httpx.AsyncClient, origin: str, host: str
) -> None:
    for response in await ui_cors_answers(open_http, origin, host):
        assert "access-control-allow-origin" not in response.headers, response.request
{%- endif %}
{%- if cookiecutter.include_ui %}


async def test_a_gradio_error_shows_no_traceback(app: FastAPI) -> None:
    # Gradio's own stream routes look an unknown event id up without a check (KeyError).
    transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
    async with httpx.AsyncClient(transport=transport, base_url="http://app") as http:
        response = await http.post("/ui/gradio_api/stream/no-such-event/close")

    assert "Traceback" not in response.text
    assert "KeyError" not in response.text
{%- endif %}
