"""``StreamService``: every connection of one fastrtc ``Stream``, whatever its door.

Its public API lists, finds, feeds and closes connections with the project's own models;
its bookkeeping holds the one registry of admitted connections that the limit, the id space
and every lookup read. What it needs of fastrtc's internals goes through ``_fastrtc``.
"""

from __future__ import annotations

import itertools
import logging
import threading
import time
from collections import Counter
from collections.abc import AsyncIterator, Callable
from typing import Any, Generic, cast

from aiortc import RTCConfiguration
from fastapi import FastAPI
from fastrtc import Stream
from pydantic import ValidationError

from ._fastrtc import FastrtcStream
from .errors import (
    ConnectionExistsError,
    ConnectionNotReadyError,
    InvalidConnectionIdError,
    InvalidOfferError,
    LimitReachedError,
    UnknownConnectionError,
)
from .interface import (
    CONNECTION_ID,
    SHOWN_ID,
    Claims,
    ConnectionInfo,
    InputT,
    Listener,
    OutputT,
    Source,
)
from .outputs import Outputs

logger = logging.getLogger(__name__)

MAX_SDP_BYTES = 64 * 1024
"""An SDP offer of one audio and one video track and a data channel is a few kilobytes."""
MAX_MEDIA_SECTIONS = 8
"""Media sections an offer may have: aiortc's time to answer grows with them (3,000 took
seconds of the event loop), and an app's peer needs three at most."""


