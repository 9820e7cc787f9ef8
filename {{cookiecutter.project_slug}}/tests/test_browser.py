"""A real browser through the Gradio UI: its connection is a first-class connection.

Chromium (Debian's ``/usr/bin/chromium``, driven by Playwright) opens the UI of a real server,
presses Record (with a fake microphone playing a tone and a fake camera), or Start Stream when
the app makes the media, and the test checks through the HTTP API what a person's connection
must be: listed, fed, read and released. The last test does the same through the plain
client at ``/client/`` (no Gradio).
{%- if cookiecutter.handler == "voice-agent" %}

The voice agent's microphone asks a question instead of playing a tone, and the page must show
the question and the agent's answer in its Conversation, and play the answer.
{%- endif %}

Without Chromium these tests are skipped, unless ``REQUIRE_BROWSER=1`` (CI) makes that a
failure. Install it with ``sudo apt-get install chromium`` (Debian/Ubuntu), or point
``CHROMIUM`` at another Chromium binary.
"""

from __future__ import annotations

import asyncio
{%- if cookiecutter.handler == "voice-agent" %}
import itertools
{%- else %}
import math
{%- endif %}
import os
import re
import secrets
import shutil
import signal
import time
import wave
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx
import numpy as np
import pytest
from playwright.async_api import (
    BrowserContext,
    FloatRect,
    Locator,
    Page,
    Route,
    ViewportSize,
    async_playwright,
)

from {{ cookiecutter.package_name }}.client import wait_until
from {{ cookiecutter.package_name }}.media import NO_OUTPUT_YET

from .conftest import CLIENT_RECEIVES, CLIENT_SENDS, MEDIA, SPEECH, first_output, listen, serve
{%- if cookiecutter.handler == "voice-agent" %}
from .voice_support import AUDIBLE_DBFS, KEY_WORDS, SENTENCE, spoken
{%- endif %}

CHROMIUM = os.environ.get("CHROMIUM") or shutil.which("chromium") or "/usr/bin/chromium"
PEER_TIMEOUT = 4.0
"""Short, for the vanished-browser test; not shorter: a page starved of CPU on a loaded machine
can miss consent checks for a couple of seconds while it is still there."""
FLAGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--use-fake-ui-for-media-stream",
    "--use-fake-device-for-media-stream",
]
# Keeps every RTCPeerConnection the page makes, to read its state and stats.
KEEP_PEERS = """
window.__peers = [];
const Native = window.RTCPeerConnection;
window.RTCPeerConnection = class extends Native {
  constructor(...args) { super(...args); window.__peers.push(this); }
};
"""
MEDIA_PACKETS = """async () => {
  const counts = {received: 0, sent: 0};
  for (const pc of window.__peers) {
    (await pc.getStats()).forEach((r) => {
      if (r.type === "inbound-rtp") counts.received += r.packetsReceived;
      if (r.type === "outbound-rtp") counts.sent += r.packetsSent;
    });
  }
  return counts;
}"""
# True once the page stopped every transceiver, which only the page itself does.
MEDIA_STOPPED = """
window.__peers.every((pc) => pc.getTransceivers().every((t) => t.direction === "stopped"))
"""
RECORD = 'button[aria-label="start stream"]'  # "Record", then "Stop"; not the footer's recorder
{%- if cookiecutter.handler != "voice-agent" %}
HEARD_DBFS = -50.0 if MEDIA["audio"] and MEDIA["video"] else -30.0
"""The least level the handler may report for the page's media: the tone is -13.5 dBFS, but
fastrtc's camera-and-microphone UI asks for the microphone with the browser's noise
suppression on, which takes a steady tone down to about -33 dBFS."""
{%- endif %}
PREVIEW_TRACKS = (MEDIA["audio"] + MEDIA["video"]) if MEDIA["video"] and CLIENT_SENDS else 0
"""The live tracks a camera UI's preview shows before it can stream (0: no preview)."""
START = RECORD if CLIENT_SENDS else 'button:text-is("Start Stream")'
"""What starts the stream: Record, or the Start Stream button of a UI that only receives (which
has no stop control: closing the page stops it)."""
ASKS_FOR_ACCESS = CLIENT_SENDS
"""Whether the page shows Record only once the person has let it use the microphone or the
camera: fastrtc's component asks first when it is laid out in the page (not full screen)."""
ACCESS = re.compile(r"^Click to Access (Microphone|Webcam)$")
"""The name of the button that asks for the microphone or the camera."""
RATE = 48_000
"""The sample rate of the microphone's file."""
NOTICE_WITHIN_S = 2.0
"""How long a page may take to act on the server's notice that it closed the connection."""
PAGE_CLOSES_WITHIN_S = 5.0
"""How long a page may take to close its peer after that notice (well under the ~30 s its
consent checks would take without it)."""
{%- if cookiecutter.handler == "voice-agent" %}
LEAD_S = 1.0
"""Silence before the question in the microphone's file."""
PAUSE_S = 8.0
"""Silence after it: Chromium plays the file in a loop, and the agent answers in the pause
(the question said again over the answer would stop it)."""
OUTPUT_WITHIN_S = 60.0
"""How long the agent may take to report a turn: Chromium may start the file mid-question, so
the first whole question can come a loop (``LEAD_S``, the question, ``PAUSE_S``) later, and the
machine may be loaded."""
{%- else %}
OUTPUT_WITHIN_S = 20.0
"""How long the handler may take to report an output."""
{%- endif %}

