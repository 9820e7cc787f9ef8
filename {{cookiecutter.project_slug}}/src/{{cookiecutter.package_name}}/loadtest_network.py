"""The load generator's emulated networks: the profiles, and the impairment of one peer.

The peers and the app meet on 127.0.0.1, where datagrams take microseconds and none is lost.
This kernel has no netem queueing discipline to shape that traffic, so each peer shapes its
own, in userspace, in its process: every UDP datagram of its peer connection's sockets, in
both directions (those it sends and those it receives), is delayed by ``delay_ms`` ±
``jitter_ms`` (drawn uniformly and independently per datagram, so, as with netem, jitter can
reorder them) or lost with ``loss_percent``. A peer's draws come from a ``random.Random``
seeded with its number in the run, so a run is reproducible.
"""

from __future__ import annotations

import asyncio
import functools
import random
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol

from aiortc import RTCPeerConnection


@dataclass(frozen=True)
class Network:
    """What each datagram goes through, each way: a delay, jitter around it, and loss."""

    name: str
    delay_ms: float = 0.0
    jitter_ms: float = 0.0
    loss_percent: float = 0.0

    @property
    def impairs(self) -> bool:
        """Whether anything is emulated: a network that does nothing wraps nothing."""
        return bool(self.delay_ms or self.jitter_ms or self.loss_percent)

    def describe(self) -> str:
        """The figures, for people."""
        if not self.impairs:
            return f"{self.name}: no impairment"
        loss = f"{self.loss_percent:g} % loss" if self.loss_percent else "no loss"
        return f"{self.name}: {self.delay_ms:g} ± {self.jitter_ms:g} ms, {loss}, each way"


NETWORKS = {
    network.name: network
    for network in (
        Network("loopback"),
        Network("lan", delay_ms=2, jitter_ms=1),
        Network("internet", delay_ms=40, jitter_ms=15, loss_percent=1),
    )
}
"""The profiles of ``--network``, by name; ``loopback``, the default, emulates nothing."""
LOOPBACK = NETWORKS["loopback"]


@dataclass
class Impairment:
    """One direction of one peer's network: each datagram's fate, and the tally of them."""

    network: Network
    rng: random.Random
    passed: int = 0
    dropped: int = 0

    def delay_or_drop(self) -> float | None:
        """The next datagram's delay in seconds, or ``None`` if it is lost."""
        if self.rng.random() * 100 < self.network.loss_percent:
            self.dropped += 1
            return None
        self.passed += 1
        jitter = self.rng.uniform(-self.network.jitter_ms, self.network.jitter_ms)
        return max(0.0, self.network.delay_ms + jitter) / 1000

    def pass_on(
        self,
        transport: asyncio.BaseTransport,
        deliver: Callable[[bytes, Any], None],
        data: bytes,
        addr: Any = None,
    ) -> None:
        """Hand the datagram to ``deliver`` after its delay, unless it is lost or the socket
        has closed by then."""
        delay = self.delay_or_drop()
        if delay is not None:
            asyncio.get_running_loop().call_later(
                delay, _deliver_if_open, transport, deliver, data, addr
            )


def _deliver_if_open(
    transport: asyncio.BaseTransport, deliver: Callable[[bytes, Any], None], data: bytes, addr: Any
) -> None:
    if not transport.is_closing():
        deliver(data, addr)


class Socket(Protocol):
    """A UDP socket as asyncio has it: a datagram protocol and its transport (aioice's
    ``StunProtocol`` is one)."""

    transport: asyncio.DatagramTransport

    def datagram_received(self, data: bytes, addr: tuple[Any, ...]) -> None: ...


class EmulatedLink:
    """One peer's network: its two directions, applied to its peer connection's sockets."""

    def __init__(self, network: Network, seed: int = 0) -> None:
        self.network = network
        self.outgoing = Impairment(network, random.Random(f"{seed}-outgoing"))
        self.incoming = Impairment(network, random.Random(f"{seed}-incoming"))
        self.sockets = 0
        """How many UDP sockets are impaired."""

    def apply(self, pc: RTCPeerConnection) -> None:
        """Impair every datagram ``pc`` sends and receives; with ``loopback``, wrap nothing.

        Call it once ``pc``'s candidates are gathered (``setLocalDescription`` waits for
        that: its sockets are open, and no later gathering opens others) and before the
        offer is sent, so that the ICE checks are impaired too.
        """
        if self.network.impairs:
            for socket in sockets_of(pc):
                self.impair(socket)

    def impair(self, socket: Socket) -> None:
        """Delay or drop each datagram ``socket`` sends, and each one it receives."""
        transport = socket.transport
        transport.sendto = functools.partial(  # type: ignore[method-assign]
            self.outgoing.pass_on, transport, transport.sendto
        )
        socket.datagram_received = functools.partial(  # type: ignore[method-assign]
            self.incoming.pass_on, transport, socket.datagram_received
        )
        self.sockets += 1


def sockets_of(pc: RTCPeerConnection) -> list[Socket]:
    """The UDP sockets of ``pc``'s ICE transports (one per m-line until the answer bundles
    them), once its candidates are gathered."""
    ice_transports = {t.receiver.transport.transport for t in pc.getTransceivers()}
    if pc.sctp is not None:
        ice_transports.add(pc.sctp.transport.transport)
    if any(ice.iceGatherer.state != "completed" for ice in ice_transports):
        raise RuntimeError("the peer connection's candidates are not gathered yet")
    return [socket for ice in ice_transports for socket in ice._connection._protocols]
