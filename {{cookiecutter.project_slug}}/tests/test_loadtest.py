"""The load generator: its echo timing is a measurement, and its report holds real numbers{% if cookiecutter.handler == "voice-agent" %}:
every spoken turn timed, by the peer and by the server's stages{% endif %}."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

from {{ cookiecutter.package_name }}.client import Door
from {{ cookiecutter.package_name }}.loadtest import {% if cookiecutter.handler == "voice-agent" %}STAGES, {% endif %}doors_for, main, percentile
from {{ cookiecutter.package_name }}.loadtest_peer import EchoTimer, PulseTrack
{%- if cookiecutter.handler == "voice-agent" %}
from {{ cookiecutter.package_name }}.loadtest_voice import TURN_TIMEOUT_S
{%- endif %}

from .conftest import DOORS, SERVERS


async def play_back(delay: float, drop: set[int]) -> EchoTimer:
    """Two seconds of a ``PulseTrack`` played back ``delay`` s late, less the frames ``drop``."""
    track = PulseTrack()
    timer = EchoTimer(track)
    loop = asyncio.get_running_loop()
    for n in range(100):  # bursts at frames 0, 25, 50 and 75
        frame = await track.recv()
        if n not in drop:
            loop.call_later(delay, timer.on_frame, frame)
    await asyncio.sleep(delay + 0.1)
    track.stop()
    return timer


async def test_echo_timer_measures_a_known_delay_and_loss() -> None:
    """No network between: the timer must find the delay and the frames left out."""
    timer = await play_back(0.12, drop={10, 30, 31})

    assert len(timer.round_trips) == 4
    median = percentile(timer.round_trips, 50)
    assert median is not None
    assert 0.115 < median < 0.18  # the delay, plus what the event loop adds when busy
    assert timer.lost() == (75, 3)  # from the first burst to the last, three frames short


def test_doors_are_mixed_on_request() -> None:
    assert doors_for(4, 0.0) == [Door.API] * 4
    assert doors_for(4, 0.5).count(Door.UI) == 2
    assert doors_for(3, 1.0) == [Door.UI] * 3
{%- if cookiecutter.handler == "voice-agent" %}


def test_a_voice_run_against_the_live_server_times_every_turn(
    live_server: str, tmp_path: Path
) -> None:
    out = tmp_path / "report.json"
    ui_share = 0.5 if Door.UI in DOORS else 0.0
    peers, turns = 2, 2

    code = main(
        [
            "--url",
            live_server,
            "--peers",
            str(peers),
            "--turns",
            str(turns),
            "--pause",
            "0.5",
            "--ui-share",
            str(ui_share),
            "--out",
            str(out),
            "--quiet",
        ]
    )

    report = json.loads(out.read_text())
    assert code == 0, report["errors"]
    assert report["errors"] == []
    assert {p["door"] for p in report["per_peer"]} == {door.value for door in DOORS}
    taken = report["turns"]
    assert (taken["planned"], taken["completed"], taken["failed"]) == (4, 4, 0)
    assert 0 <= taken["misheard"] <= 4  # the offline recognizer may miss a word under load
    assert report["connect_ms"]["count"] == peers
    # each turn timed by the peer: from the end of its speech to the reply it heard
    reply = report["reply_ms"]
    assert reply["count"] == peers * turns
    assert 0 < reply["p50"] <= reply["p95"] < TURN_TIMEOUT_S * 1000
    stages = report["stages_ms"]
    assert [stages[stage]["count"] for stage in STAGES] == [peers * turns] * len(STAGES)
    for peer in report["per_peer"]:
        for turn in peer["turns"]:
            latency = turn["latency"]
            assert 0 < latency["transcribed"] <= latency["first_token"]
            assert latency["first_token"] <= latency["first_synthesized"] <= latency["first_audio"]
            # the peer's end of speech comes before the pause the server detects
            assert turn["reply_s"] > latency["first_audio"]
            assert turn["reply"]  # spoken, and heard
    server = report["server"]
    assert server["pid"] == SERVERS[live_server].pid  # found by its port
    assert server["cpu_percent"] > 0
    assert server["rss_mib_peak"] > 50
{%- else %}


def test_a_run_against_the_live_server_reports_every_number(
    live_server: str, tmp_path: Path
) -> None:
    out = tmp_path / "report.json"
    ui_share = 0.5 if Door.UI in DOORS else 0.0
    peers, duration = 2, 3.0

    code = main(
        [
            "--url",
            live_server,
            "--peers",
            str(peers),
            "--duration",
            str(duration),
            "--ui-share",
            str(ui_share),
            "--out",
            str(out),
            "--quiet",
        ]
    )

    report = json.loads(out.read_text())
    assert code == 0, report["errors"]
    assert report["errors"] == []
    assert {p["door"] for p in report["per_peer"]} == {door.value for door in DOORS}
    assert report["connect_ms"]["count"] == peers
    assert 0 < report["connect_ms"]["p50"] <= report["connect_ms"]["p95"] < 10_000
    # a burst every 0.5 s, each timed by its echo: the echo of real audio through the server
    assert report["echo_ms"]["count"] >= peers * (duration / 0.5 - 1)
    assert 20 < report["echo_ms"]["p50"] <= report["echo_ms"]["p95"] < 1_000
    frames = report["frames"]
    assert frames["sent"] >= peers * duration * 50 * 0.9  # 20 ms frames
    assert frames["counted"] >= peers * (duration - 1) * 50  # from the first echo to the last
    assert frames["lost_percent"] < 5
    server = report["server"]
    assert server["pid"] == SERVERS[live_server].pid  # found by its port
    assert server["cpu_percent"] > 0
    assert server["rss_mib_peak"] > 50
{%- endif %}
