"""Every request body bounded before any route reads it (``api/limits.py``){% if cookiecutter.include_ui %}, and the UI's
component calls checked before Gradio runs them (``api/ui_calls.py``){% endif %}."""

from __future__ import annotations

import asyncio
import json
import re
from collections.abc import AsyncIterator, Iterator, Sequence
from pathlib import Path
from typing import Any

import httpx
import pytest
from starlette.routing import BaseRoute, Mount, Route
from websockets.asyncio.client import connect as websocket_connect
from websockets.exceptions import ConnectionClosedError

from {{ cookiecutter.package_name }}.api.limits import (
    KIB,
    MAX_BODY_BYTES,
    MAX_INPUT_BYTES,
    MIB,
    WEBSOCKET_MESSAGE_BYTES,
)
from {{ cookiecutter.package_name }}.api.offers import MAX_OFFER_BYTES
from {{ cookiecutter.package_name }}.app import create_app
{%- if cookiecutter.include_ui %}
from {{ cookiecutter.package_name }}.client import Door, ui_component_id
from {{ cookiecutter.package_name }}.media import AppStreams
{%- endif %}
from {{ cookiecutter.package_name }}.settings import Settings

from .conftest import SERVERS{% if cookiecutter.include_ui %}, Connect{% endif %}, serve
from .test_routes import error_of

JSON = {"Content-Type": "application/json"}
{%- if cookiecutter.include_ui %}
COMPONENT_SERVER = "/ui/gradio_api/component_server/"
{%- endif %}
CHUNK = 4 * KIB
"""What the test clients send at a time."""

ROUTES = [
    pytest.param("/webrtc/offer", MAX_OFFER_BYTES, id="api-offer"),
    pytest.param("/connections/abcdefgh/input", MAX_INPUT_BYTES, id="input"),
{%- if cookiecutter.include_ui %}
    pytest.param(COMPONENT_SERVER, MAX_OFFER_BYTES, id="ui-offer"),
    pytest.param("/ui/gradio_api/queue/join", MAX_BODY_BYTES, id="gradio-queue-join"),
    pytest.param("/ui/gradio_api/upload", MAX_BODY_BYTES, id="gradio-upload"),
{%- endif %}
    pytest.param("/connections/abcdefgh/response", MAX_BODY_BYTES, id="other-api-route"),
    pytest.param("/no/such/route", MAX_BODY_BYTES, id="no-route"),
]
"""One route of each class in the limits table, with its limit."""


class Body:
    """A request body of ``total`` bytes (JSON whitespace), counting how much was pulled."""

    def __init__(self, total: int) -> None:
        self.total = total
        self.pulled = 0

    async def __aiter__(self) -> AsyncIterator[bytes]:
        while self.pulled < self.total:
            chunk = b" " * min(CHUNK, self.total - self.pulled)
            self.pulled += len(chunk)
            yield chunk


async def chunks(body: bytes) -> AsyncIterator[bytes]:
    for start in range(0, len(body), CHUNK):
        yield body[start : start + CHUNK]


def too_large(response: httpx.Response, limit: int) -> None:
    body = error_of(response, 413, "payload_too_large")
    assert body["limit"] == limit


@pytest.mark.parametrize(("path", "limit"), ROUTES)
async def test_a_declared_length_over_the_limit_is_413_unread(
    http: httpx.AsyncClient, path: str, limit: int
) -> None:
    body = Body(10 * limit)
    headers = {**JSON, "Content-Length": str(body.total)}

    too_large(await http.post(path, content=body, headers=headers), limit)
    assert body.pulled == 0


@pytest.mark.parametrize(("path", "limit"), ROUTES)
async def test_a_streamed_body_is_413_once_past_the_limit(
    http: httpx.AsyncClient, path: str, limit: int
) -> None:
    body = Body(10 * limit)  # no Content-Length: chunked

    too_large(await http.post(path, content=body, headers=JSON), limit)
    assert body.pulled <= limit + CHUNK  # not a chunk more than it took to pass the limit


