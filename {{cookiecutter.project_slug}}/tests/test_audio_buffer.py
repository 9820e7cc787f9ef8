"""The server's audio receive buffer, through every door: audio that comes in order is heard
at once, a lost packet is waited for while ``APP_AUDIO_BUFFER_MS`` of newer audio comes, then
given up, and what was held behind it is heard at once."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

import pytest
from aiortc import RTCPeerConnection
from aiortc.rtp import RtpPacket

from {{ cookiecutter.package_name }}.client import Door, Peer, wait_until
from {{ cookiecutter.package_name }}.services.streams._fastrtc.audio_buffer import (
    RESTART_PACKETS,
    AudioBuffer,
)

from .conftest import DOORS, Connect

PACKET_SAMPLES = 960
"""RTP timestamp units in one 20 ms audio packet (Opus counts at 48 kHz)."""


def dropping_every(peer: Peer, nth: int) -> Callable[[], int]:
    """From now on the peer drops every ``nth`` audio packet it sends, as a lossy network
    would; returns a count of those it still sends."""
    (sender,) = [t.sender for t in peer.pc.getTransceivers() if t.kind == "audio"]
    transport = sender.transport
    send = transport._send_rtp
    sent = 0

    async def lossy(data: bytes) -> None:
        nonlocal sent
        if 192 <= data[1] <= 223 or RtpPacket.parse(data).ssrc != sender._ssrc:
            return await send(data)  # RTCP (RFC 5761), or another track's
        sent += 1
        if sent % nth:
            await send(data)

    transport._send_rtp = lossy  # type: ignore[method-assign]
    return lambda: sent - sent // nth


def heard_by(pc: RTCPeerConnection) -> Callable[[], int]:
    """From now on, a count of the audio frames the server's peer hands its handler."""
    (track,) = [r.track for r in pc.getReceivers() if r.track.kind == "audio"]
    recv = track.recv
    heard = 0

    async def counted() -> Any:
        nonlocal heard
        frame = await recv()
        heard += 1
        return frame

    track.recv = counted  # type: ignore[method-assign]
    return lambda: heard


@pytest.mark.parametrize("door", DOORS)
@pytest.mark.parametrize(
    ("settings", "wait"),
    [({}, 3), ({"audio_buffer_ms": 0}, 0)],
    indirect=["settings"],
    ids=["default", "0ms"],
)
async def test_the_server_hears_audio_at_once_and_gives_up_lost_packets(
    peer: Connect, door: Door, wait: int, server_peers: list[RTCPeerConnection]
) -> None:
    client = await peer(door)
    (pc,) = server_peers
    heard = heard_by(pc)
    sent = dropping_every(client, 10)

    await asyncio.sleep(1.0)  # five packets lost
    # aiortc's own buffer would stay 15 packets behind for good after the first loss.
    await wait_until(lambda: sent() - heard() <= wait + 3, within=5)


def rtp(number: int) -> RtpPacket:
    """Audio packet ``number`` (mod 2**16), 20 ms apart, as aiortc's receiver has it."""
    packet = RtpPacket(payload_type=111, sequence_number=number % 2**16)
    packet.timestamp = number * PACKET_SAMPLES % 2**32
    packet._data = bytes([number % 256])  # type: ignore[attr-defined]
    return packet


class Released:
    """What an ``AudioBuffer`` hands on, packet numbers in order, as the receiver drains it."""

    def __init__(self, buffer: AudioBuffer) -> None:
        self.buffer = buffer
        self.numbers: list[int] = []

    def add(self, number: int) -> list[int]:
        """Add a packet; the numbers it releases."""
        _, first = self.buffer.add(rtp(number))
        frames = ([first] if first is not None else []) + list(self.buffer.ready)
        self.buffer.ready.clear()
        released = [frame.data[0] for frame in frames]
        self.numbers += released
        return released


@pytest.mark.parametrize("wait", [0, 1, 3])
@pytest.mark.parametrize("start", [0, 2**16 - 12], ids=["from-0", "wrapping"])
def test_the_audio_buffer_waits_as_set_behind_a_lost_packet(wait: int, start: int) -> None:
    released = Released(AudioBuffer(wait))
    for n in range(start, start + 10):
        assert released.add(n) == [n % 256]  # in order: each one at once

    lost = start + 10  # never comes in time: held behind, then given up
    behind = [lost + 1 + k for k in range(wait)]
    for n in behind:
        assert released.add(n) == []
    assert released.add(lost + 1 + wait) == [n % 256 for n in [*behind, lost + 1 + wait]]
    assert released.buffer.given_up == 1
    assert released.add(lost) == []  # too late: given up already

    after = lost + 2 + wait  # two packets swapped on the way
    first, second = released.add(after + 1), released.add(after)
    if wait:  # the first is held for the second
        assert (first, second) == ([], [after % 256, (after + 1) % 256])
    else:  # no wait: the second is given up before it comes
        assert (first, second) == ([(after + 1) % 256], [])
    assert released.buffer.given_up == (1 if wait else 2)


def test_the_audio_buffer_starts_anew_after_a_jump() -> None:
    released = Released(AudioBuffer(3))
    released.add(5)
    released.add(7)  # 6 missing: 7 held
    assert released.add(5 + RESTART_PACKETS + 10) == [7, (15 + RESTART_PACKETS) % 256]
    assert released.add(16 + RESTART_PACKETS) == [(16 + RESTART_PACKETS) % 256]
