"""The API's docs: Swagger UI and ReDoc served by the app itself (offline), operation ids that
are the routes' names, examples that validate, and every error a route answers documented
from the one error registry. In-process{% if cookiecutter.include_ui %}; ``test_browser.py`` renders the pages offline{% endif %}."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator, Sequence
from typing import Annotated, Any

import pytest
from fastapi import FastAPI
from fastapi.routing import APIRoute
from fastapi.testclient import TestClient
from pydantic import SecretStr, TypeAdapter
from starlette.routing import BaseRoute

from {{ cookiecutter.package_name }}.api.docs import DOCS_ASSETS_PATH, EXAMPLE_CONNECTION_ID
from {{ cookiecutter.package_name }}.api.errors import ErrorBody
from {{ cookiecutter.package_name }}.app import create_app
from {{ cookiecutter.package_name }}.services.streams.errors import ERRORS
from {{ cookiecutter.package_name }}.settings import Settings

TOKEN = "docs-admin-token"
ERROR_BODY = "#/components/schemas/ErrorBody"
OVER_ANY_LIMIT = 2 * 1024 * 1024
"""A body larger than any route takes."""
ASSET_TYPES = {".js": "text/javascript", ".css": "text/css", ".png": "image/png"}
"""The content type each kind of the pages' assets must be served with."""
ASSET = re.compile(r"""(?:src|href)=["']([^"']+)["']""")
PARAMETER = re.compile(r"{[^}]+}")

Operation = tuple[str, str]
"""(method, path) as the schema names an operation, e.g. ("post", "/webrtc/offer")."""


@pytest.fixture(scope="module")
def app() -> FastAPI:
    settings = Settings(_env_file=None, admin_token=SecretStr(TOKEN))  # type: ignore[call-arg]
    return create_app(settings)  # its lifespan does not run: nothing starts, nothing to close


@pytest.fixture(scope="module")
def client(app: FastAPI) -> TestClient:
    return TestClient(app, raise_server_exceptions=False)


@pytest.fixture(scope="module")
def schema(client: TestClient) -> dict[str, Any]:
    response = client.get("/openapi.json")
    assert response.status_code == 200
    return dict(response.json())


def api_routes(routes: Sequence[BaseRoute]) -> Iterator[APIRoute]:
    """Every API route, included routers' too (FastAPI keeps them behind a wrapper)."""
    for route in routes:
        if isinstance(route, APIRoute):
            yield route
        elif (included := getattr(route, "original_router", None)) is not None:
            yield from api_routes(included.routes)


def documented_routes(app: FastAPI) -> dict[Operation, APIRoute]:
    return {
        (method.lower(), route.path): route
        for route in api_routes(app.routes)
        if route.include_in_schema
        for method in route.methods or ()
    }


def operations(schema: dict[str, Any]) -> dict[Operation, dict[str, Any]]:
    return {
        (method, path): operation
        for path, item in schema["paths"].items()
        for method, operation in item.items()
    }


def test_operation_ids_are_the_route_functions_names(app: FastAPI, schema: dict[str, Any]) -> None:
    routes = documented_routes(app)
    documented = operations(schema)
    assert documented.keys() == routes.keys()
    ids = [operation["operationId"] for operation in documented.values()]
    assert len(ids) == len(set(ids)), ids
    for key, operation in documented.items():
        assert operation["operationId"] == routes[key].endpoint.__name__, key
    assert documented["post", "/webrtc/offer"]["operationId"] == "create_offer"
    assert documented["get", "/connections"]["operationId"] == "list_connections"


def test_the_schema_holds_no_restructuredtext(schema: dict[str, Any]) -> None:
    text = json.dumps(schema)
    assert "``" not in text, text[text.index("``") - 200 : text.index("``") + 200]


def test_the_description_names_the_doors_and_the_admin_token(schema: dict[str, Any]) -> None:
    described = schema["info"]["description"]
    for mentioned in ("POST /webrtc/offer", "APP_ADMIN_TOKEN", "/telephone/", "/docs", "/redoc"):
        assert mentioned in described
    assert not any(path.startswith("/telephone") for path in schema["paths"])  # not mounted
{%- if cookiecutter.include_ui %}
    assert "`ui`: the Gradio page at [`/ui/`]" in described
{%- endif %}


def test_every_documented_error_is_the_registry_s(schema: dict[str, Any]) -> None:
    """Each error status lists codes of the registry that have that status, each with its
    body as an example; 413 everywhere (every body is bounded), 422 where there is input."""
    for (method, path), operation in operations(schema).items():
        takes_input = bool(operation.get("parameters") or operation.get("requestBody"))
        statuses = {int(status) for status in operation["responses"]}
        assert 413 in statuses, (method, path)
        assert (422 in statuses) == takes_input, (method, path)
        for status, response in operation["responses"].items():
            if int(status) < 400:
                continue
            content = response["content"]["application/json"]
            if content["schema"].get("$ref") != ERROR_BODY:
                assert (method, path, status) == ("get", "/ready", "503")  # its Readiness
                continue
            examples = content["examples"]
            assert examples, (method, path, status)
            for code, example in examples.items():
                body = ErrorBody.model_validate(example["value"])
                assert body.error == code
                assert ERRORS[code].status == int(status), (method, path, code)
                assert f"`{code}`" in response["description"]


