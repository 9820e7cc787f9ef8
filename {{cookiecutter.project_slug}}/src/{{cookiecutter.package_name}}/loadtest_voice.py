"""The load generator's voice scenario: peers that say a sentence, turn after turn, and time
the spoken reply.

Each peer says ``SENTENCE`` (the project's offline synthesizer, at 48 kHz) into its microphone,
waits until the reply is over (its outputs say so and its audio has gone quiet) or
``TURN_TIMEOUT_S`` has passed, pauses, and says it again. For each turn it measures, itself,
the end of its speech to the first audible audio of the reply, and reads from the
connection's outputs (``GET /connections/{id}/outputs``, server-sent events) what the server
heard, whether it failed, and how long each stage took from the pause it detected.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from typing import Any

import av
import httpx
import numpy as np
import numpy.typing as npt

from .client import (
    FRAME_SAMPLES,
    SAMPLE_RATE,
    Door,
    PacedAudioTrack,
    connect,
    rms_dbfs,
    wait_until,
)
from .handlers.io import Stats
from .handlers.voice_agent.text_to_speech import ESpeak
from .loadtest_network import LOOPBACK, EmulatedLink, Network

SENTENCE = "what is the weather like today"
"""What the peers say."""
KEY_WORDS = ("what", "weather", "like")
"""The words of ``SENTENCE`` that speech to text must find: the offline recognizer, hearing
the offline synthesizer through Opus, gets these and not always "today"."""
AUDIBLE_DBFS = -45.0
"""A received frame louder than this is the agent speaking."""
QUIET_S = 0.5
"""Silence this long after the last audible frame: the reply's audio is over."""
UNHEARD_S = 2.0
"""How long after a reply is over its audio may still come back; none by then: not heard."""
TURN_TIMEOUT_S = 30.0
"""The longest a turn may take, from the end of speech to the end of the reply."""


def resampled(rate: int, samples: npt.NDArray[np.int16]) -> npt.NDArray[np.int16]:
    """``samples`` at ``rate`` as 48 kHz mono, the peers' rate."""
    resampler = av.AudioResampler(format="s16", layout="mono", rate=SAMPLE_RATE)
    frame = av.AudioFrame.from_ndarray(samples.reshape(1, -1), format="s16", layout="mono")
    frame.sample_rate = rate
    frames = [*resampler.resample(frame), *resampler.resample(None)]
    return np.concatenate([f.to_ndarray().reshape(-1) for f in frames]).astype(np.int16)


async def spoken(text: str) -> npt.NDArray[np.int16]:
    """``text`` said by the offline synthesizer, at 48 kHz."""
    chunks = [chunk async for chunk in ESpeak().synthesize(text, "")]
    rate = chunks[0][0]
    return resampled(rate, np.concatenate([samples.reshape(-1) for _, samples in chunks]))


class SpeakingTrack(PacedAudioTrack):
    """A microphone that is silent until told to ``say`` something (a clip at 48 kHz)."""

    def __init__(self) -> None:
        super().__init__()
        self.clip: npt.NDArray[np.int16] = np.zeros(0, dtype=np.int16)
        self.position = 0
        self.started_at: float | None = None
        """When the clip's first frame went to the encoder."""
        self.ended_at: float | None = None
        """When its last frame did."""

    def say(self, clip: npt.NDArray[np.int16]) -> None:
        self.clip, self.position = clip, 0
        self.started_at = self.ended_at = None

    def samples(self, count: int) -> npt.NDArray[np.int16]:
        frame = self.clip[self.position : self.position + FRAME_SAMPLES]
        if frame.size and self.position == 0:
            self.started_at = time.monotonic()
        self.position += frame.size
        if frame.size and self.position >= self.clip.size:
            self.ended_at = time.monotonic()
        out = np.zeros(FRAME_SAMPLES, dtype=np.int16)
        out[: frame.size] = frame
        return out.reshape(1, -1)

    async def finished(self, within: float = 10.0) -> float:
        """Wait until the clip has been said; when it ended."""
        await wait_until(lambda: self.ended_at is not None, within)
        assert self.ended_at is not None
        return self.ended_at


class ReplyTimer:
    """When the audio that comes back is audible: first since a mark, and last of all."""

    def __init__(self) -> None:
        self.since = float("inf")
        self.first_loud: float | None = None
        self.last_loud: float | None = None

    def mark(self, since: float) -> None:
        """Time the reply from ``since`` (the end of speech) on."""
        self.since, self.first_loud = since, None

    def quiet_for(self, seconds: float) -> bool:
        """Whether nothing audible came back in the last ``seconds``."""
        return self.last_loud is None or time.monotonic() - self.last_loud >= seconds

    def on_frame(self, frame: av.AudioFrame) -> None:
        if rms_dbfs(frame.to_ndarray()) <= AUDIBLE_DBFS:
            return
        self.last_loud = now = time.monotonic()
        if self.first_loud is None and now >= self.since:
            self.first_loud = now