pytestmark = [pytest.mark.browser]

if not os.access(CHROMIUM, os.X_OK):
    reason = f"no Chromium at {CHROMIUM}: install it with 'sudo apt-get install chromium'"
    if os.environ.get("REQUIRE_BROWSER") == "1":
        raise RuntimeError(f"REQUIRE_BROWSER=1 but {reason}")
    pytestmark.append(pytest.mark.skip(reason=reason))


@pytest.fixture(scope="module")
def microphone(tmp_path_factory: pytest.TempPathFactory) -> Path:
{%- if cookiecutter.handler == "voice-agent" %}
    """``SENTENCE`` said by the offline synthesizer between silences (``LEAD_S``, ``PAUSE_S``),
    which Chromium plays (in a loop) as its microphone."""
    path = tmp_path_factory.mktemp("audio") / "question.wav"
    question = asyncio.run(spoken(SENTENCE))
    lead = np.zeros(int(RATE * LEAD_S), dtype=np.int16)
    pause = np.zeros(int(RATE * PAUSE_S), dtype=np.int16)
    samples = np.concatenate([lead, question, pause])
{%- else %}
    """A 440 Hz tone at -13.5 dBFS, which Chromium plays (in a loop) as its microphone.

    It talks and pauses like the test peers do (``SPEECH``), or else it is steady.
    """
    path = tmp_path_factory.mktemp("audio") / "tone.wav"
    t = np.arange(int(RATE * (SPEECH.cycle_s if SPEECH else 2))) / RATE
    samples = (0.3 * 32767 * np.sin(2 * math.pi * 440 * t)).astype(np.int16)
    if SPEECH:
        samples[t >= SPEECH.talk_s] = 0
{%- endif %}
    with wave.open(str(path), "wb") as out:
        out.setnchannels(1)
        out.setsampwidth(2)
        out.setframerate(RATE)
        out.writeframes(samples.tobytes())
    return path


@pytest.fixture(scope="module")
def artifacts() -> Path:
    """Where screenshots go (``ARTIFACTS_DIR``, default ``test-artifacts/``)."""
    path = Path(os.environ.get("ARTIFACTS_DIR", "test-artifacts"))
    path.mkdir(parents=True, exist_ok=True)
    return path


SERVER_LIMIT = 4
"""The server's concurrency limit, which is also that of the UI's outputs event."""


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    log = tmp_path_factory.mktemp("browser-server") / "server.log"
    limit = str(SERVER_LIMIT)
    with serve(log, APP_PEER_TIMEOUT=str(PEER_TIMEOUT), APP_CONCURRENCY_LIMIT=limit) as base:
        yield base


