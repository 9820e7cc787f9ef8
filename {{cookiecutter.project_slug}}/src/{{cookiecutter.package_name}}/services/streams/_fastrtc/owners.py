"""``FastrtcStream``: a ``Stream`` and its UI component, driven by a ``StreamService``."""

from __future__ import annotations

import functools
import json
import logging
import weakref
from collections.abc import AsyncIterator, Callable, Sequence
from typing import TYPE_CHECKING, Any, Generic, cast

from fastapi import FastAPI
from fastapi.responses import JSONResponse
from fastrtc import AdditionalOutputs, ReplyOnPause, Stream
from fastrtc.tracks import StreamHandlerBase, VideoCallback, VideoStreamHandler_
from fastrtc.webrtc_connection_mixin import WebRTCConnectionMixin
from starlette.routing import WebSocketRoute

from .._websocket import WEBSOCKET_PATH, WebSocketDoor
from ..errors import (
    ConnectionClosedError,
    InvalidOfferError,
    OfferRefusedError,
    ResponseNotSupportedError,
)
from ..interface import SHOWN_ID, ConnectionState, InputT, OutputT, Source
{% if cookiecutter.__modality != "video" and cookiecutter.__mode != "receive" -%}
from .audio_buffer import AUDIO_PACKET_MS, set_audio_buffer
{% endif -%}
from .latency import catch_up_pacing, measure_levels_at_once, offer_delay, replace_offer_delay
from .marks import check_version, control_values, fastrtc_args, workaround
from .peers import (
    FASTRTC_MIXIN,
    GENERATED,
    cancel_tasks,
    close_websocket,
    counted,
    discard,
    give_handlers,
    no_start_up_task_before_start,
    own_copy,
    restart_generators,
    set_peer_timeout,
    stop_workers,
    tell_page_closed,
)
from .replies import barge_in, idle_polling, keep_speech_start

if TYPE_CHECKING:
    from ..service import StreamService

logger = logging.getLogger(__name__)

HANDLER_METHODS = ("receive", "emit", "start_up", "shutdown", "video_receive", "video_emit")
"""The methods of a handler that fastrtc calls, and whose exceptions are counted."""
OutputsCallback = Callable[[AdditionalOutputs], None]
"""fastrtc's callback for a connection's outputs."""
REGISTRIES = ("pcs", "connections", "handlers", "data_channels", "additional_outputs")
"""fastrtc's per-connection registries on each owner."""


_INSTALLED: weakref.WeakSet[Stream] = weakref.WeakSet()
"""Streams the workarounds are installed on."""


