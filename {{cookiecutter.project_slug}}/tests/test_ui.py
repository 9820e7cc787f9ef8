"""The Gradio UI: its page (everything shown at load, wired as fastrtc's own page), its mount,
where it lives and where ``/`` leads."""

from __future__ import annotations

from typing import Any

import gradio as gr
import httpx
import pytest
from fastrtc import WebRTC

from {{ cookiecutter.package_name }}.app import create_app
from {{ cookiecutter.package_name }}.client import Door, connect
from {{ cookiecutter.package_name }}.media import NO_OUTPUT_YET, build_stream
from {{ cookiecutter.package_name }}.settings import Settings
from {{ cookiecutter.package_name }}.ui import DESCRIPTION, DOCS_PATH, build_ui

from .conftest import MEDIA

HIDING_LAYOUTS = {"sidebar", "accordion", "tabs", "tab", "modal"}
"""Gradio layouts that keep what they hold out of sight until the person opens them."""
CONTROLS = {"Gain": "slider"{% if cookiecutter.handler == "voice-agent" %}, "System prompt": "textbox", "Voice": "textbox"{% endif %}}
"""The page's controls (the handler's input), by label, with their kind."""
FIGURES = {"Frames": "number", "Level (dBFS)": "number"{% if cookiecutter.handler == "voice-agent" %}, "Conversation": "chatbot"{% endif %}}
"""The page's figures (the handler's outputs), by label, with their kind."""


async def test_the_page_shows_its_stream_controls_and_figures_at_once(
    http: httpx.AsyncClient, settings: Settings
) -> None:
    config = (await http.get("/ui/config")).json()
    components = config["components"]
    kinds = {component["type"] for component in components}
    assert not kinds & HIDING_LAYOUTS, kinds
    assert all(component["props"].get("visible", True) is True for component in components)
    by_label = {c["props"]["label"]: c for c in components if c["props"].get("label")}
    assert by_label["Stream"]["type"] == "webrtc"
    assert by_label["Stream"]["props"]["full_screen"] is False  # no overlay over the page
    for label, kind in {**CONTROLS, **FIGURES}.items():
        assert by_label[label]["type"] == kind, label
    for label, kind in FIGURES.items():
        if kind == "number":  # until the first output: "—", not a 0 that reads as a value
            assert by_label[label]["props"].get("value") is None, label
            assert by_label[label]["props"]["placeholder"] == NO_OUTPUT_YET, label


async def test_the_page_says_what_the_app_is_and_links_its_api_docs(
    http: httpx.AsyncClient, settings: Settings
) -> None:
    config = (await http.get("/ui/config")).json()
    header = next(c for c in config["components"] if c["type"] == "html")["props"]["value"]
    assert f"<h1>{settings.title}</h1>" in header
    assert DESCRIPTION in header
    assert f'href="{DOCS_PATH}"' in header
    assert config["title"] == settings.title
    assert (await http.get(DOCS_PATH)).status_code == 200


def test_the_page_is_wired_as_fastrtc_s_own() -> None:
    """The page's events are those of the page fastrtc builds for the stream: the controls go to
    the handler, the outputs to the figures, under the same concurrency and time limits."""
    settings = Settings(_env_file=None, concurrency_limit=3, time_limit=30)  # type: ignore[call-arg]
    stream = build_stream(settings)
    fastrtc_page = stream.ui
    page = build_ui(stream, settings.title)
    assert stream.ui is page
    assert stream.webrtc_component in page.blocks.values()
    assert _events(page) == _events(fastrtc_page)
    assert {id(stream.webrtc_component)} == {
        id(block) for block in page.blocks.values() if isinstance(block, WebRTC)
    }


def _events(page: gr.Blocks) -> list[tuple[Any, ...]]:
    """Each event of ``page``: what triggers it, its inputs and outputs, its limits."""

    def kind(block: Any) -> object:
        if isinstance(block, WebRTC):
            return "stream"
        if isinstance(block, gr.Button):
            return "start"
        return block._id  # the controls and figures are the stream's own components

    events = [
        (
            tuple(
                (None if target is None else kind(page.blocks[target]), event)
                for target, event in fn.targets
            ),
            tuple(kind(block) for block in fn.inputs),
            tuple(kind(block) for block in fn.outputs),
            fn.concurrency_limit,
            fn.time_limit,
            fn.trigger_mode,
            fn.queue,
        )
        for fn in page.fns.values()
    ]
    return sorted(events, key=repr)


async def test_root_redirects_to_the_ui(http: httpx.AsyncClient) -> None:
    response = await http.get("/")
    assert response.status_code == 307
    assert response.headers["location"] == "/ui/"
    assert (await http.get("/ui/")).status_code == 200


async def test_the_ui_path_is_configurable() -> None:
    settings = Settings(_env_file=None, ui_path="studio/")  # type: ignore[call-arg]
    assert settings.ui_path == "/studio"
    app = create_app(settings)
    try:
        async with httpx.AsyncClient(
            transport=httpx.ASGITransport(app=app), base_url="http://app"
        ) as http:
            assert (await http.get("/")).headers["location"] == "/studio/"
            assert (await http.get("/studio/")).status_code == 200
            client = await connect(http, Door.UI, ui_path="/studio", **MEDIA)
            await client.wait_connected()
            listed = (await http.get("/connections")).json()
            assert [c["source"] for c in listed] == ["ui"]
            await client.close()
    finally:
        await app.state.streams.close_all()


@pytest.mark.parametrize("ui_path", ["/", "", "//"])
def test_the_ui_cannot_take_the_root(ui_path: str) -> None:
    with pytest.raises(ValueError, match="ui_path"):
        Settings(_env_file=None, ui_path=ui_path)  # type: ignore[call-arg]