@pytest.fixture
async def http(server: str) -> AsyncIterator[httpx.AsyncClient]:
    # An outputs stream may be quiet for a while: a handler that waits for pauses reports
    # nothing between turns.
    timeout = httpx.Timeout(10, read=OUTPUT_WITHIN_S)
    async with httpx.AsyncClient(base_url=server, timeout=timeout) as client:
        yield client
        # Every test leaves the server as it found it.
        await wait_until(lambda: no_connections(client), within=PEER_TIMEOUT + 5)


@pytest.fixture
async def browser(microphone: Path, tmp_path: Path) -> AsyncIterator[BrowserContext]:
    async with async_playwright() as playwright:
        context = await playwright.chromium.launch_persistent_context(
            tmp_path / "profile",  # a fresh, empty profile
            executable_path=CHROMIUM,
            headless=True,
            args=[*FLAGS, f"--use-file-for-fake-audio-capture={microphone}"],
        )
        await context.add_init_script(KEEP_PEERS)
        try:
            yield context
        finally:
            await context.close()


async def no_connections(http: httpx.AsyncClient) -> bool:
    return bool((await http.get("/connections")).json() == [])


async def start_streaming(browser: BrowserContext, server: str) -> Page:
    """Open the UI, start the stream, and wait until the browser's peer is connected."""
    page = await browser.new_page()
    await page.goto(f"{server}/ui/")
    await start_on(page)
    return page


async def start_on(page: Page) -> None:
    """Start the stream on an open page, and wait until the browser's peer is connected."""
    if ASKS_FOR_ACCESS:
        await page.get_by_role("button", name=ACCESS).click(timeout=30_000)
    if PREVIEW_TRACKS:
        # A person presses Record once their camera shows: fastrtc's camera UI sends an offer
        # without the media if pressed before its preview has every track.
        await page.wait_for_function(
            "[...document.querySelectorAll('video')].some((v) => v.srcObject && v.srcObject"
            f".getTracks().filter((t) => t.readyState === 'live').length >= {PREVIEW_TRACKS})",
            timeout=15_000,
        )
    await page.locator(START).click()
    await page.wait_for_function(
        "window.__peers.some((pc) => pc.connectionState === 'connected')", timeout=15_000
    )


async def the_connection(http: httpx.AsyncClient) -> dict[str, Any]:
    """The one connection the server lists, once it is connected there too."""

    async def connected() -> bool:
        listed = (await http.get("/connections")).json()
        return len(listed) == 1 and listed[0]["state"] == "connected"

    await wait_until(connected)
    (connection,) = (await http.get("/connections")).json()
    return dict(connection)


async def test_a_ui_connection_is_first_class(
    browser: BrowserContext, server: str, http: httpx.AsyncClient, artifacts: Path
) -> None:
    page = await start_streaming(browser, server)

    # Listed, with its source, and reachable by id.
    connection = await the_connection(http)
    assert connection["source"] == "ui"
    connection_id = connection["id"]
    one = await http.get(f"/connections/{connection_id}")
    assert one.status_code == 200
    assert one.json() == connection

    # Media flows its way (RTP packets in the browser) and the handler reports its level.
    flowing = " && ".join(["c.received > 50"] * CLIENT_RECEIVES + ["c.sent > 50"] * CLIENT_SENDS)
    await page.wait_for_function(
        f"({MEDIA_PACKETS})().then((c) => {flowing})", timeout=OUTPUT_WITHIN_S * 1000
    )
{%- if cookiecutter.handler == "voice-agent" %}
    # The agent heard the page's speech: a turn, answered in audio.
    async with asyncio.timeout(OUTPUT_WITHIN_S):
        heard = await first_output(http, connection_id, gain=1.0, done=True)
    assert heard["error"] is None, heard
    assert heard["frames"] > 0, heard
{%- else %}
    async with asyncio.timeout(OUTPUT_WITHIN_S):
        heard = await first_output(http, connection_id, gain=1.0)
    assert heard["frames"] > 0
    assert heard["level_dbfs"] > HEARD_DBFS, heard  # the tone or the images, not silence
{%- endif %}

    if SPEECH is None:
        # Input set through the API reaches the UI connection's handler.
        response = await http.post(f"/connections/{connection_id}/input", json={"gain": 0})
        assert response.status_code == 204
    else:
        # A handler that waits for pauses asks the page for its controls at every pause, so
        # the page's own slider decides (input set through the API lasts until then).
        gain = page.get_by_label("number input for Gain")
        await gain.fill("0")
        await gain.press("Enter")
    # Its output comes back (after the next pause, for a handler that waits for them).
    async with asyncio.timeout(OUTPUT_WITHIN_S):
        silenced = await first_output(http, connection_id, gain=0.0)
    assert silenced["level_dbfs"] == -120.0

    # The UI shows the handler's output too.
    level = page.get_by_label("Level (dBFS)")
    await wait_until(lambda: level_shows(level, "-120"), within=OUTPUT_WITHIN_S)
    await page.screenshot(path=artifacts / "ui-streaming.png", full_page=True)

    # Stop (or, where the UI has no stop control, closing the page) releases it promptly.
    started = time.monotonic()
    if CLIENT_SENDS:
        await page.locator(RECORD).click()
    else:
        await page.close()
    await wait_until(lambda: no_connections(http), within=3)
    print(f"Stop -> gone from /connections in {time.monotonic() - started:.2f} s")


