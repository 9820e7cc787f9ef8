"""A load generator: real WebRTC peers against a running app, and the numbers that matter.
{%- if cookiecutter.handler == "voice-agent" %}

    python -m {{ cookiecutter.package_name }}.loadtest --peers 4 --turns 5   (or: make loadtest)

Each peer connects through the API (``POST /webrtc/offer``) or, for a share of them
(``--ui-share``), through the Gradio UI's offer route, like ``client.py`` does. In the voice
scenario (the default) it then says a sentence, waits for the spoken reply to end, pauses and
says it again, ``--turns`` times (``loadtest_voice.py``); in the echo scenario (``--scenario
echo``, for a handler that sends back what it hears) it streams audio for ``--duration``
seconds: tone bursts whose echo is timed and whose frames are counted (``loadtest_peer.py``).

Reported per run: offer-to-connected times (p50, p95); for the voice scenario, the end of each
turn's speech to the first audible reply audio as the peers hear it, and each stage's share
as the server reports it (transcribed, first model token, first synthesized audio, first
audio sent), p50 and p95, turns completed, failed, and misheard; for the echo scenario, echo
round-trip times, frames sent, received and lost; errors, and the server's CPU and memory
{%- else %}

    python -m {{ cookiecutter.package_name }}.loadtest --peers 10 --duration 10   (or: make loadtest)

Each peer connects through the API (``POST /webrtc/offer``) or, for a share of them
(``--ui-share``), through the Gradio UI's offer route, like ``client.py`` does, then streams
audio for ``--duration`` seconds: tone bursts whose echo is timed and whose frames are
counted (``loadtest_peer.py``).

Reported per run: offer-to-connected and echo round-trip times (p50, p95), frames sent,
received and lost, errors, and the server's CPU and memory
{%- endif %}
when it runs on this machine (``loadtest_server.py``: found by ``--server-pid`` or by the port
it listens on). A progress line is printed every second; the result is written as JSON
(``--out``) and printed as a table. With ``--network`` each peer delays and drops its own
datagrams, both ways, as a LAN or the internet would (``loadtest_network.py``).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import math
import sys
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import asdict
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx
import numpy as np

from .client import Door, new_connection_id
{%- if cookiecutter.handler == "voice-agent" %}
from .handlers.io import TurnLatency
{%- endif %}
from .loadtest_network import NETWORKS, Network
from .loadtest_peer import PeerResult, run_peer
from .loadtest_server import ServerSample, listening_pid, sample_server, server_usage
{%- if cookiecutter.handler == "voice-agent" %}
from .loadtest_voice import SENTENCE, VoicePeerResult, run_voice_peer, spoken

STAGES = tuple(TurnLatency.model_fields)
"""The server's stages of a turn, in order: transcribed, first_token, first_synthesized,
first_audio (``Stats.latency``)."""
{%- endif %}


def percentile(values: list[float], p: float) -> float | None:
    """The nearest-rank ``p`` percentile (0-100) of ``values``; ``None`` if there are none."""
    if not values:
        return None
    return float(np.percentile(values, p, method="inverted_cdf"))


def ms(seconds: float | None) -> float | None:
    """Seconds as milliseconds, to a tenth."""
    return None if seconds is None else round(seconds * 1000, 1)


def doors_for(peers: int, ui_share: float) -> list[Door]:
    """``peers`` doors, ``ui_share`` of them the UI, spread evenly through the list."""
    return [
        Door.UI if math.floor((n + 1) * ui_share) > math.floor(n * ui_share) else Door.API
        for n in range(peers)
    ]


def local_pid(url: str, server_pid: int | None) -> int | None:
    """``server_pid``, or else the pid of the local server at ``url``, if it is local."""
    if server_pid is None and urlsplit(url).hostname in ("127.0.0.1", "localhost", "::1"):
        return listening_pid(urlsplit(url).port or 80)
    return server_pid


@contextlib.asynccontextmanager
async def watching(
    server_pid: int | None, progress: Callable[[], str] | None
) -> AsyncIterator[list[ServerSample]]:
    """While the body runs: the server sampled every second and, with ``progress``, its line
    printed; the samples, a last one taken at the end."""
    samples: list[ServerSample] = []
    started = time.monotonic()

    def report_progress() -> None:
        if progress is not None:
            line = f"[{time.monotonic() - started:5.1f}s] {progress()}"
            print(line, file=sys.stderr, flush=True)

    async def watch() -> None:
        while True:
            if server_pid is not None and (sample := sample_server(server_pid)):
                samples.append(sample)
            report_progress()
            await asyncio.sleep(1.0)

    watcher = asyncio.create_task(watch())
    try:
        yield samples
    finally:
        watcher.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await watcher
    if server_pid is not None and (sample := sample_server(server_pid)):
        samples.append(sample)
    report_progress()


async def run(
    url: str,
    peers: int,
    duration: float,
    ui_share: float = 0.0,
    ui_path: str = "/ui",
    server_pid: int | None = None,
    progress: bool = True,
    ramp: float = 0.0,
    network: str = "loopback",
) -> dict[str, Any]:
    """Run the echo load and return the report (what ``--out`` holds).

    The peers connect at once, or one after another spread over ``ramp`` seconds, each
    through the emulated ``network`` (a name in ``NETWORKS``).
    """
    server_pid = local_pid(url, server_pid)
    profile = NETWORKS[network]
    results = [PeerResult(new_connection_id(), door.value) for door in doors_for(peers, ui_share)]

    def progress_line() -> str:
        connected = sum(r.connect_s is not None for r in results)
        return (
            f"connected {connected}/{peers}"
            f"  frames sent {sum(r.frames_sent for r in results)}"
            f"  received {sum(r.frames_received for r in results)}"
            f"  echoes {sum(len(r.echo_s) for r in results)}"
            f"  errors {sum(r.error is not None for r in results)}"
        )

    limits = httpx.Limits(max_connections=max(10, peers))
    async with (
        httpx.AsyncClient(base_url=url, timeout=60, limits=limits) as http,
        watching(server_pid, progress_line if progress else None) as samples,
    ):
        await asyncio.gather(
            *(
                run_peer(http, Door(r.door), duration, ui_path, r, n * ramp / peers, profile, n)
                for n, r in enumerate(results)
            )
        )
    return summarize(url, peers, duration, ui_share, profile, server_pid, results, samples)


def summarize(
    url: str,
    peers: int,
    duration: float,
    ui_share: float,
    network: Network,
    server_pid: int | None,
    results: list[PeerResult],
    samples: list[ServerSample],
) -> dict[str, Any]:
    """The report of a run, from what each peer measured and the server's samples."""
    connects = [r.connect_s for r in results if r.connect_s is not None]
    echoes = [s for r in results for s in r.echo_s]
    counted = sum(r.frames_counted for r in results)
    lost = sum(r.frames_lost for r in results)
    return {
        "url": url,
        "peers": peers,
        "duration_s": duration,
        "ui_share": ui_share,
        "network": asdict(network),
        "connect_ms": _p50_p95_ms(connects),
        "echo_ms": _p50_p95_ms(echoes),
        "frames": {
            "sent": sum(r.frames_sent for r in results),
            "received": sum(r.frames_received for r in results),
            "counted": counted,
            "lost": lost,
            "lost_percent": round(100 * lost / counted, 2) if counted else None,
        },
        "server": server_usage(server_pid, samples),
        "errors": [f"{r.connection_id}: {r.error}" for r in results if r.error],
        "per_peer": [asdict(r) | {"echo_s": [round(s, 4) for s in r.echo_s]} for r in results],
    }
{%- if cookiecutter.handler == "voice-agent" %}


