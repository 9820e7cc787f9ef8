"""One view of every connection of a FastRTC ``Stream``, wherever fastrtc keeps it.

fastrtc keeps per-connection state on two objects. The ``Stream`` holds the connections made
through its HTTP API (``POST /webrtc/offer``, ``/websocket/offer``); the Gradio component
``stream.webrtc_component`` holds the ones made by the browser UI (through
``<ui>/gradio_api/component_server/``). Each has its own ``pcs``, ``connections``, ``handlers``
and ``additional_outputs``, so fastrtc's own ``stream.connections``, ``stream.set_input`` and
``stream.output_stream`` miss every UI connection.

This module is the only one in the app that reads those internals. ``StreamService`` makes the
pair behave as one stream:

- one listing and one lookup over both objects; an unknown id raises ``UnknownConnectionError``
  instead of silently creating state;
- one admission for every door, the websocket one too (``mount_websocket``): a valid id, one
  id space and one concurrency limit, checked and taken with no ``await`` between (fastrtc
  counts each object on its own, so twice the limit got in, and the same id could be taken
  through two doors); offers are bounded in size and media sections;
- the UI component uses the Stream's server-side ICE/TURN configuration (fastrtc builds it
  without one);
- additional outputs reach every subscriber, and a subscription ends when its connection does
  (fastrtc's ``output_stream`` on a dead id never ends);
- the UI's output listener, which anyone can start through Gradio's queue, ends at once for
  an id that is no live connection (fastrtc's polls forever, holding the listener's slot);
- ``close`` really closes the peer (fastrtc's ``update_connection`` only asks the browser to),
  and tells a UI page first;
- a peer that stops answering is dropped after ``peer_timeout`` seconds, not aioice's fixed
  30, and one that never connects after ``peer_timeout``, not fastrtc's fixed 30;
- a handler that asks for its inputs (``ReplyOnPause`` does at every pause) gets the current
  ones at once: fastrtc waits for the client to send them again, which the Gradio UI does
  (and may then change them) but an API client need not;
- a new connection's media starts with the default inputs: fastrtc's server-made tracks
  (receive mode) wait for inputs before making anything, and its video tracks pass images
  through untouched until then, so an API client that never sets one would get nothing (or
  its own images) back;
- a receive-mode generator is started again when the inputs change: fastrtc calls it once,
  with the inputs at the start, so later ones never reached it;
- a video handler with a ``copy`` method gets one copy per connection, as fastrtc does for
  stream handlers (it shares one function between all video connections).
- nothing of a closed connection keeps running (fastrtc left its handler's tasks waiting);
- what the handlers raise is counted (``handler_errors``): fastrtc only prints it.

Inputs reach a handler in the shape the Gradio UI gives them, whatever the path:
``handler.latest_args == ["__webrtc_value__", connection_id, *inputs]``; see ``handler_inputs``.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import contextlib
import functools
import inspect
import json
import logging
import math
import re
import threading
import time
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Annotated, Any, Literal, Protocol, cast

import aioice.ice
from aiortc import RTCPeerConnection
from fastapi import FastAPI
from fastapi.responses import JSONResponse
from fastrtc import AdditionalOutputs, AsyncStreamHandler, ReplyOnPause, Stream, StreamHandler
from fastrtc.tracks import (
    ServerToClientAudio,
    ServerToClientVideo,
    StreamHandlerBase,
    VideoCallback,
    VideoStreamHandler_,
)
from fastrtc.utils import create_message, current_context, webrtc_error_handler
from fastrtc.webrtc_connection_mixin import WebRTCConnectionMixin
from fastrtc.websocket import WebSocketHandler
from pydantic import BaseModel, ConfigDict, Field, TypeAdapter, ValidationError, field_validator
from starlette.routing import WebSocketRoute
from starlette.types import Message, Receive, Scope, Send
from starlette.websockets import WebSocket

logger = logging.getLogger(__name__)

OutputsCallback = Callable[[AdditionalOutputs], None]
Handler = StreamHandler | AsyncStreamHandler
ConnectionState = Literal["new", "connecting", "connected", "closed", "failed"]

CONNECTION_ID_PATTERN = r"^[A-Za-z0-9_-]{1,64}$"
CONNECTION_ID = re.compile(CONNECTION_ID_PATTERN)
"""What a connection id may be: 1-64 letters, digits, '-' or '_' (the Gradio UI's ids are
base-36 strings; the app's own client makes 22-character random ones)."""

MAX_SDP_BYTES = 64 * 1024
"""An SDP offer of one audio and one video track and a data channel is a few kilobytes."""
MAX_MEDIA_SECTIONS = 8
"""Media sections an offer may have: aiortc's time to answer grows with them (3,000 took
seconds of the event loop), and an app's peer needs three at most."""
CLOSE_NOTICE_S = 0.1
"""How long closing a UI connection waits for the page's notice to leave."""
WEBSOCKET_PATH = "/websocket/offer"
"""fastrtc's websocket door: audio as JSON messages (``start``, ``media``, ``stop``, ``ping``)."""


class Source(StrEnum):
    """Where a connection was made."""

    API = "api"
    """``POST /webrtc/offer`` on the app."""
    UI = "ui"
    """The Gradio UI (``<ui>/gradio_api/component_server/``)."""
    WEBSOCKET = "websocket"
    """``/websocket/offer`` on the app."""


class ConnectionInfo(BaseModel):
    """A connection as the rest of the app sees it."""

    model_config = ConfigDict(frozen=True)

    id: str
    source: Source
    state: ConnectionState
    replica: str | None = None
    """The replica that holds it, when the app runs as a cluster (``APP_REDIS_URL``)."""


class StreamError(Exception):
    """Base class of the errors this module raises."""


class UnknownConnectionError(StreamError, LookupError):
    """No live connection has this id."""

    def __init__(self, connection_id: str) -> None:
        super().__init__(f"unknown connection: {connection_id!r}")
        self.connection_id = connection_id


class ConnectionNotReadyError(StreamError):
    """The connection exists but its media has not started, so it has no handler to reach yet."""

    def __init__(self, connection_id: str) -> None:
        super().__init__(f"connection {connection_id!r} has no media track yet")
        self.connection_id = connection_id


class ResponseNotSupportedError(StreamError):
    """The connection's handler cannot be asked to respond now."""

    def __init__(self, connection_id: str, reason: str) -> None:
        super().__init__(f"connection {connection_id!r} cannot respond: {reason}")
        self.connection_id = connection_id
        self.reason = reason


class OfferRefusedError(StreamError):
    """The stream refused an offer (``reason``: fastrtc's code, e.g. the concurrency limit)."""

    def __init__(self, connection_id: str, reason: str, meta: dict[str, Any]) -> None:
        super().__init__(meta.get("detail") or f"offer for {connection_id!r} refused: {reason}")
        self.connection_id = connection_id
        self.reason = reason
        self.meta = meta


def handler_inputs(latest_args: Sequence[Any]) -> list[Any]:
    """The inputs last set on a handler, without fastrtc's prefix.

    Whichever path set them (the Gradio UI or ``StreamService.set_input``), fastrtc stores them
    on the handler as ``["__webrtc_value__", connection_id, *inputs]``.
    """
    return list(latest_args[2:])


@dataclass
class _Outputs:
    """Fan-out of one connection's additional outputs to any number of subscribers."""

    buffer: int
    latest: AdditionalOutputs | None = None
    subscribers: set[asyncio.Queue[AdditionalOutputs | None]] = field(default_factory=set)

    def publish(self, outputs: AdditionalOutputs) -> None:
        self.latest = outputs
        for queue in self.subscribers:
            if queue.full():  # a slow reader loses its oldest item, never memory
                queue.get_nowait()
            queue.put_nowait(outputs)

    def subscribe(self) -> asyncio.Queue[AdditionalOutputs | None]:
        queue: asyncio.Queue[AdditionalOutputs | None] = asyncio.Queue(self.buffer)
        self.subscribers.add(queue)
        return queue

    def end(self) -> None:
        for queue in self.subscribers:
            if queue.full():
                queue.get_nowait()
            queue.put_nowait(None)


class Remote(Protocol):
    """The other replicas of the app, when it runs as a cluster (see ``services/cluster.py``)."""

    async def claim(self, connection_id: str) -> bool:
        """Take the id for this replica, cluster-wide; False if another replica holds it."""

    def release(self, connection_id: str) -> None:
        """Give back an id claimed for an offer that was then refused or failed."""

    async def forward_candidate(self, body: dict[str, Any]) -> Any:
        """Hand a trickled ICE candidate to the replica whose connection it is."""


class Listener(Protocol):
    """What follows the connections of this process (the cluster does)."""

    def changed(self) -> None:
        """A connection opened or closed."""

    def output(self, connection_id: str, outputs: AdditionalOutputs) -> None:
        """A connection emitted ``outputs``."""

    def closed(self, connection_id: str) -> None:
        """A connection closed."""


class StreamService:
    """Every connection of one ``Stream``, API and UI alike, through one typed interface.

    Build it once, right after the ``Stream``, before the app serves anything: it installs
    admission control and output fan-out on both of fastrtc's connection owners.
    """

    def __init__(
        self, stream: Stream, *, peer_timeout: float | None = None, output_buffer: int = 64
    ) -> None:
        if peer_timeout is not None:
            set_peer_timeout(peer_timeout)
        self._stream = stream
        self._peer_timeout = peer_timeout
        self._admitted: dict[str, Source] = {}
        """Every connection admitted, live or with its offer still being answered, whatever
        the door: the one registry that the limit, the id space and every lookup read (O(1))."""
        self._owners: dict[Source, WebRTCConnectionMixin] = {
            Source.API: stream,
            Source.UI: stream.webrtc_component,
        }
        self._output_buffer = output_buffer
        self._outputs: dict[str, _Outputs] = {}
        self._opened: dict[str, tuple[Source, float]] = {}
        self._inputs: dict[str, list[Any]] = {}
        self.connections_total: Counter[Source] = Counter()
        """Connections ever accepted, by source (for metrics)."""
        self.remote: Remote | None = None
        """The other replicas, in cluster mode: ids are unique, and candidates reach them."""
        self.listener: Listener | None = None
        self._handler_errors = 0
        self._handler_errors_lock = threading.Lock()  # synchronous handlers run in threads
        # fastrtc builds the UI component without the Stream's server-side ICE configuration.
        stream.webrtc_component.server_rtc_configuration = stream.server_rtc_configuration
        stream.webrtc_component.allow_extra_tracks = stream.allow_extra_tracks
        for source, owner in self._owners.items():
            self._install(source, owner)
        handlers = {id(owner.event_handler): owner.event_handler for owner in self._owners.values()}
        for handler in handlers.values():
            if isinstance(handler, Handler):
                self._count_errors(handler)

    @property
    def concurrency_limit(self) -> int:
        return cast(int, self._stream.concurrency_limit)

    @property
    def handler_errors(self) -> int:
        """Exceptions the connections' handlers have raised, since the start (for metrics)."""
        return self._handler_errors

    # -- reading ---------------------------------------------------------------------------

    def list_connections(self) -> list[ConnectionInfo]:
        """Every connection, whatever its door, in the order they were offered."""
        return [self._info(id_, source) for id_, source in list(self._admitted.items())]

    def get(self, connection_id: str) -> ConnectionInfo:
        """One connection; ``UnknownConnectionError`` if no live connection has this id."""
        source, _ = self._locate(connection_id)
        return self._info(connection_id, source)

    def __contains__(self, connection_id: object) -> bool:
        return isinstance(connection_id, str) and self._find(connection_id) is not None

    def registry_sizes(self) -> dict[str, int]:
        """The size of each of fastrtc's per-connection registries, and of this service's own.

        A diagnostic: with no connection live, every one is 0 (anything else is a leak).
        """
        sizes: dict[str, int] = {}
        for source, owner in self._owners.items():
            for name in ("pcs", "connections", "handlers", "data_channels", "additional_outputs"):
                sizes[f"{source.value}.{name}"] = len(getattr(owner, name))
        sizes["service.admitted"] = len(self._admitted)
        sizes["service.outputs"] = len(self._outputs)
        sizes["service.opened"] = len(self._opened)
        sizes["service.inputs"] = len(self._inputs)
        return sizes

    def __len__(self) -> int:
        return len(self._admitted)

    # -- per-connection operations -------------------------------------------------------

    async def offer(self, body: dict[str, Any]) -> dict[str, Any]:
        """Hand an API offer (or ICE candidate) to the stream; the answer, or a typed error.

        fastrtc answers refusals as ``{"status": "failed", "meta": {...}}`` with HTTP 200;
        here they become ``OfferRefusedError``. A bad SDP is refused (and what it took freed)
        by the admission installed on both owners, so it arrives here as a refusal too.
        """
        connection_id = str(body["webrtc_id"])
        reply = await self._stream.handle_offer(
            body, set_outputs=self._stream.set_additional_outputs(connection_id)
        )
        if isinstance(reply, JSONResponse):
            content = json.loads(bytes(reply.body))
            if content.get("status") == "failed":
                meta = dict(content.get("meta") or {})
                raise OfferRefusedError(connection_id, str(meta.get("error", "failed")), meta)
            return cast(dict[str, Any], content)
        return cast(dict[str, Any], reply)

    async def add_candidate(self, body: dict[str, Any]) -> dict[str, Any]:
        """Add a trickled ICE candidate to the connection it names; fastrtc's reply."""
        _, owner = self._locate(str(body.get("webrtc_id")))
        reply = await owner.handle_offer(body, lambda outputs: None)
        if isinstance(reply, JSONResponse):
            return cast(dict[str, Any], json.loads(bytes(reply.body)))
        return cast(dict[str, Any], reply)

    def set_input(self, connection_id: str, *inputs: Any) -> None:
        """Hand ``inputs`` to the connection's handler, as the Gradio UI's input components do."""
        _, owner = self._locate(connection_id)
        if not owner.connections.get(connection_id):
            raise ConnectionNotReadyError(connection_id)
        owner.set_input(connection_id, connection_id, *inputs)

    async def trigger_response(self, connection_id: str, *inputs: Any) -> None:
        """Ask a pause-detecting handler to respond now, as if the speaker had paused."""
        _, owner = self._locate(connection_id)
        handler = owner.handlers.get(connection_id)
        if not isinstance(handler, ReplyOnPause):
            raise ResponseNotSupportedError(connection_id, "the handler does not detect pauses")
        buffered = handler.state.stream
        if buffered is None or buffered.size == 0:
            raise ResponseNotSupportedError(connection_id, "no speech has been received yet")
        if inputs:
            self.set_input(connection_id, *inputs)
        handler.trigger_response()

    def latest_output(self, connection_id: str) -> AdditionalOutputs | None:
        """The last additional output of the connection, or ``None`` if it has emitted none."""
        self._locate(connection_id)
        outputs = self._outputs.get(connection_id)
        return outputs.latest if outputs else None

    def subscribe(self, connection_id: str) -> AsyncIterator[AdditionalOutputs]:
        """Every additional output the connection emits from now on, until it closes.

        The lookup happens now, so an unknown id fails before anything is streamed.
        """
        self._locate(connection_id)
        queue = self._outputs_of(connection_id).subscribe()
        return self._drain(connection_id, queue)

    async def close(self, connection_id: str) -> None:
        """Close the connection and release everything fastrtc holds for it.

        A UI page is told first, over its data channel, so that it shows at once that the
        connection ended (fastrtc's ``update_connection`` message, which its frontend obeys).
        """
        source, owner = self._locate(connection_id)
        if source is Source.WEBSOCKET:
            tracks = owner.connections.get(connection_id) or []
            if tracks and isinstance(tracks[0], WebSocketHandler) and tracks[0].websocket:
                with contextlib.suppress(RuntimeError):  # the socket was closed already
                    await tracks[0].websocket.close()
            owner.clean_up(connection_id)
            return
        if source is Source.UI:
            await _tell_page_closed(owner, connection_id)
        await _discard(owner, connection_id)

    async def close_all(self) -> None:
        """Close every connection, e.g. when the app shuts down; one failure stops none."""
        for connection_id in list(self._admitted):
            try:
                await self.close(connection_id)
            except UnknownConnectionError:
                continue  # it closed by itself meanwhile
            except Exception:
                logger.exception("closing connection %r failed", connection_id)

    def mount_websocket(self, app: FastAPI) -> None:
        """Mount fastrtc's websocket door at ``/websocket/offer``, through this layer's admission.

        fastrtc's door carries audio to and from a stream handler: it is mounted for those
        only.
        """
        handler = self._stream.event_handler
        if self._stream.modality == "audio" and isinstance(handler, StreamHandlerBase):
            app.router.routes.append(WebSocketRoute(WEBSOCKET_PATH, _WebSocketDoor(self)))

    # -- internals -----------------------------------------------------------------------

    def _find(self, connection_id: str) -> tuple[Source, WebRTCConnectionMixin] | None:
        source = self._admitted.get(connection_id)
        if source is None:
            return None
        return source, self._owner_of(source)

    def _owner_of(self, source: Source) -> WebRTCConnectionMixin:
        return self._owners.get(source, self._stream)

    def _info(self, connection_id: str, source: Source) -> ConnectionInfo:
        """The connection as listed: its peer's state, "new" while its offer is answered."""
        state: ConnectionState = "new"
        if source is Source.WEBSOCKET:
            if self._stream.connections.get(connection_id):
                state = "connected"
        else:
            pc = self._owner_of(source).pcs.get(connection_id)
            if pc is not None:
                state = _state(pc)
        return ConnectionInfo(id=connection_id, source=source, state=state)

    def _locate(self, connection_id: str) -> tuple[Source, WebRTCConnectionMixin]:
        found = self._find(connection_id)
        if found is None:
            raise UnknownConnectionError(connection_id)
        return found

    def _outputs_of(self, connection_id: str) -> _Outputs:
        outputs = self._outputs.get(connection_id)
        if outputs is None:
            outputs = self._outputs[connection_id] = _Outputs(self._output_buffer)
        return outputs

    async def _drain(
        self, connection_id: str, queue: asyncio.Queue[AdditionalOutputs | None]
    ) -> AsyncIterator[AdditionalOutputs]:
        try:
            while (item := await queue.get()) is not None:
                yield item
        finally:
            outputs = self._outputs.get(connection_id)
            if outputs is not None:
                outputs.subscribers.discard(queue)

    def _admission_problem(self, connection_id: object) -> dict[str, Any] | None:
        """Why no connection may be admitted with this id now (fastrtc's terms), whatever
        the door: its id, the one id space, the one limit."""
        if not isinstance(connection_id, str) or not CONNECTION_ID.fullmatch(connection_id):
            shown = repr(connection_id)[:80]
            return {"error": "invalid_connection_id", "detail": f"invalid connection id: {shown}"}
        if connection_id in self._admitted or any(
            connection_id in owner.pcs or connection_id in owner.connections
            for owner in self._owners.values()
        ):
            return {"error": "connection_already_exists"}
        if len(self._admitted) >= self.concurrency_limit:
            return {"error": "concurrency_limit_reached", "limit": self.concurrency_limit}
        return None

    def _offer_problem(self, body: dict[str, Any]) -> dict[str, Any] | None:
        """Why an SDP offer must be refused before aiortc reads it."""
        sdp = body.get("sdp")
        if body.get("type") != "offer" or not isinstance(sdp, str) or "\nm=" not in sdp:
            detail = "an offer needs type 'offer' and an SDP with at least one media section"
            return {"error": "invalid_offer", "detail": detail}
        if len(sdp) > MAX_SDP_BYTES or sdp.count("\nm=") > MAX_MEDIA_SECTIONS:
            detail = (
                f"an offer is at most {MAX_SDP_BYTES} bytes with at most "
                f"{MAX_MEDIA_SECTIONS} media sections"
            )
            return {"error": "invalid_offer", "detail": detail}
        if self._stream.mode == "receive" and f"\nm={self._stream.modality} " not in sdp:
            # fastrtc adds its track before reading the offer; aiortc fails to answer it then.
            detail = f"this app sends {self._stream.modality}: the offer must ask for it"
            return {"error": "invalid_offer", "detail": detail}
        return None

    def _reserve(self, body: dict[str, Any], source: Source) -> dict[str, Any] | None:
        """Admit an offer's id through ``source``'s door, or say why not.

        Checking and reserving happen with no ``await`` between them, so offers racing
        through any doors can never pass the limit or share an id.
        """
        connection_id = body.get("webrtc_id")
        refusal = self._admission_problem(connection_id)
        if refusal is None and source is not Source.WEBSOCKET:
            refusal = self._offer_problem(body)
        if refusal is None:
            self._admitted[cast(str, connection_id)] = source
        return refusal

    async def _claim(self, connection_id: str) -> dict[str, Any] | None:
        """Claim a reserved id cluster-wide, or say why not (the reservation is withdrawn)."""
        if self.remote is None or await self.remote.claim(connection_id):
            return None
        self._admitted.pop(connection_id, None)
        return {"error": "connection_already_exists"}

    async def _withdraw(self, owner: WebRTCConnectionMixin, connection_id: str) -> None:
        """Undo an admission whose offer was refused or failed: its peer, its slot, its claim."""
        await _discard(owner, connection_id)
        self._admitted.pop(connection_id, None)
        if self.remote is not None:
            self.remote.release(connection_id)

    async def _admit_websocket(self, connection_id: str) -> dict[str, Any] | None:
        """Admit a websocket's ``start``, or say why not."""
        refusal = self._reserve({"webrtc_id": connection_id}, Source.WEBSOCKET)
        if refusal is None:
            refusal = await self._claim(connection_id)
        if refusal is None:
            self._opened_by(Source.WEBSOCKET, connection_id, None)
        return refusal

    async def _connection_timeout(
        self,
        owner: WebRTCConnectionMixin,
        pc: RTCPeerConnection,
        connection_id: str,
        time_limit: float,
    ) -> None:
        """fastrtc's wait for a new peer to connect, bounded by the peer timeout.

        fastrtc gives every peer a fixed 30 s to connect, so offers that never connect held
        their slots that long.
        """
        limit = self._peer_timeout if self._peer_timeout is not None else time_limit
        await WebRTCConnectionMixin.connection_timeout(owner, pc, connection_id, limit)

    async def _ui_outputs(self, connection_id: object) -> AsyncIterator[AdditionalOutputs]:
        """What the UI's output listener reads: the connection's outputs until it closes.

        Gradio's queue API lets anyone start that listener, with any id; fastrtc's own
        ``output_stream`` then polls forever for an id that is no live connection (and holds
        one of the listener's slots, starving real pages). Here it ends at once.
        """
        if not isinstance(connection_id, str) or connection_id not in self:
            return
        latest = self._outputs_of(connection_id).latest
        subscription = self.subscribe(connection_id)
        if latest is not None:  # the page listens once the first output is out
            yield latest
        async for outputs in subscription:
            yield outputs

    def _opened_by(
        self, source: Source, connection_id: str, owner: WebRTCConnectionMixin | None
    ) -> None:
        """Record and log a connection just taken (by ``owner``; none for a websocket)."""
        if connection_id in self._opened:
            return
        self._opened[connection_id] = (source, time.monotonic())
        self.connections_total[source] += 1
        if owner is not None:
            self._answer_input_requests(connection_id, owner.handlers.get(connection_id))
            _start_media(connection_id, owner.connections.get(connection_id, []))
        if self.listener is not None:
            self.listener.changed()
        logger.info(
            "connection opened",
            extra={"event": "connect", "connection_id": connection_id, "source": source.value},
        )

    def _answer_input_requests(self, connection_id: str, handler: object) -> None:
        """Answer the handler's requests for inputs with the current ones.

        fastrtc's handlers ask the client for its inputs over the data channel and wait for
        them (``ReplyOnPause`` at every pause). The Gradio UI answers, and its answer still
        arrives; an API client need not, and the handler goes on with the inputs last set,
        through the UI or the API.
        """
        if not isinstance(handler, StreamHandlerBase):
            return
        ask_client = cast(Callable[[], Awaitable[None]], handler.fetch_args)

        async def fetch_args() -> None:
            await ask_client()
            inputs = self._inputs.get(connection_id, [])
            handler.set_args([connection_id, *inputs])

        handler.fetch_args = fetch_args  # type: ignore[method-assign]

    def _count_errors(self, handler: Handler) -> None:
        """Count what each connection's handler raises.

        fastrtc gives every connection a ``copy()`` of the stream's handler and wraps its
        methods to print what they raise and stop the connection's media; this wraps them
        first, on the copy, so that every path (API, UI) is counted and logged.
        """
        copy = handler.copy

        def counted_copy() -> Handler:
            new = copy()
            for name in HANDLER_METHODS:
                method = getattr(new, name, None)
                if callable(method):
                    setattr(new, name, self._counted(name, method))
            return new

        handler.copy = counted_copy  # type: ignore[method-assign,assignment]

    def _counted(self, name: str, method: Callable[..., Any]) -> Callable[..., Any]:
        # fastrtc tells coroutine functions from plain ones: the wrapper must stay the same kind.
        if inspect.iscoroutinefunction(method):

            @functools.wraps(method)
            async def counted_coroutine(*args: Any, **kwargs: Any) -> Any:
                try:
                    return await method(*args, **kwargs)
                except Exception as exc:
                    self._handler_raised(name, exc)
                    raise

            return counted_coroutine

        @functools.wraps(method)
        def counted(*args: Any, **kwargs: Any) -> Any:
            try:
                return method(*args, **kwargs)
            except Exception as exc:
                self._handler_raised(name, exc)
                raise

        return counted

    def _handler_raised(self, method: str, exc: Exception) -> None:
        with self._handler_errors_lock:
            self._handler_errors += 1
        context = current_context.get()
        logger.error(
            "handler %s raised %s: %s",
            method,
            type(exc).__name__,
            exc,
            extra={
                "event": "handler_error",
                "connection_id": context.webrtc_id if context else None,
                "method": method,
            },
        )

    def _install(self, source: Source, owner: WebRTCConnectionMixin) -> None:
        """Wrap the fastrtc methods through which connections come, take input, emit and go."""
        handle_offer = cast(
            Callable[[dict[str, Any], OutputsCallback], Awaitable[Any]], owner.handle_offer
        )
        set_input = owner.set_input
        clean_up = owner.clean_up

        async def admitted_offer(body: dict[str, Any], set_outputs: OutputsCallback) -> Any:
            # Offers are admitted against both owners at once; ICE candidates pass through,
            # to the replica whose connection they are if it is not this one.
            if body.get("type") == "ice-candidate":
                if self.remote is not None and self._find(str(body.get("webrtc_id"))) is None:
                    return await self.remote.forward_candidate(body)
                return await handle_offer(body, set_outputs)
            refusal = self._reserve(body, source)
            if refusal is None:
                connection_id: str = body["webrtc_id"]
                refusal = await self._claim(connection_id)
                if refusal is None:
                    reply, refusal = await _answer(handle_offer, body, set_outputs)
                    if refusal is None and connection_id in self._admitted:
                        self._opened_by(source, connection_id, owner)
                        return reply
                    refusal = refusal or {"error": "connection_closed"}  # closed meanwhile
                    await self._withdraw(owner, connection_id)
            shown = repr(body.get("webrtc_id"))[:80]
            logger.warning("offer %s refused: %s", shown, refusal["error"])
            return JSONResponse({"status": "failed", "meta": refusal})

        def fanned_out_outputs(connection_id: str) -> OutputsCallback:
            def publish(outputs: AdditionalOutputs) -> None:
                if connection_id in self:
                    self._outputs_of(connection_id).publish(outputs)
                    if self.listener is not None:
                        self.listener.output(connection_id, outputs)

            return publish

        def recorded_input(connection_id: str, *args: Any) -> None:
            # The UI's controls and the API's input route both come here: the last one wins.
            set_input(connection_id, *args)
            tracks = owner.connections.get(connection_id)
            if tracks:
                changed = self._inputs.get(connection_id) != list(args[1:])
                self._inputs[connection_id] = list(args[1:])
                if changed:
                    _restart_generators(tracks)

        def cleaned_up(connection_id: str) -> Any:
            tracks = clean_up(connection_id)
            for track in tracks:
                _stop_workers(track)
            _stop_frame_loops(tracks)
            _stop_channel_waiter(connection_id)
            admitted = self._admitted.get(connection_id)
            if admitted is None or self._owner_of(admitted) is not owner:
                return tracks  # not this owner's connection, or gone already
            del self._admitted[connection_id]
            opened = self._opened.pop(connection_id, None)
            self._inputs.pop(connection_id, None)
            if opened is not None:
                logger.info(
                    "connection closed",
                    extra={
                        "event": "disconnect",
                        "connection_id": connection_id,
                        "source": opened[0].value,
                        "duration_s": round(time.monotonic() - opened[1], 3),
                    },
                )
            outputs = self._outputs.pop(connection_id, None)
            if outputs is not None:
                outputs.end()
            if opened is not None and self.listener is not None:
                self.listener.closed(connection_id)
                self.listener.changed()
            return tracks

        # Instance attributes shadow the methods for this stream only; fastrtc calls them
        # through ``self``, so every path (HTTP, UI, websocket) goes through these wrappers.
        owner.handle_offer = admitted_offer  # type: ignore[method-assign]
        owner.set_additional_outputs = fanned_out_outputs  # type: ignore[method-assign,assignment]
        owner.set_input = recorded_input  # type: ignore[method-assign,assignment]
        owner.clean_up = cleaned_up  # type: ignore[method-assign,assignment]
        owner.connection_timeout = functools.partial(  # type: ignore[method-assign]
            self._connection_timeout, owner
        )
        if source is Source.UI:
            owner.output_stream = self._ui_outputs  # type: ignore[method-assign,assignment]


HANDLER_METHODS = ("receive", "emit", "start_up", "shutdown", "video_receive", "video_emit")
"""The methods of a handler that fastrtc calls, and whose exceptions are counted."""

CONSENT_CHECKS = 3
"""Consent checks a peer may miss in a row before it is dropped."""


def set_peer_timeout(seconds: float) -> None:
    """Drop a peer about ``seconds`` after it stops answering (process-wide).

    aioice, under aiortc, checks every peer's consent (RFC 7675) every 5 s and gives up after
    6 misses, so a browser that vanishes holds its slot for ~30 s. This spreads
    ``CONSENT_CHECKS`` checks over ``seconds`` instead; each miss also waits out one STUN
    timeout (0.5 s), so the bound is about ``seconds + 1.5``.
    """
    if not math.isfinite(seconds) or seconds <= 0:
        raise ValueError(f"peer timeout must be a positive number of seconds, got {seconds}")
    aioice.ice.CONSENT_FAILURES = CONSENT_CHECKS
    aioice.ice.CONSENT_INTERVAL = seconds / CONSENT_CHECKS  # type: ignore[assignment]


async def _answer(
    handle_offer: Callable[[dict[str, Any], OutputsCallback], Awaitable[Any]],
    body: dict[str, Any],
    set_outputs: OutputsCallback,
) -> tuple[Any, dict[str, Any] | None]:
    """fastrtc's answer to an admitted offer, or why it failed (fastrtc's terms)."""
    try:
        reply = await handle_offer(body, set_outputs)
    except Exception as exc:  # aiortc could not apply the SDP
        return None, {"error": "invalid_offer", "detail": f"the offer was not applied: {exc}"}
    if isinstance(reply, JSONResponse):
        content = json.loads(bytes(reply.body))
        if content.get("status") == "failed":
            return None, {"error": "failed", **(content.get("meta") or {})}
    return reply, None


async def _tell_page_closed(owner: WebRTCConnectionMixin, connection_id: str) -> None:
    """Tell a UI page that the server closes its connection, before closing it.

    fastrtc's frontend stops its stream when it reads this message; without it, a page
    shows its connection as live until its own consent checks fail, seconds later.
    """
    channel = owner.data_channels.get(connection_id)
    if channel is None or channel.readyState != "open":
        return
    channel.send(create_message("update_connection", "closed"))
    await asyncio.sleep(CLOSE_NOTICE_S)  # for the transport to send it before the peer closes


async def _discard(owner: WebRTCConnectionMixin, connection_id: str) -> None:
    """Close the connection's peer and release everything ``owner`` holds for it."""
    pc = owner.pcs.get(connection_id)
    if pc is not None:
        await pc.close()
    # What fastrtc does when it sees the peer closed; done here so the connection is gone
    # at once (fastrtc's own callback runs later and finds nothing left).
    for track in owner.clean_up(connection_id):
        track.stop()


_WORKERS = ("decode_task", "process_input_task", "start_up_task")
"""The tasks fastrtc runs for a track's handler (``AudioCallback.start``)."""


def _stop_workers(track: object) -> None:
    """Cancel the tasks that run a closed connection's handler.

    fastrtc's ``stop`` only sets a flag, which its output loop reads between two frames; a
    handler whose ``emit`` waits for audio that will never come keeps that loop waiting for
    fastrtc's 60 s frame timeout, and with it the handler, the track, the data channel and
    through them the whole peer connection. Every connection closed in the last minute was
    still in memory (about 200 KiB each).

    A task that ended with the handler's exception is marked as seen: the layer has counted
    and logged it, and asyncio would otherwise log it again, whenever the task is collected.
    """
    for name in _WORKERS:
        task = getattr(track, name, None)
        if not isinstance(task, asyncio.Task):
            continue
        if not task.done():
            task.cancel()
        elif not task.cancelled():
            task.exception()


def _stop_frame_loops(tracks: Sequence[Any]) -> None:
    """Cancel the loop that pulls a closed send-only video connection's frames.

    In send mode fastrtc runs ``VideoCallback.process_frames`` as a task it keeps no handle
    on; once the peer is gone, that loop waits for a frame forever, holding the track and
    through it the peer connection.
    """
    if tracks:
        _cancel_tasks("process_frames", lambda local: any(local.get("self") is t for t in tracks))


def _stop_channel_waiter(connection_id: str) -> None:
    """Cancel fastrtc's wait to hand the connection's data channel to its media track.

    fastrtc starts that task when the data channel opens and polls every 50 ms until the
    connection has a track; when the connection closes before its media starts (or offers no
    media at all), it never gets one, and the task polls forever, keeping the channel and
    the whole peer connection alive.
    """
    _cancel_tasks(
        "set_channel",
        lambda local: local.get("webrtc_id") == connection_id,
        filename=_FASTRTC_MIXIN,
    )


def _cancel_tasks(
    function: str, matches: Callable[[dict[str, Any]], bool], filename: str | None = None
) -> None:
    """Cancel the running tasks of fastrtc's coroutine ``function`` whose locals ``matches``.

    fastrtc starts these tasks without keeping a handle on them: finding them is the only way.
    """
    try:
        tasks = asyncio.all_tasks()
    except RuntimeError:  # no event loop running, so no task either
        return
    for task in tasks:
        coroutine = task.get_coro()
        if (
            inspect.iscoroutine(coroutine)
            and coroutine.cr_code.co_name == function
            and (filename is None or coroutine.cr_code.co_filename == filename)
            and coroutine.cr_frame is not None
            and matches(coroutine.cr_frame.f_locals)
        ):
            task.cancel()


_FASTRTC_MIXIN = inspect.getfile(WebRTCConnectionMixin)


GENERATED = (ServerToClientAudio, ServerToClientVideo)
"""fastrtc's tracks of receive mode, which play what the handler (a generator) yields."""


def _start_media(connection_id: str, tracks: Sequence[Any]) -> None:
    """Give a new connection's tracks what fastrtc makes them wait for.

    fastrtc's receive-mode tracks make nothing until inputs are set (and in the audio one a
    worker thread blocks on them meanwhile); its video tracks pass images through untouched
    until then. Inputs are set here (none: the handler's defaults) unless some already were.
    A video handler with a ``copy`` method gets its own copy, as stream handlers do.
    """
    for track in tracks:
        if isinstance(track, VideoCallback) and not isinstance(track, VideoStreamHandler_):
            track.event_handler = _own_copy(track.event_handler)
        if isinstance(track, (*GENERATED, VideoCallback)) and track.latest_args == "not_set":
            track.set_args([connection_id])


def _own_copy(handler: Callable[..., Any]) -> Callable[..., Any]:
    """A copy of the handler fastrtc wrapped (in its error handler), wrapped the same way."""
    original = getattr(handler, "__wrapped__", handler)
    copy = getattr(original, "copy", None)
    if copy is None:
        return handler
    return cast(Callable[..., Any], webrtc_error_handler(copy()))


def _restart_generators(tracks: Sequence[Any]) -> None:
    """Start a receive-mode generator again, with the inputs just set.

    fastrtc calls it once, with the inputs in force when the first frame is due, and keeps
    drawing from it: later inputs would never reach it. A new generator runs no code until
    its first frame is drawn, so swapping it is safe while the old one is being drawn from.
    """
    for track in tracks:
        if isinstance(track, GENERATED) and track.generator is not None:
            track.generator = track.event_handler(*track.latest_args[1:])


def _state(pc: RTCPeerConnection) -> ConnectionState:
    return cast(ConnectionState, pc.connectionState)


class _Start(BaseModel):
    event: Literal["start"]
    websocket_id: str


class _Payload(BaseModel):
    payload: str

    @field_validator("payload")
    @classmethod
    def _is_base64(cls, value: str) -> str:
        try:
            base64.b64decode(value, validate=True)
        except binascii.Error as exc:
            raise ValueError(f"the payload is not base64: {exc}") from None
        return value


class _Media(BaseModel):
    event: Literal["media"]
    media: _Payload


class _Control(BaseModel):
    event: Literal["stop", "ping"]


_WEBSOCKET_MESSAGE: TypeAdapter[_Start | _Media | _Control] = TypeAdapter(
    Annotated[_Start | _Media | _Control, Field(discriminator="event")]
)
"""The messages fastrtc's websocket door reads (other fields are ignored, as fastrtc does)."""

_POLICY_VIOLATION = 1008
_INVALID_DATA = 1007
_UNSUPPORTED_DATA = 1003


class _WebSocketDoor:
    """fastrtc's websocket door (``Stream.websocket_offer``), with every message checked first.

    fastrtc takes any id in a ``start`` message, several ``start`` messages on one socket
    (freeing only the last id when it closes), and fails on messages it cannot read. Here a
    ``start`` goes through the layer's admission, a socket carries one connection, and a
    message fastrtc cannot read closes the socket with a reason instead.
    """

    def __init__(self, service: StreamService) -> None:
        self._service = service

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        started = False

        async def refuse(code: int, reason: str, meta: dict[str, Any] | None = None) -> Message:
            if meta is not None:  # fastrtc's own refusal message, then the close
                body = json.dumps({"status": "failed", "meta": meta})
                await send({"type": "websocket.send", "text": body})
            await send({"type": "websocket.close", "code": code, "reason": reason[:120]})
            return {"type": "websocket.disconnect", "code": code}

        async def checked() -> Message:
            nonlocal started
            message = await receive()
            if message["type"] != "websocket.receive":
                return message
            text = message.get("text")
            if text is None:
                return await refuse(_UNSUPPORTED_DATA, "messages are JSON text")
            try:
                parsed = _WEBSOCKET_MESSAGE.validate_json(text)
            except ValidationError as exc:
                problem = exc.errors()[0]
                where = ".".join(map(str, problem["loc"]))
                return await refuse(_INVALID_DATA, f"bad message: {where}: {problem['msg']}")
            if isinstance(parsed, _Start):
                if started:
                    return await refuse(_POLICY_VIOLATION, "one connection per socket")
                refusal = await self._service._admit_websocket(parsed.websocket_id)
                if refusal is not None:
                    return await refuse(_POLICY_VIOLATION, refusal["error"], refusal)
                started = True
            elif isinstance(parsed, _Media) and not started:
                return await refuse(_POLICY_VIOLATION, "'start' must come before 'media'")
            return message

        await self._service._stream.websocket_offer(WebSocket(scope, checked, send))
