"""The load generator's view of the server's CPU and memory, read from ``/proc``.

Only for a server on this machine: found by the port it listens on, then sampled now and
then for its CPU time and resident memory, with those of the processes it started (Linux
only; elsewhere nothing is found).
"""

from __future__ import annotations

import contextlib
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any


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
    """The server's CPU time (user + system) and resident memory at a moment (monotonic)."""

    at: float
    cpu_s: float
    rss_mib: float


def process_tree(pid: int) -> list[int]:
    """``pid`` and the processes it started, theirs too (e.g. a speech-to-text worker)."""
    found, pending = [], [pid]
    while pending:
        current = pending.pop()
        found.append(current)
        for children in Path(f"/proc/{current}/task").glob("*/children"):
            with contextlib.suppress(OSError):
                pending += [int(child) for child in children.read_text().split()]
    return found


def _usage(pid: int) -> tuple[float, float] | None:
    """Process ``pid``'s CPU seconds (user + system) and resident MiB; ``None`` if it is gone
    or this user may not read it."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
        status = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return None
    fields = stat.rsplit(")", 1)[1].split()  # after the command name, which may hold spaces
    ticks = os.sysconf("SC_CLK_TCK")
    cpu_s = (int(fields[11]) + int(fields[12])) / ticks  # utime + stime
    rss_kib = next(int(line.split()[1]) for line in status.splitlines() if line.startswith("VmRSS"))
    return cpu_s, rss_kib / 1024


def sample_server(pid: int) -> ServerSample | None:
    """A sample of process ``pid`` with the processes it started; ``None`` if it is gone or
    this user may not read it."""
    server, *children = [_usage(process) for process in process_tree(pid)]
    if server is None:
        return None
    usages = [server, *(child for child in children if child is not None)]
    return ServerSample(
        time.monotonic(), sum(cpu for cpu, _ in usages), sum(rss for _, rss in usages)
    )


def server_usage(pid: int | None, samples: list[ServerSample]) -> dict[str, Any] | None:
    """The report's ``server``: CPU share between the first and last sample, memory at the
    start and at its peak; ``None`` with fewer than two samples."""
    if len(samples) < 2:
        return None
    first, last = samples[0], samples[-1]
    return {
        "pid": pid,
        "cpu_percent": round(100 * (last.cpu_s - first.cpu_s) / (last.at - first.at), 1),
        "rss_mib_start": round(first.rss_mib, 1),
        "rss_mib_peak": round(max(s.rss_mib for s in samples), 1),
    }
