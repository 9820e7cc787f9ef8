"""What a lookup costs does not grow with the number of connections.

Every request about one connection (``GET /connections/{id}``, its input, its outputs) and
every new offer (admission counts and looks up ids) goes through ``StreamService``'s lookups.
Here they run against 10 and against 10,000 registered connections; each must stay within
10x, a ratio measured side by side, so the test holds on a slow or a busy machine. A scan
over the connections makes the ratio hundreds.
"""

from __future__ import annotations

import timeit
from collections.abc import Callable

import pytest

from {{ cookiecutter.package_name }}.media import AppStreams, build_stream, build_streams
from {{ cookiecutter.package_name }}.services.streams import (
    Source,
    UnknownConnectionError,
)
from {{ cookiecutter.package_name }}.settings import Settings

SMALL, LARGE = 10, 10_000
MAX_RATIO = 10.0


OFFER_SDP = "v=0\r\nm=audio 9 UDP/TLS/RTP/SAVPF 0\r\nm=video 9 UDP/TLS/RTP/SAVPF 96\r\n"
"""An offer's SDP as admission reads it (no peer ever answers it here)."""


class Registered:
    """A ``StreamService`` with ``count`` synthetic connections: API, UI and websocket alike.

    Each is admitted as its door admits it (the layer's ``reserve``), with no peer behind it:
    only the lookups are measured.
    """

    def __init__(self, count: int) -> None:
        settings = Settings(_env_file=None, concurrency_limit=2 * LARGE)  # type: ignore[call-arg]
        self.streams = build_streams(build_stream(settings), settings)
        self.last: dict[Source, str] = {}
        for n in range(count):
            source = list(Source)[n % len(Source)]
            offer = {"type": "offer", "sdp": OFFER_SDP, "webrtc_id": f"{source.value}-{n}"}
            self.last[source] = self.streams.reserve(offer, source)  # the last: a scan's worst
        assert len(self.streams) == count


def refused(lookup: Callable[[], object]) -> Callable[[], None]:
    def call() -> None:
        try:
            lookup()
        except UnknownConnectionError:
            return
        raise AssertionError("an unknown id was found")

    return call


Lookup = Callable[[Registered], Callable[[], object]]

LOOKUPS: dict[str, Lookup] = {
    "get an API id": lambda r: lambda: r.streams.get(r.last[Source.API]),
    "get a UI id": lambda r: lambda: r.streams.get(r.last[Source.UI]),
    "get a websocket id": lambda r: lambda: r.streams.get(r.last[Source.WEBSOCKET]),
    "get an unknown id": lambda r: refused(lambda: r.streams.get("unknown")),
    "in, unknown id": lambda r: lambda: "unknown" in r.streams,
    "in, websocket id": lambda r: lambda: r.last[Source.WEBSOCKET] in r.streams,
    "len": lambda r: lambda: len(r.streams),
    "a page of the listing": lambda r: lambda: r.streams.list_connections(0, SMALL),
    "admission of a new id": lambda r: admitted_and_withdrawn(r.streams),
    "latest output of an unknown id": lambda r: refused(lambda: r.streams.latest_output("unknown")),
}


def admitted_and_withdrawn(streams: AppStreams) -> Callable[[], object]:
    """Admit a new id and withdraw it again."""

    def admit() -> None:
        streams.withdraw(streams.reserve({"webrtc_id": "new-id"}, Source.WEBSOCKET))

    return admit


@pytest.fixture(scope="module")
def registered() -> dict[int, Registered]:
    return {count: Registered(count) for count in (SMALL, LARGE)}


def seconds_per_call(calls: dict[int, Callable[[], object]]) -> dict[int, float]:
    """The best time of each call over interleaved rounds, so that both see the same load."""
    loops = 500
    best = dict.fromkeys(calls, float("inf"))
    for _ in range(7):
        for count, call in calls.items():
            best[count] = min(best[count], timeit.timeit(call, number=loops) / loops)
    return best


@pytest.mark.parametrize("name", LOOKUPS)
def test_lookup_cost_does_not_grow_with_connections(
    registered: dict[int, Registered], name: str
) -> None:
    lookup = LOOKUPS[name]
    took = seconds_per_call({count: lookup(r) for count, r in registered.items()})

    ratio = took[LARGE] / took[SMALL]
    assert ratio < MAX_RATIO, (
        f"{name}: {took[LARGE] * 1e6:.2f} us with {LARGE} connections, "
        f"{took[SMALL] * 1e6:.2f} us with {SMALL} ({ratio:.0f}x)"
    )
