"""``AudioBuffer``: the server's audio receive buffer, which holds audio back only behind a
missing packet, and for a bounded time; ``set_audio_buffer`` gives it to a server peer.

aiortc's own buffer holds 4 packets (80 ms) at all times and, behind a lost packet, waits
until 16 are held; it then hands one packet on per packet that comes, so it stays that deep
(300 ms) for the rest of the call.
"""

from __future__ import annotations

import functools
from collections import deque
from collections.abc import Awaitable, Callable

from aiortc import RTCPeerConnection, RTCRtpReceiver
from aiortc.jitterbuffer import JitterBuffer, JitterFrame
from aiortc.rtp import RtpPacket
from aiortc.utils import uint16_add

from .marks import workaround

AUDIO_PACKET_MS = 20
"""The audio in one RTP packet: 20 ms Opus frames, what browsers and aiortc send."""

RESTART_PACKETS = 100
"""A packet this far (2 s of audio) from the next one expected starts the count anew: the
sender restarted, or the connection stalled."""


class AudioBuffer(JitterBuffer):
    """Hands each audio packet on as soon as every packet before it has come; gives a
    missing packet up once more than ``wait`` newer ones are held behind it.

    ``add`` returns the first packet it releases, as aiortc's receiver expects; the others
    wait in ``ready`` for whoever drains it.
    """

    def __init__(self, wait: int) -> None:
        super().__init__(capacity=2)  # aiortc's bookkeeping, unused
        self.wait = wait
        self.ready: deque[JitterFrame] = deque()
        """Packets released, not handed on yet."""
        self.given_up = 0
        """Packets given up as lost."""
        self._held: dict[int, RtpPacket] = {}
        self._next: int | None = None

    def add(self, packet: RtpPacket) -> tuple[bool, JitterFrame | None]:
        number = packet.sequence_number
        if self._next is None:
            self._next = number
        ahead = uint16_add(number, -self._next)
        if ahead > 0xFFFF - RESTART_PACKETS:  # came after it was given up
            return False, None
        if ahead > RESTART_PACKETS:
            self._release_all()
            self._next = number
        self._held[number] = packet
        self._release()
        return False, self.ready.popleft() if self.ready else None

    def _release(self) -> None:
        while self._held and self._next is not None:
            packet = self._held.pop(self._next, None)
            if packet is not None:
                self.ready.append(_frame(packet))
            elif len(self._held) > self.wait:
                self.given_up += 1
            else:
                return
            self._next = uint16_add(self._next, 1)

    def _release_all(self) -> None:
        for number in sorted(self._held, key=lambda n: uint16_add(n, -(self._next or 0))):
            self.ready.append(_frame(self._held[number]))
        self._held.clear()


def _frame(packet: RtpPacket) -> JitterFrame:
    """A packet's audio as aiortc's decoder takes it (one Opus frame per packet)."""
    return JitterFrame(data=packet._data, timestamp=packet.timestamp)  # type: ignore[attr-defined]


@workaround(
    "aiortc's receiver in fastrtc's server peer holds 4 audio packets (80 ms) before the "
    "handler hears them, and 15 (300 ms) for good once one is lost",
    "tests/test_audio_buffer.py::test_the_server_hears_audio_at_once_and_gives_up_lost_packets",
    "tests/test_audio_buffer.py::test_the_audio_buffer_waits_as_set_behind_a_lost_packet",
)
def set_audio_buffer(pc: RTCPeerConnection, wait: int) -> None:
    """Give each audio receiver of the server's peer an ``AudioBuffer`` that waits for at
    most ``wait`` newer packets behind a missing one; call it before the peer connects."""
    for transceiver in pc.getTransceivers():
        if transceiver.kind == "audio":
            receiver = transceiver.receiver
            buffer = AudioBuffer(wait)
            receiver._RTCRtpReceiver__jitter_buffer = buffer  # type: ignore[attr-defined]
            receiver._handle_rtp_packet = functools.partial(  # type: ignore[method-assign]
                _handled_and_drained, receiver, receiver._handle_rtp_packet, buffer
            )


async def _handled_and_drained(
    receiver: RTCRtpReceiver,
    handle: Callable[..., Awaitable[None]],
    buffer: AudioBuffer,
    packet: RtpPacket,
    arrival_time_ms: int,
) -> None:
    """aiortc's handling of a packet, then every other packet it released decoded too
    (aiortc decodes one packet per packet that comes)."""
    await handle(packet, arrival_time_ms=arrival_time_ms)
    codec = receiver._RTCRtpReceiver__codecs.get(packet.payload_type)  # type: ignore[attr-defined]
    if codec is None or not receiver._RTCRtpReceiver__decoder_thread:  # type: ignore[attr-defined]
        buffer.ready.clear()
        return
    timestamps = receiver._RTCRtpReceiver__timestamp_mapper  # type: ignore[attr-defined]
    decoding = receiver._RTCRtpReceiver__decoder_queue  # type: ignore[attr-defined]
    while buffer.ready:
        frame = buffer.ready.popleft()
        frame.timestamp = timestamps.map(frame.timestamp)
        decoding.put((codec, frame))
