"""The load generator's measure of one peer: its echo round trips and the frames it lost.

The peer streams silence with a 20 ms tone burst every 0.5 s; each burst has one of eight
pitches, so an echoed burst is told apart from its neighbours and matched to the time it was
sent: that is the echo round trip, measured, not estimated. The bursts also count the frames
lost: between two echoed bursts sent ``k`` frames apart, ``k`` frames must have come back.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass, field

import httpx
import numpy as np
import numpy.typing as npt
from av import AudioFrame

from .client import FRAME_SAMPLES, SAMPLE_RATE, Door, PacedAudioTrack, connect, rms_dbfs
from .loadtest_network import LOOPBACK, EmulatedLink, Network

PULSE_EVERY = 25
"""Frames between two bursts (20 ms frames: one every 0.5 s)."""
PULSE_HZ = (600.0, 900.0, 1200.0, 1500.0, 1800.0, 2100.0, 2400.0, 2700.0)
"""Burst pitches, in turn: a burst is matched to the last one sent at its pitch, so an echo
is timed right as long as it takes less than 8 x 0.5 s."""
PULSE_AMPLITUDE = 0.5
ONSET_DBFS = -40.0
"""A received frame this loud after a quieter one is the start of an echoed burst."""


class PulseTrack(PacedAudioTrack):
    """A microphone that plays silence with a tone burst every ``PULSE_EVERY`` frames.

    Paced in real time; records when each burst is handed to the encoder, and as which frame.
    """

    def __init__(self) -> None:
        super().__init__()
        self.pulses_sent: dict[int, tuple[float, int]] = {}
        """Burst pitch index -> when the last burst of that pitch was sent (monotonic), and
        its frame number."""
        self._silence = np.zeros((1, FRAME_SAMPLES), dtype=np.int16)
        t = np.arange(FRAME_SAMPLES) / SAMPLE_RATE
        self._bursts = [
            (PULSE_AMPLITUDE * 32767 * np.sin(2 * np.pi * hz * t)).astype(np.int16).reshape(1, -1)
            for hz in PULSE_HZ
        ]

    def samples(self, count: int) -> npt.NDArray[np.int16]:
        if count % PULSE_EVERY:
            return self._silence
        pitch = (count // PULSE_EVERY) % len(PULSE_HZ)
        self.pulses_sent[pitch] = (time.monotonic(), count)
        return self._bursts[pitch]


def pitch_of(samples: npt.NDArray[np.float64]) -> int | None:
    """The index in ``PULSE_HZ`` of the burst pitch nearest the frame's loudest frequency."""
    spectrum = np.abs(np.fft.rfft(samples * np.hanning(samples.size)))
    peak_hz = float(np.argmax(spectrum)) * SAMPLE_RATE / samples.size
    nearest = min(range(len(PULSE_HZ)), key=lambda i: abs(PULSE_HZ[i] - peak_hz))
    return nearest if abs(PULSE_HZ[nearest] - peak_hz) < 150 else None


class EchoTimer:
    """Times the echo of each burst a ``PulseTrack`` sent, from the frames that come back.

    Each echoed burst is also an anchor: (the frame number it was sent as, the frames
    received before it). Between the first and the last anchor, frames sent and frames
    received are counted on the same stretch of audio, however late it comes back.
    """

    def __init__(self, track: PulseTrack) -> None:
        self.track = track
        self.round_trips: list[float] = []
        self.anchors: list[tuple[int, int]] = []
        self.frames_received = 0
        self._loud = False

    def lost(self) -> tuple[int, int]:
        """Frames sent between the first and the last echoed burst, and how many of them
        did not come back."""
        if len(self.anchors) < 2:  # no stretch to count on: every frame not back is lost
            sent = self.track.frames_sent
            return sent, max(0, sent - self.frames_received)
        (first_sent, first_received), (last_sent, last_received) = self.anchors[0], self.anchors[-1]
        sent = last_sent - first_sent
        return sent, max(0, sent - (last_received - first_received))

    def on_frame(self, frame: AudioFrame) -> None:
        now = time.monotonic()
        samples = frame.to_ndarray().astype(np.float64).reshape(-1)
        if frame.layout.name == "stereo":
            samples = samples[::2]  # interleaved: keep the left channel
        loud = rms_dbfs(samples) > ONSET_DBFS
        if loud and not self._loud:
            pitch = pitch_of(samples)
            sent = self.track.pulses_sent.pop(pitch, None) if pitch is not None else None
            if sent is not None:
                sent_at, frame_number = sent
                self.round_trips.append(now - sent_at)
                self.anchors.append((frame_number, self.frames_received))
        self._loud = loud
        self.frames_received += 1


@dataclass
class PeerResult:
    """What one peer measured: a row of the report's ``per_peer``."""

    connection_id: str
    door: str
    connect_s: float | None = None
    echo_s: list[float] = field(default_factory=list)
    frames_sent: int = 0
    frames_received: int = 0
    frames_counted: int = 0
    """Frames sent between the first and the last echoed burst: those checked for loss."""
    frames_lost: int = 0
    error: str | None = None


async def run_peer(
    http: httpx.AsyncClient,
    door: Door,
    duration: float,
    ui_path: str,
    live: PeerResult,
    delay: float = 0.0,
    network: Network = LOOPBACK,
    seed: int = 0,
) -> PeerResult:
    """After ``delay`` s, connect one peer, stream for ``duration`` s and count; fills
    ``live`` as it goes. Its datagrams go through ``network``, drawn with ``seed``."""
    await asyncio.sleep(delay)
    track = PulseTrack()
    timer = EchoTimer(track)
    started = time.monotonic()
    connected_at: list[float] = []
    peer = None
    try:
        peer = await connect(
            http,
            door,
            ui_path=ui_path,
            connection_id=live.connection_id,
            track=track,
            on_frame=timer.on_frame,
            on_gathered=EmulatedLink(network, seed).apply,
        )
        pc = peer.pc

        @pc.on("connectionstatechange")
        def stamp() -> None:
            if pc.connectionState == "connected" and not connected_at:
                connected_at.append(time.monotonic())

        await peer.wait_connected(within=30)
        live.connect_s = (connected_at[0] if connected_at else time.monotonic()) - started
        deadline = time.monotonic() + duration
        while time.monotonic() < deadline:
            live.frames_sent, live.frames_received = track.frames_sent, peer.frames_received
            live.echo_s = timer.round_trips
            await asyncio.sleep(0.2)
    except Exception as exc:
        live.error = f"{type(exc).__name__}: {exc}"
    finally:
        live.frames_sent, live.frames_received = track.frames_sent, timer.frames_received
        live.frames_counted, live.frames_lost = timer.lost()
        live.echo_s = timer.round_trips
        if peer is not None:
            await peer.close()
    return live
