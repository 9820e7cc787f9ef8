"""A load generator: real WebRTC peers against a running app, and the numbers that matter.

    python -m {{ cookiecutter.package_name }}.loadtest --peers 10 --duration 10   (or: make loadtest)

Each peer connects through the API (``POST /webrtc/offer``) or, for a share of them
(``--ui-share``), through the Gradio UI's offer route, like ``client.py`` does, then streams
audio for ``--duration`` seconds: tone bursts whose echo is timed and whose frames are
counted (``loadtest_peer.py``).

Reported per run: offer-to-connected and echo round-trip times (p50, p95), frames sent,
received and lost, errors, and the server's CPU and memory when it runs on this machine
(``loadtest_server.py``: found by ``--server-pid`` or by the port it listens on). A progress
line is printed every second; the result is written as JSON (``--out``) and printed as a table.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import math
import sys
import time
from dataclasses import asdict
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx

from .client import Door, new_connection_id
from .loadtest_peer import PeerResult, run_peer
from .loadtest_server import ServerSample, listening_pid, sample_server, server_usage


def percentile(values: list[float], p: float) -> float | None:
    """The nearest-rank ``p`` percentile (0-100) of ``values``; ``None`` if there are none."""
    if not values:
        return None
    ranked = sorted(values)
    return ranked[max(0, math.ceil(p / 100 * len(ranked)) - 1)]


def ms(seconds: float | None) -> float | None:
    """Seconds as milliseconds, to a tenth."""
    return None if seconds is None else round(seconds * 1000, 1)


def doors_for(peers: int, ui_share: float) -> list[Door]:
    """``peers`` doors, ``ui_share`` of them the UI, spread evenly through the list."""
    return [
        Door.UI if math.floor((n + 1) * ui_share) > math.floor(n * ui_share) else Door.API
        for n in range(peers)
    ]


async def run(
    url: str,
    peers: int,
    duration: float,
    ui_share: float = 0.0,
    ui_path: str = "/ui",
    server_pid: int | None = None,
    progress: bool = True,
    ramp: float = 0.0,
) -> dict[str, Any]:
    """Run the load and return the report (what ``--out`` holds).

    The peers connect at once, or one after another spread over ``ramp`` seconds.
    """
    if server_pid is None and urlsplit(url).hostname in ("127.0.0.1", "localhost", "::1"):
        server_pid = listening_pid(urlsplit(url).port or 80)
    results = [PeerResult(new_connection_id(), door.value) for door in doors_for(peers, ui_share)]
    samples: list[ServerSample] = []
    started = time.monotonic()

    def report_progress() -> None:
        connected = sum(r.connect_s is not None for r in results)
        print(
            f"[{time.monotonic() - started:5.1f}s] connected {connected}/{peers}"
            f"  frames sent {sum(r.frames_sent for r in results)}"
            f"  received {sum(r.frames_received for r in results)}"
            f"  echoes {sum(len(r.echo_s) for r in results)}"
            f"  errors {sum(r.error is not None for r in results)}",
            file=sys.stderr,
            flush=True,
        )

    async def watch() -> None:
        while True:
            if server_pid is not None and (sample := sample_server(server_pid)):
                samples.append(sample)
            if progress:
                report_progress()
            await asyncio.sleep(1.0)

    limits = httpx.Limits(max_connections=max(10, peers))
    async with httpx.AsyncClient(base_url=url, timeout=60, limits=limits) as http:
        watcher = asyncio.create_task(watch())
        try:
            await asyncio.gather(
                *(
                    run_peer(http, Door(r.door), duration, ui_path, r, n * ramp / peers)
                    for n, r in enumerate(results)
                )
            )
        finally:
            watcher.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await watcher
    if server_pid is not None and (sample := sample_server(server_pid)):
        samples.append(sample)
    if progress:
        report_progress()
    return summarize(url, peers, duration, ui_share, server_pid, results, samples)


def summarize(
    url: str,
    peers: int,
    duration: float,
    ui_share: float,
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


def _p50_p95_ms(seconds: list[float]) -> dict[str, Any]:
    return {
        "p50": ms(percentile(seconds, 50)),
        "p95": ms(percentile(seconds, 95)),
        "count": len(seconds),
    }


def table(report: dict[str, Any]) -> str:
    """The report as a table for people."""
    frames, server = report["frames"], report["server"]
    rows = [
        (
            "peers",
            f"{report['peers']} for {report['duration_s']} s (UI share {report['ui_share']})",
        ),
        ("offer -> connected", _p50_p95(report["connect_ms"])),
        ("echo round trip", _p50_p95(report["echo_ms"])),
        (
            "frames",
            f"sent {frames['sent']}, received {frames['received']}, "
            f"lost {frames['lost']} of {frames['counted']} counted ({frames['lost_percent']} %)",
        ),
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
    parser.add_argument("--peers", type=int, default=10, help="peers at once [10]")
    parser.add_argument("--duration", type=float, default=10.0, help="seconds of audio [10]")
    parser.add_argument(
        "--ui-share", type=float, default=0.0, help="share of peers through the UI, 0-1 [0]"
    )
    parser.add_argument("--ui-path", default="/ui", help="where the UI is mounted [/ui]")
    parser.add_argument(
        "--ramp", type=float, default=0.0, help="seconds over which peers connect [0: at once]"
    )
    parser.add_argument("--server-pid", type=int, help="the server's pid [found by its port]")
    parser.add_argument("--out", type=Path, default=Path("loadtest.json"), help="JSON report")
    parser.add_argument("--quiet", action="store_true", help="no progress lines")
    args = parser.parse_args(argv)
    if not 0 <= args.ui_share <= 1 or args.peers < 1 or args.duration <= 0 or args.ramp < 0:
        parser.error("need --peers >= 1, --duration > 0, --ramp >= 0 and 0 <= --ui-share <= 1")
    report = asyncio.run(
        run(
            args.url,
            args.peers,
            args.duration,
            args.ui_share,
            args.ui_path,
            args.server_pid,
            progress=not args.quiet,
            ramp=args.ramp,
        )
    )
    args.out.write_text(json.dumps(report, indent=2) + "\n")
    print(table(report))
    print(f"written to {args.out}")
    return 1 if report["errors"] else 0


if __name__ == "__main__":
    sys.exit(main())
