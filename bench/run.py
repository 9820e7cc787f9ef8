"""Side by side: the generated app (the layer) against the plain fastrtc app of issue #403.

``make bench`` bakes the default project and runs this in its environment. Both servers run
at once on 127.0.0.1, built on the same ``Stream`` (same echo handler); the load generator of
the generated app (``<package>.loadtest``: real aiortc peers, half through the API, half
through the UI's offer route) runs against one, then the other, in alternating order, so both
see the same machine and the same background load. What is compared are ratios:

- offer -> connected and echo round trip: each run's p50 and p95, the median over
  ``--rounds`` runs (a run that starts on a busy moment keeps its echo late throughout:
  fastrtc paces its output from the first frame, so one run must not weigh on the rest);
- capacity: the most peers at once (1, 2, 4, ... up to ``--max-peers``) at which most of
  ``--sweep-runs`` runs lose < 1 % of the frames, with no error (the machine is shared: one
  run can be unlucky);
- ``GET /connections`` (and, for the layer, ``GET /connections/{id}``) with 10, 1,000 and
  10,000 registered connections, in-process (synthetic registrations, no network).

Writes a markdown report (``--out``), and the numbers as JSON (``--raw``).

    python bench/run.py --package my_fastrtc_app --out BENCHMARKS.md
"""

from __future__ import annotations

import argparse
import asyncio
import importlib
import importlib.metadata
import json
import math
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
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import httpx

HERE = Path(__file__).resolve().parent
APPS = ("layer", "plain")
LOSS_LIMIT = 1.0
"""Percent of frames that may be lost at a concurrency the app still handles."""
REGISTERED = (10, 1_000, 10_000)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextmanager
def server(app: str, package: str, logs: Path) -> Iterator[tuple[str, int]]:
    """Serve ``app`` ("layer" or "plain") on a free port; yield its URL and pid."""
    port = free_port()
    if app == "layer":
        command = [sys.executable, "-m", package]
    else:
        command = [sys.executable, str(HERE / "plain_app.py"), "--package", package]
        command += ["--port", str(port)]
    env = {
        **os.environ,
        "APP_HOST": "127.0.0.1",
        "APP_PORT": str(port),
        "APP_ICE_SERVERS": "[]",
        "APP_CONCURRENCY_LIMIT": "64",
    }
    with (logs / f"{app}.log").open("w") as log:
        process = subprocess.Popen(command, env=env, stdout=log, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            if process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"{app} did not start: {(logs / f'{app}.log').read_text()}")
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


def orders(rounds: int) -> Iterator[tuple[str, ...]]:
    """Layer first, then plain first, and so on."""
    for n in range(rounds):
        yield APPS if n % 2 == 0 else APPS[::-1]


async def load(
    loadtest: Any,
    servers: dict[str, tuple[str, int]],
    app: str,
    peers: int,
    duration: float,
    ramp_each: float,
) -> dict[str, Any]:
    """One run of the load generator against ``app``; peers connect ``ramp_each`` s apart."""
    url, pid = servers[app]
    await idle(url)
    report: dict[str, Any] = await loadtest.run(
        url, peers, duration, ui_share=0.5, server_pid=pid, progress=False, ramp=ramp_each * peers
    )
    frames = report["frames"]
    print(
        f"  {app:5} {peers:2} peers: connect p50 {report['connect_ms']['p50']} ms, "
        f"echo p50 {report['echo_ms']['p50']} ms, lost {frames['lost_percent']} %, "
        f"CPU {(report['server'] or {}).get('cpu_percent')} %, errors {len(report['errors'])}",
        flush=True,
    )
    return report


def median_of_runs(reports: list[dict[str, Any]], key: str, stat: str) -> float | None:
    values = [r[key][stat] for r in reports if r[key][stat] is not None]
    return round(statistics.median(values), 1) if values else None