def probes(path: str, method: str) -> Iterator[tuple[dict[str, Any], str]]:
    """Requests that make a route answer errors: request arguments, and what they try."""
    unknown = PARAMETER.sub("no-such-connection", path)
    body: dict[str, Any] | None = {"gain": 1.0} if path.endswith("/input") else None
    if path == "/webrtc/offer":
        body = {
            "type": "ice-candidate",
            "candidate": {"candidate": "", "sdpMid": "0", "sdpMLineIndex": 0},
            "webrtc_id": "no-such-connection",
        }
    yield {"url": unknown, "json": body}, "an unknown id, with the admin token"
    yield {"url": unknown, "json": body, "headers": {}}, "no admin token"
    if "{" in path:
        yield {"url": PARAMETER.sub("not an id!", path), "json": body}, "a malformed id"
    if method == "post":
        yield {"url": unknown, "json": {"unexpected": [1]}}, "a body of the wrong shape"
    if path == "/connections":
        yield {"url": path, "params": {"limit": 0}}, "a query out of range"
    yield {"url": unknown, "content": b" " * OVER_ANY_LIMIT}, "a body over any limit"


def probed_errors(client: TestClient, schema: dict[str, Any]) -> set[tuple[str, str, int]]:
    """Every (path, code, status) the probes get from the routes, each checked to be among
    its route's documented errors."""
    admin = {"Authorization": f"Bearer {TOKEN}"}
    answered: set[tuple[str, str, int]] = set()
    for (method, path), operation in operations(schema).items():
        documented = {
            (int(status), code)
            for status, response in operation["responses"].items()
            if int(status) >= 400
            for code in response["content"]["application/json"].get("examples", {})
        }
        for request, tried in probes(path, method):
            request.setdefault("headers", admin)
            response = client.request(method.upper(), **request)
            if response.status_code < 400 or (response.status_code, path) == (503, "/ready"):
                continue
            code = response.json()["error"]
            assert (response.status_code, code) in documented, (method, path, tried)
            answered.add((path, code, response.status_code))
    return answered


def test_every_error_a_route_answers_is_documented(
    client: TestClient, schema: dict[str, Any]
) -> None:
    answered = probed_errors(client, schema)
    # The probes reach what they aim at, so the check above is not empty.
    assert ("/connections/{connection_id}", "unknown_connection", 404) in answered
    assert ("/webrtc/offer", "unknown_connection", 404) in answered
    assert ("/metrics", "unauthorized", 401) in answered
    assert ("/connections", "invalid_request", 422) in answered
    assert ("/health", "payload_too_large", 413) in answered
{%- if cookiecutter.include_cluster %}


UNREACHABLE_REDIS = "redis://127.0.0.1:1"
"""Where no Redis listens: a route that needs the cluster answers 503 at once."""


def test_every_error_a_route_answers_without_redis_is_documented(
    schema: dict[str, Any],
) -> None:
    settings = Settings(  # type: ignore[call-arg]
        _env_file=None, admin_token=SecretStr(TOKEN), redis_url=UNREACHABLE_REDIS
    )
    answered = probed_errors(TestClient(create_app(settings)), schema)
    assert ("/connections", "cluster_unavailable", 503) in answered
    assert ("/connections/{connection_id}/outputs", "cluster_unavailable", 503) in answered
    assert ("/webrtc/offer", "cluster_unavailable", 503) in answered
{%- endif %}


def test_examples_validate_against_their_models(app: FastAPI, schema: dict[str, Any]) -> None:
    routes = documented_routes(app)
    with_bodies = 0
    for key, operation in operations(schema).items():
        route = routes[key]
        if "requestBody" in operation:
            body = route.body_field
            assert body is not None
            model: TypeAdapter[Any] = TypeAdapter(
                Annotated[body.field_info.annotation, body.field_info]
            )
            examples = operation["requestBody"]["content"]["application/json"]["examples"]
            assert examples, key  # every body has an example
            for example in examples.values():
                model.validate_python(example["value"])
            with_bodies += 1
        answer = operation["responses"].get("200", {}).get("content", {}).get("application/json")
        if answer and "examples" in answer:
            for example in answer["examples"].values():
                TypeAdapter(route.response_model).validate_python(example["value"])
    assert with_bodies == 2  # the offer (or candidate), and the input
    offer = operations(schema)["post", "/webrtc/offer"]["requestBody"]["content"]
    assert offer["application/json"]["examples"]["offer"]["value"]["webrtc_id"] == (
        EXAMPLE_CONNECTION_ID
    )


@pytest.mark.parametrize("page", ["/docs", "/redoc"])
def test_the_docs_pages_load_only_the_app_s_own_assets(client: TestClient, page: str) -> None:
    response = client.get(page)
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/html")
    assert "http://" not in response.text
    assert "https://" not in response.text
    assets = ASSET.findall(response.text)
    assert len(assets) >= 2  # the script and the icon (and Swagger's stylesheet)
    for asset in assets:
        assert asset.startswith(f"{DOCS_ASSETS_PATH}/"), asset
        answer = client.get(asset)  # no admin token: the pages are public
        assert answer.status_code == 200, asset
        kind = ASSET_TYPES[asset[asset.rindex(".") :]]
        assert answer.headers["content-type"].startswith(kind), (asset, answer.headers)
        assert len(answer.content) > 1000


def test_the_docs_assets_are_behind_the_app_s_layers(client: TestClient) -> None:
    missing = client.get(f"{DOCS_ASSETS_PATH}/no-such-file.js")
    assert missing.status_code == 404
    assert missing.json()["error"] == "not_found"
    too_large = client.request(
        "GET", f"{DOCS_ASSETS_PATH}/favicon.png", content=b" " * OVER_ANY_LIMIT
    )
    assert too_large.status_code == 413
    assert client.get("/metrics").status_code == 401  # the admin token still guards
