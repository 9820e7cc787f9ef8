"""A real TURN server for the tests: coturn (``turnserver``) on free 127.0.0.1 ports, with the
"TURN REST API" credentials of ``use-auth-secret``, and what its log says it allocated.

Without ``turnserver`` the tests that need it are skipped, unless ``REQUIRE_TURN=1`` (CI) makes
that a failure. Install it with ``sudo apt-get install coturn``.
"""

from __future__ import annotations

import os
import random
import re
import secrets
import shutil
import socket
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import pytest
from aioice import stun

TURNSERVER = os.environ.get("TURNSERVER") or shutil.which("turnserver") or "/usr/bin/turnserver"
HOST = "127.0.0.1"
REALM = "turn.test"
RELAY_PORTS = 32
"""The size of the relay port range: a port per allocation (a test module makes about 20)."""
PORT_RANGE = (49152, 65535)
"""Where relay ports may be (RFC 5766); above the kernel's ephemeral ports where there is room."""
ATTEMPTS = 4
"""Starts tried, on fresh ports, before giving up: another process may take a port first."""
START_WITHIN_S = 15.0
STOP_WITHIN_S = 10.0
ALLOCATED = "incoming packet ALLOCATE processed, success"
"""What coturn 4.6 logs for each allocation it grants."""
REFUSED = re.compile(r"user <[^>]+>: incoming packet \w+ processed, error 401")
"""What it logs for a request whose credential it refused (not the first, unsigned request of
a client, which it answers with 401 too, to give the realm: its user is empty)."""
CANNOT_BIND = "Cannot bind"
"""What it logs, over and over, while a listening port is taken."""


@dataclass
class Coturn:
    """A running coturn: where it listens, its shared secret, and its log."""

    port: int
    secret: str
    log: Path
    relay_ports: range

    @property
    def url(self) -> str:
        return f"turn:{HOST}:{self.port}?transport=udp"

    @property
    def address(self) -> tuple[str, int]:
        return HOST, self.port

    def log_text(self) -> str:
        return self.log.read_text(errors="replace") if self.log.exists() else ""

    def allocations(self) -> int:
        """Allocations granted since it started."""
        return self.log_text().count(ALLOCATED)

    def refusals(self) -> int:
        """Requests refused for their credential since it started."""
        return len(REFUSED.findall(self.log_text()))


def udp_free(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
        try:
            probe.bind((HOST, port))
        except OSError:
            return False
        return True


def free_listening_port() -> int:
    """A port free for both UDP and TCP on ``HOST``."""
    while True:
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
            probe.bind((HOST, 0))
            port = int(probe.getsockname()[1])
        with socket.socket() as tcp:
            try:
                tcp.bind((HOST, port))
            except OSError:
                continue
        return port


def free_relay_ports() -> range:
    """``RELAY_PORTS`` consecutive free UDP ports, away from the ephemeral ports if possible."""
    low, high = PORT_RANGE
    ephemeral_top = int(Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()[1])
    if high - max(low, ephemeral_top + 1) >= 4 * RELAY_PORTS:
        low = ephemeral_top + 1
    for _ in range(100):
        start = random.randrange(low, high - RELAY_PORTS)
        ports = range(start, start + RELAY_PORTS)
        if all(udp_free(port) for port in ports):
            return ports
    raise RuntimeError(f"no {RELAY_PORTS} free UDP ports in {low}-{high}")


def config(port: int, relay_ports: range, secret: str, directory: Path) -> str:
    """coturn's configuration: loopback only, ``use-auth-secret``, no TLS, CLI or database."""
    return "\n".join(
        [
            f"listening-ip={HOST}",
            f"relay-ip={HOST}",
            f"listening-port={port}",
            f"min-port={relay_ports.start}",
            f"max-port={relay_ports.stop - 1}",
            "use-auth-secret",
            f"static-auth-secret={secret}",
            f"realm={REALM}",
            "allow-loopback-peers",  # the app's peers are on this machine
            "no-multicast-peers",
            "no-cli",
            "no-tls",
            "no-dtls",
            f"userdb={directory / 'turndb'}",  # not the system's
            f"log-file={directory / 'turnserver.log'}",
            "simple-log",
            "no-stdout-log",
            "verbose",
            f"pidfile={directory / 'turnserver.pid'}",
            "",
        ]
    )


def answers_binding(port: int) -> bool:
    """Whether a STUN binding request to ``port`` is answered (within half a second)."""
    request = stun.Message(message_method=stun.Method.BINDING, message_class=stun.Class.REQUEST)
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as client:
        client.settimeout(0.5)
        client.sendto(bytes(request), (HOST, port))
        try:
            data = client.recv(2048)
        except OSError:
            return False
    response = stun.parse_message(data)
    return bool(response.transaction_id == request.transaction_id)


def stop(process: subprocess.Popen[bytes]) -> None:
    process.terminate()
    try:
        process.wait(timeout=STOP_WITHIN_S)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


def start(directory: Path, secret: str) -> tuple[subprocess.Popen[bytes], Coturn] | None:
    """Start coturn on fresh free ports; ``None`` if a port was taken meanwhile."""
    port, relay_ports = free_listening_port(), free_relay_ports()
    server = Coturn(port, secret, directory / "turnserver.log", relay_ports)
    server.log.unlink(missing_ok=True)
    path = directory / "turnserver.conf"
    path.write_text(config(port, relay_ports, secret, directory))
    process = subprocess.Popen(
        [TURNSERVER, "-c", str(path)], stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT
    )
    listening = f"UDP listener opened on: {HOST}:{port}"
    deadline = time.monotonic() + START_WITHIN_S
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"turnserver exited with {process.returncode}:\n{server.log_text()}")
        text = server.log_text()
        if CANNOT_BIND in text:
            stop(process)
            return None
        if listening in text and answers_binding(port):
            return process, server
        time.sleep(0.1)
    stop(process)
    raise RuntimeError(f"turnserver not answering after {START_WITHIN_S} s:\n{server.log_text()}")


@contextmanager
def running_coturn(directory: Path) -> Iterator[Coturn]:
    """coturn with a random secret, on free ports, until the block ends."""
    if not os.access(TURNSERVER, os.X_OK):
        reason = f"no turnserver at {TURNSERVER}: install it with 'sudo apt-get install coturn'"
        if os.environ.get("REQUIRE_TURN") == "1":
            raise RuntimeError(f"REQUIRE_TURN=1 but {reason}")
        pytest.skip(reason)
    secret = secrets.token_urlsafe(24)
    for _ in range(ATTEMPTS):
        started = start(directory, secret)
        if started is not None:
            break
    else:
        raise RuntimeError(f"turnserver found its ports taken {ATTEMPTS} times")
    process, server = started
    try:
        yield server
    finally:
        stop(process)


@pytest.fixture(scope="module")
def coturn(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Coturn]:
    """A real coturn for a whole test module."""
    with running_coturn(tmp_path_factory.mktemp("coturn")) as server:
        yield server
