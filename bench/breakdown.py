"""Where the time goes: one peer's offer -> connected and echo round trip, stage by stage.

The app (the layer with a given setting, or plain fastrtc) serves in this process on
127.0.0.1, and one load-test peer (``<package>.loadtest_peer``'s tone bursts) talks to it,
so both sides' stamps share one clock. Each burst is stamped as it passes each stage:

- captured: the peer's microphone hands the burst's frame to the encoder;
- sent / arrived: its RTP packet leaves one side's DTLS transport, reaches the other's
  receiver (a burst's Opus packet is hundreds of bytes, silence's a few);
- heard / made: the handler receives it, emits it back (the audio's level);
- paced: fastrtc's output track hands it to the encoder, on its own schedule;
- echoed: the peer's receive buffer hands it on (the load test's echo timer).

The offer's stages come from the peer's events and the server's own handling of the offer.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import importlib
import socket
import statistics
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import httpx
import numpy as np
import uvicorn
from aiortc import RTCPeerConnection
from aiortc.rtp import RtpPacket

LOUD_PAYLOAD_BYTES = 50
"""An Opus packet of a tone burst is hundreds of bytes; one of silence, three."""
LOUD_SAMPLE = 1000
"""A frame whose loudest sample passes this (of 32767) carries a burst."""
ECHO_STAGES = (
    ("captured", "sent", "peer: encode and send"),
    ("sent", "arrived", "network, to the server"),
    ("arrived", "heard", "server: receive buffer and decode"),
    ("heard", "made", "handler"),
    ("made", "paced", "server: send pacing"),
    ("paced", "returned", "server: encode and send"),
    ("returned", "back", "network, to the peer"),
    ("back", "echoed", "peer: receive buffer and decode"),
)
"""(from, to, what happens in between), in the order a burst passes them."""
OFFER_STAGES = (
    ("start", "offered", "peer: offer made (ICE candidates gathered)"),
    ("offered", "answered", "signalling: HTTP, admission"),
    ("server_in", "server_out", "server: fastrtc answers (its fixed pause included)"),
    ("answered", "applied", "peer: answer applied"),
    ("applied", "ice", "ICE checks"),
    ("ice", "connected", "DTLS handshake"),
)
"""The offer's stages; the server's own answer is a part of signalling."""


@dataclass
class Onsets:
    """When a burst began at each stage: the first loud one after a quiet one."""

    times: dict[str, list[float]] = field(default_factory=dict)
    _loud: dict[str, bool] = field(default_factory=dict)

    def see(self, stage: str, loud: bool) -> None:
        if loud and not self._loud.get(stage, False):
            self.times.setdefault(stage, []).append(time.monotonic())
        self._loud[stage] = loud

    def bursts(self, stages: list[str]) -> list[dict[str, float]]:
        """Each burst's time at each stage, in order; a burst missing a stage is left out."""
        found: list[dict[str, float]] = []
        for start in self.times.get(stages[0], []):
            burst, at = {stages[0]: start}, start
            for stage in stages[1:]:
                later = [t for t in self.times.get(stage, []) if t >= at]
                if not later:
                    break
                burst[stage] = at = later[0]
            if len(burst) == len(stages):
                found.append(burst)
        return found


class Stamps(dict[str, float]):
    """When each step of an offer happened (the first time)."""

    def stamp(self, step: str) -> None:
        self.setdefault(step, time.monotonic())

    def ms(self, start: str, to: str) -> float:
        return round(1000 * (self[to] - self[start]), 1)


def _loud_packet(packet: RtpPacket) -> bool:
    return len(packet.payload) > LOUD_PAYLOAD_BYTES


def _loud_audio(audio: Any) -> bool:
    return bool(np.abs(np.asarray(audio, dtype=np.float64)).max(initial=0) > LOUD_SAMPLE)


