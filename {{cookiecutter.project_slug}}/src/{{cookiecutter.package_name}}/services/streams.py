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
- nothing of a closed connection keeps running (fastrtc left its handler's tasks waiting);
- what the handlers raise is counted (``handler_errors``): fastrtc only prints it.

Inputs reach a handler in the shape the Gradio UI gives them, whatever the path:
``handler.latest_args == ["__webrtc_value__", connection_id, *inputs]``; see ``handler_inputs``.
"""

from __future__ import annotations

import asyncio
import functools
import inspect
import json
import logging
import math
import re
import threading
import time
from collections import Counter, defaultdict
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any, Literal, Protocol, cast

import aioice.ice
from aiortc import RTCPeerConnection
from fastapi.responses import JSONResponse
from fastrtc import AdditionalOutputs, AsyncStreamHandler, ReplyOnPause, Stream, StreamHandler
from fastrtc.tracks import (
    ServerToClientAudio,
    ServerToClientVideo,
    StreamHandlerBase,
    VideoCallback,
    VideoStreamHandler_,
)
from fastrtc.utils import current_context, webrtc_error_handler
from fastrtc.webrtc_connection_mixin import WebRTCConnectionMixin
from fastrtc.websocket import WebSocketHandler
from pydantic import BaseModel, ConfigDict

logger = logging.getLogger(__name__)

OutputsCallback = Callable[[AdditionalOutputs], None]
Handler = StreamHandler | AsyncStreamHandler
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

    async def is_taken(self, connection_id: str) -> bool:
        """Whether another replica has a connection with this id."""

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


class _Connections(defaultdict[str, list[Any]]):
    """fastrtc's ``Stream.connections``, which also knows its websocket ids.

    fastrtc records a websocket connection only here (as ``[WebSocketHandler]``), mixed with
    the tracks of every WebRTC connection. Finding or counting the websocket ones by scanning
    would make every lookup of an unknown id cost O(number of connections); this keeps them
    apart (in the order they came) as entries come and go.
    """

    def __init__(self, entries: dict[str, list[Any]]) -> None:
        super().__init__(list, entries)
        self.websocket_ids: dict[str, None] = {
            key: None for key, tracks in entries.items() if _is_websocket(tracks)
        }

    def __setitem__(self, key: str, tracks: list[Any]) -> None:
        super().__setitem__(key, tracks)
        if _is_websocket(tracks):
            self.websocket_ids[key] = None
        else:
            self.websocket_ids.pop(key, None)

    def __delitem__(self, key: str) -> None:
        super().__delitem__(key)
        self.websocket_ids.pop(key, None)

    def pop(self, key: str, *default: Any) -> Any:
        self.websocket_ids.pop(key, None)
        return super().pop(key, *default)

    def popitem(self) -> tuple[str, list[Any]]:
        key, tracks = super().popitem()
        self.websocket_ids.pop(key, None)
        return key, tracks

    def clear(self) -> None:
        super().clear()
        self.websocket_ids.clear()


def _is_websocket(tracks: list[Any]) -> bool:
    return bool(tracks) and isinstance(tracks[0], WebSocketHandler)


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
        # Every lookup and count is O(1) in the number of connections: websocket ids are
        # kept apart as fastrtc records them, never found by scanning.
        self._websockets = _Connections(stream.connections)
        stream.connections = self._websockets
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
        """Every connection, API and UI, in the order they were offered."""
        found: list[ConnectionInfo] = []
        for source, owner in self._owners.items():
            for connection_id, pc in list(owner.pcs.items()):
                found.append(ConnectionInfo(id=connection_id, source=source, state=_state(pc)))
        for connection_id in list(self._websockets.websocket_ids):
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
            for name in ("pcs", "connections", "handlers", "data_channels", "additional_outputs"):
                sizes[f"{source.value}.{name}"] = len(getattr(owner, name))
        sizes["service.outputs"] = len(self._outputs)
        sizes["service.opened"] = len(self._opened)
        sizes["service.inputs"] = len(self._inputs)
        return sizes

    def __len__(self) -> int:
        return sum(len(owner.pcs) for owner in self._owners.values()) + len(
            self._websockets.websocket_ids
        )

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
        if connection_id in self._websockets.websocket_ids:
            return Source.WEBSOCKET, self._stream
        return None

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
        set_additional_outputs = owner.set_additional_outputs
        set_input = owner.set_input
        clean_up = owner.clean_up

        async def admitted_offer(body: dict[str, Any], set_outputs: OutputsCallback) -> Any:
            # Offers are admitted against both owners at once; ICE candidates pass through,
            # to the replica whose connection they are if it is not this one.
            if body.get("type") == "ice-candidate":
                if self.remote is not None and self._find(str(body.get("webrtc_id"))) is None:
                    return await self.remote.forward_candidate(body)
                return await handle_offer(body, set_outputs)
            refusal = self._refusal(body)
            remote = self.remote
            if refusal is None and remote is not None and await remote.is_taken(body["webrtc_id"]):
                refusal = {"error": "connection_already_exists"}
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
                    if self.listener is not None:
                        self.listener.output(connection_id, outputs)
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
            for track in tracks:
                _stop_workers(track)
            _stop_frame_loops(tracks)
            _stop_channel_waiter(connection_id)
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