async def run_voice(
    url: str,
    peers: int,
    turns: int,
    pause: float = 1.0,
    ui_share: float = 0.0,
    ui_path: str = "/ui",
    server_pid: int | None = None,
    progress: bool = True,
    ramp: float = 0.0,
    network: str = "loopback",
) -> dict[str, Any]:
    """Run the voice load and return the report (what ``--out`` holds).

    Each peer says ``SENTENCE`` ``turns`` times, ``pause`` s after each reply; the peers
    connect at once, or one after another spread over ``ramp`` seconds, each through the
    emulated ``network`` (a name in ``NETWORKS``).
    """
    server_pid = local_pid(url, server_pid)
    profile = NETWORKS[network]
    clip = await spoken(SENTENCE)
    results = [
        VoicePeerResult(new_connection_id(), door.value) for door in doors_for(peers, ui_share)
    ]

    def progress_line() -> str:
        taken = [t for r in results for t in r.turns]
        return (
            f"connected {sum(r.connect_s is not None for r in results)}/{peers}"
            f"  turns {len(taken)}/{peers * turns}"
            f"  failed {sum(t.error is not None for t in taken)}"
            f"  peer errors {sum(r.error is not None for r in results)}"
        )

    # each peer holds an offer and its outputs' event stream
    limits = httpx.Limits(max_connections=max(10, 2 * peers + 2))
    async with (
        httpx.AsyncClient(base_url=url, timeout=60, limits=limits) as http,
        watching(server_pid, progress_line if progress else None) as samples,
    ):
        await asyncio.gather(
            *(
                run_voice_peer(
                    http, Door(r.door), clip, turns, pause, ui_path, r, n * ramp / peers, profile, n
                )
                for n, r in enumerate(results)
            )
        )
    return summarize_voice(url, turns, ui_share, profile, server_pid, results, samples)