def _stamp_packets_sent(pc: RTCPeerConnection, onsets: Onsets, stage: str) -> None:
    transport = pc.getTransceivers()[0].sender.transport
    send = transport._send_rtp

    async def stamped(data: bytes) -> None:
        if not 192 <= data[1] <= 223:  # RTP, not RTCP (RFC 5761)
            onsets.see(stage, _loud_packet(RtpPacket.parse(data)))
        await send(data)

    transport._send_rtp = stamped


def _stamp_packets_arrived(pc: RTCPeerConnection, onsets: Onsets, stage: str) -> None:
    for transceiver in pc.getTransceivers():
        receiver = transceiver.receiver
        handle = receiver._handle_rtp_packet

        async def stamped(
            packet: RtpPacket, arrival_time_ms: int, handle: Callable[..., Awaitable[None]] = handle
        ) -> None:
            onsets.see(stage, _loud_packet(packet))
            await handle(packet, arrival_time_ms=arrival_time_ms)

        receiver._handle_rtp_packet = stamped


@contextlib.contextmanager
def _patched(owner: Any, name: str, wrap: Callable[[Any], Any]) -> Any:
    original = getattr(owner, name)
    setattr(owner, name, wrap(original))
    try:
        yield
    finally:
        setattr(owner, name, original)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextlib.asynccontextmanager
async def _serving(app: Any) -> AsyncIterator[str]:
    port = _free_port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    task = asyncio.create_task(server.serve())
    while not server.started:
        await asyncio.sleep(0.02)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        await task


async def measure(
    package: str, app: Any, seconds: float, network: str = "loopback"
) -> dict[str, Any]:
    """One peer against ``app`` for ``seconds`` through the emulated ``network``: each
    stage's median, in ms."""
    client = importlib.import_module(f"{package}.client")
    emulated = importlib.import_module(f"{package}.loadtest_network")
    link = emulated.EmulatedLink(emulated.NETWORKS[network])
    peer_module = importlib.import_module(f"{package}.loadtest_peer")
    handler_class = type(importlib.import_module(f"{package}.handlers.echo").build_handler())
    from fastrtc.tracks import AudioCallback
    from fastrtc.webrtc_connection_mixin import WebRTCConnectionMixin

    onsets, offer = Onsets(), Stamps()
    servers: list[RTCPeerConnection] = []

    def heard(receive: Any) -> Any:
        @functools.wraps(receive)
        async def wrapped(self: Any, frame: tuple[int, Any]) -> None:
            onsets.see("heard", _loud_audio(frame[1]))
            await receive(self, frame)

        return wrapped

    def made(emit: Any) -> Any:
        @functools.wraps(emit)
        async def wrapped(self: Any) -> Any:
            out = await emit(self)
            audio = out[0] if isinstance(out, tuple) and isinstance(out[0], tuple) else out
            if isinstance(audio, tuple):
                onsets.see("made", _loud_audio(audio[1]))
            return out

        return wrapped

    def paced(recv: Any) -> Any:
        @functools.wraps(recv)
        async def wrapped(self: Any) -> Any:
            frame = await recv(self)
            if frame is not None:
                onsets.see("paced", _loud_audio(frame.to_ndarray()))
            return frame

        return wrapped

    def answered(handle: Any) -> Any:
        @functools.wraps(handle)
        async def wrapped(self: Any, body: dict[str, Any], set_outputs: Any) -> Any:
            if body.get("type") == "offer":
                offer.stamp("server_in")
            try:
                return await handle(self, body, set_outputs)
            finally:
                if body.get("type") == "offer":
                    offer.stamp("server_out")

        return wrapped

    def remembered(set_remote: Any) -> Any:
        async def wrapped(self: RTCPeerConnection, description: Any) -> None:
            await set_remote(self, description)
            if description.type == "offer":
                servers.append(self)
                _stamp_packets_arrived(self, onsets, "arrived")
                _stamp_packets_sent(self, onsets, "returned")

        return wrapped

    with (
        _patched(handler_class, "receive", heard),
        _patched(handler_class, "emit", made),
        _patched(AudioCallback, "recv", paced),
        _patched(WebRTCConnectionMixin, "handle_offer", answered),
        _patched(RTCPeerConnection, "setRemoteDescription", remembered),
    ):
        async with _serving(app) as url, httpx.AsyncClient(base_url=url, timeout=30) as http:
            for attempt in range(2):  # the first offer warms up imports and codecs
                track = peer_module.PulseTrack()
                timer = peer_module.EchoTimer(track)
                samples = track.samples

                def captured(count: int, samples: Any = samples) -> Any:
                    chunk = samples(count)
                    onsets.see("captured", _loud_audio(chunk))
                    return chunk

                track.samples = captured
                original_on_frame = timer.on_frame

                def echoed(frame: Any, on_frame: Any = original_on_frame) -> None:
                    onsets.see("echoed", _loud_audio(frame.to_ndarray()))
                    on_frame(frame)

                offer.clear()
                offer.stamp("start")
                peer = await _connect(client, http, track, echoed, offer, onsets, link.apply)
                await peer.wait_connected(within=30)
                if attempt == 0:
                    await peer.close()
                    onsets.times.clear()
                    continue
                await asyncio.sleep(seconds)
                await peer.close()
    stages = [stage for stage, _, _ in ECHO_STAGES] + ["echoed"]
    bursts = onsets.bursts(stages)
    echo = {
        label: _median_ms([b[to] - b[start] for b in bursts]) for start, to, label in ECHO_STAGES
    }
    echo["round trip"] = _median_ms([b["echoed"] - b["captured"] for b in bursts])
    connect = {label: offer.ms(start, to) for start, to, label in OFFER_STAGES}
    connect["offer -> connected"] = offer.ms("start", "connected")
    seen = {stage: len(onsets.times.get(stage, [])) for stage in stages}
    return {"echo_ms": echo, "connect_ms": connect, "bursts": len(bursts), "seen": seen}


