"""A load generator: real WebRTC peers against a running app, and the numbers that matter.

    python -m {{ cookiecutter.package_name }}.loadtest --peers 10 --duration 10   (or: make loadtest)

Each peer connects through the API (``POST /webrtc/offer``) or, for a share of them
(``--ui-share``), through the Gradio UI's offer route, like ``client.py`` does, then streams
audio for ``--duration`` seconds. The audio is silence with a 20 ms tone burst every 0.5 s;
each burst has one of eight pitches, so an echoed burst is told apart from its neighbours
and matched to the time it was sent: that is the echo round trip, measured, not estimated.
The bursts also count the frames lost: between two echoed bursts sent ``k`` frames apart,
``k`` frames must have come back.

Reported per run: offer-to-connected and echo round-trip times (p50, p95), frames sent,
received and lost, errors, and the server's CPU and memory when it runs on this machine
(found by ``--server-pid`` or by the port it listens on, through ``/proc``). A progress line
is printed every second; the result is written as JSON (``--out``) and printed as a table.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import math
import os
import sys
import time
from dataclasses import asdict, dataclass, field
from fractions import Fraction
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx
import numpy as np
import numpy.typing as npt
from aiortc import MediaStreamTrack
from aiortc.mediastreams import MediaStreamError
from av import AudioFrame

from .client import FRAME_SAMPLES, SAMPLE_RATE, Door, connect, new_connection_id

PULSE_EVERY = 25
"""Frames between two bursts (20 ms frames: one every 0.5 s)."""
PULSE_HZ = (600.0, 900.0, 1200.0, 1500.0, 1800.0, 2100.0, 2400.0, 2700.0)
"""Burst pitches, in turn: a burst is matched to the last one sent at its pitch, so an echo
is timed right as long as it takes less than 8 x 0.5 s."""
PULSE_AMPLITUDE = 0.5
ONSET_DBFS = -40.0
"""A received frame this loud after a quieter one is the start of an echoed burst."""


class PulseTrack(MediaStreamTrack):
    """A microphone that plays silence with a tone burst every ``PULSE_EVERY`` frames.

    Paced in real time; records when each burst is handed to the encoder, and as which frame.
    """

    kind = "audio"

    def __init__(self) -> None:
        super().__init__()
        self.frames_sent = 0
        self.pulses_sent: dict[int, tuple[float, int]] = {}
        """Burst pitch index -> when the last burst of that pitch was sent (monotonic), and
        its frame number."""
        self._start: float | None = None
        self._silence = np.zeros((1, FRAME_SAMPLES), dtype=np.int16)
        t = np.arange(FRAME_SAMPLES) / SAMPLE_RATE
        self._bursts = [
            (PULSE_AMPLITUDE * 32767 * np.sin(2 * math.pi * hz * t)).astype(np.int16).reshape(1, -1)
            for hz in PULSE_HZ
        ]

    async def recv(self) -> AudioFrame:
        if self.readyState != "live":
            raise MediaStreamError
        if self._start is None:
            self._start = time.monotonic()
        delay = self._start + self.frames_sent * FRAME_SAMPLES / SAMPLE_RATE - time.monotonic()
        if delay > 0:
            await asyncio.sleep(delay)
        count, self.frames_sent = self.frames_sent, self.frames_sent + 1
        samples = self._silence
        if count % PULSE_EVERY == 0:
            pitch = (count // PULSE_EVERY) % len(PULSE_HZ)
            samples = self._bursts[pitch]
            self.pulses_sent[pitch] = (time.monotonic(), count)
        frame = AudioFrame.from_ndarray(samples, format="s16", layout="mono")
        frame.sample_rate = SAMPLE_RATE
        frame.pts = count * FRAME_SAMPLES
        frame.time_base = Fraction(1, SAMPLE_RATE)
        return frame


def pitch_of(samples: npt.NDArray[np.float64]) -> int | None:
    """The index in ``PULSE_HZ`` of the burst pitch nearest the frame's loudest frequency."""
    spectrum = np.abs(np.fft.rfft(samples * np.hanning(samples.size)))
    peak_hz = float(np.argmax(spectrum)) * SAMPLE_RATE / samples.size
    nearest = min(range(len(PULSE_HZ)), key=lambda i: abs(PULSE_HZ[i] - peak_hz))
    return nearest if abs(PULSE_HZ[nearest] - peak_hz) < 150 else None


class EchoTimer:
    """Times the echo of each burst a ``PulseTrack`` sent, from the frames that come back.

    Each echoed burst is also an anchor: (the frame number it was sent as, the frames
    received before it). Between the first and the last anchor, frames sent and frames
    received are counted on the same stretch of audio, however late it comes back.
    """

    def __init__(self, track: PulseTrack) -> None:
        self.track = track
        self.round_trips: list[float] = []
        self.anchors: list[tuple[int, int]] = []
        self.frames_received = 0
        self._loud = False

    def lost(self) -> tuple[int, int]:
        """Frames sent between the first and the last echoed burst, and how many of them
        did not come back."""
        if len(self.anchors) < 2:  # no stretch to count on: every frame not back is lost
            sent = self.track.frames_sent
            return sent, max(0, sent - self.frames_received)
        (first_sent, first_received), (last_sent, last_received) = self.anchors[0], self.anchors[-1]
        sent = last_sent - first_sent
        return sent, max(0, sent - (last_received - first_received))

    def on_frame(self, frame: AudioFrame) -> None:
        now = time.monotonic()
        samples = frame.to_ndarray().astype(np.float64).reshape(-1)
        if frame.layout.name == "stereo":
            samples = samples[::2]  # interleaved: keep the left channel
        rms = math.sqrt(float(np.mean(np.square(samples / 32768.0))))
        loud = rms > 0 and 20 * math.log10(rms) > ONSET_DBFS
        if loud and not self._loud:
            pitch = pitch_of(samples)
            sent = self.track.pulses_sent.pop(pitch, None) if pitch is not None else None
            if sent is not None:
                sent_at, frame_number = sent
                self.round_trips.append(now - sent_at)
                self.anchors.append((frame_number, self.frames_received))
        self._loud = loud
        self.frames_received += 1