@pytest.mark.parametrize(("path", "limit"), ROUTES)
async def test_a_body_at_the_limit_reaches_the_route_and_one_byte_more_does_not(
    http: httpx.AsyncClient, path: str, limit: int
) -> None:
    call: dict[str, Any] = {}
{%- if cookiecutter.include_ui %}
    if path == COMPONENT_SERVER:
        call = {"data": [], "component_id": await ui_component_id(http), "fn_name": "turn"}
        call["session_hash"] = "s1"
{%- endif %}
    body = json.dumps(call).encode().ljust(limit)  # JSON, padded with whitespace

    for content in (body, chunks(body)):  # declared, and streamed
        response = await http.post(path, content=content, headers=JSON)
        assert response.status_code != 413, response.text
{%- if cookiecutter.include_ui %}
        if path == COMPONENT_SERVER:
            assert response.status_code == 200, response.text  # Gradio ran it
{%- endif %}
    too_large(await http.post(path, content=body + b" ", headers=JSON), limit)


@pytest.mark.parametrize("path", ["/webrtc/offer", "/connections/abcdefgh/input"])
@pytest.mark.parametrize(
    ("body", "reason"),
    [
        pytest.param(b'{"type": "offer", "sdp": "\xff"}', "not UTF-8", id="not-utf-8"),
        pytest.param(b"[" * 5000 + b"]" * 5000, "JSON nested too deep", id="nested-too-deep"),
    ],
)
async def test_a_body_that_cannot_be_parsed_is_422_as_other_non_json(
    http: httpx.AsyncClient, path: str, body: bytes, reason: str
) -> None:
    response = await http.post(path, content=body, headers=JSON)

    detail = str(error_of(response, 422, "invalid_request")["detail"])
    # Python 3.12's json reads 5,000 levels (3.11's gives up): the body is then no object.
    assert detail.startswith("body: "), detail
    assert detail == f"body: {reason}" or reason == "JSON nested too deep", detail


async def test_the_schema_lists_413_and_422_where_a_body_is_taken(
    http: httpx.AsyncClient,
) -> None:
    schema = (await http.get("/openapi.json")).json()
    with_body = [
        (path, operation)
        for path, item in schema["paths"].items()
        for operation in item.values()
        if "requestBody" in operation
    ]

    assert with_body
    for path, operation in with_body:
        assert {"413", "422"} <= set(operation["responses"]), path
{%- if cookiecutter.include_ui %}


# -- the UI's component calls: what fastrtc's frontend sends, and what Gradio answered 500 to

GOOD_ID = "abcdefgh12345678"


async def call(http: httpx.AsyncClient, **fields: Any) -> httpx.Response:
    """A component call on the UI's WebRTC component, with ``fields`` over a valid offer's."""
    body = {
        "data": {"sdp": "v=0", "type": "offer", "webrtc_id": GOOD_ID},
        "component_id": await ui_component_id(http),
        "fn_name": "offer",
        "session_hash": "s1",
        **fields,
    }
    return await http.post(COMPONENT_SERVER, json=body)


def refused(response: httpx.Response, status: int, code: str) -> None:
    error_of(response, status, code)
    assert "Traceback" not in response.text


@pytest.mark.parametrize(
    ("fields", "status", "code"),
    [
        pytest.param({"component_id": 9999}, 404, "unknown_component", id="unknown-component"),
        pytest.param({"component_id": "seven"}, 422, "invalid_request", id="component-not-int"),
        pytest.param({"fn_name": "nope"}, 404, "unknown_function", id="unknown-function"),
        pytest.param({"session_hash": 5}, 422, "invalid_request", id="session-not-a-string"),
        pytest.param({"session_hash": ""}, 422, "invalid_request", id="empty-session"),
        pytest.param({"session_hash": "s" * 65}, 422, "invalid_request", id="long-session"),
        pytest.param({"data": [1, 2]}, 422, "invalid_request", id="data-not-an-object"),
        pytest.param({"data": "offer"}, 422, "invalid_request", id="data-a-string"),
        pytest.param(
            {"data": {"sdp": "v=0", "type": "offer"}}, 422, "invalid_request", id="no-webrtc-id"
        ),
        pytest.param(
            {"data": {"sdp": "v=0", "type": "offer", "webrtc_id": "bad id!"}},
            422,
            "invalid_request",
            id="webrtc-id-bad-alphabet",
        ),
        pytest.param(
            {"data": {"sdp": "v=0", "type": "answer", "webrtc_id": GOOD_ID}},
            422,
            "invalid_request",
            id="data-neither-offer-nor-candidate",
        ),
        pytest.param(
            {"data": {"type": "ice-candidate", "candidate": "x", "webrtc_id": GOOD_ID}},
            422,
            "invalid_request",
            id="candidate-not-an-object",
        ),
        pytest.param(
            {"fn_name": "quit_output_stream", "data": {}},
            422,
            "invalid_request",
            id="quit-without-webrtc-id",
        ),
        pytest.param({"extra": 1}, 422, "invalid_request", id="unknown-field"),
    ],
)
async def test_a_malformed_component_call_is_refused_in_the_api_shape(
    http: httpx.AsyncClient,
    streams: AppStreams,
    fields: dict[str, Any],
    status: int,
    code: str,
) -> None:
    refused(await call(http, **fields), status, code)
    assert len(streams) == 0