async def level_shows(level: Any, value: str) -> bool:
    return bool(await level.input_value() == value)


async def test_a_page_gets_its_outputs_while_others_call_the_queue_api(
    browser: BrowserContext, server: str, http: httpx.AsyncClient
) -> None:
    # Listeners for ids that are no connection once held every slot of the outputs event.
    for n in range(2 * SERVER_LIMIT):
        await listen(http, f"no-such-connection-{n}", secrets.token_hex(8))
    page = await start_streaming(browser, server)
    await the_connection(http)

    level = page.get_by_label("Level (dBFS)")
    await wait_until(lambda: level_shows_a_number(level), within=OUTPUT_WITHIN_S)
    await page.locator(START).click() if CLIENT_SENDS else await page.close()


async def level_shows_a_number(level: Any) -> bool:
    shown = await level.input_value()
    return bool(shown) and shown != "0"


async def test_the_page_learns_at_once_that_the_server_closed_it(
    browser: BrowserContext, server: str, http: httpx.AsyncClient
) -> None:
    page = await start_streaming(browser, server)
    connection = await the_connection(http)

    started = time.monotonic()
    response = await http.delete(f"/connections/{connection['id']}")
    assert response.status_code == 204
    if not CLIENT_SENDS:
        # fastrtc's page that only receives has no stop control, and does not act on the
        # server's notice: its peer ends with its consent checks.
        return
    # The page acts on the notice at once: it stops its transceivers (only the page can).
    await page.wait_for_function(MEDIA_STOPPED, timeout=NOTICE_WITHIN_S * 1000)
    print(f"DELETE -> the page stopped its media in {time.monotonic() - started:.2f} s")
    # fastrtc's page then closes its peer on a 500 ms timer, which a busy browser runs late;
    # without the notice it would wait for its consent checks to fail (about 30 s).
    await page.wait_for_function(
        "window.__peers.every((pc) => pc.connectionState !== 'connected')",
        timeout=PAGE_CLOSES_WITHIN_S * 1000,
    )
    print(f"DELETE -> the page's peer ended in {time.monotonic() - started:.2f} s")
    # Its button says Record again, for a new stream.
    await page.locator(RECORD).get_by_text("Record").wait_for(timeout=PAGE_CLOSES_WITHIN_S * 1000)


async def test_closing_the_page_releases_it_at_once(
    browser: BrowserContext, server: str, http: httpx.AsyncClient
) -> None:
    page = await start_streaming(browser, server)
    await the_connection(http)

    started = time.monotonic()
    await page.close()

    await wait_until(lambda: no_connections(http), within=3)
    print(f"page closed -> gone from /connections in {time.monotonic() - started:.2f} s")


async def test_a_vanished_browser_is_dropped_after_the_peer_timeout(
    browser: BrowserContext, server: str, http: httpx.AsyncClient, tmp_path: Path
) -> None:
    await start_streaming(browser, server)
    await the_connection(http)

    started = time.monotonic()
    kill_chromium_using(tmp_path / "profile")  # no pagehide, no goodbye: the peer just stops

    await wait_until(lambda: no_connections(http), within=PEER_TIMEOUT + 4)
    elapsed = time.monotonic() - started
    print(f"browser killed -> gone from /connections in {elapsed:.2f} s")
    assert elapsed > PEER_TIMEOUT * 0.5  # it was the timeout, not a goodbye


