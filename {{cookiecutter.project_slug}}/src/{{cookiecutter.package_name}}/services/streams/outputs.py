"""Output fan-out: each connection's outputs, to any number of subscribers, bounded."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Generic

from .interface import OutputT


@dataclass
class Outputs(Generic[OutputT]):
    """One connection's outputs: the latest, and a bounded queue per subscriber.

    A slow subscriber loses its oldest output, never memory; ``end`` finishes every
    subscription.
    """

    buffer: int
    latest: OutputT | None = None
    queues: set[asyncio.Queue[OutputT | None]] = field(default_factory=set)

    def publish(self, output: OutputT) -> None:
        self.latest = output
        for queue in self.queues:
            _put(queue, output)

    def end(self) -> None:
        for queue in self.queues:
            _put(queue, None)

    def subscribe(self) -> AsyncIterator[OutputT]:
        """Every output from now on, until ``end``; the subscription starts now."""
        queue: asyncio.Queue[OutputT | None] = asyncio.Queue(self.buffer)
        self.queues.add(queue)
        return self._drain(queue)

    async def _drain(self, queue: asyncio.Queue[OutputT | None]) -> AsyncIterator[OutputT]:
        try:
            while (item := await queue.get()) is not None:
                yield item
        finally:
            self.queues.discard(queue)


def _put(queue: asyncio.Queue[OutputT | None], item: OutputT | None) -> None:
    if queue.full():
        queue.get_nowait()
    queue.put_nowait(item)
