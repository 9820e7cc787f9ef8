"""One connection's conversation with the agent.

Each time the speaker pauses, fastrtc's ``ReplyOnPause`` calls ``Conversation.reply`` with what
was said: speech to text, then the language model's reply, streamed, then each sentence spoken
as soon as it is complete, so the first words play while the rest is generated. The turn's
transcript, its reply text and how long each stage took are reported as ``Stats`` outputs.
Speech during a reply stops it (the stream layer's barge-in), and what was said of the reply
stays in the history.
"""

from __future__ import annotations

import logging
import math
import re
import time
from collections import deque
from collections.abc import AsyncGenerator, AsyncIterator
from dataclasses import dataclass, field

import numpy as np
import numpy.typing as npt
from fastrtc import AdditionalOutputs
from fastrtc.tracks import EmitType
from prometheus_client import Histogram

from ..io import DEFAULT_INPUT, AudioFrame, Input, Stats, TurnLatency, apply_gain
from .providers import LanguageModel, Message, ProviderError, SpeechToText, TextToSpeech

logger = logging.getLogger(__name__)

NOT_UNDERSTOOD = "Sorry, I did not catch that."
"""What the agent says when speech to text found no words."""
SENTENCE_END = re.compile(r"(?<=[.!?])\s+|\n+")
"""Where a sentence of the reply ends: it is spoken as soon as it is complete."""
FRAMES_PER_SECOND = 50
"""Audio frames of 20 ms, as WebRTC sends them: the unit of ``Stats.frames``."""
LONGEST_UNSPOKEN = 200
"""Characters of reply text spoken even without a sentence end (at a comma or a space)."""

TURN_SECONDS = Histogram(
    "app_voice_turn_seconds",
    "Seconds from the end of speech to each stage's first result, and to the first reply audio",
    ["stage"],
    buckets=(0.05, 0.1, 0.2, 0.3, 0.5, 0.75, 1.0, 1.5, 2.0, 3.0, 5.0, 10.0),
    registry=None,
)
"""Per stage: ``transcribed``, ``first_token``, ``first_synthesized``, ``first_audio``."""


@dataclass
class Providers:
    """The three stages, shared by every connection."""

    stt: SpeechToText
    llm: LanguageModel
    tts: TextToSpeech


@dataclass
class Turn:
    """What one turn has said and reported so far."""

    number: int
    gain: float
    started: float = field(default_factory=time.monotonic)
    transcript: str = ""
    spoken: list[str] = field(default_factory=list)
    frames: int = 0
    energy: float = 0.0
    """The sum of the squares of the reply's samples so far (its level: ``level_dbfs``)."""
    samples: int = 0
    marks: dict[str, float] = field(default_factory=dict)

    def spoke(self, audio: npt.NDArray[np.int16], rate: int) -> None:
        """Count ``audio`` into the reply's frames and level."""
        self.frames += max(1, audio.size * FRAMES_PER_SECOND // rate)
        self.energy += float(np.square(audio.astype(np.float64) / 32768.0).sum())
        self.samples += audio.size

    @property
    def level_dbfs(self) -> float:
        """The RMS level of the reply so far, floored at -120 dBFS."""
        if self.energy <= 0:
            return -120.0
        return max(-120.0, 10.0 * math.log10(self.energy / self.samples))

    def mark(self, stage: str) -> None:
        """Record when ``stage`` first gave a result."""
        self.marks.setdefault(stage, round(time.monotonic() - self.started, 4))

    def stats(self, *, done: bool = False, error: str | None = None) -> Stats:
        latency = None
        if done and "transcribed" in self.marks:
            latency = TurnLatency(
                transcribed=self.marks["transcribed"],
                first_token=self.marks.get("first_token"),
                first_synthesized=self.marks.get("first_synthesized"),
                first_audio=self.marks.get("first_audio"),
            )
        return Stats(
            frames=self.frames,
            level_dbfs=self.level_dbfs,
            gain=self.gain,
            turn=self.number,
            transcript=self.transcript,
            reply=" ".join(self.spoken),
            done=done,
            latency=latency,
            error=error,
        )


class Conversation:
    """One connection's turns, with a bounded history for the language model."""

    def __init__(self, providers: Providers, history_turns: int) -> None:
        self.providers = providers
        self.history: deque[Message] = deque(maxlen=2 * history_turns)
        self.turns = 0

    async def reply(
        self, audio: AudioFrame, connection_id: str = "", value: Input = DEFAULT_INPUT
    ) -> AsyncGenerator[EmitType]:
        """One turn: what was said in ``audio``, answered in speech and reported as outputs."""
        self.turns += 1
        turn = Turn(self.turns, value.gain)
        try:
            turn.transcript = await self.providers.stt.transcribe(audio)
            turn.mark("transcribed")
            async for sentence in self._sentences(turn, value):
                turn.spoken.append(sentence)
                first = True
                async for rate, samples in self.providers.tts.synthesize(sentence, value.voice):
                    turn.mark("first_synthesized")
                    said = apply_gain(samples.reshape(-1), value.gain)
                    turn.spoke(said, rate)
                    turn.mark("first_audio")
                    if first:  # the transcript and the sentence, as it starts to play
                        yield (rate, said.reshape(1, -1)), AdditionalOutputs(turn.stats())
                    else:
                        yield rate, said.reshape(1, -1)
                    first = False
        except ProviderError as exc:
            logger.error(
                "turn %d failed: %s", turn.number, exc, extra={"connection_id": connection_id}
            )
            yield AdditionalOutputs(turn.stats(done=True, error=str(exc)))
            return
        finally:  # also when the speaker interrupts: the history keeps what was said
            self._remember(turn)
        for stage, seconds in turn.marks.items():
            TURN_SECONDS.labels(stage).observe(seconds)
        yield AdditionalOutputs(turn.stats(done=True))

    async def _sentences(self, turn: Turn, value: Input) -> AsyncIterator[str]:
        """The reply, sentence by sentence, as the language model writes it."""
        if not turn.transcript:
            yield NOT_UNDERSTOOD
            return
        messages = [
            Message("system", value.system_prompt),
            *self.history,
            Message("user", turn.transcript),
        ]
        pending = ""
        async for piece in self.providers.llm.reply(messages):
            turn.mark("first_token")
            pending += piece
            *complete, pending = SENTENCE_END.split(pending)
            if not complete and len(pending) > LONGEST_UNSPOKEN:
                cut = max(pending.rfind(",", 0, LONGEST_UNSPOKEN), pending.rfind(" "))
                complete, pending = [pending[: cut + 1]], pending[cut + 1 :]
            for sentence in complete:
                if sentence.strip():
                    yield sentence.strip()
        if pending.strip():
            yield pending.strip()

    def _remember(self, turn: Turn) -> None:
        if turn.transcript:
            self.history.append(Message("user", turn.transcript))
            if turn.spoken:
                self.history.append(Message("assistant", " ".join(turn.spoken)))
