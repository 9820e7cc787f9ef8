"""Side by side: the generated app (the layer) against the plain fastrtc app of issue #403.

``make bench`` bakes the default project and runs this in its environment. The servers run at
once on 127.0.0.1, built on the same ``Stream`` (same echo handler): the layer with its
default settings, the layer with aiortc's own audio receive buffer (``APP_AUDIO_BUFFER_MS=80``)
and plain fastrtc. The load generator of the generated app (``<package>.loadtest``: real
aiortc peers, half through the API, half through the UI's offer route) runs against each in
turn, in rotating order, so all see the same machine and the same background load. What is
compared are ratios:

- per emulated network (``<package>.loadtest_network``: the peers delay, jitter and drop
  their own datagrams), offer -> connected and echo round trip (each run's p50 and p95, the
  median over ``--rounds`` runs), frames lost (over all runs) and server CPU per peer;
- where the time goes: one peer, app and peer in this process, stamped stage by stage
  (``breakdown.py``);
- capacity: the most peers at once (1, 2, 4, ... up to ``--max-peers``) at which most of
  ``--sweep-runs`` runs lose < 1 % of the frames, with no error (the machine is shared: one
  run can be unlucky);
- ``GET /connections`` (whole, and a page of it) and ``GET /connections/{id}`` with 10, 1,000
  and 10,000 registered connections, in-process (synthetic registrations, no network).

Writes a markdown report (``--out``), and the numbers as JSON (``--raw``).

    python bench/run.py --package my_fastrtc_app --out BENCHMARKS.md
"""

from __future__ import annotations

import argparse
import asyncio
import importlib
import importlib.metadata
import json
import os
import platform
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import httpx

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

import breakdown  # noqa: E402  (beside this file)


@dataclass(frozen=True)
class App:
    """One server of the comparison."""

    name: str
    plain: bool = False
    env: dict[str, str] = field(default_factory=dict)
    about: str = ""