async def latency_phase(
    loadtest: Any, servers: dict[str, tuple[str, int]], rounds: int, peers: int, duration: float
) -> dict[str, Any]:
    print(f"latency: {rounds} runs each of {peers} peers for {duration} s, alternating", flush=True)
    reports: dict[str, list[dict[str, Any]]] = {app: [] for app in APPS}
    for order in orders(rounds):
        for app in order:
            reports[app].append(await load(loadtest, servers, app, peers, duration, 0.25))
    result: dict[str, Any] = {}
    for app, runs in reports.items():
        cpu = [r["server"]["cpu_percent"] for r in runs if r["server"]]
        result[app] = {
            "connect_p50_ms": median_of_runs(runs, "connect_ms", "p50"),
            "connect_p95_ms": median_of_runs(runs, "connect_ms", "p95"),
            "echo_p50_ms": median_of_runs(runs, "echo_ms", "p50"),
            "echo_p95_ms": median_of_runs(runs, "echo_ms", "p95"),
            "server_cpu_percent": round(statistics.median(cpu), 1) if cpu else None,
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
    sweep: list[dict[str, Any]] = []
    capacity = dict.fromkeys(APPS, 0)
    holding = set(APPS)
    peers = 1
    while peers <= max_peers and holding:
        reports: dict[str, list[dict[str, Any]]] = {app: [] for app in APPS}
        for order in orders(runs):
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


def register(owners: list[Any], count: int) -> str:
    """``count`` synthetic connections spread over ``owners``, as fastrtc records them."""
    connection_id = ""
    for n in range(count):
        owner = owners[n % len(owners)]
        connection_id = f"synthetic-{n}"
        owner.pcs[connection_id] = SimpleNamespace(connectionState="connected")
        owner.connections[connection_id] = []
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
    create_app = importlib.import_module(f"{package}.app").create_app
    sys.path.insert(0, str(HERE))
    plain_app = importlib.import_module("plain_app")
    rows: dict[int, dict[str, float]] = {}
    for count in REGISTERED:
        layer = create_app(settings.Settings(_env_file=None, log_level="warning"))
        stream = layer.state.streams._stream
        known = register([stream, stream.webrtc_component], count)
        plain, plain_stream = plain_app.build(package)
        register([plain_stream, plain_stream.webrtc_component], count)
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
                    "layer GET /connections": (lh, "/connections", 200, lists),
                    "plain GET /connections": (ph, "/connections", 200, lists),
                }.items():
                    took = await per_request(http, path, expect, repeat)
                    row.setdefault(name, []).append(took)
            rows[count] = {name: round(min(took) * 1000, 3) for name, took in row.items()}
        print(f"  {count:6} registered: {rows[count]}", flush=True)
    return {str(count): row for count, row in rows.items()}


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
    if not layer or not plain:
        return "n/a"
    return f"{layer / plain:.2f}"