def summarize_voice(
    url: str,
    turns: int,
    ui_share: float,
    network: Network,
    server_pid: int | None,
    results: list[VoicePeerResult],
    samples: list[ServerSample],
) -> dict[str, Any]:
    """The report of a voice run, from what each peer measured and the server's samples."""
    taken = [t for r in results for t in r.turns]
    latencies = [t.latency for t in taken if t.latency is not None]
    errors = [f"{r.connection_id}: {r.error}" for r in results if r.error]
    errors += [
        f"{r.connection_id} turn {t.turn}: {t.error}" for r in results for t in r.turns if t.error
    ]
    return {
        "scenario": "voice",
        "url": url,
        "peers": len(results),
        "turns_per_peer": turns,
        "sentence": SENTENCE,
        "ui_share": ui_share,
        "network": asdict(network),
        "connect_ms": _p50_p95_ms([r.connect_s for r in results if r.connect_s is not None]),
        "reply_ms": _p50_p95_ms([t.reply_s for t in taken if t.reply_s is not None]),
        "stages_ms": {
            stage: _p50_p95_ms([lat[stage] for lat in latencies if lat[stage] is not None])
            for stage in STAGES
        },
        "turns": {
            "planned": len(results) * turns,
            "completed": sum(t.error is None for t in taken),
            "failed": sum(t.error is not None for t in taken),
            "misheard": sum(not t.heard_key_words for t in taken),
        },
        "server": server_usage(server_pid, samples),
        "errors": errors,
        "per_peer": [asdict(r) for r in results],
    }
{%- endif %}


def _p50_p95_ms(seconds: list[float]) -> dict[str, Any]:
    return {
        "p50": ms(percentile(seconds, 50)),
        "p95": ms(percentile(seconds, 95)),
        "count": len(seconds),
    }


def table(report: dict[str, Any]) -> str:
    """The report as a table for people."""
    frames = report["frames"]
    rows = [
        (
            "peers",
            f"{report['peers']} for {report['duration_s']} s (UI share {report['ui_share']})",
        ),
        ("network", Network(**report["network"]).describe()),
        ("offer -> connected", _p50_p95(report["connect_ms"])),
        ("echo round trip", _p50_p95(report["echo_ms"])),
        (
            "frames",
            f"sent {frames['sent']}, received {frames['received']}, "
            f"lost {frames['lost']} of {frames['counted']} counted ({frames['lost_percent']} %)",
        ),
    ]
    return _lines(rows, report)
{%- if cookiecutter.handler == "voice-agent" %}


def voice_table(report: dict[str, Any]) -> str:
    """The voice report as a table for people."""
    turns = report["turns"]
    rows = [
        (
            "peers",
            f"{report['peers']} x {report['turns_per_peer']} turns (UI share {report['ui_share']})",
        ),
        ("network", Network(**report["network"]).describe()),
        ("offer -> connected", _p50_p95(report["connect_ms"])),
        ("end of speech -> reply heard", _p50_p95(report["reply_ms"])),
        *((f"pause detected -> {stage}", _p50_p95(report["stages_ms"][stage])) for stage in STAGES),
        (
            "turns",
            f"{turns['completed']} of {turns['planned']} completed, {turns['failed']} failed, "
            f"{turns['misheard']} misheard",
        ),
    ]
    return _lines(rows, report)
{%- endif %}


