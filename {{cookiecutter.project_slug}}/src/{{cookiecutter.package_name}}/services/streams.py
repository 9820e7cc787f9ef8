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
- one concurrency limit and one id space for both (fastrtc counts each object on its own, so
  twice the limit got in, and the same id could be accepted by both);
- the UI component uses the Stream's server-side ICE/TURN configuration (fastrtc builds it
  without one);
- additional outputs reach every subscriber, and a subscription ends when its connection does
  (fastrtc's ``output_stream`` on a dead id never ends);
- ``close`` really closes the peer (fastrtc's ``update_connection`` only asks the browser to);
- a peer that stops answering is dropped after ``peer_timeout`` seconds, not aioice's fixed 30;
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

Inputs reach a handler in the shape the Gradio UI gives them, whatever the path:
``handler.latest_args == ["__webrtc_value__", connection_id, *inputs]``; see ``handler_inputs``.
"""

from __future__ import annotations

import asyncio
import json
import logging
import math
import re
import time
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any, Literal, cast

import aioice.ice
from aiortc import RTCPeerConnection
from fastapi.responses import JSONResponse
from fastrtc import AdditionalOutputs, ReplyOnPause, Stream
from fastrtc.tracks import (
    ServerToClientAudio,
    ServerToClientVideo,
    StreamHandlerBase,
    VideoCallback,
    VideoStreamHandler_,
)
from fastrtc.utils import webrtc_error_handler
from fastrtc.webrtc_connection_mixin import WebRTCConnectionMixin
from fastrtc.websocket import WebSocketHandler
from pydantic import BaseModel, ConfigDict

logger = logging.getLogger(__name__)

OutputsCallback = Callable[[AdditionalOutputs], None]
ConnectionState = Literal["new", "connecting", "connected", "closed", "failed"]

CONNECTION_ID_PATTERN = r"^[A-Za-z0-9_-]{1,64}$"
CONNECTION_ID = re.compile(CONNECTION_ID_PATTERN)
"""What a connection id may be: 1-64 letters, digits, '-' or '_' (the Gradio UI's ids are
base-36 strings; the app's own client makes 22-character random ones)."""


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
        # fastrtc builds the UI component without the Stream's server-side ICE configuration.
        stream.webrtc_component.server_rtc_configuration = stream.server_rtc_configuration
        stream.webrtc_component.allow_extra_tracks = stream.allow_extra_tracks
        for source, owner in self._owners.items():
            self._install(source, owner)

    @property
    def concurrency_limit(self) -> int:
        return cast(int, self._stream.concurrency_limit)

    # -- reading ---------------------------------------------------------------------------

    def list_connections(self) -> list[ConnectionInfo]:
        """Every connection, API and UI, in the order they were offered."""
        found: list[ConnectionInfo] = []
        for source, owner in self._owners.items():
            for connection_id, pc in list(owner.pcs.items()):
                found.append(ConnectionInfo(id=connection_id, source=source, state=_state(pc)))
        for connection_id in self._websocket_ids():
            found.append(
                ConnectionInfo(id=connection_id, source=Source.WEBSOCKET, state="connected")
            )
        return found

    def get(self, connection_id: str) -> ConnectionInfo:
        """One connection; ``UnknownConnectionError`` if no live connection has this id."""
        source, owner = self._locate(connection_id)
        if source is Source.WEBSOCKET:
            return ConnectionInfo(id=connection_id, source=source, state="connected")
        return ConnectionInfo(
            id=connection_id, source=source, state=_state(owner.pcs[connection_id])
        )

    def __contains__(self, connection_id: object) -> bool:
        return isinstance(connection_id, str) and self._find(connection_id) is not None

    def registry_sizes(self) -> dict[str, int]:
        """The size of each of fastrtc's per-connection registries, and of this service's own.

        A diagnostic: with no connection live, every one is 0 (anything else is a leak).
        """
        sizes: dict[str, int] = {}
        for source, owner in self._owners.items():
            for name in ("pcs", "connections", "handlers", "additional_outputs"):
                sizes[f"{source.value}.{name}"] = len(getattr(owner, name))
        sizes["service.outputs"] = len(self._outputs)
        sizes["service.opened"] = len(self._opened)
        sizes["service.inputs"] = len(self._inputs)
        return sizes

    def __len__(self) -> int:
        return sum(len(owner.pcs) for owner in self._owners.values()) + len(self._websocket_ids())

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
        """Close the connection's peer and release everything fastrtc holds for it."""
        source, owner = self._locate(connection_id)
        if source is Source.WEBSOCKET:
            handler = cast(WebSocketHandler, owner.connections[connection_id][0])
            if handler.websocket is not None:
                await handler.websocket.close()
            owner.clean_up(connection_id)
            return
        await _discard(owner, connection_id)

    async def close_all(self) -> None:
        """Close every connection, e.g. when the app shuts down."""
        for info in self.list_connections():
            if info.id in self:
                await self.close(info.id)

    # -- internals -----------------------------------------------------------------------

    def _find(self, connection_id: str) -> tuple[Source, WebRTCConnectionMixin] | None:
        for source, owner in self._owners.items():
            if connection_id in owner.pcs:
                return source, owner
        if connection_id in self._websocket_ids():
            return Source.WEBSOCKET, self._stream
        return None

    def _locate(self, connection_id: str) -> tuple[Source, WebRTCConnectionMixin]:
        found = self._find(connection_id)
        if found is None:
            raise UnknownConnectionError(connection_id)
        return found

    def _websocket_ids(self) -> list[str]:
        # Websocket connections are recorded only in Stream.connections, never in pcs.
        return [
            connection_id
            for connection_id, tracks in list(self._stream.connections.items())
            if tracks and isinstance(tracks[0], WebSocketHandler)
        ]

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

    def _refusal(self, body: dict[str, Any]) -> dict[str, Any] | None:
        """Why an offer must be refused, in fastrtc's own terms."""
        connection_id, sdp = body.get("webrtc_id"), body.get("sdp")
        if not isinstance(connection_id, str) or not CONNECTION_ID.fullmatch(connection_id):
            return {
                "error": "invalid_connection_id",
                "detail": f"invalid connection id: {connection_id!r}",
            }
        if self._find(connection_id) is not None or any(
            connection_id in owner.connections for owner in self._owners.values()
        ):
            return {"error": "connection_already_exists"}
        if len(self) >= self.concurrency_limit:
            return {"error": "concurrency_limit_reached", "limit": self.concurrency_limit}
        if body.get("type") != "offer" or not isinstance(sdp, str) or "\nm=" not in sdp:
            detail = "an offer needs type 'offer' and an SDP with at least one media section"
            return {"error": "invalid_offer", "detail": detail}
        if self._stream.mode == "receive" and f"\nm={self._stream.modality} " not in sdp:
            # fastrtc adds its track before reading the offer; aiortc fails to answer it then.
            detail = f"this app sends {self._stream.modality}: the offer must ask for it"
            return {"error": "invalid_offer", "detail": detail}
        return None

    def _opened_by(self, source: Source, connection_id: str, owner: WebRTCConnectionMixin) -> None:
        """Record and log a connection that ``owner`` has just taken."""
        if connection_id not in owner.pcs or connection_id in self._opened:
            return
        self._opened[connection_id] = (source, time.monotonic())
        self.connections_total[source] += 1
        self._answer_input_requests(connection_id, owner.handlers.get(connection_id))
        _start_media(connection_id, owner.connections.get(connection_id, []))
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

    def _install(self, source: Source, owner: WebRTCConnectionMixin) -> None:
        """Wrap the fastrtc methods through which connections come, take input, emit and go."""
        handle_offer = cast(
            Callable[[dict[str, Any], OutputsCallback], Awaitable[Any]], owner.handle_offer
        )
        set_additional_outputs = owner.set_additional_outputs
        set_input = owner.set_input
        clean_up = owner.clean_up

        async def admitted_offer(body: dict[str, Any], set_outputs: OutputsCallback) -> Any:
            # Offers are admitted against both owners at once; ICE candidates pass through.
            if body.get("type") == "ice-candidate":
                return await handle_offer(body, set_outputs)
            refusal = self._refusal(body)
            if refusal is None:
                try:
                    reply = await handle_offer(body, set_outputs)
                except Exception as exc:  # aiortc could not apply the SDP: free what it took
                    await _discard(owner, body["webrtc_id"])
                    refusal = {
                        "error": "invalid_offer",
                        "detail": f"the offer was not applied: {exc}",
                    }
                else:
                    self._opened_by(source, body["webrtc_id"], owner)
                    return reply
            logger.warning("offer %r refused: %s", body.get("webrtc_id"), refusal["error"])
            return JSONResponse({"status": "failed", "meta": refusal})

        def fanned_out_outputs(connection_id: str) -> OutputsCallback:
            # Gradio's own output listener reads the UI component's queue, so the UI keeps it.
            forward = set_additional_outputs(connection_id) if source is Source.UI else None

            def publish(outputs: AdditionalOutputs) -> None:
                if connection_id in self:
                    self._outputs_of(connection_id).publish(outputs)
                if forward is not None:
                    forward(outputs)

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
            return tracks

        # Instance attributes shadow the methods for this stream only; fastrtc calls them
        # through ``self``, so every path (HTTP, UI, websocket) goes through these wrappers.
        owner.handle_offer = admitted_offer  # type: ignore[method-assign]
        owner.set_additional_outputs = fanned_out_outputs  # type: ignore[method-assign,assignment]
        owner.set_input = recorded_input  # type: ignore[method-assign,assignment]
        owner.clean_up = cleaned_up  # type: ignore[method-assign,assignment]


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


async def _discard(owner: WebRTCConnectionMixin, connection_id: str) -> None:
    """Close the connection's peer and release everything ``owner`` holds for it."""
    pc = owner.pcs.get(connection_id)
    if pc is not None:
        await pc.close()
    # What fastrtc does when it sees the peer closed; done here so the connection is gone
    # at once (fastrtc's own callback runs later and finds nothing left).
    for track in owner.clean_up(connection_id):
        track.stop()


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