class StreamService(Generic[InputT, OutputT]):
    """Every connection of one ``Stream``, API, UI and websocket alike, typed on the project's
    input and output models.

    Build it once, right after the ``Stream``, before the app serves anything.
    """

    def __init__(
        self,
        stream: Stream,
        *,
        input_model: type[InputT],
        output_model: type[OutputT],
        peer_timeout: float | None = None,
        audio_buffer_ms: int | None = None,
        offer_delay_ms: int | None = None,
        server_configuration: Callable[[], RTCConfiguration] | None = None,
        page_configuration: Callable[[], dict[str, Any]] | None = None,
        output_buffer: int = 64,
    ) -> None:
        self.input_model = input_model
        self.output_model = output_model
        self.peer_timeout = peer_timeout
        self.audio_buffer_ms = audio_buffer_ms
        """How long the server waits for a late audio packet; ``None``: aiortc's buffer."""
        self.offer_delay_ms = offer_delay_ms
        """The pause before an offer's answer is returned; ``None``: fastrtc's 100."""
        self.server_configuration = server_configuration
        """The ICE configuration of the server's peer, made anew for each offer (fresh TURN
        credentials); ``None``: the one the ``Stream`` was built with."""
        self.page_configuration = page_configuration
        """The ICE configuration a UI page asks for before each connection; ``None``: the
        ``Stream``'s."""
        self.connections_total: Counter[Source] = Counter()
        """Connections ever accepted, by source (for metrics)."""
        self.claims: Claims | None = None
        """Cluster-wide ids, in cluster mode."""
        self.listener: Listener[OutputT] | None = None
        """What follows this process's connections, in cluster mode."""
        self._admitted: dict[str, Source] = {}
        """Every connection admitted, live or with its offer still being answered."""
        self._opened: dict[str, float] = {}
        self._inputs: dict[str, InputT] = {}
        self._outputs: dict[str, Outputs[OutputT]] = {}
        self._output_buffer = output_buffer
        self._handler_errors = 0
        self._handler_errors_lock = threading.Lock()  # synchronous handlers run in threads
        self._stream = stream
        self._fastrtc = FastrtcStream(stream, self)

    @property
    def concurrency_limit(self) -> int:
        return cast(int, self._stream.concurrency_limit)

    @property
    def ui_component_id(self) -> int:
        """The Gradio id of the UI's WebRTC component: the one the UI's calls may name."""
        return self._fastrtc.ui_component_id()

    @property
    def handler_errors(self) -> int:
        """Exceptions the connections' handlers have raised since the start (for metrics)."""
        return self._handler_errors

    # -- reading ---------------------------------------------------------------------------

    def list_connections(self, offset: int = 0, limit: int | None = None) -> list[ConnectionInfo]:
        """Every connection, whatever its door, in the order they were offered; with ``limit``,
        a page: at most that many from ``offset`` on, at a cost that does not grow with all."""
        stop = None if limit is None else offset + limit
        page = list(itertools.islice(self._admitted.items(), offset, stop))
        return [self._info(id_, source) for id_, source in page]

    def get(self, connection_id: str) -> ConnectionInfo:
        """One connection; ``UnknownConnectionError`` if no live connection has this id."""
        return self._info(connection_id, self._locate(connection_id))

    def __contains__(self, connection_id: object) -> bool:
        return isinstance(connection_id, str) and connection_id in self._admitted

    def __len__(self) -> int:
        return len(self._admitted)

    def registry_sizes(self) -> dict[str, int]:
        """The size of each per-connection registry, fastrtc's and this service's own.

        A diagnostic: with no connection live, every one is 0 (anything else is a leak).
        """
        return {
            **self._fastrtc.registry_sizes(),
            "service.admitted": len(self._admitted),
            "service.outputs": len(self._outputs),
            "service.opened": len(self._opened),
            "service.inputs": len(self._inputs),
        }

    # -- per-connection operations ---------------------------------------------------------

    async def offer(self, body: dict[str, Any]) -> dict[str, Any]:
        """Answer an API offer; a refusal raises an ``OfferRefusedError``."""
        return await self._fastrtc.answer(Source.API, body)

    async def add_candidate(self, body: dict[str, Any]) -> dict[str, Any]:
        """Add a trickled ICE candidate to the connection it names; fastrtc's reply."""
        connection_id = str(body.get("webrtc_id"))
        return await self._fastrtc.add_candidate(self._locate(connection_id), body)

    def set_input(self, connection_id: str, value: InputT) -> None:
        """Hand ``value`` to the connection's handler, as the UI's controls do."""
        source = self._locate(connection_id)
        if not self._fastrtc.has_media(source, connection_id):
            raise ConnectionNotReadyError(connection_id)
        self._fastrtc.hand_input(source, connection_id, value)

    async def trigger_response(self, connection_id: str) -> None:
        """Ask a pause-detecting handler to respond now, as if the speaker had paused."""
        self._fastrtc.trigger_response(self._locate(connection_id), connection_id)

    def latest_output(self, connection_id: str) -> OutputT | None:
        """The connection's last output, or ``None`` if it has emitted none."""
        self._locate(connection_id)
        outputs = self._outputs.get(connection_id)
        return outputs.latest if outputs else None

    def subscribe(self, connection_id: str) -> AsyncIterator[OutputT]:
        """Every output the connection emits from now on, until it closes.

        The lookup happens now, so an unknown id fails before anything is streamed.
        """
        self._locate(connection_id)
        return self._outputs_of(connection_id).subscribe()

    async def close(self, connection_id: str) -> None:
        """Close the connection and release everything held for it (a UI page is told)."""
        await self._fastrtc.close(self._locate(connection_id), connection_id)

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
        """Mount fastrtc's websocket door, through this layer's admission (audio handlers)."""
        self._fastrtc.mount_websocket(app)

    # -- admission (called by the doors, through ``_fastrtc``) ------------------------------

    def reserve(self, body: dict[str, Any], source: Source) -> str:
        """Admit an offer's id through ``source``'s door, or raise why not.

        Checking and reserving happen with no ``await`` between them, so offers racing
        through any doors can never pass the limit or share an id.
        """
        connection_id = body.get("webrtc_id")
        if not isinstance(connection_id, str) or not CONNECTION_ID.fullmatch(connection_id):
            shown = repr(connection_id)[:SHOWN_ID]
            raise InvalidConnectionIdError(None, f"invalid connection id: {shown}")
        if connection_id in self._admitted or self._fastrtc.holds(connection_id):
            raise ConnectionExistsError(connection_id)
        if len(self._admitted) >= self.concurrency_limit:
            raise LimitReachedError(connection_id, limit=self.concurrency_limit)
        if source is not Source.WEBSOCKET:
            self._check_offer(connection_id, body)
        self._admitted[connection_id] = source
        return connection_id

    async def claim(self, connection_id: str) -> None:
        """Claim a reserved id cluster-wide, or raise why not (the reservation is dropped)."""
        if self.claims is None or await self.claims.claim(connection_id):
            return
        self._admitted.pop(connection_id, None)
        raise ConnectionExistsError(connection_id)

    def withdraw(self, connection_id: str) -> None:
        """Undo an admission whose offer was refused or failed: its slot and its claim."""
        self._admitted.pop(connection_id, None)
        if self.claims is not None:
            self.claims.release(connection_id)

    def source_of(self, connection_id: str) -> Source | None:
        return self._admitted.get(connection_id)

    # -- bookkeeping (called through ``_fastrtc`` as connections live and go) ---------------

    def opened(self, connection_id: str, source: Source) -> bool:
        """Record and log a connection just taken; False if it was already."""
        if connection_id in self._opened:
            return False
        self._opened[connection_id] = time.monotonic()
        self.connections_total[source] += 1
        if self.listener is not None:
            self.listener.changed()
        logger.info(
            "connection opened",
            extra={"event": "connect", "connection_id": connection_id, "source": source.value},
        )
        return True

    def current_input(self, connection_id: str) -> InputT:
        """The input last set on the connection, or the model's defaults."""
        return self._inputs.get(connection_id) or self.input_model()

    def record_input(self, connection_id: str, value: InputT) -> bool:
        """Keep ``value`` as the connection's input; whether it changed."""
        changed = self._inputs.get(connection_id) != value
        self._inputs[connection_id] = value
        return changed

    def input_from_controls(self, values: tuple[Any, ...]) -> InputT | None:
        """The input from the UI controls' values, in field order; None if they are invalid."""
        try:
            return self.input_model(
                **dict(zip(self.input_model.model_fields, values, strict=False))
            )
        except ValidationError:
            return None

    def publish(self, connection_id: str, output: OutputT) -> None:
        if connection_id in self._admitted:
            self._outputs_of(connection_id).publish(output)
            if self.listener is not None:
                self.listener.output(connection_id, output)

    def handler_raised(self) -> None:
        with self._handler_errors_lock:
            self._handler_errors += 1

    def closed(self, connection_id: str) -> None:
        """Forget a connection that fastrtc has cleaned up."""
        source = self._admitted.pop(connection_id, None)
        opened = self._opened.pop(connection_id, None)
        self._inputs.pop(connection_id, None)
        outputs = self._outputs.pop(connection_id, None)
        if outputs is not None:
            outputs.end()
        if opened is None or source is None:
            return
        logger.info(
            "connection closed",
            extra={
                "event": "disconnect",
                "connection_id": connection_id,
                "source": source.value,
                "duration_s": round(time.monotonic() - opened, 3),
            },
        )
        if self.listener is not None:
            self.listener.closed(connection_id)
            self.listener.changed()

    # -- internals -------------------------------------------------------------------------

    def _locate(self, connection_id: str) -> Source:
        source = self._admitted.get(connection_id)
        if source is None:
            raise UnknownConnectionError(connection_id)
        return source

    def _info(self, connection_id: str, source: Source) -> ConnectionInfo:
        """The connection as listed: its peer's state, "new" while its offer is answered."""
        state = self._fastrtc.state(source, connection_id)
        return ConnectionInfo(id=connection_id, source=source, state=state)

    def _outputs_of(self, connection_id: str) -> Outputs[OutputT]:
        outputs = self._outputs.get(connection_id)
        if outputs is None:
            outputs = self._outputs[connection_id] = Outputs(self._output_buffer)
        return outputs

    def _check_offer(self, connection_id: str, body: dict[str, Any]) -> None:
        """Refuse an SDP offer this app cannot answer, before aiortc reads it."""
        sdp = body.get("sdp")
        if body.get("type") != "offer" or not isinstance(sdp, str) or "\nm=" not in sdp:
            detail = "an offer needs type 'offer' and an SDP with at least one media section"
            raise InvalidOfferError(connection_id, detail)
        if len(sdp) > MAX_SDP_BYTES or sdp.count("\nm=") > MAX_MEDIA_SECTIONS:
            detail = (
                f"an offer is at most {MAX_SDP_BYTES} bytes with at most "
                f"{MAX_MEDIA_SECTIONS} media sections"
            )
            raise InvalidOfferError(connection_id, detail)
        modality = self._stream.modality
        if self._stream.mode == "receive" and f"\nm={modality} " not in sdp:
            # fastrtc adds its track before reading the offer; aiortc fails to answer it then.
            detail = f"this app sends {modality}: the offer must ask for it"
            raise InvalidOfferError(connection_id, detail)
