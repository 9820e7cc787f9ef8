"""The voice agent's speech providers: the offline ones (eSpeak NG, PocketSphinx) for real, and
fastrtc's model-backed ones (Moonshine, Kokoro) saying what they need where they cannot load."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from pathlib import Path

import av
import numpy as np
import numpy.typing as npt
import pytest
from aiortc.codecs.opus import OpusDecoder, OpusEncoder
from aiortc.jitterbuffer import JitterFrame
from huggingface_hub import constants as hub

from {{ cookiecutter.package_name }} import _speech_worker
from {{ cookiecutter.package_name }}.handlers.io import SAMPLE_RATE, level_dbfs
from {{ cookiecutter.package_name }}.handlers.voice_agent import _espeak
from {{ cookiecutter.package_name }}.handlers.voice_agent.providers import ProviderError, ProviderUnavailable
from {{ cookiecutter.package_name }}.handlers.voice_agent.speech_to_text import Moonshine, PocketSphinx, resampled
from {{ cookiecutter.package_name }}.handlers.voice_agent.text_to_speech import (
    DEFAULT_VOICE,
    WORDS_PER_MINUTE,
    ESpeak,
    Kokoro,
)
from {{ cookiecutter.package_name }}.loadtest_voice import KEY_WORDS, SENTENCE

OTHER_SENTENCE = "how are you doing this morning"
OTHER_KEY_WORDS = ("doing", "morning")
"""A second sentence, and the words of it PocketSphinx hears from eSpeak."""
LONG_TEXT = " ".join(
    ["The voice agent speaks each sentence of its reply as soon as the sentence is complete."] * 12
)
"""Over a minute of speech."""
AUDIBLE_DBFS = -30.0
"""Speech is louder than this."""
PAUSE_S = 0.3
"""Silence around what a peer says, as the pause detector hands it over."""
OPUS_FRAME = 960
"""20 ms at 48 kHz, as aiortc sends audio."""
WHISPER_DIVISOR = 1000
"""Speech this many times quieter is a whisper."""


async def said(tts: ESpeak, text: str, voice: str = "") -> tuple[int, npt.NDArray[np.int16]]:
    """``text`` synthesized, in one piece."""
    pieces = [piece async for piece in tts.synthesize(text, voice)]
    rates = {rate for rate, _ in pieces}
    assert len(rates) == 1
    return rates.pop(), np.concatenate([samples.reshape(-1) for _, samples in pieces])


async def heard(tts: ESpeak, text: str) -> npt.NDArray[np.int16]:
    """``text`` as the agent hears a peer say it: at 48 kHz, between pauses."""
    pause = np.zeros(int(SAMPLE_RATE * PAUSE_S), dtype=np.int16)
    return np.concatenate([pause, resampled(await said(tts, text), SAMPLE_RATE), pause])


def through_opus(samples: npt.NDArray[np.int16]) -> npt.NDArray[np.int16]:
    """``samples`` (48 kHz) encoded and decoded with Opus by aiortc, as a WebRTC peer's
    microphone reaches the server."""
    encoder, decoder = OpusEncoder(), OpusDecoder()
    out: list[npt.NDArray[np.int16]] = []
    for start in range(0, samples.size - OPUS_FRAME + 1, OPUS_FRAME):
        frame = av.AudioFrame.from_ndarray(
            samples[start : start + OPUS_FRAME].reshape(1, -1), format="s16", layout="mono"
        )
        frame.sample_rate, frame.pts = SAMPLE_RATE, start
        payloads, timestamp = encoder.encode(frame)
        for payload in payloads:
            for decoded in decoder.decode(JitterFrame(payload, timestamp)):
                assert isinstance(decoded, av.AudioFrame)
                stereo = decoded.to_ndarray().reshape(-1, 2)  # interleaved
                out.append(stereo[:, 0].astype(np.int16))
    return np.concatenate(out)


def words(transcript: str) -> set[str]:
    return set(transcript.split())


@pytest.fixture(scope="module")
def stt() -> PocketSphinx:
    return PocketSphinx()


@pytest.fixture
def tts() -> ESpeak:
    return ESpeak()


async def test_espeak_speaks_a_sentence_audibly(tts: ESpeak) -> None:
    rate, audio = await said(tts, SENTENCE)

    assert rate == tts.library.sample_rate == 22_050
    assert audio.dtype == np.int16
    assert 1.0 < audio.size / rate < 4.0
    assert level_dbfs(audio) > AUDIBLE_DBFS


async def test_espeak_streams_a_long_text_piece_by_piece(tts: ESpeak) -> None:
    pieces = 0
    async for _rate, _piece in tts.synthesize(LONG_TEXT, ""):
        if pieces == 0:
            assert _espeak.LOCK.locked(), "the first piece came after the synthesis ended"
        pieces += 1

    assert pieces > 10
    assert not _espeak.LOCK.locked()


def test_espeak_stops_synthesizing_when_the_reply_stops() -> None:
    library, pieces = _espeak.library(), []

    def stop_after_one(piece: npt.NDArray[np.int16]) -> bool:
        pieces.append(piece)
        return False

    library.synthesize(LONG_TEXT, DEFAULT_VOICE, WORDS_PER_MINUTE, stop_after_one)

    assert len(pieces) == 1


async def test_espeak_says_nothing_for_no_text(tts: ESpeak) -> None:
    assert [piece async for piece in tts.synthesize(" \n", "")] == []


async def test_espeak_speaks_with_the_voice_asked_for(tts: ESpeak) -> None:
    _, default = await said(tts, SENTENCE)
    _, american = await said(tts, SENTENCE, "en-us")
    _, french = await said(tts, SENTENCE, "fr")

    # The synthesis is not bit-exact (its noise is random), its length nearly is.
    assert abs(default.size - american.size) < 0.01 * american.size
    assert abs(french.size - american.size) > 0.05 * american.size


async def test_an_unknown_voice_is_a_clear_error_and_the_next_reply_works(tts: ESpeak) -> None:
    with pytest.raises(ProviderError, match=r"^tts: unknown voice 'xyz': .*'en-us'") as failed:
        [piece async for piece in tts.synthesize(SENTENCE, "xyz")]
    assert failed.value.stage == "tts"

    assert level_dbfs((await said(tts, SENTENCE))[1]) > AUDIBLE_DBFS


async def test_concurrent_syntheses_each_say_their_own_text(tts: ESpeak) -> None:
    texts = [SENTENCE, "yes", OTHER_SENTENCE, LONG_TEXT] * 2
    alone = {text: (await said(tts, text))[1].size for text in set(texts)}

    together = await asyncio.gather(*(said(tts, text) for text in texts))

    for text, (_, audio) in zip(texts, together, strict=True):
        assert abs(audio.size - alone[text]) < 0.01 * alone[text], text


async def test_pocketsphinx_understands_espeak_through_opus(stt: PocketSphinx, tts: ESpeak) -> None:
    audio = through_opus(await heard(tts, SENTENCE))

    transcript = await stt.transcribe((SAMPLE_RATE, audio.reshape(1, -1)))

    assert set(KEY_WORDS) <= words(transcript), transcript


async def test_pocketsphinx_decodes_faster_than_it_was_said(stt: PocketSphinx, tts: ESpeak) -> None:
    audio = through_opus(await heard(tts, SENTENCE))
    started = time.perf_counter()

    await stt.transcribe((SAMPLE_RATE, audio))

    assert time.perf_counter() - started < audio.size / SAMPLE_RATE


async def test_silence_is_no_words(stt: PocketSphinx) -> None:
    silence = np.zeros((1, SAMPLE_RATE), dtype=np.int16)
    hiss = np.random.default_rng(0).normal(0, 20, SAMPLE_RATE).astype(np.int16)  # -64 dBFS

    assert await stt.transcribe((SAMPLE_RATE, silence)) == ""
    assert await stt.transcribe((SAMPLE_RATE, hiss)) == ""
    assert await stt.transcribe((SAMPLE_RATE, np.zeros(0, dtype=np.int16))) == ""


async def test_concurrent_transcriptions_each_get_their_own_words(
    stt: PocketSphinx, tts: ESpeak
) -> None:
    expected = {SENTENCE: set(KEY_WORDS), OTHER_SENTENCE: set(OTHER_KEY_WORDS)}
    spoken = {text: await heard(tts, text) for text in expected}
    texts = [SENTENCE, OTHER_SENTENCE] * 3

    transcripts = await asyncio.gather(
        *(stt.transcribe((SAMPLE_RATE, spoken[text])) for text in texts)
    )

    for text, transcript in zip(texts, transcripts, strict=True):
        assert expected[text] <= words(transcript), (text, transcript)
    ways_heard = {text: set[str]() for text in expected}
    for text, transcript in zip(texts, transcripts, strict=True):
        ways_heard[text].add(transcript)
    # The same audio, the same words, whatever was decoded before it.
    assert all(len(ways) == 1 for ways in ways_heard.values()), ways_heard


async def test_the_same_audio_is_heard_the_same_way_whatever_came_before(tts: ESpeak) -> None:
    speech = resampled((SAMPLE_RATE, await heard(tts, SENTENCE)), _speech_worker.SAMPLE_RATE)
    # A whisper (-63 dBFS), where the decoder's dither weighs most.
    whisper = (speech // WHISPER_DIVISOR).tobytes()
    other = resampled((SAMPLE_RATE, await heard(tts, OTHER_SENTENCE)), _speech_worker.SAMPLE_RATE)

    transcripts = set()
    for _ in range(4):
        transcripts.add(_speech_worker.decode(whisper))
        _speech_worker.decode(other.tobytes())

    assert len(transcripts) == 1, transcripts


@pytest.fixture
def offline_hub(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """The Hugging Face Hub as on a machine without it: offline, nothing downloaded yet. The
    hub's library reads its variables once, when imported (fastrtc imports it): its settings
    are set too."""
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path))
    monkeypatch.setattr(hub, "HF_HUB_OFFLINE", True)
    monkeypatch.setattr(hub, "HF_HUB_CACHE", str(tmp_path))


@pytest.mark.timeout(60)
@pytest.mark.usefixtures("offline_hub")
@pytest.mark.parametrize(
    ("provider", "setting", "extra"),
    [(Moonshine, "APP_STT=moonshine", "fastrtc[stt]"), (Kokoro, "APP_TTS=kokoro", "fastrtc[tts]")],
)
def test_a_model_that_cannot_load_says_in_one_line_what_it_needs(
    provider: Callable[[], object], setting: str, extra: str
) -> None:
    # Without the extra installed (as here) or without its weights and the Hub, loading fails
    # at once; choosing it must fail at start, saying why and what to do.
    with pytest.raises(ProviderUnavailable) as failed:
        provider()

    message = str(failed.value)
    assert message.startswith(f"{setting} could not load fastrtc's "), message
    assert f'uv add "{extra}"' in message, message
    assert "Hugging Face Hub" in message, message
    assert "\n" not in message