async def _connect(
    client: Any,
    http: httpx.AsyncClient,
    track: Any,
    on_frame: Callable[[Any], None],
    offer: Stamps,
    onsets: Onsets,
    on_gathered: Callable[[RTCPeerConnection], None],
) -> Any:
    """``client.connect`` through the API, with the peer's side of the stages stamped."""
    set_local = RTCPeerConnection.setLocalDescription
    set_remote = RTCPeerConnection.setRemoteDescription

    async def offered(self: RTCPeerConnection, description: Any = None) -> None:
        await set_local(self, description)
        if description.type != "offer":  # the server's answer
            return
        offer.stamp("offered")
        _stamp_packets_sent(self, onsets, "sent")
        _stamp_packets_arrived(self, onsets, "back")

        @self.on("iceconnectionstatechange")
        def ice() -> None:
            if self.iceConnectionState == "completed":
                offer.stamp("ice")

        @self.on("connectionstatechange")
        def connected() -> None:
            if self.connectionState == "connected":
                offer.stamp("connected")

    async def applied(self: RTCPeerConnection, description: Any) -> None:
        if description.type != "answer":  # the server, given the offer
            await set_remote(self, description)
            return
        offer.stamp("answered")
        await set_remote(self, description)
        offer.stamp("applied")

    RTCPeerConnection.setLocalDescription = offered  # type: ignore[method-assign]
    RTCPeerConnection.setRemoteDescription = applied  # type: ignore[method-assign]
    try:
        return await client.connect(
            http, client.Door.API, track=track, on_frame=on_frame, on_gathered=on_gathered
        )
    finally:
        RTCPeerConnection.setLocalDescription = set_local  # type: ignore[method-assign]
        RTCPeerConnection.setRemoteDescription = set_remote  # type: ignore[method-assign]


def _median_ms(seconds: list[float]) -> float | None:
    return round(1000 * statistics.median(seconds), 1) if seconds else None
