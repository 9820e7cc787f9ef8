"""The app's media: the fastrtc ``Stream`` (the handler, its media settings, its Gradio UI)
and the stream layer over it, typed on the handler's ``Input`` and ``Stats``.

The media and direction are the answers this project was made with; the handler in
``handlers/`` is written for them.
"""

from __future__ import annotations

import gradio as gr
from fastrtc import Stream

from .handlers import build_handler
from .handlers.io import DEFAULT_INPUT, Input, Stats
from .services.streams import Directory, StreamService
from .settings import Settings

AppStreams = StreamService[Input, Stats]
"""This process's connections, typed on the handler's models."""
AppDirectory = Directory[Input, Stats]
"""Every connection of the app (in cluster mode, of every replica)."""


def show_stats(frames: float | None, level: float | None, stats: Stats) -> tuple[int, float]:
    """Map the handler's ``Stats`` onto the UI's output components."""
    return stats.frames, round(stats.level_dbfs, 1)


def build_stream(settings: Settings) -> Stream:
    rtc_configuration = settings.rtc_configuration()
    return Stream(
        handler=build_handler(),
        modality="{{ cookiecutter.modality }}",
        mode="{{ cookiecutter.mode }}",
        concurrency_limit=settings.concurrency_limit,
        time_limit=settings.time_limit,
        rtc_configuration=rtc_configuration,
        server_rtc_configuration=rtc_configuration,
        additional_inputs=[
            gr.Slider(0.0, 4.0, value=DEFAULT_INPUT.gain, step=0.1, label="Gain"),
        ],
        additional_outputs=[
            gr.Number(label="Frames", precision=0),
            gr.Number(label="Level (dBFS)"),
        ],
        additional_outputs_handler=show_stats,
        ui_args={"title": settings.title},
        verbose=False,
    )


def build_streams(stream: Stream, settings: Settings) -> AppStreams:
    """The stream layer over ``stream``: build it before the app serves anything."""
    return AppStreams(
        stream, input_model=Input, output_model=Stats, peer_timeout=settings.peer_timeout
    )