APPS = (
    App(
        "layer",
        about="the generated app, default settings: a late audio packet is waited for "
        "while 60 ms of newer audio comes (`APP_AUDIO_BUFFER_MS=60`)",
    ),
    App(
        "layer, buffer 0 ms",
        env={"APP_AUDIO_BUFFER_MS": "0"},
        about="the generated app with `APP_AUDIO_BUFFER_MS=0`: a late packet is given up "
        "as soon as a newer one comes",
    ),
    App("plain", plain=True, about="plain fastrtc (`bench/plain_app.py`)"),
)
LAYER, PLAIN = APPS[0].name, APPS[-1].name
NETWORKS = ("loopback", "lan", "internet")
"""The emulated networks compared, as ``<package>.loadtest_network`` names them."""
BROKEN_DOWN = ("loopback", "internet")
"""The networks on which the time is broken down by stage."""
LOSS_LIMIT = 1.0
"""Percent of frames that may be lost at a concurrency the app still handles."""
REGISTERED = (10, 1_000, 10_000)
PAGE = 100
"""Connections in one page of the listing."""
MUST = {
    "loopback echo p50": 0.70,
    "loopback connect p50": 0.40,
    "server CPU per peer": 1.05,
}
"""The bounds the layer / plain ratios must stay within."""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextmanager
def server(app: App, package: str, logs: Path) -> Iterator[tuple[str, int]]:
    """Serve ``app`` on a free port; yield its URL and pid."""
    port = free_port()
    if app.plain:
        command = [sys.executable, str(HERE / "plain_app.py"), "--package", package]
        command += ["--port", str(port)]
    else:
        command = [sys.executable, "-m", package]
    env = {
        **os.environ,
        "APP_HOST": "127.0.0.1",
        "APP_PORT": str(port),
        "APP_ICE_SERVERS": "[]",
        "APP_CONCURRENCY_LIMIT": "64",
        "APP_LOG_LEVEL": "warning",
        **app.env,
    }
    log_path = logs / f"{app.name.replace(' ', '-').replace(',', '')}.log"
    with log_path.open("w") as log:
        process = subprocess.Popen(command, env=env, stdout=log, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            if process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"{app.name} did not start: {log_path.read_text()}")
            try:
                if httpx.get(f"{url}/connections", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                time.sleep(0.2)
        yield url, process.pid
    finally:
        process.terminate()
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


async def idle(url: str) -> None:
    """Wait until the server lists no connection (the previous run's are gone)."""
    async with httpx.AsyncClient(base_url=url, timeout=10) as http:
        deadline = time.monotonic() + 30
        while (await http.get("/connections")).json() and time.monotonic() < deadline:
            await asyncio.sleep(0.2)
    await asyncio.sleep(0.5)


def orders(names: list[str], rounds: int) -> Iterator[list[str]]:
    """Each app first in turn, so none always runs on the same moment of the machine."""
    for n in range(rounds):
        shift = n % len(names)
        yield names[shift:] + names[:shift]


async def load(
    loadtest: Any,
    servers: dict[str, tuple[str, int]],
    app: str,
    peers: int,
    duration: float,
    ramp_each: float,
    network: str = "loopback",
) -> dict[str, Any]:
    """One run of the load generator against ``app``; peers connect ``ramp_each`` s apart."""
    url, pid = servers[app]
    await idle(url)
    report: dict[str, Any] = await loadtest.run(
        url,
        peers,
        duration,
        ui_share=0.5,
        server_pid=pid,
        progress=False,
        ramp=ramp_each * peers,
        network=network,
    )
    frames = report["frames"]
    print(
        f"  {network:8} {app:20} {peers:2} peers: connect p50 {report['connect_ms']['p50']} ms, "
        f"echo p50 {report['echo_ms']['p50']} ms, lost {frames['lost_percent']} %, "
        f"CPU {(report['server'] or {}).get('cpu_percent')} %, errors {len(report['errors'])}",
        flush=True,
    )
    return report


def median_of_runs(reports: list[dict[str, Any]], key: str, stat: str) -> float | None:
    values = [r[key][stat] for r in reports if r[key][stat] is not None]
    return round(statistics.median(values), 1) if values else None


def cpu_per_peer(report: dict[str, Any]) -> float | None:
    """The server's CPU (% of one core) over the run, per peer that connected."""
    connected = report["connect_ms"]["count"]
    cpu = (report["server"] or {}).get("cpu_percent")
    return cpu / connected if cpu is not None and connected else None


async def latency_phase(
    loadtest: Any,
    servers: dict[str, tuple[str, int]],
    network: str,
    rounds: int,
    peers: int,
    duration: float,
) -> dict[str, Any]:
    print(f"latency, {network}: {rounds} runs each of {peers} peers for {duration} s", flush=True)
    names = list(servers)
    reports: dict[str, list[dict[str, Any]]] = {app: [] for app in names}
    for order in orders(names, rounds):
        for app in order:
            run = await load(loadtest, servers, app, peers, duration, 0.25, network)
            reports[app].append(run)
    result: dict[str, Any] = {}
    for app, runs in reports.items():
        counted = sum(r["frames"]["counted"] for r in runs)
        lost = sum(r["frames"]["lost"] for r in runs)
        per_peer = [c for r in runs if (c := cpu_per_peer(r)) is not None]
        result[app] = {
            "connect_p50_ms": median_of_runs(runs, "connect_ms", "p50"),
            "connect_p95_ms": median_of_runs(runs, "connect_ms", "p95"),
            "echo_p50_ms": median_of_runs(runs, "echo_ms", "p50"),
            "echo_p95_ms": median_of_runs(runs, "echo_ms", "p95"),
            "lost_percent": round(100 * lost / counted, 2) if counted else None,
            "frames_counted": counted,
            "cpu_per_peer": round(statistics.fmean(per_peer), 2) if per_peer else None,
            "peers_connected": sum(r["connect_ms"]["count"] for r in runs),
            "echoes_timed": sum(r["echo_ms"]["count"] for r in runs),
            "errors": sum(len(r["errors"]) for r in runs),
            "runs": [
                {k: r[k] for k in ("connect_ms", "echo_ms", "frames", "server")} for r in runs
            ],
        }
    return result


def held(report: dict[str, Any]) -> bool:
    lost = report["frames"]["lost_percent"]
    return not report["errors"] and lost is not None and lost < LOSS_LIMIT


def median_or_none(values: list[float | None]) -> float | None:
    present = [v for v in values if v is not None]
    return round(statistics.median(present), 1) if present else None


async def capacity_phase(
    loadtest: Any,
    servers: dict[str, tuple[str, int]],
    max_peers: int,
    duration: float,
    runs: int,
) -> dict[str, Any]:
    """At 1, 2, 4, ... peers, ``runs`` runs per app (alternating); an app holds a size when
    most of its runs lose < 1 % of their frames with no error."""
    print(f"capacity: 1, 2, 4, ... up to {max_peers} peers, {runs} runs each", flush=True)
    names = list(servers)
    sweep: list[dict[str, Any]] = []
    capacity = dict.fromkeys(names, 0)
    holding = set(names)
    peers = 1
    while peers <= max_peers and holding:
        reports: dict[str, list[dict[str, Any]]] = {app: [] for app in names}
        for order in orders(names, runs):
            for app in order:
                reports[app].append(await load(loadtest, servers, app, peers, duration, 0.1))
        row: dict[str, Any] = {"peers": peers}
        for app, done in reports.items():
            ok = sum(held(r) for r in done) * 2 > len(done)
            row[app] = {
                "lost_percent": median_or_none([r["frames"]["lost_percent"] for r in done]),
                "lost_percent_runs": [r["frames"]["lost_percent"] for r in done],
                "errors": sum(len(r["errors"]) for r in done),
                "echo_p50_ms": median_or_none([r["echo_ms"]["p50"] for r in done]),
                "connect_p50_ms": median_or_none([r["connect_ms"]["p50"] for r in done]),
                "cpu_percent": median_or_none(
                    [(r["server"] or {}).get("cpu_percent") for r in done]
                ),
                "ok": ok,
            }
            if ok and app in holding:
                capacity[app] = peers
            else:
                holding.discard(app)
        sweep.append(row)
        peers *= 2
    return {"capacity": capacity, "sweep": sweep, "max_peers": max_peers, "runs": runs}


def register_in_fastrtc(owners: list[Any], count: int) -> None:
    """``count`` synthetic connections spread over ``owners``, as fastrtc records them."""
    for n in range(count):
        owner = owners[n % len(owners)]
        owner.pcs[f"synthetic-{n}"] = SimpleNamespace(connectionState="connected")
        owner.connections[f"synthetic-{n}"] = []


OFFER_SDP = "v=0\r\nm=audio 9 UDP/TLS/RTP/SAVPF 0\r\n"
"""An offer's SDP as admission reads it (no peer ever answers it here)."""


def register_in_layer(streams: Any, source: Any, count: int) -> str:
    """``count`` synthetic connections admitted by the layer, as its doors admit them."""
    sources = list(source)
    connection_id = ""
    for n in range(count):
        offer = {"type": "offer", "sdp": OFFER_SDP, "webrtc_id": f"synthetic-{n}"}
        connection_id = streams.reserve(offer, sources[n % len(sources)])
    return connection_id


async def per_request(http: httpx.AsyncClient, path: str, expect: int, repeat: int) -> float:
    took: list[float] = []
    for _ in range(repeat):
        started = time.perf_counter()
        response = await http.get(path)
        took.append(time.perf_counter() - started)
        assert response.status_code == expect, (path, response.status_code)
    return statistics.median(took)


async def lookup_phase(package: str) -> dict[str, Any]:
    """Request latency with many registered connections, in-process (no network)."""
    print("lookups: GET /connections with 10, 1,000 and 10,000 registered", flush=True)
    settings = importlib.import_module(f"{package}.settings")
    source = importlib.import_module(f"{package}.services.streams").Source
    create_app = importlib.import_module(f"{package}.app").create_app
    plain_app = importlib.import_module("plain_app")
    rows: dict[int, dict[str, float]] = {}
    for count in REGISTERED:
        limit = 2 * max(REGISTERED)
        layer = create_app(
            settings.Settings(_env_file=None, log_level="warning", concurrency_limit=limit)
        )
        known = register_in_layer(layer.state.streams, source, count)
        plain, plain_stream = plain_app.build(package)
        register_in_fastrtc([plain_stream, plain_stream.webrtc_component], count)
        base = "http://bench"
        async with (
            httpx.AsyncClient(transport=httpx.ASGITransport(app=layer), base_url=base) as lh,
            httpx.AsyncClient(transport=httpx.ASGITransport(app=plain), base_url=base) as ph,
        ):
            lists = max(5, 2_000 // max(1, count // 100))
            row: dict[str, list[float]] = {}
            for _ in range(3):  # interleaved rounds; the best of each
                for name, (http, path, expect, repeat) in {
                    "layer GET /connections/{id}": (lh, f"/connections/{known}", 200, 200),
                    "layer GET /connections/{unknown}": (lh, "/connections/unknown", 404, 200),
                    f"layer GET /connections?limit={PAGE}": (
                        lh,
                        f"/connections?limit={PAGE}",
                        200,
                        200,
                    ),
                    "layer GET /connections": (lh, "/connections", 200, lists),
                    "plain GET /connections": (ph, "/connections", 200, lists),
                }.items():
                    took = await per_request(http, path, expect, repeat)
                    row.setdefault(name, []).append(took)
            rows[count] = {name: round(min(took) * 1000, 3) for name, took in row.items()}
        await layer.state.streams.close_all()
        print(f"  {count:6} registered: {rows[count]}", flush=True)
    return {str(count): row for count, row in rows.items()}


async def breakdown_phase(package: str, seconds: float) -> dict[str, Any]:
    """Each app's stages, one peer on each network, in this process."""
    return {network: await breakdown_on(package, seconds, network) for network in BROKEN_DOWN}


async def breakdown_on(package: str, seconds: float, network: str) -> dict[str, Any]:
    print(f"breakdown, {network}: one peer for {seconds} s per app, in this process", flush=True)
    settings = importlib.import_module(f"{package}.settings")
    create_app = importlib.import_module(f"{package}.app").create_app
    plain_app = importlib.import_module("plain_app")
    result: dict[str, Any] = {}
    for app in APPS:
        if app.plain:
            asgi, _ = plain_app.build(package)
        else:
            overrides = {k.removeprefix("APP_").lower(): v for k, v in app.env.items()}
            asgi = create_app(
                settings.Settings(_env_file=None, log_level="warning", ice_servers=[], **overrides)
            )
        result[app.name] = await breakdown.measure(package, asgi, seconds, network)
        print(f"  {app.name}: {result[app.name]['echo_ms']}", flush=True)
    return result


def machine() -> dict[str, str]:
    cpu = "unknown"
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            cpu = line.split(":", 1)[1].strip()
            break
    versions = {name: importlib.metadata.version(name) for name in ("fastrtc", "aiortc", "gradio")}
    return {
        "nproc": str(os.cpu_count()),
        "cpu": cpu,
        "python": platform.python_version(),
        "os": platform.platform(),
        **versions,
    }


def ratio(layer: float | None, plain: float | None) -> str:
    if layer is None or not plain:
        return "n/a"
    return f"{layer / plain:.2f}"


def markdown(results: dict[str, Any], command: str) -> str:
    m, cap, networks = results["machine"], results["capacity"], results["networks"]
    settings = results["settings"]
    lines = [
        "# Benchmarks: the generated app (layer) against plain fastrtc",
        "",
        f"Measured {results['date']} on {m['nproc']} cores ({m['cpu']}), {m['os']}, "
        f"Python {m['python']}, fastrtc {m['fastrtc']}, aiortc {m['aiortc']}, "
        f"gradio {m['gradio']}; the machine's load average (1 min) was "
        f"{results['load_average']} the run. Regenerate with `{command}` (about "
        f"{round(results['seconds'] / 60)} min).",
        "",
        "The servers, each on 127.0.0.1 at once, all on the same `Stream` and echo handler:",
        "",
        *(f"- **{app.name}**: {app.about}." for app in APPS),
        "",
        "**plain** is the app of fastrtc issue #403: `stream.mount(app)`, a `/connections` "
        "route over both of fastrtc's objects, the Gradio UI at `/ui`. The load (real aiortc "
        "peers from `my_fastrtc_app.loadtest`, half through `POST /webrtc/offer`, half through "
        "the UI's offer route, connecting 0.25 s apart in the latency runs and 0.1 s apart in "
        "the capacity sweep) runs on the same machine, against each in rotating order. "
        "Absolute times depend on the machine and its load; the ratios are the result.",
        "",
        "## Latency by network",
        "",
        f"{settings['rounds']} runs per app and network of {settings['peers']} peers for "
        f"{settings['duration']} s each. The networks are emulated by the peers "
        "(`my_fastrtc_app.loadtest_network`): each delays, jitters and drops its own UDP "
        "datagrams, both ways. Times are the median over the runs of each run's own figure; "
        "frames lost are counted over all runs; server CPU is % of one core over a run, per "
        "connected peer, the mean of the runs.",
    ]
    columns = [app.name for app in APPS]
    for network in NETWORKS:
        figures = networks[network]
        about = figures["about"]
        lines += [
            "",
            f"### {about}",
            "",
            "| | " + " | ".join(columns) + " | layer / plain |",
            "|---|" + "---:|" * (len(columns) + 1),
        ]
        for key, label in (
            ("connect_p50_ms", "offer -> connected, p50 (ms)"),
            ("connect_p95_ms", "offer -> connected, p95 (ms)"),
            ("echo_p50_ms", "echo round trip, p50 (ms)"),
            ("echo_p95_ms", "echo round trip, p95 (ms)"),
            ("lost_percent", "frames lost (%)"),
            ("cpu_per_peer", "server CPU per peer (% of a core)"),
        ):
            row = [figures[app][key] for app in columns]
            lines.append(
                f"| {label} | "
                + " | ".join(str(v) for v in row)
                + f" | {ratio(figures[LAYER][key], figures[PLAIN][key])} |"
            )
        lines.append(
            "| peers connected / echoes timed / errors | "
            + " | ".join(
                f"{figures[app]['peers_connected']} / {figures[app]['echoes_timed']} / "
                f"{figures[app]['errors']}"
                for app in columns
            )
            + " | |"
        )
    for n, (network, parts) in enumerate(results["breakdown"].items()):
        lines += breakdown_tables(parts, columns, networks[network]["about"], explain=n == 0)
    lines += [
        "",
        f"## Capacity (< {LOSS_LIMIT:g} % of frames lost, no error, in most of "
        f"{cap['runs']} runs of {settings['sweep_duration']} s per size; loopback)",
        "",
        "Each figure is the median over the runs; the losses of each run are shown where "
        "the runs disagree.",
        "",
        f"Largest number of peers at once: **layer {cap['capacity'][LAYER]}, plain "
        f"{cap['capacity'][PLAIN]}** (ratio "
        f"{ratio(cap['capacity'][LAYER], cap['capacity'][PLAIN])}; the sweep stops at "
        f"{cap['max_peers']}, or once both have failed).",
        "",
        "| peers | lost % layer | lost % plain | echo p50 ms layer | echo p50 ms plain "
        "| CPU % layer | CPU % plain |",
        "|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for row in cap["sweep"]:
        layer, plain = row[LAYER], row[PLAIN]
        lines.append(
            f"| {row['peers']} | {lost_cell(layer)} | {lost_cell(plain)} "
            f"| {layer['echo_p50_ms']} | {plain['echo_p50_ms']} "
            f"| {layer['cpu_percent']} | {plain['cpu_percent']} |"
        )
    lookups = results["lookups"]
    names = list(lookups[str(REGISTERED[0])])
    lines += [
        "",
        "## Requests with many registered connections (in-process, ms per request)",
        "",
        "| registered | " + " | ".join(names) + " |",
        "|---:|" + "---:|" * len(names),
    ]
    for count in REGISTERED:
        row = lookups[str(count)]
        lines.append(f"| {count:,} | " + " | ".join(str(row[name]) for name in names) + " |")
    first, last = lookups[str(REGISTERED[0])], lookups[str(REGISTERED[-1])]
    lines.append(
        f"| {REGISTERED[-1]:,} / {REGISTERED[0]:,} | "
        + " | ".join(f"{last[name] / first[name]:.1f}x" for name in names)
        + " |"
    )
    lines += ["", *results["notes"], ""]
    return "\n".join(lines)


def breakdown_tables(
    parts: dict[str, Any], columns: list[str], about: str, explain: bool
) -> list[str]:
    """Where the time goes, per stage and app (ms, medians)."""
    lines = ["", f"## Where the time goes, {about}: one peer, app and peer in one process"]
    lines += (
        [
            "",
            "Each stage stamped as it happens (`bench/breakdown.py`): a tone burst as it is "
            "captured, leaves the peer, reaches the server, is heard and sent back by the "
            "handler, leaves fastrtc's output pacing, leaves the server and comes out of the "
            "peer's receive buffer; the offer by the peer's events and the server's own handling. "
            "The peer's receive buffer is the load test's own, aiortc's: it holds 80 ms, and "
            "300 ms for good after a lost packet; it is the same for every app (a browser's "
            "adaptive buffer would take less).",
        ]
        if explain
        else []
    )
    for key, title in (("connect_ms", "offer -> connected"), ("echo_ms", "echo round trip")):
        stages = list(parts[columns[0]][key])
        lines += [
            "",
            f"| {title} (ms) | " + " | ".join(columns) + " |",
            "|---|" + "---:|" * len(columns),
        ]
        for stage in stages:
            cells = [str(parts[app][key][stage]) for app in columns]
            shown = f"**{stage}**" if stage in ("round trip", "offer -> connected") else stage
            lines.append(f"| {shown} | " + " | ".join(cells) + " |")
    lines += [
        "",
        "Bursts timed: " + ", ".join(f"{app} {parts[app]['bursts']}" for app in columns) + ".",
    ]
    return lines


def lost_cell(run: dict[str, Any]) -> str:
    """The median loss of the runs, and each run's when they disagree."""
    each = run["lost_percent_runs"]
    agree = all((v is not None and v < LOSS_LIMIT) == run["ok"] for v in each)
    return f"{run['lost_percent']}" + ("" if agree else f" ({', '.join(map(str, each))})")


def verdict(value: float | None, bound: float, label: str) -> str:
    if value is None:
        return f"- {label}: not measured."
    met = "met" if value <= bound else "**not met**"
    return f"- {label}: {value:.2f} (bound {bound:g}): {met}."


def notes(results: dict[str, Any]) -> list[str]:
    """What the numbers say, worded from the numbers."""
    networks = results["networks"]
    loop, internet = networks["loopback"], networks["internet"]

    def r(figures: dict[str, Any], key: str) -> float | None:
        layer, plain = figures[LAYER][key], figures[PLAIN][key]
        return layer / plain if layer is not None and plain else None

    cpu = {app: [networks[n][app]["cpu_per_peer"] for n in NETWORKS] for app in (LAYER, PLAIN)}
    pooled = (
        statistics.fmean(cpu[LAYER]) / statistics.fmean(cpu[PLAIN])
        if None not in cpu[LAYER] + cpu[PLAIN]
        else None
    )
    said = [
        "## Reading",
        "",
        verdict(
            r(loop, "echo_p50_ms"), MUST["loopback echo p50"], "loopback, echo p50 layer / plain"
        ),
        verdict(
            r(loop, "connect_p50_ms"),
            MUST["loopback connect p50"],
            "loopback, offer -> connected p50 layer / plain",
        ),
        verdict(
            pooled,
            MUST["server CPU per peer"],
            "server CPU per peer layer / plain, over every network's runs",
        ),
    ]
    for name, figures, slack in (("loopback", loop, 0.0), ("internet", internet, 0.5)):
        layer, plain = figures[LAYER]["lost_percent"], figures[PLAIN]["lost_percent"]
        if layer is not None and plain is not None:
            met = "met" if layer <= plain + slack else "**not met**"
            said.append(
                f"- {name}, frames lost: layer {layer} %, plain {plain} % "
                f"(bound: plain + {slack:g} points): {met}."
            )
    echo = (internet[LAYER]["echo_p50_ms"], internet[PLAIN]["echo_p50_ms"])
    if None not in echo:
        met = "met" if echo[0] <= echo[1] else "**not met**"
        said.append(f"- internet, echo p50: layer {echo[0]} ms, plain {echo[1]} ms: {met}.")
    said += buffer_reading(networks)
    cap = results["capacity"]["capacity"]
    said.append(
        f"- capacity: equal, {cap[LAYER]} peers."
        if cap[LAYER] == cap[PLAIN]
        else f"- capacity: layer {cap[LAYER]} peers, plain {cap[PLAIN]}."
    )
    lookups = results["lookups"]
    small, large = lookups[str(REGISTERED[0])], lookups[str(REGISTERED[-1])]
    page = f"layer GET /connections?limit={PAGE}"
    said += [
        f"- with {REGISTERED[-1]:,} registered connections a lookup by id costs "
        f"{large['layer GET /connections/{id}']} ms and a page of {PAGE} "
        f"{large[page]} ms (against {small[page]} ms with {REGISTERED[0]}); the whole "
        f"listing, {large['layer GET /connections']} ms, grows with the connections, as it "
        "must: it is there for admins, and `?limit=` pages it.",
    ]
    return said


def buffer_reading(networks: dict[str, Any]) -> list[str]:
    """Which audio buffer suits which network, from the figures."""
    other = APPS[1].name
    lines = []
    for network in NETWORKS:
        default, zero = networks[network][LAYER], networks[network][other]
        lines.append(
            f"- {network}, `APP_AUDIO_BUFFER_MS` 60 (default) against 0: echo p50 "
            f"{default['echo_p50_ms']} against {zero['echo_p50_ms']} ms, frames lost "
            f"{default['lost_percent']} against {zero['lost_percent']} %."
        )
    return lines


async def bench(args: argparse.Namespace) -> dict[str, Any]:
    loadtest = importlib.import_module(f"{args.package}.loadtest")
    network_module = importlib.import_module(f"{args.package}.loadtest_network")
    started = time.monotonic()
    load_before = os.getloadavg()[0]
    logs = Path(tempfile.mkdtemp(prefix="bench-"))
    print(f"server logs in {logs}", flush=True)
    networks: dict[str, Any] = {}
    with ExitStack() as stack:
        servers = {app.name: stack.enter_context(server(app, args.package, logs)) for app in APPS}
        for app in servers:  # warm each up: imports, codecs
            await load(loadtest, servers, app, 2, 2, 0)
        for network in NETWORKS:
            figures = await latency_phase(
                loadtest, servers, network, args.rounds, args.peers, args.duration
            )
            figures["about"] = network_module.NETWORKS[network].describe()
            networks[network] = figures
        capacity = await capacity_phase(
            loadtest,
            {name: servers[name] for name in (LAYER, PLAIN)},
            args.max_peers,
            args.sweep_duration,
            args.sweep_runs,
        )
    parts = await breakdown_phase(args.package, args.breakdown_duration)
    lookups = await lookup_phase(args.package)
    results: dict[str, Any] = {
        "date": datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "machine": machine(),
        "settings": {k: str(v) if isinstance(v, Path) else v for k, v in vars(args).items()},
        "networks": networks,
        "breakdown": parts,
        "capacity": capacity,
        "lookups": lookups,
        "seconds": round(time.monotonic() - started),
        "load_average": f"{load_before:.1f} before, {os.getloadavg()[0]:.1f} after",
    }
    results["notes"] = notes(results) + args.note
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--package", default="my_fastrtc_app")
    parser.add_argument("--out", type=Path, default=Path("BENCHMARKS.md"))
    parser.add_argument("--rounds", type=int, default=5, help="latency runs per app [5]")
    parser.add_argument("--peers", type=int, default=4, help="peers per latency run [4]")
    parser.add_argument("--duration", type=float, default=8.0, help="seconds per run [8]")
    parser.add_argument("--max-peers", type=int, default=32, help="capacity sweep bound [32]")
    parser.add_argument("--sweep-duration", type=float, default=6.0, help="seconds [6]")
    parser.add_argument(
        "--sweep-runs", type=int, default=3, help="runs per app and size in the sweep [3]"
    )
    parser.add_argument(
        "--breakdown-duration", type=float, default=10.0, help="seconds per app [10]"
    )
    parser.add_argument("--raw", type=Path, help="where to write the numbers as JSON")
    parser.add_argument("--command", default="make bench", help="shown in the report")
    parser.add_argument(
        "--note", action="append", default=[], help="a line added to the report's reading"
    )
    args = parser.parse_args()
    # SIGTERM as SIGINT: the servers are stopped on the way out either way.
    signal.signal(signal.SIGTERM, signal.default_int_handler)
    signal.signal(signal.SIGINT, signal.default_int_handler)
    results = asyncio.run(bench(args))
    args.out.write_text(markdown(results, args.command))
    print(f"written to {args.out}")
    if args.raw:
        args.raw.write_text(json.dumps(results, indent=2) + "\n")
        print(f"written to {args.raw}")


if __name__ == "__main__":
    main()