def kill_chromium_using(profile: Path) -> None:
    """SIGKILL every Chromium process started with ``profile`` as its user-data dir."""
    killed = 0
    for proc in Path("/proc").iterdir():
        try:
            cmdline = (proc / "cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        if proc.name.isdigit() and f"--user-data-dir={profile}".encode() in cmdline:
            os.kill(int(proc.name), signal.SIGKILL)
            killed += 1
    assert killed, "found no Chromium process to kill"
{%- if cookiecutter.handler == "voice-agent" %}


CONVERSATION = """() => [...document.querySelectorAll('[data-testid="user"], [data-testid="bot"]')]
  .map((message) => [message.dataset.testid, message.innerText.trim()])"""
"""The Conversation's messages, in order, as ``[role, text]`` (role: "user" or "bot")."""
REMOTE_AUDIO = """[...document.querySelectorAll('audio')].some((a) => a.srcObject
  && a.srcObject.getAudioTracks().some((t) => t.readyState === 'live'))"""
"""Whether the page has the agent's audio: fastrtc plays the peer's stream in an <audio>."""
# Measures what the page's <audio> plays every 50 ms into window.__heard: [page ms, dBFS].
MEASURE_REMOTE_AUDIO = """async () => {
  const audio = [...document.querySelectorAll('audio')].find((a) => a.srcObject
    && a.srcObject.getAudioTracks().length);
  const context = new AudioContext();
  const analyser = context.createAnalyser();
  analyser.fftSize = 2048;
  context.createMediaStreamSource(audio.srcObject).connect(analyser);
  const mute = context.createGain();
  mute.gain.value = 0;
  analyser.connect(mute).connect(context.destination);  // pulled by the graph, heard by none
  const samples = new Float32Array(analyser.fftSize);
  window.__heard = [];
  setInterval(() => {
    analyser.getFloatTimeDomainData(samples);
    const rms = Math.sqrt(samples.reduce((sum, x) => sum + x * x, 0) / samples.length);
    window.__heard.push([performance.now(), rms > 0 ? Math.max(-120, 20 * Math.log10(rms)) : -120]);
  }, 50);
  await context.resume();
  return context.state;
}"""
LOUD_SINCE = f"""(since) => window.__heard
  .filter(([at, level]) => at >= since && level > {AUDIBLE_DBFS}).length"""
"""How many of the page's audio measures since ``since`` (page ms) are the agent speaking."""
HEARD_REPLY = 10
"""Loud measures (50 ms apart) that make the answer heard: half a second of it."""
REPLY_LAG_MS = 2_000
"""How long before the page shows the question its answer's audio may start: the Conversation
is updated through Gradio's queue, the audio comes over WebRTC. The answer to the question
before ended long before (``PAUSE_S``)."""


def asks(message: list[str]) -> bool:
    """Whether ``message`` is the speaker's, with the question's key words."""
    role, text = message
    return role == "user" and set(KEY_WORDS) <= set(text.lower().replace(".", " ").split())


def answered(conversation: list[list[str]]) -> bool:
    """Whether ``conversation`` has the question and, next, the agent's answer to it."""
    return any(
        asks(message) and reply[0] == "bot" and reply[1].startswith("You said")
        for message, reply in itertools.pairwise(conversation)
    )


@pytest.mark.timeout(OUTPUT_WITHIN_S + 120)
async def test_a_spoken_question_is_answered_in_the_page(
    browser: BrowserContext, server: str, http: httpx.AsyncClient, artifacts: Path
) -> None:
    page = await start_streaming(browser, server)
    await the_connection(http)
    await page.wait_for_function(REMOTE_AUDIO, timeout=15_000)
    assert await page.evaluate(MEASURE_REMOTE_AUDIO) == "running"

    # The Conversation shows the question, then the agent's answer.
    started = time.monotonic()
    asked_at: float | None = None
    conversation: list[list[str]] = []
    while not answered(conversation) and time.monotonic() - started < OUTPUT_WITHIN_S:
        await asyncio.sleep(0.1)
        conversation = await page.evaluate(CONVERSATION)
        if asked_at is None and any(map(asks, conversation)):
            asked_at = await page.evaluate("performance.now()")
    assert answered(conversation), conversation
    assert asked_at is not None
    print(f"Record -> answer shown in {time.monotonic() - started:.1f} s: {conversation}")

    # Its audio reaches the page: the agent speaks in the page's <audio>.
    since = asked_at - REPLY_LAG_MS
    await page.wait_for_function(
        f"({LOUD_SINCE})({since}) >= {HEARD_REPLY}", timeout=20_000, polling=100
    )
    await page.screenshot(path=artifacts / "ui-voice-agent.png", full_page=True)

    await page.locator(RECORD).click()
    await wait_until(lambda: no_connections(http), within=5)
{%- endif %}


OFFER = "/webrtc/offer"
CLIENT_OUTPUT = '#outputs [data-output="{}"]'
"""Where the plain client shows an output's field."""


async def client_shows(page: Page, field: str, value: str) -> None:
    """Wait until the plain client shows ``value`` for the output's ``field``."""
    shown = page.locator(CLIENT_OUTPUT.format(field)).get_by_text(value, exact=True)
    await shown.wait_for(timeout=OUTPUT_WITHIN_S * 1000)


async def test_the_plain_client_page_streams_sets_input_and_hangs_up(
    browser: BrowserContext, server: str, http: httpx.AsyncClient, artifacts: Path
) -> None:
    page = await browser.new_page()
    page_errors: list[str] = []
    page.on("pageerror", lambda error: page_errors.append(str(error)))
    offered: list[int] = []  # the statuses of the offer and of its trickled ICE candidates
    page.on("response", lambda r: offered.append(r.status) if r.url.endswith(OFFER) else None)
    await page.goto(f"{server}/client/")
    gain = page.locator('#input [name="gain"]')  # the form is built from the API's schema
    await gain.wait_for(timeout=10_000)
    await page.get_by_role("button", name="Connect").click()
    await page.wait_for_function(
        "window.__peers.some((pc) => pc.connectionState === 'connected')", timeout=15_000
    )

    # The app lists it as an API connection, and media flows its way.
    connection = await the_connection(http)
    assert connection["source"] == "api"
    flowing = " && ".join(["c.received > 50"] * CLIENT_RECEIVES + ["c.sent > 50"] * CLIENT_SENDS)
    await page.wait_for_function(
        f"({MEDIA_PACKETS})().then((c) => {flowing})", timeout=OUTPUT_WITHIN_S * 1000
    )

    # The handler's outputs arrive in the page, from the outputs event stream.
    await client_shows(page, "gain", "1")
    assert int(await page.locator(CLIENT_OUTPUT.format("frames")).inner_text()) > 0

    # A value the API refuses shows its error: status, code and detail.
    await gain.fill("9")
    await page.get_by_role("button", name="Set input").click()
    await page.locator("#error").get_by_text("422 invalid_request").wait_for(timeout=5_000)

    # A value it takes reaches the handler, which reports it in force.
    await gain.fill("0.5")
    await page.get_by_role("button", name="Set input").click()
    await client_shows(page, "gain", "0.5")
    assert await page.locator("#error").inner_text() == ""
    await page.screenshot(path=artifacts / "client.png", full_page=True)
    assert len(offered) > 1, offered  # candidates trickled, after the answer
    assert set(offered) == {200}, offered

    # Hang up closes the peer, and the server frees the connection at once.
    started = time.monotonic()
    await page.get_by_role("button", name="Hang up").click()
    await wait_until(lambda: no_connections(http), within=3)
    print(f"Hang up -> gone from /connections in {time.monotonic() - started:.2f} s")
    assert page_errors == []


async def test_the_api_docs_render_offline(
    browser: BrowserContext, server: str, artifacts: Path
) -> None:
    """Swagger UI and ReDoc render the API from the app alone: every request to any other
    host is refused, as it would fail offline."""
    elsewhere: list[str] = []

    async def only_the_app(route: Route) -> None:
        if urlsplit(route.request.url).hostname == "127.0.0.1":
            await route.continue_()
        else:
            elsewhere.append(route.request.url)
            await route.abort("internetdisconnected")

    await browser.route("**/*", only_the_app)
    async with httpx.AsyncClient(base_url=server) as http:
        schema = (await http.get("/openapi.json")).json()
    operations = [
        (operation["tags"][0], operation["operationId"])
        for item in schema["paths"].values()
        for operation in item.values()
    ]
    page = await browser.new_page()

    await page.goto(f"{server}/docs")
    for tag, operation_id in operations:  # Swagger UI's id for each operation's block
        await page.locator(f"#operations-{tag}-{operation_id}.opblock").wait_for(timeout=15_000)
    assert await page.locator(".opblock").count() == len(operations)
    await page.screenshot(path=artifacts / "api-docs.png", full_page=True)
    assert elsewhere == []

    await page.goto(f"{server}/redoc")
    for _, operation_id in operations:  # ReDoc's section of each operation
        section = page.locator(f'[data-section-id$="operation/{operation_id}"]')
        await section.first.wait_for(state="attached", timeout=15_000)
    await page.screenshot(path=artifacts / "api-redoc.png", full_page=True)
    # ReDoc shows its own logo from its CDN, which is missing offline; the page renders.
    assert {urlsplit(url).hostname for url in elsewhere} <= {"cdn.redoc.ly"}, elsewhere


VIEWPORTS: dict[str, ViewportSize] = {
    "desktop": {"width": 1280, "height": 800},
    "phone": {"width": 390, "height": 844},
}
"""The screens the page must fit at load: a laptop's and a phone's."""
CONTROLS = ["number input for Gain", "range slider for Gain"{% if cookiecutter.handler == "voice-agent" %}, "System prompt", "Voice"{% endif %}]
"""The labels of the page's controls (the handler's input)."""
FIGURES = ["Frames", "Level (dBFS)"]
"""The labels of the page's figures (the handler's outputs)."""


@pytest.mark.parametrize("screen", VIEWPORTS)
async def test_the_page_shows_its_start_controls_and_figures_at_load(
    browser: BrowserContext, server: str, http: httpx.AsyncClient, artifacts: Path, screen: str
) -> None:
    page = await browser.new_page()
    await page.set_viewport_size(VIEWPORTS[screen])
    await page.goto(f"{server}/ui/")
    start = page.get_by_role("button", name=ACCESS) if ASKS_FOR_ACCESS else page.locator(START)
    await start.wait_for()

    # In view without opening or scrolling anything, the figures empty ("—") until an output.
    shown = [start, *(page.get_by_label(label, exact=True) for label in CONTROLS + FIGURES)]
    for element in shown:
        box = await element.bounding_box()
        assert in_view(box, VIEWPORTS[screen]), (element, box)
    for label in FIGURES:
        figure = page.get_by_label(label, exact=True)
        assert await figure.input_value() == "", label
        assert await figure.get_attribute("placeholder") == NO_OUTPUT_YET, label
    await page.screenshot(path=artifacts / f"ui-at-load-{screen}.png")
{%- if cookiecutter.handler != "voice-agent" %}

    # Once the stream runs, they show the handler's numbers.
    await start_on(page)
    frames, level = (page.get_by_label(label, exact=True) for label in FIGURES)
    await wait_until(lambda: shows_a_count(frames), within=OUTPUT_WITHIN_S)
    await wait_until(lambda: level_shows_a_number(level), within=OUTPUT_WITHIN_S)
    await page.locator(START).click() if CLIENT_SENDS else await page.close()
{%- endif %}


def in_view(box: FloatRect | None, viewport: ViewportSize) -> bool:
    """Whether ``box`` (an element's, on the page) lies wholly inside ``viewport``."""
    return (
        box is not None
        and box["x"] >= 0
        and box["y"] >= 0
        and box["x"] + box["width"] <= viewport["width"]
        and box["y"] + box["height"] <= viewport["height"]
    )


async def shows_a_count(figure: Locator) -> bool:
    shown = await figure.input_value()
    return shown.isdigit() and int(shown) > 0
