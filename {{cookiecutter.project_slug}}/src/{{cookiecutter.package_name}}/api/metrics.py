"""``GET /metrics``: Prometheus text format, read from the connection layer at scrape time."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator

from fastapi import APIRouter, Response
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector
{% if cookiecutter.handler == "voice-agent" %}
from ..handlers.voice_agent.agent import TURN_SECONDS
{%- endif %}
from ..media import AppStreams
from ..services.streams import Source
from .auth import Admin
from .deps import StreamsDep
from .errors import UnauthorizedError, responses

router = APIRouter(tags=["health"])

EXAMPLE_METRICS = """\
# HELP app_connections_active Live connections, by source
# TYPE app_connections_active gauge
app_connections_active{source="api"} 1.0
app_connections_active{source="ui"} 0.0
app_connections_active{source="websocket"} 0.0
"""
"""The start of an answer."""


class StreamCollector(Collector):
    def __init__(self, streams: AppStreams) -> None:
        self.streams = streams

    def collect(self) -> Iterator[Metric]:
        active = GaugeMetricFamily(
            "app_connections_active", "Live connections, by source", labels=["source"]
        )
        live = Counter(info.source for info in self.streams.list_connections())
        for source in Source:
            active.add_metric([source.value], live[source])
        yield active
        total = CounterMetricFamily(
            "app_connections", "Connections accepted, by source", labels=["source"]
        )
        for source in Source:
            total.add_metric([source.value], self.streams.connections_total[source])
        yield total
        registries = GaugeMetricFamily(
            "app_registry_entries",
            "Entries in each per-connection registry (all 0 when idle; else a leak)",
            labels=["registry"],
        )
        for name, size in self.streams.registry_sizes().items():
            registries.add_metric([name], size)
        yield registries
        errors = CounterMetricFamily(
            "app_handler_errors", "Exceptions raised by the connections' handlers"
        )
        errors.add_metric([], self.streams.handler_errors)
        yield errors
        limit = GaugeMetricFamily("app_concurrency_limit", "Most connections at once")
        limit.add_metric([], self.streams.concurrency_limit)
        yield limit


@router.get(
    "/metrics",
    dependencies=[Admin],
    response_class=Response,
    responses={
        200: {"content": {CONTENT_TYPE_LATEST: {"example": EXAMPLE_METRICS}}},
        **responses(UnauthorizedError, validates=False),
    },
)
async def get_metrics(streams: StreamsDep) -> Response:
    """Prometheus metrics, in its text format (needs the admin token when `APP_ADMIN_TOKEN` is
    set)."""
    registry = CollectorRegistry()
    registry.register(StreamCollector(streams))
{%- if cookiecutter.handler == "voice-agent" %}
    registry.register(TURN_SECONDS)  # the voice agent's turns: seconds to each stage
{%- endif %}
    return Response(generate_latest(registry), media_type=CONTENT_TYPE_LATEST)