@dataclass
class PeerResult:
    connection_id: str
    door: str
    connect_s: float | None = None
    echo_s: list[float] = field(default_factory=list)
    frames_sent: int = 0
    frames_received: int = 0
    frames_counted: int = 0
    """Frames sent between the first and the last echoed burst: those checked for loss."""
    frames_lost: int = 0
    error: str | None = None


async def run_peer(
    http: httpx.AsyncClient,
    door: Door,
    duration: float,
    ui_path: str,
    live: PeerResult,
    delay: float = 0.0,
) -> PeerResult:
    """After ``delay`` s, connect one peer, stream for ``duration`` s and count; fills
    ``live`` as it goes."""
    await asyncio.sleep(delay)
    track = PulseTrack()
    timer = EchoTimer(track)
    started = time.monotonic()
    connected_at: list[float] = []
    peer = None
    try:
        peer = await connect(
            http,
            door,
            ui_path=ui_path,
            connection_id=live.connection_id,
            track=track,
            on_frame=timer.on_frame,
        )
        pc = peer.pc

        @pc.on("connectionstatechange")
        def stamp() -> None:
            if pc.connectionState == "connected" and not connected_at:
                connected_at.append(time.monotonic())

        await peer.wait_connected(within=30)
        live.connect_s = (connected_at[0] if connected_at else time.monotonic()) - started
        deadline = time.monotonic() + duration
        while time.monotonic() < deadline:
            live.frames_sent, live.frames_received = track.frames_sent, peer.frames_received
            live.echo_s = timer.round_trips
            await asyncio.sleep(0.2)
    except Exception as exc:
        live.error = f"{type(exc).__name__}: {exc}"
    finally:
        live.frames_sent, live.frames_received = track.frames_sent, timer.frames_received
        live.frames_counted, live.frames_lost = timer.lost()
        live.echo_s = timer.round_trips
        if peer is not None:
            await peer.close()
    return live


# -- the server's CPU and memory, from /proc -------------------------------------------------


def listening_pid(port: int) -> int | None:
    """The pid of the local process listening on TCP ``port``, if this user may see it."""
    inodes: set[str] = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        with contextlib.suppress(OSError):
            for line in Path(table).read_text().splitlines()[1:]:
                fields = line.split()
                if fields[3] == "0A" and int(fields[1].rsplit(":", 1)[1], 16) == port:
                    inodes.add(f"socket:[{fields[9]}]")
    if not inodes:
        return None
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        with contextlib.suppress(OSError):
            for fd in (proc / "fd").iterdir():
                if os.readlink(fd) in inodes:
                    return int(proc.name)
    return None


@dataclass
class ServerSample:
    at: float
    cpu_s: float
    rss_mib: float


def sample_server(pid: int) -> ServerSample | None:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
        status = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return None
    fields = stat.rsplit(")", 1)[1].split()  # after the command name, which may hold spaces
    ticks = os.sysconf("SC_CLK_TCK")
    cpu_s = (int(fields[11]) + int(fields[12])) / ticks  # utime + stime
    rss_kib = next(int(line.split()[1]) for line in status.splitlines() if line.startswith("VmRSS"))
    return ServerSample(time.monotonic(), cpu_s, rss_kib / 1024)


# -- the run -------------------------------------------------------------------------------


def percentile(values: list[float], p: float) -> float | None:
    """The nearest-rank ``p`` percentile (0-100) of ``values``; ``None`` if there are none."""
    if not values:
        return None
    ranked = sorted(values)
    return ranked[max(0, math.ceil(p / 100 * len(ranked)) - 1)]


def ms(seconds: float | None) -> float | None:
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
    connects = [r.connect_s for r in results if r.connect_s is not None]
    echoes = [s for r in results for s in r.echo_s]
    counted = sum(r.frames_counted for r in results)
    lost = sum(r.frames_lost for r in results)
    server = None
    if len(samples) >= 2:
        first, last = samples[0], samples[-1]
        server = {
            "pid": server_pid,
            "cpu_percent": round(100 * (last.cpu_s - first.cpu_s) / (last.at - first.at), 1),
            "rss_mib_start": round(first.rss_mib, 1),
            "rss_mib_peak": round(max(s.rss_mib for s in samples), 1),
        }
    errors = [f"{r.connection_id}: {r.error}" for r in results if r.error]
    return {
        "url": url,
        "peers": peers,
        "duration_s": duration,
        "ui_share": ui_share,
        "connect_ms": {
            "p50": ms(percentile(connects, 50)),
            "p95": ms(percentile(connects, 95)),
            "count": len(connects),
        },
        "echo_ms": {
            "p50": ms(percentile(echoes, 50)),
            "p95": ms(percentile(echoes, 95)),
            "count": len(echoes),
        },
        "frames": {
            "sent": sum(r.frames_sent for r in results),
            "received": sum(r.frames_received for r in results),
            "counted": counted,
            "lost": lost,
            "lost_percent": round(100 * lost / counted, 2) if counted else None,
        },
        "server": server,
        "errors": errors,
        "per_peer": [asdict(r) | {"echo_s": [round(s, 4) for s in r.echo_s]} for r in results],
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
