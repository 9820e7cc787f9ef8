"""The default handler: waits for the speaker to pause, then replies (here: says it back).

fastrtc's ``ReplyOnPause`` buffers what each connection says and calls ``reply`` when the
speaker pauses. Put your model in ``reply``: speech to text, a language model, text to speech.

Pauses are found by ``APP_PAUSE_DETECTOR`` (see ``pauses.py``).
"""

from __future__ import annotations

from collections.abc import Generator

from fastrtc import AdditionalOutputs, AlgoOptions, ReplyOnPause
from fastrtc.tracks import EmitType

from ..settings import load
from .io import DEFAULT_INPUT, SAMPLE_RATE, AudioFrame, Input, Stats, apply_gain, level_dbfs
from .pauses import DETECTOR, FRAME_SECONDS, PauseSettings, pause_detector


def reply(
    audio: AudioFrame, connection_id: str = "", value: Input = DEFAULT_INPUT
) -> Generator[EmitType]:
    """Say back what was said (its loud parts), scaled by the connection's gain."""
    rate, samples = audio
    gain = value.gain
    size = int(rate * FRAME_SECONDS)
    samples = samples.reshape(-1)
    frames = samples[: samples.size // size * size].reshape(-1, size)
    spoken = frames[DETECTOR.voiced(rate, samples)]
    said = apply_gain(spoken, gain)
    for frame in said[:-1]:
        yield (rate, frame.reshape(1, -1))
    if said.size:
        stats = Stats(frames=len(said), level_dbfs=level_dbfs(said), gain=gain)
        yield ((rate, said[-1].reshape(1, -1)), AdditionalOutputs(stats))


def build_handler() -> ReplyOnPause:
    """The handler the stream copies for each connection."""
    return ReplyOnPause(
        reply,
        model=pause_detector(load(PauseSettings).pause_detector),
        algo_options=AlgoOptions(audio_chunk_duration=0.4, started_talking_threshold=0.2),
        expected_layout="mono",
        input_sample_rate=SAMPLE_RATE,
        output_sample_rate=SAMPLE_RATE,
    )
