"""A real WebRTC client of the app (aiortc): for tests, load tests and smoke checks.

It connects the way a browser does, through either door of the app:

- ``Door.API``: ``POST /webrtc/offer``;
- ``Door.UI``: the Gradio UI's ``<ui>/gradio_api/component_server/`` with ``fn_name`` "offer".

It sends a tone (steady, or in turns of talk and pause like speech) and/or a bright test
pattern as its camera, in either direction or both, and counts the frames it gets back.
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import math
import secrets
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from enum import StrEnum
from fractions import Fraction
from typing import Any, Literal

import httpx
import numpy as np
import numpy.typing as npt
from aiortc import (
    MediaStreamTrack,
    RTCConfiguration,
    RTCPeerConnection,
    RTCSessionDescription,
    VideoStreamTrack,
)
from aiortc.mediastreams import MediaStreamError
from av import AudioFrame, VideoFrame

SAMPLE_RATE = 48_000
FRAME_SAMPLES = 960  # 20 ms


Direction = Literal["sendrecv", "sendonly", "recvonly"]
"""Which way the client's media goes: both ways, to the app only, or from the app only."""


class Door(StrEnum):
    API = "api"
    UI = "ui"


class OfferRefused(RuntimeError):
    """The app answered the offer with a failure instead of an SDP answer."""

    def __init__(self, status_code: int, reply: Any) -> None:
        super().__init__(f"offer refused ({status_code}): {reply}")
        self.status_code = status_code
        self.reply = reply

    @property
    def reason(self) -> str:
        """The app's code for why: the API's ``error``, or fastrtc's ``meta.error`` (UI)."""
        if isinstance(self.reply, dict):
            found = self.reply.get("error") or self.reply.get("meta", {}).get("error")
            return str(found)
        return "unknown"


def new_connection_id() -> str:
    """An unguessable id: whoever knows it can reach the connection."""
    return secrets.token_urlsafe(16)


@dataclass(frozen=True)
class Speech:
    """Talk for ``talk_s`` seconds, then pause for ``pause_s``, over and over."""

    talk_s: float = 0.8
    pause_s: float = 1.6

    @property
    def cycle_s(self) -> float:
        return self.talk_s + self.pause_s


class PacedAudioTrack(MediaStreamTrack):
    """A microphone paced in real time, 20 ms a frame; a subclass says what each frame holds.

    Counts the frames it has handed to the encoder in ``frames_sent``.
    """

    kind = "audio"

    def __init__(self) -> None:
        super().__init__()
        self.frames_sent = 0
        self._start: float | None = None

    def samples(self, count: int) -> npt.NDArray[np.int16]:
        """The mono samples of frame number ``count``, shaped (1, ``FRAME_SAMPLES``)."""
        raise NotImplementedError

    async def recv(self) -> AudioFrame:
        if self.readyState != "live":
            raise MediaStreamError
        if self._start is None:
            self._start = time.monotonic()
        delay = self._start + self.frames_sent * FRAME_SAMPLES / SAMPLE_RATE - time.monotonic()
        if delay > 0:
            await asyncio.sleep(delay)
        count, self.frames_sent = self.frames_sent, self.frames_sent + 1
        frame = AudioFrame.from_ndarray(self.samples(count), format="s16", layout="mono")
        frame.sample_rate = SAMPLE_RATE
        frame.pts = count * FRAME_SAMPLES
        frame.time_base = Fraction(1, SAMPLE_RATE)
        return frame


class ToneTrack(PacedAudioTrack):
    """A microphone that plays a sine tone, paced in real time: steady, or as ``speech``."""

    def __init__(
        self, hz: float = 440.0, amplitude: float = 0.3, speech: Speech | None = None
    ) -> None:
        super().__init__()
        self.hz = hz
        self.amplitude = amplitude
        self.speech = speech

    def samples(self, count: int) -> npt.NDArray[np.int16]:
        t = (np.arange(FRAME_SAMPLES) + count * FRAME_SAMPLES) / SAMPLE_RATE
        wave = self.amplitude * 32767 * np.sin(2 * math.pi * self.hz * t)
        if self.speech is not None:
            wave[t % self.speech.cycle_s >= self.speech.talk_s] = 0.0
        return wave.astype(np.int16).reshape(1, -1)