async def test_another_component_of_the_ui_is_unknown(http: httpx.AsyncClient) -> None:
    config = (await http.get("/ui/config")).json()
    webrtc = await ui_component_id(http)
    other = next(c["id"] for c in config["components"] if c["id"] != webrtc)

    refused(await call(http, component_id=other), 404, "unknown_component")


@pytest.mark.parametrize(
    "body",
    [
        pytest.param(b"{not json", id="not-json"),
        pytest.param(b'{"session_hash": "\xff"}', id="not-utf-8"),
        pytest.param(b"[" * 5000 + b"]" * 5000, id="nested-too-deep"),
        pytest.param(b"[1, 2]", id="not-an-object"),
        pytest.param(b"", id="empty"),
    ],
)
async def test_a_component_call_that_is_not_json_is_422(
    http: httpx.AsyncClient, body: bytes
) -> None:
    refused(await http.post(COMPONENT_SERVER, content=body, headers=JSON), 422, "invalid_request")


async def test_the_frontend_s_calls_pass(
    http: httpx.AsyncClient, peer: Connect, streams: AppStreams
) -> None:
    turn = await call(http, fn_name="turn", data=[])
    assert turn.status_code == 200
    assert "iceServers" in turn.json()

    candidate = {"candidate": "candidate:1 1 udp 1 127.0.0.1 9 typ host", "sdpMid": "0"}
    trickle = await call(
        http, data={"type": "ice-candidate", "candidate": candidate, "webrtc_id": GOOD_ID}
    )
    assert trickle.json()["meta"]["error"] == "unknown_connection"  # fastrtc's own answer

    client = await peer(Door.UI)  # an offer, all the way to a connected peer
    assert client.connection_id in {c.id for c in streams.list_connections()}
    quit_ = await call(http, fn_name="quit_output_stream", data={"webrtc_id": GOOD_ID})
    assert quit_.json() == {"success": True}
{%- endif %}


# -- against the real server: its memory, and websocket messages (a uvicorn setting)

HUGE = 300 * MIB
SEND_CHUNK = 256 * KIB
PER_REQUEST_S = 5.0
PEAK_GROWTH_KIB = 50 * 1024


def http_routes(routes: Sequence[BaseRoute], prefix: str = "") -> Iterator[tuple[str, str]]:
    """(method, path) of every HTTP route, mounted apps' and included routers' too."""
    for route in routes:
        if isinstance(route, Mount):
            yield from http_routes(route.routes, prefix + route.path)
        elif (included := getattr(route, "original_router", None)) is not None:
            yield from http_routes(included.routes, prefix)  # FastAPI's included router
        elif isinstance(route, Route) and route.methods:
            for method in sorted(route.methods - {"HEAD"}):
                yield method, prefix + route.path


def peak_rss_kib(pid: int) -> int:
    found = re.search(r"VmHWM:\s+(\d+)", Path(f"/proc/{pid}/status").read_text())
    assert found is not None
    return int(found[1])


def reset_peak_rss(pid: int) -> None:
    """From now on, VmHWM is the peak since now (Linux: ``5`` to ``clear_refs``)."""
    Path(f"/proc/{pid}/clear_refs").write_text("5")