class FastrtcStream(Generic[InputT, OutputT]):
    """A ``Stream`` and its UI component, driven by a ``StreamService``."""

    def __init__(self, stream: Stream, layer: StreamService[InputT, OutputT]) -> None:
        self._stream = stream
        self._layer = layer
        self._owners: dict[Source, WebRTCConnectionMixin] = {
            Source.API: stream,
            Source.UI: stream.webrtc_component,
            Source.WEBSOCKET: stream,
        }
        self.install()

    def install(self) -> None:
        """Install every workaround on the stream; a stream takes them once."""
        if self._stream in _INSTALLED:
            raise RuntimeError("the layer's workarounds are installed on this stream already")
        _INSTALLED.add(self._stream)
        check_version()
        if self._layer.peer_timeout is not None:
            set_peer_timeout(self._layer.peer_timeout)
        no_start_up_task_before_start()
        replace_offer_delay()
        measure_levels_at_once()
        self.share_server_configuration()
        self.answer_page_configuration()
        for source in (Source.API, Source.UI):
            owner = self._owners[source]
            owner.handle_offer = functools.partial(self.admitted_offer, source)  # type: ignore[method-assign]
            owner.set_additional_outputs = self.published_outputs  # type: ignore[method-assign,assignment]
            owner.set_input = functools.partial(self.recorded_input, owner)  # type: ignore[method-assign]
            owner.clean_up = functools.partial(self.cleaned_up, source, owner)  # type: ignore[method-assign]
            owner.connection_timeout = functools.partial(self.bounded_connection_timeout, owner)  # type: ignore[method-assign]
        self._owners[Source.UI].output_stream = self.ui_outputs  # type: ignore[method-assign,assignment]
        handlers = {id(owner.event_handler): owner.event_handler for owner in self._owners.values()}
        for handler in handlers.values():
            if isinstance(handler, StreamHandlerBase):
                handler.copy = functools.partial(self.counted_copy, handler.copy)  # type: ignore[method-assign,assignment]

    # -- what the service asks of fastrtc -------------------------------------------------

    async def answer(self, source: Source, body: dict[str, Any]) -> dict[str, Any]:
        """Admit an offer through ``source``'s door and answer it, or raise why not."""
        set_outputs = self.published_outputs(str(body.get("webrtc_id")))
        return await self._admit(source, body, set_outputs)

    async def add_candidate(self, source: Source, body: dict[str, Any]) -> dict[str, Any]:
        owner = self._owners[source]
        return _content(await type(owner).handle_offer(owner, body, _no_outputs))

    def holds(self, connection_id: str) -> bool:
        return any(
            connection_id in owner.pcs or connection_id in owner.connections
            for owner in self._owners.values()
        )

    def ui_component_id(self) -> int:
        blocks = self._stream.ui.blocks.items()
        return next(id_ for id_, block in blocks if block is self._stream.webrtc_component)

    def has_media(self, source: Source, connection_id: str) -> bool:
        return bool(self._owners[source].connections.get(connection_id))

    def state(self, source: Source, connection_id: str) -> ConnectionState:
        owner = self._owners[source]
        if source is Source.WEBSOCKET:
            return "connected" if owner.connections.get(connection_id) else "new"
        pc = owner.pcs.get(connection_id)
        return cast(ConnectionState, pc.connectionState) if pc is not None else "new"

    def registry_sizes(self) -> dict[str, int]:
        return {
            f"{source.value}.{name}": len(getattr(self._owners[source], name))
            for source in (Source.API, Source.UI)
            for name in REGISTRIES
        }

    def hand_input(self, source: Source, connection_id: str, value: InputT) -> None:
        """Give the connection's handler ``value`` (whether it came from the API or the UI)."""
        owner = self._owners[source]
        changed = self._layer.record_input(connection_id, value)
        type(owner).set_input(owner, connection_id, *fastrtc_args(connection_id, value))
        tracks = owner.connections.get(connection_id, [])
        give_handlers(tracks, value)
        if changed:
            restart_generators(tracks, fastrtc_args(connection_id, value))

    def trigger_response(self, source: Source, connection_id: str) -> None:
        handler = self._owners[source].handlers.get(connection_id)
        if not isinstance(handler, ReplyOnPause):
            detail = "the handler does not detect pauses"
            raise ResponseNotSupportedError(connection_id, f"{connection_id!r}: {detail}")
        buffered = handler.state.stream
        if buffered is None or buffered.size == 0:
            detail = "no speech has been received yet"
            raise ResponseNotSupportedError(connection_id, f"{connection_id!r}: {detail}")
        handler.trigger_response()

    async def close(self, source: Source, connection_id: str) -> None:
        owner = self._owners[source]
        if source is Source.WEBSOCKET:
            await close_websocket(owner, connection_id)
            owner.clean_up(connection_id)
            return
        if source is Source.UI:
            await tell_page_closed(owner, connection_id)
        await discard(owner, connection_id)

    def mount_websocket(self, app: FastAPI) -> None:
        """Mount fastrtc's websocket door where it can carry the media: audio stream handlers."""
        if self._stream.modality == "audio" and isinstance(
            self._stream.event_handler, StreamHandlerBase
        ):
            door = WebSocketDoor(self._admit_websocket, self._stream.websocket_offer)
            app.router.routes.append(WebSocketRoute(WEBSOCKET_PATH, door))

    # -- the workarounds installed on fastrtc's owners -------------------------------------

    @workaround(
        "fastrtc builds the UI component without the Stream's server-side ICE configuration",
        "tests/test_streams.py::test_server_ice_configuration_applies_to_both_doors",
    )
    def share_server_configuration(self) -> None:
        component = self._stream.webrtc_component
        component.server_rtc_configuration = self._stream.server_rtc_configuration
        component.allow_extra_tracks = self._stream.allow_extra_tracks

    @workaround(
        "fastrtc's receive-mode page builds its peer from the component's configuration without "
        "waiting for the one it asks for, and the page gets a callable configuration as its repr",
        "tests/test_ice.py::test_a_page_asks_for_a_fresh_configuration_and_starts_from_a_valid_one",
    )
    def answer_page_configuration(self) -> None:
        configure = self._layer.page_configuration
        if configure is None:
            return

        async def configuration() -> dict[str, Any]:
            return configure()

        # the component's own stays a plain configuration, the page's to start from
        self._stream.webrtc_component.resolve_rtc_configuration = configuration  # type: ignore[method-assign]

    @workaround(
        "fastrtc builds every server peer from one ICE configuration fixed at start, whose TURN "
        "credentials would expire, and drops its iceTransportPolicy",
        "tests/test_turn.py::test_with_the_relay_policy_the_server_s_peer_streams_through_coturn_too",
    )
    def configure_server_peer(self, owner: WebRTCConnectionMixin) -> None:
        configure = self._layer.server_configuration
        if configure is not None:  # read by handle_offer before its first await
            owner.server_rtc_configuration = configure()

    @workaround(
        "fastrtc admits offers per owner (twice the limit, one id through two doors) and "
        "answers a bad SDP with 500",
        "tests/test_doors.py::test_racing_offers_through_every_door_never_pass_the_limit_nor_share_an_id",
        "tests/test_streams.py::test_one_concurrency_limit_for_both_doors",
        "tests/test_doors.py::test_an_offer_with_many_media_sections_is_refused_at_once",
    )
    async def admitted_offer(
        self, source: Source, body: dict[str, Any], set_outputs: OutputsCallback
    ) -> Any:
        owner = self._owners[source]
        if body.get("type") == "ice-candidate":
            claims = self._layer.claims
            if claims is not None and str(body.get("webrtc_id")) not in self._layer:
                return JSONResponse(await claims.forward_candidate(body))
            return await type(owner).handle_offer(owner, body, set_outputs)
        try:
            return await self._admit(source, body, set_outputs)
        except OfferRefusedError as refusal:
            return JSONResponse({"status": "failed", "meta": refusal.meta()})

    @workaround(
        "fastrtc hands outputs to one poller per owner, which never ends for a dead id",
        "tests/test_streams.py::test_outputs_stream_to_every_subscriber_and_end_on_close",
    )
    def published_outputs(self, connection_id: str) -> OutputsCallback:
        return functools.partial(self._publish, connection_id)

    @workaround(
        "fastrtc passes the UI controls' values to handlers by position, untyped",
        "tests/test_streams.py::test_input_reaches_the_handler",
    )
    def recorded_input(self, owner: WebRTCConnectionMixin, connection_id: str, *args: Any) -> None:
        value = self._layer.input_from_controls(control_values(args))
        source = self._layer.source_of(connection_id)
        if value is not None and source is not None and owner.connections.get(connection_id):
            self.hand_input(source, connection_id, value)

    @workaround(
        "fastrtc leaves a closed connection's handler tasks, frame loop and channel waiter "
        "running, and with them the whole peer",
        "tests/test_streams.py::test_a_closed_connection_leaves_no_task_running",
        "tests/test_streams.py::test_a_connection_closed_before_its_media_leaves_no_task_running",
        "tests/test_observability.py::test_registries_are_empty_after_connections_close",
    )
    def cleaned_up(
        self, source: Source, owner: WebRTCConnectionMixin, connection_id: str
    ) -> list[Any]:
        tracks = cast(list[Any], type(owner).clean_up(owner, connection_id))
        for track in tracks:
            stop_workers(track)
        if tracks:
            cancel_tasks(
                "process_frames", lambda local: any(local.get("self") is t for t in tracks)
            )
        cancel_tasks(
            "set_channel",
            lambda local: local.get("webrtc_id") == connection_id,
            filename=FASTRTC_MIXIN,
        )
        admitted = self._layer.source_of(connection_id)
        if admitted is not None and self._owners[admitted] is owner:
            self._layer.closed(connection_id)
        return tracks

    @workaround(
        "fastrtc gives every new peer a fixed 30 s to connect",
        "tests/test_doors.py::test_a_peer_that_never_connects_is_freed_after_the_peer_timeout",
    )
    async def bounded_connection_timeout(
        self, owner: WebRTCConnectionMixin, pc: Any, connection_id: str, time_limit: float
    ) -> None:
        limit = self._layer.peer_timeout or time_limit
        await WebRTCConnectionMixin.connection_timeout(owner, pc, connection_id, limit)

    @workaround(
        "fastrtc's UI output listener, which anyone can start through Gradio's queue API, "
        "polls forever for an id that is no live connection",
        "tests/test_doors.py::test_output_listeners_for_no_live_connection_end_at_once",
        "tests/test_browser.py::test_a_page_gets_its_outputs_while_others_call_the_queue_api",
    )
    async def ui_outputs(self, connection_id: object) -> AsyncIterator[AdditionalOutputs]:
        if not isinstance(connection_id, str) or connection_id not in self._layer:
            return
        latest = self._layer.latest_output(connection_id)
        subscription = self._layer.subscribe(connection_id)
        if latest is not None:  # the page listens once the first output is out
            yield AdditionalOutputs(latest)
        async for output in subscription:
            yield AdditionalOutputs(output)

    @workaround(
        "fastrtc only prints what a handler raises",
        "tests/test_handler_errors.py::test_a_handler_that_raises_is_counted_and_logged",
    )
    def counted_copy(self, copy: Callable[[], StreamHandlerBase]) -> StreamHandlerBase:
        handler = copy()
        for name in HANDLER_METHODS:
            method = getattr(handler, name, None)
            if callable(method):
                setattr(handler, name, counted(name, method, self._layer.handler_raised))
        if isinstance(handler, ReplyOnPause):
            idle_polling(handler)
            keep_speech_start(handler)
            barge_in(handler)
        return handler

    @workaround(
        "fastrtc's handlers wait for the client to resend its inputs at every pause",
        "tests/test_reply_on_pause.py::test_it_replies_at_every_pause_without_the_client_answering",
    )
    async def fetch_args(self, connection_id: str, handler: StreamHandlerBase) -> None:
        await type(handler).fetch_args(handler)
        value = self._layer.current_input(connection_id)
        handler.set_args(fastrtc_args(connection_id, value))
        give_handlers([handler], value)

    @workaround(
        "fastrtc's receive-mode and video tracks make nothing (or echo the client) until "
        "inputs are set, and share one video handler between connections",
        "tests/test_streams.py::test_the_media_starts_at_once",
        "tests/test_tone.py::test_the_tone_plays_at_once_without_any_input",
        "tests/test_video_echo.py::test_each_connection_has_its_own_handler",
    )
    def start_media(self, connection_id: str, tracks: Sequence[Any]) -> None:
        value = self._layer.current_input(connection_id)
        for track in tracks:
            catch_up_pacing(track)
            if isinstance(track, VideoCallback) and not isinstance(track, VideoStreamHandler_):
                track.event_handler = own_copy(track.event_handler)
            if isinstance(track, (*GENERATED, VideoCallback)) and track.latest_args == "not_set":
                track.set_args(fastrtc_args(connection_id, value))
            handler = getattr(track, "event_handler", None)
            if isinstance(handler, StreamHandlerBase):
                handler.fetch_args = functools.partial(self.fetch_args, connection_id, handler)  # type: ignore[method-assign]
        give_handlers(tracks, value)

    # -- internals -------------------------------------------------------------------------

    async def _admit(
        self, source: Source, body: dict[str, Any], set_outputs: OutputsCallback
    ) -> dict[str, Any]:
        owner = self._owners[source]
        try:
            connection_id = self._layer.reserve(body, source)
            await self._layer.claim(connection_id)
        except OfferRefusedError as refused:
            logger.warning(
                "offer %s refused: %s", repr(body.get("webrtc_id"))[:SHOWN_ID], refused.code
            )
            raise
        self.configure_server_peer(owner)
        delay_ms = self._layer.offer_delay_ms
        try:
            with offer_delay(None if delay_ms is None else delay_ms / 1000):
                reply = _content(await type(owner).handle_offer(owner, body, set_outputs))
        except Exception as exc:  # aiortc could not apply the SDP
            reply = {"status": "failed", "meta": {"detail": f"the offer was not applied: {exc}"}}
        refusal: OfferRefusedError | None = None
        if reply.get("status") == "failed":
            detail = str((reply.get("meta") or {}).get("detail") or reply)
            refusal = InvalidOfferError(connection_id, detail)
        elif connection_id not in self._layer:
            refusal = ConnectionClosedError(connection_id)
        if refusal is not None:
            logger.warning("offer %r refused: %s", connection_id, refusal.code)
            await discard(owner, connection_id)
            self._layer.withdraw(connection_id)
            raise refusal
{%- if cookiecutter.__modality != "video" and cookiecutter.__mode != "receive" %}
        buffer_ms = self._layer.audio_buffer_ms
        if buffer_ms is not None and (pc := owner.pcs.get(connection_id)) is not None:
            set_audio_buffer(pc, buffer_ms // AUDIO_PACKET_MS)
{%- endif %}
        if self._layer.opened(connection_id, source):
            self.start_media(connection_id, owner.connections.get(connection_id, []))
        return reply

    async def _admit_websocket(self, connection_id: str) -> None:
        connection_id = self._layer.reserve({"webrtc_id": connection_id}, Source.WEBSOCKET)
        await self._layer.claim(connection_id)
        self._layer.opened(connection_id, Source.WEBSOCKET)

    def _publish(self, connection_id: str, outputs: AdditionalOutputs) -> None:
        model = self._layer.output_model
        output = outputs.args[0] if len(outputs.args) == 1 else None
        if not isinstance(output, model):
            logger.warning(
                "connection %r emitted %r, not one %s", connection_id, outputs.args, model.__name__
            )
            return
        self._layer.publish(connection_id, output)


def _content(reply: Any) -> dict[str, Any]:
    """fastrtc's reply as a dict (it answers refusals with a ``JSONResponse``)."""
    if isinstance(reply, JSONResponse):
        return cast(dict[str, Any], json.loads(bytes(reply.body)))
    return cast(dict[str, Any], reply)


def _no_outputs(outputs: AdditionalOutputs) -> None:
    """The outputs callback of a candidate, which has none."""
