"""The API's docs: its description, its operation ids and the examples its routes show.

The pages themselves, Swagger UI at ``/docs`` and ReDoc at ``/redoc``, are fastapi-offline's:
their scripts and styles are served by the app, so they work without the internet.
"""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI
from fastapi.encoders import jsonable_encoder
from fastapi.routing import APIRoute
from starlette.routing import WebSocketRoute

from ..services.streams import WEBSOCKET_PATH

EXAMPLE_CONNECTION_ID = "d41f6c0e9b2a4c7e"
"""The connection id the docs' examples use."""

DOCS_ASSETS_PATH = "/static-offline-docs"
"""Where the docs pages' scripts, styles and icon are served (fastapi-offline's default)."""

DESCRIPTION = """\
Real-time media over WebRTC, made with [FastRTC](https://fastrtc.org): this API connects
peers, and lists, feeds, reads and closes their connections.

**Connecting.** Ask `GET /webrtc/configuration` for the ICE servers of one new peer, make an
`RTCPeerConnection` with them, and post its offer to `POST /webrtc/offer` with an id of your
own (`webrtc_id`: 1-64 letters, digits, `-` or `_`; whoever knows it can reach the
connection, so make it unguessable); the answer's SDP completes the peer.

**Doors.** Every connection comes in through one of these doors, and goes through one
admission (a valid id, one id space, one concurrency limit); `GET /connections` lists each
with its door as `source`:

{doors}

fastrtc's telephone doors (`/telephone/handler`, `/telephone/incoming`) are not mounted: they
need Twilio (its package, an account and a public `wss://` address), which this app neither
ships nor can test.

**Admin token.** When the app is started with `APP_ADMIN_TOKEN`, the routes that see or end
every connection (`GET /connections`, `DELETE /connections/{connection_id}`,
`GET /metrics`) need `Authorization: Bearer <token>`: press **Authorize** in `/docs` to send
it. A connection's own routes need only its id.

**Errors.** Every error answers `{"error": "<code>", "detail": "<text>"}` (with
`connection_id`, `limit` or `errors` where they apply): each route lists the codes it may
answer, with an example of each.

These docs are served by the app itself and work offline: Swagger UI at `/docs`, ReDoc at
`/redoc`, the schema at `/openapi.json`.
"""

API_DOOR = "- `api`: `POST /webrtc/offer`, from any WebRTC client."
WEBSOCKET_DOOR = (
    f"- `websocket`: `WS {WEBSOCKET_PATH}`, audio as fastrtc's JSON messages (`start` with a "
    "`websocket_id`, then `media`, `ping`, `stop`); OpenAPI does not describe websockets, so "
    "it is not listed below."
)
{%- if cookiecutter.include_ui %}
UI_DOOR = "- `ui`: the Gradio page at [`{ui_path}/`]({ui_path}/), for people."
{%- endif %}


def operation_id(route: APIRoute) -> str:
    """A route's operation id: its function's name (``create_offer``, ``list_connections``)."""
    return route.name


def description(app: FastAPI{% if cookiecutter.include_ui %}, ui_path: str{% endif %}) -> str:
    """The API's description, in Markdown, naming the doors ``app`` has."""
    doors = [API_DOOR]
    sockets = {route.path for route in app.routes if isinstance(route, WebSocketRoute)}
    if WEBSOCKET_PATH in sockets:
        doors.append(WEBSOCKET_DOOR)
{%- if cookiecutter.include_ui %}
    doors.append(UI_DOOR.replace("{ui_path}", ui_path))
{%- endif %}
    return DESCRIPTION.replace("{doors}", "\n".join(doors))


def answer_examples(status: int = 200, **named: Any) -> dict[int | str, dict[str, Any]]:
    """OpenAPI ``responses=`` entry showing each of ``named`` (models, or lists of them) as an
    answer of the route with that ``status``."""
    examples = {
        name: {"value": jsonable_encoder(value, exclude_none=True)} for name, value in named.items()
    }
    return {status: {"content": {"application/json": {"examples": examples}}}}