class OutputReader:
    """A connection's outputs, as they come."""

    def __init__(self) -> None:
        self.found: list[Stats] = []

    async def read(self, response: httpx.Response) -> None:
        """Read the server-sent events of ``response`` until it ends."""
        async for line in response.aiter_lines():
            if line.startswith("data:"):
                self.found.append(Stats.model_validate_json(line[5:]))

    def first(self, condition: Callable[[Stats], bool], start: int) -> Stats | None:
        """The first output from index ``start`` on that meets ``condition``."""
        return next((s for s in self.found[start:] if condition(s)), None)


@contextlib.asynccontextmanager
async def reading_outputs(
    http: httpx.AsyncClient, connection_id: str
) -> AsyncIterator[OutputReader]:
    """The connection's outputs (``GET /connections/{id}/outputs``), read in the background
    while the body runs: subscribed before it starts."""
    reader = OutputReader()
    timeout = httpx.Timeout(30, read=None)  # the stream is idle between turns
    url = f"/connections/{connection_id}/outputs"
    async with http.stream("GET", url, timeout=timeout) as response:
        response.raise_for_status()
        task = asyncio.create_task(reader.read(response))
        try:
            yield reader
        finally:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task


@dataclass
class TurnResult:
    """One turn of a peer: a row of the report's ``per_peer`` turns."""

    turn: int
    reply_s: float | None = None
    """End of speech (the clip's last frame sent) to the first audible reply audio."""
    transcript: str = ""
    reply: str = ""
    latency: dict[str, Any] | None = None
    """The server's ``TurnLatency``: seconds from the pause it detected to each stage."""
    heard_key_words: bool = False
    error: str | None = None


@dataclass
class VoicePeerResult:
    """What one voice peer measured: a row of the report's ``per_peer``."""

    connection_id: str
    door: str
    connect_s: float | None = None
    turns: list[TurnResult] = field(default_factory=list)
    error: str | None = None


def is_done(stats: Stats) -> bool:
    """Whether ``stats`` is a turn's last output."""
    return stats.done


async def take_turn(
    number: int,
    clip: npt.NDArray[np.int16],
    mic: SpeakingTrack,
    timer: ReplyTimer,
    outputs: OutputReader,
) -> TurnResult:
    """Say ``clip``, then wait until the reply is over (or ``TURN_TIMEOUT_S``); what it took."""
    result = TurnResult(number)
    seen = len(outputs.found)
    mic.say(clip)
    ended = await mic.finished(within=clip.size / SAMPLE_RATE + 5)
    timer.mark(ended)
    done: Stats | None = None
    done_at = 0.0

    def heard_out() -> bool:
        """The reply's audio heard and gone quiet; with none heard, ``UNHEARD_S`` after done."""
        if not timer.quiet_for(QUIET_S):
            return False
        return timer.first_loud is not None or time.monotonic() - done_at >= UNHEARD_S

    try:
        async with asyncio.timeout(TURN_TIMEOUT_S):
            await wait_until(lambda: outputs.first(is_done, seen) is not None, TURN_TIMEOUT_S)
            done, done_at = outputs.first(is_done, seen), time.monotonic()
            await wait_until(heard_out, TURN_TIMEOUT_S)
    except TimeoutError:
        result.error = f"no reply within {TURN_TIMEOUT_S:.0f} s"
    if timer.first_loud is not None:
        result.reply_s = round(timer.first_loud - ended, 4)
    if done is not None:
        result.transcript, result.reply = done.transcript, done.reply
        result.latency = done.latency.model_dump() if done.latency else None
        result.heard_key_words = set(KEY_WORDS) <= set(done.transcript.split())
        result.error = done.error or result.error
    if result.reply_s is None and result.error is None:
        result.error = "the reply was not heard"
    return result


async def run_voice_peer(
    http: httpx.AsyncClient,
    door: Door,
    clip: npt.NDArray[np.int16],
    turns: int,
    pause: float,
    ui_path: str,
    live: VoicePeerResult,
    delay: float = 0.0,
    network: Network = LOOPBACK,
    seed: int = 0,
) -> VoicePeerResult:
    """After ``delay`` s, connect one peer and take ``turns`` turns, ``pause`` s apart; fills
    ``live`` as it goes. Its datagrams go through ``network``, drawn with ``seed``."""
    await asyncio.sleep(delay)
    mic, timer = SpeakingTrack(), ReplyTimer()
    started = time.monotonic()
    peer = None
    try:
        peer = await connect(
            http,
            door,
            ui_path=ui_path,
            connection_id=live.connection_id,
            track=mic,
            on_frame=timer.on_frame,
            on_gathered=EmulatedLink(network, seed).apply,
        )
        await peer.wait_connected(within=30)
        live.connect_s = round(time.monotonic() - started, 4)
        async with reading_outputs(http, live.connection_id) as outputs:
            for number in range(1, turns + 1):
                live.turns.append(await take_turn(number, clip, mic, timer, outputs))
                await asyncio.sleep(pause)
    except Exception as exc:
        live.error = f"{type(exc).__name__}: {exc}"
    finally:
        if peer is not None:
            await peer.close()
    return live
