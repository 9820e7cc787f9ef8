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
{%- if cookiecutter.handler == "voice-agent" %}
from .handlers.voice_agent.agent import NOT_UNDERSTOOD
{%- endif %}
from .ice import IceConfiguration, IceConfigurations
from .services.streams import Directory, StreamService
from .settings import Settings

NO_OUTPUT_YET = "—"
"""What a figure shows until the first output: nothing that reads as a value (0 dBFS is full
scale)."""

AppStreams = StreamService[Input, Stats]
"""This process's connections, typed on the handler's models."""
AppDirectory = Directory[Input, Stats]
"""Every connection of the app (in cluster mode, of every replica)."""


{%- if cookiecutter.handler == "voice-agent" %}
CONVERSATION_HEIGHT = 240
"""Pixels: the Conversation fits beside the stream, with the controls, on one screen."""
Chat = list[dict[str, str]]
"""The conversation as Gradio's ``Chatbot`` shows it (``type="messages"``)."""


def show_stats(
    frames: float | None, level: float | None, chat: Chat | None, stats: Stats
) -> tuple[int, float, Chat]:
    """Map the agent's ``Stats`` onto the UI: the reply's figures, and the conversation with
    each turn's transcript and reply (or what went wrong).

    fastrtc calls this, for each page, with the values its outputs had when the page started
    listening, every time: the conversation is kept in that list, which is the page's own.
    """
    chat = chat if chat is not None else []
    reply = stats.reply or "…"
    if stats.error:
        reply = f"{stats.reply} [error: {stats.error}]".strip()
    heard = stats.transcript or f"({NOT_UNDERSTOOD.lower().removesuffix('.')})"
    if stats.turn > sum(message["role"] == "user" for message in chat):
        chat += [{"role": "user", "content": heard}, {"role": "assistant", "content": reply}]
    elif chat:
        chat[-1] = {"role": "assistant", "content": reply}
    return stats.frames, round(stats.level_dbfs, 1), list(chat)
{%- else %}


def show_stats(frames: float | None, level: float | None, stats: Stats) -> tuple[int, float]:
    """Map the handler's ``Stats`` onto the UI's output components."""
    return stats.frames, round(stats.level_dbfs, 1)
{%- endif %}


def build_stream(settings: Settings) -> Stream:
    fixed = IceConfiguration(
        iceServers=settings.ice_servers, iceTransportPolicy=settings.ice_transport_policy
    ).model_dump(exclude_none=True)
    return Stream(
        handler=build_handler(),
        modality="{{ cookiecutter.__modality }}",
        mode="{{ cookiecutter.__mode }}",
        concurrency_limit=settings.concurrency_limit,
        time_limit=settings.time_limit,
        rtc_configuration=fixed,  # the layer gives each page and each offer its own
        server_rtc_configuration=fixed,
        additional_inputs=[
            gr.Slider(0.0, 4.0, value=DEFAULT_INPUT.gain, step=0.1, label="Gain"),
{%- if cookiecutter.handler == "voice-agent" %}
            gr.Textbox(value=DEFAULT_INPUT.system_prompt, label="System prompt", lines=3),
            gr.Textbox(value=DEFAULT_INPUT.voice, label="Voice", placeholder="default"),
{%- endif %}
        ],
        additional_outputs=[
            gr.Number(label="Frames", precision=0, placeholder=NO_OUTPUT_YET),
            gr.Number(label="Level (dBFS)", placeholder=NO_OUTPUT_YET),
{%- if cookiecutter.handler == "voice-agent" %}
            gr.Chatbot(type="messages", label="Conversation", height=CONVERSATION_HEIGHT),
{%- endif %}
        ],
        additional_outputs_handler=show_stats,
        ui_args={"title": settings.title},
        verbose=False,
    )


def build_streams(stream: Stream, settings: Settings) -> AppStreams:
    """The stream layer over ``stream``: build it before the app serves anything."""
    ice = IceConfigurations(settings)
    return AppStreams(
        stream,
        input_model=Input,
        output_model=Stats,
        peer_timeout=settings.peer_timeout,
{%- if cookiecutter.__modality != "video" and cookiecutter.__mode != "receive" %}
        audio_buffer_ms=settings.audio_buffer_ms,
{%- endif %}
        offer_delay_ms=settings.offer_delay_ms,
        server_configuration=ice.for_server,
        page_configuration=lambda: ice.for_peer("ui").model_dump(exclude_none=True),
    )