async def send_huge(base: str, method: str, path: str, *, declared: bool) -> tuple[int, bytes]:
    """Send a 300 MiB body (with its Content-Length, or chunked) until the server answers;
    its status and body. The rest is not sent."""
    url = httpx.URL(base)
    reader, writer = await asyncio.open_connection(url.host, url.port)
    framing = f"Content-Length: {HUGE}" if declared else "Transfer-Encoding: chunked"
    head = f"{method} {path} HTTP/1.1\r\nHost: {url.host}:{url.port}\r\n{framing}\r\n"
    writer.write(f"{head}Content-Type: application/json\r\n\r\n".encode())
    chunk = b" " * SEND_CHUNK
    framed = chunk if declared else f"{SEND_CHUNK:x}\r\n".encode() + chunk + b"\r\n"

    async def body() -> None:
        for _ in range(HUGE // SEND_CHUNK):
            writer.write(framed)
            await writer.drain()
        writer.write(b"" if declared else b"0\r\n\r\n")

    sending = asyncio.create_task(body())
    try:
        async with asyncio.timeout(PER_REQUEST_S):
            status = int((await reader.readline()).split()[1])
            headers: dict[str, str] = {}
            while (line := await reader.readline()) not in (b"\r\n", b""):
                name, _, value = line.decode().partition(":")
                headers[name.strip().lower()] = value.strip()
            answer = await reader.readexactly(int(headers.get("content-length", "0")))
    finally:
        sending.cancel()
        await asyncio.gather(sending, return_exceptions=True)
        writer.close()
    return status, answer


@pytest.mark.reliability
@pytest.mark.timeout(300)
async def test_a_huge_body_to_any_route_leaves_memory_alone(tmp_path: Path) -> None:
    """300 MiB, declared and streamed, to every HTTP route (and each with POST too): each is
    refused with 413 before the route runs, and the server's peak memory hardly moves."""
    app = create_app(Settings(_env_file=None))  # type: ignore[call-arg]
    operations = sorted(
        {(m, re.sub(r"\{[^}]*\}", "x", p)) for m, p in http_routes(app.routes)}
        | {("POST", re.sub(r"\{[^}]*\}", "x", p)) for _, p in http_routes(app.routes)}
    )
    await app.state.streams.close_all()
{%- if cookiecutter.include_ui %}
    for expected in ("/ui/gradio_api/queue/join", "/ui/gradio_api/component_server/"):
        assert ("POST", expected) in operations
{%- endif %}
    assert ("POST", "/connections/x/input") in operations
    with serve(tmp_path / "server.log") as base:
        pid = SERVERS[base].pid
        reset_peak_rss(pid)
        before = peak_rss_kib(pid)
        answers: dict[tuple[str, str, bool], tuple[int, bytes]] = {}
        for method, path in operations:
            for declared in (True, False):
                answers[method, path, declared] = await send_huge(
                    base, method, path, declared=declared
                )
        peak = peak_rss_kib(pid)
        async with httpx.AsyncClient(base_url=base) as http:
            assert (await http.get("/health")).status_code == 200  # still serving

    assert peak - before < PEAK_GROWTH_KIB, f"peak RSS from {before} KiB to {peak} KiB"
    for request, (status, body) in answers.items():
        assert status == 413, (request, status, body[:200])
        assert json.loads(body)["error"] == "payload_too_large", (request, body[:200])


@pytest.mark.websocket_door
async def test_a_websocket_message_is_bounded(live_server: str) -> None:
    url = live_server.replace("http://", "ws://") + "/websocket/offer"
    async with websocket_connect(url, max_size=None) as websocket:
        await websocket.send(json.dumps({"event": "ping"}))
        assert json.loads(await websocket.recv()) == {"event": "pong"}

        payload = "A" * WEBSOCKET_MESSAGE_BYTES
        await websocket.send(json.dumps({"event": "media", "media": {"payload": payload}}))
        with pytest.raises(ConnectionClosedError) as closed:
            await websocket.recv()
    assert closed.value.rcvd is not None
    assert closed.value.rcvd.code == 1009  # message too big