def _lines(rows: list[tuple[str, str]], report: dict[str, Any]) -> str:
    """``rows``, then the server's usage and the errors, aligned."""
    server = report["server"]
    rows += [
        (
            "server",
            f"pid {server['pid']}: CPU {server['cpu_percent']} %, "
            f"RSS {server['rss_mib_start']} -> {server['rss_mib_peak']} MiB (peak)"
            if server
            else "not local, or not found",
        ),
        ("errors", str(len(report["errors"]))),
    ]
    width = max(len(name) for name, _ in rows)
    lines = [f"{name:<{width}}  {value}" for name, value in rows]
    lines += [f"  {error}" for error in report["errors"][:10]]
    return "\n".join(lines)


def _p50_p95(stats: dict[str, Any]) -> str:
    return f"p50 {stats['p50']} ms, p95 {stats['p95']} ms (n={stats['count']})"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog=f"python -m {__package__}.loadtest", description=__doc__.split("\n")[0]
    )
    parser.add_argument("--url", default="http://127.0.0.1:7860", help="the running app")
{%- if cookiecutter.handler == "voice-agent" %}
    parser.add_argument(
        "--scenario",
        choices=("voice", "echo"),
        default="voice",
        help="voice: say a sentence, time the spoken reply; echo: time tone bursts sent back, "
        "for a handler that echoes [voice]",
    )
    parser.add_argument("--peers", type=int, default=4, help="peers at once [4]")
    parser.add_argument("--turns", type=int, default=5, help="voice: turns per peer [5]")
    parser.add_argument(
        "--pause", type=float, default=1.0, help="voice: seconds after a reply, then a turn [1]"
    )
    parser.add_argument("--duration", type=float, default=10.0, help="echo: seconds of audio [10]")
{%- else %}
    parser.add_argument("--peers", type=int, default=10, help="peers at once [10]")
    parser.add_argument("--duration", type=float, default=10.0, help="seconds of audio [10]")
{%- endif %}
    parser.add_argument(
        "--ui-share", type=float, default=0.0, help="share of peers through the UI, 0-1 [0]"
    )
    parser.add_argument("--ui-path", default="/ui", help="where the UI is mounted [/ui]")
    parser.add_argument(
        "--ramp", type=float, default=0.0, help="seconds over which peers connect [0: at once]"
    )
    parser.add_argument(
        "--network",
        choices=NETWORKS,
        default="loopback",
        help="the network each peer emulates for its own datagrams, both ways: "
        + "; ".join(network.describe() for network in NETWORKS.values()).replace("%", "%%")
        + " [loopback]",
    )
    parser.add_argument("--server-pid", type=int, help="the server's pid [found by its port]")
    parser.add_argument("--out", type=Path, default=Path("loadtest.json"), help="JSON report")
    parser.add_argument("--quiet", action="store_true", help="no progress lines")
    args = parser.parse_args(argv)
    if not 0 <= args.ui_share <= 1 or args.peers < 1 or args.duration <= 0 or args.ramp < 0:
        parser.error("need --peers >= 1, --duration > 0, --ramp >= 0 and 0 <= --ui-share <= 1")
    options: dict[str, Any] = {
        "ui_share": args.ui_share,
        "ui_path": args.ui_path,
        "server_pid": args.server_pid,
        "progress": not args.quiet,
        "ramp": args.ramp,
        "network": args.network,
    }
{%- if cookiecutter.handler == "voice-agent" %}
    if args.turns < 1 or args.pause < 0:
        parser.error("need --turns >= 1 and --pause >= 0")
    if args.scenario == "voice":
        report = asyncio.run(run_voice(args.url, args.peers, args.turns, args.pause, **options))
        shown = voice_table(report)
    else:
        report = asyncio.run(run(args.url, args.peers, args.duration, **options))
        shown = table(report)
{%- else %}
    report = asyncio.run(run(args.url, args.peers, args.duration, **options))
    shown = table(report)
{%- endif %}
    args.out.write_text(json.dumps(report, indent=2) + "\n")
    print(shown)
    print(f"written to {args.out}")
    return 1 if report["errors"] else 0


if __name__ == "__main__":
    sys.exit(main())
