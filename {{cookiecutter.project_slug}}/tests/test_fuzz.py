"""Fuzz every mounted route and door of the app as users run it, with hypothesis.

The server is the app as users run it (its lifespan running), with the admin token set. Every
HTTP route mounted on the app (the UI's Gradio routes too, where it has the UI) is tried with
each method it takes, hostile path parameters, the token, a wrong one or none, and bodies up
to and past each route's limit; the websocket door gets hostile messages. No answer may be a
5xx or carry a traceback, and the app's own routes answer every error in the API's one shape.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pydantic import SecretStr
from starlette.routing import Mount, Route, WebSocketRoute
from starlette.staticfiles import StaticFiles
from websockets.exceptions import ConnectionClosed
from websockets.sync.client import connect

from {{ cookiecutter.package_name }}.api.docs import DOCS_ASSETS_PATH
from {{ cookiecutter.package_name }}.api.limits import MAX_BODY_BYTES
from {{ cookiecutter.package_name }}.app import CLIENT_PATH, create_app
from {{ cookiecutter.package_name }}.client import Door
from {{ cookiecutter.package_name }}.services.streams import WEBSOCKET_PATH
from {{ cookiecutter.package_name }}.settings import Settings

from .conftest import DOORS, WEBSOCKET, serve

pytestmark = [pytest.mark.reliability, pytest.mark.timeout(600)]

TOKEN = "fuzz-admin-token"
LIMIT = 4
SETTINGS = {"APP_ADMIN_TOKEN": TOKEN, "APP_CONCURRENCY_LIMIT": str(LIMIT)}
APP = create_app(
    Settings(_env_file=None, admin_token=SecretStr(TOKEN), concurrency_limit=LIMIT)  # type: ignore[call-arg]
)
PARAMETER = re.compile(r"{[^}]+}")


def mounted_routes() -> tuple[list[tuple[str, str]], list[str], list[str]]:
    """Every (method, path) of the app's HTTP routes, mounted apps' included, every websocket
    route's path, and where apps are mounted (FastAPI keeps an included router's routes
    behind a wrapper that holds the router and its prefix)."""
    http = [
        (method.upper(), path) for path, item in APP.openapi()["paths"].items() for method in item
    ]
    sockets: list[str] = []
    mounts: list[str] = []

    def walk(routes: list[Any], prefix: str) -> None:
        for route in routes:
            if isinstance(route, Mount) and isinstance(route.app, StaticFiles):
                # Static files (the plain client): a route of their own, any file name.
                http.append(("GET", prefix + route.path + "/{file}"))
            elif isinstance(route, Mount):
                mounts.append(prefix + route.path)
                walk(list(route.routes), prefix + route.path)
            elif isinstance(route, WebSocketRoute):
                sockets.append(prefix + route.path)
            elif hasattr(route, "original_router"):
                included = prefix + route.include_context.prefix
                walk(list(route.original_router.routes), included)
            elif isinstance(route, Route):
                http.extend((method, prefix + route.path) for method in sorted(route.methods or []))

    walk(list(APP.routes), "")
    return sorted(set(http)), sorted(set(sockets)), mounts


ROUTES, SOCKETS, MOUNTS = mounted_routes()
OWN = tuple(p for _, p in ROUTES if not p.startswith(tuple(MOUNTS)))
"""The app's own routes, which answer in the API's error shape (the UI's are Gradio's)."""
WEBSOCKETS = [p for p in SOCKETS if not p.startswith(tuple(MOUNTS))]
"""The app's websocket doors (the UI refuses Gradio's at the handshake: ``test_doors``)."""


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    with serve(tmp_path_factory.mktemp("fuzz") / "server.log", **SETTINGS) as base:
        yield base


json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=400),
    lambda inner: st.lists(inner, max_size=6) | st.dictionaries(st.text(max_size=20), inner),
    max_leaves=20,
)
envelopes = st.fixed_dictionaries(
    {},
    optional={
        "type": st.sampled_from(["offer", "answer", "ice-candidate"]) | st.text(max_size=8),
        "sdp": st.text(max_size=2000) | st.just("v=0\r\nm=audio 9 UDP/TLS/RTP/SAVPF 0\r\n"),
        "webrtc_id": st.text(alphabet="abcXYZ019_-.!/ ", max_size=70) | json_values,
        "candidate": json_values,
        "data": json_values,
        "fn_name": st.sampled_from(["offer", "turn", "quit_output_stream"]) | st.text(max_size=9),
        "component_id": st.integers(-2, 50) | json_values,
        "session_hash": st.text(max_size=20),
        "fn_index": st.integers(-2, 10),
    },
)
# Sizes around each limit: just under, just over, and far over the largest one.
sizes = st.sampled_from([0, 1, 16 * 1024, 64 * 1024, 64 * 1024 + 1, MAX_BODY_BYTES + 1])
bodies = (
    st.builds(lambda value: json.dumps(value).encode(), envelopes | json_values)
    | sizes.map(lambda n: b'{"pad": "' + b"x" * n + b'"}')
    | st.binary(max_size=300)
    | st.just(b"[" * 5000 + b"]" * 5000)
    | st.just(b'{"gain": "\xff\xfe"}')
)
path_values = st.text(alphabet="abcXYZ019_-.%~=", min_size=1, max_size=80).filter(
    lambda s: s not in (".", "..")
)
credentials = st.sampled_from(
    [{"Authorization": f"Bearer {TOKEN}"}, {"Authorization": "Bearer x"}, {}]
)


def answer(
    base: str, method: str, path: str, body: bytes, headers: dict[str, str]
) -> tuple[int, str, bytes]:
    """Status, content type and (the start of) the body; event streams are not read."""
    with (
        httpx.Client(base_url=base, timeout=20) as client,
        client.stream(
            method,
            path,
            content=body if method in ("POST", "PUT", "PATCH") else None,
            headers={"Content-Type": "application/json", **headers},
        ) as response,
    ):
        kind = response.headers.get("content-type", "")
        content = b"" if "event-stream" in kind else response.read()
        return response.status_code, kind, content


EXAMPLES_PER_ROUTE = 4
"""Examples for each route. Every mounted route is fuzzed in every run: 400 examples sampled
over all of them at once left 2 to 9 of the 96 routes of the default project out of a run."""


@pytest.mark.parametrize("route", ROUTES, ids=[f"{method} {path}" for method, path in ROUTES])
@settings(max_examples=EXAMPLES_PER_ROUTE, deadline=None, suppress_health_check=list(HealthCheck))
@given(value=path_values, body=bodies, headers=credentials)
def test_no_route_answers_a_server_error_or_an_odd_shape(
    server: str, route: tuple[str, str], value: str, body: bytes, headers: dict[str, str]
) -> None:
    method, template = route
    path = PARAMETER.sub(value, template)
    status, kind, content = answer(server, method, path, body, headers)

    where = (method, path, body[:200], status, content[:300])
    full = path == "/ready" and status == 503 and json.loads(content)["status"] == "full"
    assert status < 500 or full, where
    assert b"Traceback" not in content, where
    if template in OWN and status >= 400 and status != 503:
        assert kind.startswith("application/json"), where
        error = json.loads(content)
        assert isinstance(error["error"], str), where
        assert isinstance(error["detail"], str), where


CLOSE_CODES = (1000, 1003, 1007, 1008, 1009)
"""Normal, unsupported data, invalid data, policy violation (a refused start), too big."""
messages = (
    st.builds(json.dumps, json_values | envelopes)
    | st.builds(
        lambda cid: json.dumps({"event": "start", "websocket_id": cid}),
        st.text(max_size=100) | json_values,
    )
    | st.builds(
        lambda payload: json.dumps({"event": "media", "media": {"payload": payload}}),
        st.text(max_size=200),
    )
    | st.sampled_from(['{"event": "stop"}', '{"event": "ping"}', "not json"])
)


@pytest.mark.websocket_door
@settings(max_examples=60, deadline=None, suppress_health_check=list(HealthCheck))
@given(path=st.sampled_from(WEBSOCKETS), sent=st.lists(messages, min_size=1, max_size=6))
def test_no_websocket_message_harms_the_server(server: str, path: str, sent: list[str]) -> None:
    url = server.replace("http://", "ws://") + path
    with connect(url, open_timeout=10) as socket:
        for message in sent:
            try:
                socket.send(message)
            except ConnectionClosed:
                break  # the door closed it: it says why below
        socket.close()
    closing = socket.protocol.close_rcvd
    assert closing is None or closing.code in CLOSE_CODES, (sent, closing)
    with httpx.Client(base_url=server, timeout=10) as client:
        assert client.get("/health").status_code == 200
        ready = client.get("/ready").json()
        assert ready["connections"] <= LIMIT, ready


def test_every_mounted_route_is_fuzzed() -> None:
    assert ([WEBSOCKET_PATH] if WEBSOCKET else []) == WEBSOCKETS
    assert not any(path.startswith("/telephone") for _, path in ROUTES)
    assert ("GET", CLIENT_PATH + "/{file}") in ROUTES
    assert ("GET", DOCS_ASSETS_PATH + "/{file}") in ROUTES  # the API docs' scripts and styles
    if Door.UI in DOORS:
        (ui,) = MOUNTS
        assert ("POST", f"{ui}/gradio_api/queue/join") in ROUTES
        assert ("POST", f"{ui}/gradio_api/component_server/") in ROUTES