def markdown(results: dict[str, Any], command: str) -> str:
    m, lat, cap = results["machine"], results["latency"], results["capacity"]
    lines = [
        "# Benchmarks: the generated app (layer) against plain fastrtc",
        "",
        f"Measured {results['date']} on {m['nproc']} cores ({m['cpu']}), {m['os']}, "
        f"Python {m['python']}, fastrtc {m['fastrtc']}, aiortc {m['aiortc']}, "
        f"gradio {m['gradio']}; the machine's load average (1 min) was "
        f"{results['load_average']} the run. Regenerate with `{command}` (about "
        f"{round(results['seconds'] / 60)} min).",
        "",
        "**layer**: the default generated project (`python -m my_fastrtc_app`). **plain**: "
        "the app of fastrtc issue #403 (`bench/plain_app.py`): the same `Stream` and echo "
        "handler, `stream.mount(app)`, a `/connections` route over both of fastrtc's objects, "
        "the Gradio UI at `/ui`. Both serve on 127.0.0.1 at once; the load (real aiortc peers "
        "from `my_fastrtc_app.loadtest`, half through `POST /webrtc/offer`, half through the "
        "UI's offer route, connecting 0.25 s apart in the latency runs and 0.1 s apart in the "
        "capacity sweep) runs on the same machine, against each in alternating order. "
        "Absolute times depend on the machine and its load; the ratios are the result.",
        "",
        f"## Latency ({results['settings']['rounds']} runs per app of "
        f"{results['settings']['peers']} peers for {results['settings']['duration']} s each)",
        "",
        "Each figure is the median over the runs of that run's own figure.",
        "",
        "| | layer | plain | layer / plain |",
        "|---|---:|---:|---:|",
    ]
    for key, label in (
        ("connect_p50_ms", "offer -> connected, p50 (ms)"),
        ("connect_p95_ms", "offer -> connected, p95 (ms)"),
        ("echo_p50_ms", "echo round trip, p50 (ms)"),
        ("echo_p95_ms", "echo round trip, p95 (ms)"),
        ("server_cpu_percent", "server CPU, % of one core"),
    ):
        layer, plain = lat["layer"][key], lat["plain"][key]
        lines.append(f"| {label} | {layer} | {plain} | {ratio(layer, plain)} |")
    lines.append(
        f"| peers connected / echoes timed / errors | {lat['layer']['peers_connected']} / "
        f"{lat['layer']['echoes_timed']} / {lat['layer']['errors']} | "
        f"{lat['plain']['peers_connected']} / {lat['plain']['echoes_timed']} / "
        f"{lat['plain']['errors']} | |"
    )
    lines += [
        "",
        f"## Capacity (< {LOSS_LIMIT:g} % of frames lost, no error, in most of "
        f"{cap['runs']} runs of {results['settings']['sweep_duration']} s per size)",
        "",
        "Each figure is the median over the runs; the losses of each run are shown where "
        "the runs disagree.",
        "",
        f"Largest number of peers at once: **layer {cap['capacity']['layer']}, plain "
        f"{cap['capacity']['plain']}** (ratio "
        f"{ratio(cap['capacity']['layer'], cap['capacity']['plain'])}; the sweep stops at "
        f"{cap['max_peers']}, or once both have failed).",
        "",
        "| peers | lost % layer | lost % plain | echo p50 ms layer | echo p50 ms plain "
        "| CPU % layer | CPU % plain |",
        "|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for row in cap["sweep"]:
        layer, plain = row["layer"], row["plain"]
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


def lost_cell(run: dict[str, Any]) -> str:
    """The median loss of the runs, and each run's when they disagree."""
    each = run["lost_percent_runs"]
    agree = all((v is not None and v < LOSS_LIMIT) == run["ok"] for v in each)
    return f"{run['lost_percent']}" + ("" if agree else f" ({', '.join(map(str, each))})")


def notes(results: dict[str, Any]) -> list[str]:
    """What the numbers say, worded from the numbers."""
    lat, cap = results["latency"], results["capacity"]["capacity"]
    said = ["## Reading", ""]
    for key, label in (
        ("connect_p50_ms", "offer -> connected, p50"),
        ("echo_p50_ms", "echo round trip, p50"),
    ):
        r = lat["layer"][key] / lat["plain"][key]
        verdict = "within 5 % of" if abs(r - 1) <= 0.05 else "more than 5 % off"
        said.append(f"- {label}: layer / plain = {r:.3f}, {verdict} plain.")
    sweep = results["capacity"]["sweep"]
    alone = min(sweep[0][app]["echo_p50_ms"] or math.inf for app in APPS)
    saturated = next(
        (
            row
            for row in sweep
            if not all(row[app]["ok"] for app in APPS)
            or all((row[app]["echo_p50_ms"] or math.inf) > 2 * alone for app in APPS)
        ),
        None,
    )
    said.append(
        f"- capacity: equal, {cap['layer']} peers."
        if cap["layer"] == cap["plain"]
        else f"- capacity: layer {cap['layer']} peers, plain {cap['plain']}."
    )
    if saturated:
        layer, plain = saturated["layer"], saturated["plain"]
        seen = [
            f"the echo round trip is layer {layer['echo_p50_ms']} ms, plain "
            f"{plain['echo_p50_ms']} ms (against {alone} ms for one peer)"
        ]
        if not (layer["ok"] and plain["ok"]):
            seen.append(f"frames lost (%) layer {lost_cell(layer)}, plain {lost_cell(plain)}")
        said.append(
            f"  At {saturated['peers']} peers {' and '.join(seen)}, with the servers at "
            f"{layer['cpu_percent']} % and {plain['cpu_percent']} % of one core: what runs "
            f"out is the machine's "
            f"{results['machine']['nproc']} cores, shared by the server, the load generator "
            f"(aiortc peers in one Python process) and the machine's "
            f"other load (load average {results['load_average']}), and results at that "
            "size vary from run to run. Capacity here compares the two apps under the same "
            "load on the same machine; for a server's own ceiling, run `make loadtest` from "
            "other machines."
        )
    lookups = results["lookups"]
    small, large = lookups[str(REGISTERED[0])], lookups[str(REGISTERED[-1])]
    flat = max(
        large[name] / small[name] for name in small if name.startswith("layer GET /connections/")
    )
    said += [
        f"- lookups by id (`GET /connections/{{id}}`, known or unknown) cost the same with "
        f"{REGISTERED[-1]:,} registered connections as with {REGISTERED[0]} "
        f"(at most {flat:.1f}x): the layer finds an id in O(1), in both of fastrtc's objects.",
        "- `GET /connections` lists every connection, so it grows with their number in both "
        "apps. The layer's answer holds an id, source and state per connection (a validated "
        "model each), plain's only the bare ids, hence its larger constant.",
    ]
    return said


async def bench(args: argparse.Namespace) -> dict[str, Any]:
    loadtest = importlib.import_module(f"{args.package}.loadtest")
    started = time.monotonic()
    load_before = os.getloadavg()[0]
    logs = Path(tempfile.mkdtemp(prefix="bench-"))
    print(f"server logs in {logs}", flush=True)
    with server("layer", args.package, logs) as layer, server("plain", args.package, logs) as plain:
        servers = {"layer": layer, "plain": plain}
        for app in APPS:  # warm both up: imports, codecs
            await load(loadtest, servers, app, 2, 2, 0)
        latency = await latency_phase(loadtest, servers, args.rounds, args.peers, args.duration)
        capacity = await capacity_phase(
            loadtest, servers, args.max_peers, args.sweep_duration, args.sweep_runs
        )
    lookups = await lookup_phase(args.package)
    results: dict[str, Any] = {
        "date": datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "machine": machine(),
        "settings": {k: str(v) if isinstance(v, Path) else v for k, v in vars(args).items()},
        "latency": latency,
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
    parser.add_argument("--rounds", type=int, default=6, help="latency runs per app [6]")
    parser.add_argument("--peers", type=int, default=4, help="peers per latency run [4]")
    parser.add_argument("--duration", type=float, default=6.0, help="seconds per run [6]")
    parser.add_argument("--max-peers", type=int, default=32, help="capacity sweep bound [32]")
    parser.add_argument("--sweep-duration", type=float, default=6.0, help="seconds [6]")
    parser.add_argument(
        "--sweep-runs", type=int, default=3, help="runs per app and size in the sweep [3]"
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