class PatternTrack(VideoStreamTrack):
    """A camera that shows bright, moving vertical stripes (30 frames a second)."""

    kind = "video"

    def __init__(self, width: int = 320, height: int = 240, brightness: int = 220) -> None:
        super().__init__()
        self.width = width
        self.height = height
        self.brightness = brightness
        self._count = 0

    async def recv(self) -> VideoFrame:
        pts, time_base = await self.next_timestamp()
        columns = (np.arange(self.width) + 4 * self._count) % 64 < 48
        row = np.where(columns, self.brightness, self.brightness // 4).astype(np.uint8)
        image = np.repeat(np.broadcast_to(row[None, :, None], (self.height, self.width, 1)), 3, 2)
        frame = VideoFrame.from_ndarray(np.ascontiguousarray(image), format="bgr24")
        frame.pts = pts
        frame.time_base = time_base
        self._count += 1
        return frame


async def wait_until(condition: Callable[[], object], within: float = 10.0) -> None:
    """Poll ``condition`` (plain or async) until it is true; ``TimeoutError`` after ``within`` s."""
    async with asyncio.timeout(within):
        while True:
            result = condition()
            if inspect.isawaitable(result):
                result = await result
            if result:
                return
            await asyncio.sleep(0.02)


def rms_dbfs(samples: np.ndarray[Any, Any]) -> float:
    rms = float(np.sqrt(np.mean(np.square(samples.astype(np.float64) / 32768.0))))
    return max(-120.0, 20.0 * math.log10(rms)) if rms > 0 else -120.0


def brightness_dbfs(image: np.ndarray[Any, Any]) -> float:
    """Mean brightness relative to white, in dB (a video frame's level)."""
    mean = float(image.mean()) if image.size else 0.0
    return max(-120.0, 20.0 * math.log10(mean / 255.0)) if mean > 0 else -120.0


def level_of(frame: AudioFrame | VideoFrame) -> float:
    """The level of a received frame, in dB: RMS for audio, mean brightness for video."""
    if isinstance(frame, VideoFrame):
        return brightness_dbfs(frame.to_ndarray(format="gray"))
    return rms_dbfs(frame.to_ndarray())


@dataclass
class Peer:
    """One connection to the app, seen from the client side."""

    connection_id: str
    pc: RTCPeerConnection
    frames_received: int = 0
    """Frames that came back, audio and video."""
    last_level_dbfs: float = -120.0
    """The level of the last frame that came back, audio or video (see ``level_of``)."""
    frames_by_kind: Counter[str] = field(default_factory=Counter)
    """Frames that came back, by kind ("audio", "video")."""
    level_by_kind: dict[str, float] = field(default_factory=dict)
    """The level of the last frame of each kind that came back."""
    messages: list[str] = field(default_factory=list)
    on_frame: Callable[[AudioFrame], None] | None = None
    """Called with each audio frame that comes back, as it arrives (e.g. to time an echo)."""
    _receivers: list[asyncio.Task[None]] = field(default_factory=list)

    @property
    def state(self) -> str:
        return str(self.pc.connectionState)

    async def wait_connected(self, within: float = 10.0) -> None:
        def connected() -> bool:
            if self.pc.connectionState in ("failed", "closed"):
                raise ConnectionError(f"peer {self.connection_id} {self.pc.connectionState}")
            return self.pc.connectionState == "connected"

        await wait_until(connected, within)

    async def wait_frames(self, count: int, within: float = 10.0, kind: str | None = None) -> None:
        """Wait until ``count`` more frames (of ``kind``, or of any) have come back."""

        def received() -> int:
            return self.frames_received if kind is None else self.frames_by_kind[kind]

        target = received() + count
        await wait_until(lambda: received() >= target, within)

    async def close(self) -> None:
        await self.pc.close()
        for receiver in self._receivers:
            receiver.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await receiver

    async def _receive(self, track: MediaStreamTrack) -> None:
        with contextlib.suppress(MediaStreamError):
            while True:
                frame = await track.recv()
                assert isinstance(frame, AudioFrame | VideoFrame)
                level = level_of(frame)
                self.frames_received += 1
                self.last_level_dbfs = level
                self.frames_by_kind[track.kind] += 1
                self.level_by_kind[track.kind] = level
                if self.on_frame is not None and isinstance(frame, AudioFrame):
                    self.on_frame(frame)


async def ui_component_id(http: httpx.AsyncClient, ui_path: str = "/ui") -> int:
    """The id of the UI's WebRTC component, which the UI's offers name."""
    config = (await http.get(f"{ui_path}/config")).raise_for_status().json()
    return next(int(c["id"]) for c in config["components"] if c.get("type") == "webrtc")


async def connect(
    http: httpx.AsyncClient,
    door: Door,
    *,
    ui_path: str = "/ui",
    connection_id: str | None = None,
    hz: float = 440.0,
    speech: Speech | None = None,
    audio: bool = True,
    track: MediaStreamTrack | None = None,
    on_frame: Callable[[AudioFrame], None] | None = None,
    video: bool = False,
    direction: Direction = "sendrecv",
    on_gathered: Callable[[RTCPeerConnection], None] | None = None,
    configuration: RTCConfiguration | None = None,
) -> Peer:
    """Offer a new connection through ``door`` and return once the answer is applied.

    ``http`` has the app's base URL. Call ``wait_connected`` on the result to wait for ICE.
    ``audio`` (a tone) and ``video`` (a test pattern) choose the media, ``direction`` which
    way they go: "sendonly" offers them without asking for any back, "recvonly" only asks
    for the app's. With ``speech`` the tone comes in turns with pauses, as a pause-detecting
    handler needs. ``track`` replaces the tone (e.g. the load generator's); ``on_frame``
    sees each audio frame that comes back. With neither medium the peer offers only its data
    channel, so no media ever starts. ``on_gathered`` is called with the peer connection once
    its candidates are gathered (its sockets open), before the offer is sent: e.g. the load
    generator's emulated network. ``configuration`` is the peer's ICE configuration, e.g. the
    app's ``GET /webrtc/configuration`` (default: no STUN or TURN, host candidates only).
    """
    pc = RTCPeerConnection(configuration or RTCConfiguration(iceServers=[]))
    peer = Peer(connection_id or new_connection_id(), pc, on_frame=on_frame)
    channel = pc.createDataChannel("text")  # fastrtc starts the media once a channel exists
    channel.on("message", peer.messages.append)
    tracks: list[MediaStreamTrack] = []
    if audio:
        tracks.append(track or ToneTrack(hz, speech=speech))
    if video:
        tracks.append(PatternTrack())
    for track in tracks:
        if direction == "recvonly":
            pc.addTransceiver(track.kind, direction="recvonly")
        else:
            pc.addTransceiver(track, direction=direction)

    @pc.on("track")
    def on_track(track: MediaStreamTrack) -> None:
        peer._receivers.append(asyncio.create_task(peer._receive(track)))

    await pc.setLocalDescription(await pc.createOffer())
    offer = {"sdp": pc.localDescription.sdp, "type": "offer", "webrtc_id": peer.connection_id}
    try:
        if on_gathered is not None:
            on_gathered(pc)
        if door is Door.API:
            response = await http.post("/webrtc/offer", json=offer)
        else:
            body = {
                "data": offer,
                "component_id": await ui_component_id(http, ui_path),
                "fn_name": "offer",
                "session_hash": secrets.token_hex(8),
            }
            response = await http.post(f"{ui_path}/gradio_api/component_server/", json=body)
        reply = response.json()
        if response.is_error or reply.get("type") != "answer":
            raise OfferRefused(response.status_code, reply)
        await pc.setRemoteDescription(RTCSessionDescription(sdp=reply["sdp"], type="answer"))
    except BaseException:
        await pc.close()
        raise
    return peer
