"""The workarounds on fastrtc's ``ReplyOnPause``: a reply stops as soon as it is talked over,
an idle handler is not polled in a busy loop, and the first word of an utterance is kept."""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from collections import deque
from collections.abc import Callable
from typing import Any

import numpy as np
import numpy.typing as npt
from fastrtc import ReplyOnPause
from fastrtc.utils import split_output

from .marks import workaround

logger = logging.getLogger(__name__)

BARGE_IN_WINDOW_S = 0.1
"""The latest audio in which the pause detector looks for speech during a reply."""
BARGE_IN_SPEECH_S = 0.06
"""Speech in that window that stops the reply."""
BARGE_IN_KEPT_S = 0.3
"""The latest audio kept during a reply: what starts the next turn once speech stops it."""
CLOSE_TIMEOUT_S = 1.0
"""How long closing a stopped reply's generator may take."""
REQUEUED_S = 0.1
"""When the queue of a stopped reply's audio is cleared again."""
IDLE_POLL_S = 0.02
"""How long a poll of a handler with no reply to make waits for one: one audio frame."""


class BargeIn:
    """Wraps one handler's ``receive``, ``emit`` and ``reset``: see ``barge_in``."""

    def __init__(self, handler: ReplyOnPause) -> None:
        self.handler = handler
        self.receive: Callable[[tuple[int, npt.NDArray[Any]]], None] = handler.receive
        self.emit: Callable[[], Any] = handler.emit
        self.reset: Callable[[], None] = handler.reset
        self.recent: deque[npt.NDArray[Any]] = deque()
        self.lock = threading.Lock()
        self.stops = 0
        self.emitting = False
        self.emit_stops = 0
        """``stops`` when the running ``emit`` began."""
        self.stopped_while_emitting: Any = None
        self.playing_until = 0.0
        """When the reply's audio emitted so far will have played (fastrtc queues it ahead)."""

    def replying(self) -> bool:
        """Whether a reply is being made or its audio is still playing."""
        handler = self.handler
        return handler.generator is not None or time.monotonic() < self.playing_until

    def on_receive(self, frame: tuple[int, npt.NDArray[Any]]) -> None:
        if self.replying():
            rate, audio = frame
            self.recent.append(audio.reshape(-1))
            kept = np.concatenate(self.recent)[-int(rate * BARGE_IN_KEPT_S) :]
            self.recent = deque([kept])
            size = int(rate * BARGE_IN_WINDOW_S)
            if kept.size >= size:
                speech, _ = self.handler.model.vad((rate, kept[-size:]), self.handler.model_options)
                if speech >= BARGE_IN_SPEECH_S:
                    self.stop(before=kept[: kept.size - audio.size])
        else:
            self.recent.clear()
        self.receive(frame)

    def on_emit(self) -> Any:
        with self.lock:
            self.emitting, stops = True, self.stops
            self.emit_stops = stops
        try:
            output = self.emit()
        finally:
            with self.lock:
                self.emitting = False
                generator, self.stopped_while_emitting = self.stopped_while_emitting, None
        if generator is not None:
            self.close(generator)
        if self.stops != stops:
            return None  # a stopped reply's last words
        audio, _ = split_output(output)
        if isinstance(audio, tuple):
            seconds = audio[1].shape[-1] / audio[0]
            self.playing_until = max(self.playing_until, time.monotonic()) + seconds
        return output

    def on_reset(self) -> None:
        with self.lock:
            stale = self.emitting and self.stops != self.emit_stops
        if not stale:  # a stopped reply that ends resets nothing: the state is the next turn's
            self.reset()

    def stop(self, before: npt.NDArray[Any]) -> None:
        """Stop the reply: its generator closed, its audio still queued dropped. The next turn
        starts with the speech that stopped it, ``before`` the frame being received."""
        handler = self.handler
        with self.lock:
            self.stops += 1
            generator, handler.generator = handler.generator, None
            handler.event.clear()
            state = handler.state
            state.responding = False
            state.started_talking = True  # what is said from now on is the next turn
            state.stream, state.buffer = None, before  # its chunks start at the speech
            self.playing_until = 0.0
            if self.emitting:  # closed once the call that runs it returns
                self.stopped_while_emitting, generator = generator, None
        handler.clear_queue()
        # fastrtc turns each output into frames on its event loop: any it was queueing then
        # are dropped too.
        handler.loop.call_soon_threadsafe(handler.loop.call_later, REQUEUED_S, handler.clear_queue)
        self.recent.clear()
        if generator is not None:
            self.close(generator)

    def close(self, generator: Any) -> None:
        try:
            if self.handler.is_async:
                asyncio.run_coroutine_threadsafe(generator.aclose(), self.handler.loop).result(
                    CLOSE_TIMEOUT_S
                )
            else:
                generator.close()
        except Exception:
            logger.warning("a stopped reply did not close cleanly", exc_info=True)


@workaround(
    "fastrtc's ReplyOnPause stops a reply only once the speaker who talks over it pauses",
    "tests/test_voice_agent.py::test_speech_during_a_reply_stops_its_audio_within_300_ms",
)
def barge_in(handler: ReplyOnPause) -> None:
    """Stop ``handler``'s reply as soon as the pause detector hears speech over it (its audio
    still queued dropped); what was said goes on to be the next turn, as fastrtc would have it."""
    if not handler.can_interrupt:
        return
    wrapper = BargeIn(handler)
    handler.receive = wrapper.on_receive  # type: ignore[method-assign]
    handler.emit = wrapper.on_emit  # type: ignore[method-assign]
    handler.reset = wrapper.on_reset  # type: ignore[method-assign]


@workaround(
    "fastrtc polls an idle ReplyOnPause for a reply some 700 times a second: a core's worth "
    "of CPU for each connection",
    "tests/test_voice_agent.py::test_an_idle_connection_polls_its_handler_sparingly",
)
def idle_polling(handler: ReplyOnPause) -> None:
    """Make each poll of ``handler`` with no reply to make wait for one, ``IDLE_POLL_S`` at
    most (fastrtc polls from a worker thread, so the wait blocks no event loop)."""
    emit: Callable[[], Any] = handler.emit

    def emit_when_replying() -> Any:
        if not handler.event.is_set():
            handler.event.wait(IDLE_POLL_S)
        return emit()

    handler.emit = emit_when_replying  # type: ignore[method-assign]


@workaround(
    "fastrtc's ReplyOnPause drops the audio in which speech starts unless most of it is speech: "
    "the first word is often lost",
    "tests/test_voice_agent.py::test_a_spoken_question_gets_a_spoken_answer",
{%- if cookiecutter.handler == "voice-agent" and cookiecutter.include_ui %}
    "tests/test_browser.py::test_a_spoken_question_is_answered_in_the_page",
{%- endif %}
)
def keep_speech_start(handler: ReplyOnPause) -> None:
    """Put the chunk of audio before the one in which ``handler`` hears talking start in front
    of what it hands its reply, so the first word is whole."""
    determine: Callable[..., bool] = handler.determine_pause
    previous: list[npt.NDArray[Any] | None] = [None]

    def determine_pause(audio: npt.NDArray[Any], rate: int, state: Any) -> bool:
        talking = state.started_talking
        whole = audio.size / rate >= handler.algo_options.audio_chunk_duration
        pause = determine(audio, rate, state)
        if whole:
            if not talking and state.started_talking and previous[0] is not None:
                state.stream = np.concatenate((previous[0], state.stream))
            previous[0] = None if state.started_talking else audio
        return pause

    handler.determine_pause = determine_pause  # type: ignore[method-assign,assignment]
