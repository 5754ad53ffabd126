"""Prometheus metrics of one process, read from :class:`~ws4redis_tornado.metrics.Metrics` at scrape time.

Needs ``prometheus_client`` (``pip install 'ws4redis-tornado[metrics]'``). Nothing here runs
between scrapes: a :class:`ProcessCollector` turns the process's counters into metric families
when a scrape asks, so counting never creates a Prometheus object. Every series carries a
``process`` label (the index among ``--processes``), so that the processes behind one port stay
distinguishable.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

import tornado.web
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily, Metric
from tornado.ioloop import IOLoop

from .supervisor import process_index

if TYPE_CHECKING:
    from .server import WebSocketApplication

__all__ = ["MetricsHandler", "ProcessCollector", "registry_of"]

PREFIX = "ws4redis_"


class ProcessCollector:
    """The metric families of one application's process (a ``prometheus_client`` custom collector)."""

    def __init__(self, app: WebSocketApplication) -> None:
        self._app = app

    def collect(self) -> Iterator[Metric]:
        app = self._app
        broker = app.broker
        metrics = broker.metrics
        process = str(process_index())
        now = IOLoop.current().time()

        def gauge(name: str, documentation: str, value: float) -> GaugeMetricFamily:
            family = GaugeMetricFamily(PREFIX + name, documentation, labels=["process"])
            family.add_metric([process], value)
            return family

        def counter(name: str, documentation: str, value: float) -> CounterMetricFamily:
            family = CounterMetricFamily(PREFIX + name, documentation, labels=["process"])
            family.add_metric([process], value)
            return family

        def by(name: str, documentation: str, label: str, values: dict[Any, int]) -> CounterMetricFamily:
            family = CounterMetricFamily(PREFIX + name, documentation, labels=["process", label])
            for key, value in sorted(values.items()):
                family.add_metric([process, str(key)], value)
            return family

        yield gauge("sockets_open", "Open websockets.", len(app.sockets))
        yield gauge("channels_subscribed", "Redis channels the process is subscribed to.", broker.channel_count)
        yield gauge("redis_connected", "1 while the pub/sub connection to Redis is up.", int(broker.connected))
        yield gauge("presence_entries", "Presence entries this process holds.", broker.presence.entries)
        yield by("handshakes", "Handshakes by the HTTP status they were answered with.", "status", metrics.handshakes)
        yield by("closes", "Closes of open websockets by close code.", "code", metrics.closes)
        yield counter("redis_messages", "Messages read from Redis for local sockets.", metrics.redis_messages)
        yield counter("frames_delivered", "Messages from Redis times the sockets they went to.", metrics.deliveries)
        yield counter("bytes_sent", "Bytes written to websockets.", metrics.bytes_sent)
        compressor = app.frame_writer.compressor
        yield counter(
            "frames_compressed",
            "Frames compressed for permessage-deflate: once per message, however many sockets.",
            compressor.compressed if compressor is not None else 0,
        )
        yield counter("client_publishes", "Messages sockets published.", metrics.client_publishes)
        yield counter("slow_consumer_closes", "Sockets closed for not reading (1008).", metrics.slow_consumer_closes)
        yield counter("rate_limit_closes", "Sockets closed for sending too fast (1008).", metrics.rate_limit_closes)
        yield counter("redis_reconnects", "Times the pub/sub connection came back.", metrics.redis_reconnects)
        yield counter(
            "redis_disconnected_seconds", "Seconds without the pub/sub connection.", metrics.down_seconds(now)
        )
        yield counter("persisted_fetches", "Reads of persisted messages (one per batch).", metrics.persisted_fetches)
        yield by("recoveries", "Channels of recovering clients by outcome.", "outcome", metrics.recoveries)
        fanout = HistogramMetricFamily(
            PREFIX + "fanout_seconds",
            "From a batch's first queued frame (a message read from Redis) to its last socket write.",
            labels=["process"],
        )
        fanout.add_metric([process], metrics.fanout.cumulative(), sum_value=metrics.fanout.total)
        yield fanout


def registry_of(app: WebSocketApplication) -> CollectorRegistry:
    """A registry holding only this application's process collector."""
    registry = CollectorRegistry(auto_describe=False)
    registry.register(ProcessCollector(app))  # type: ignore[arg-type]
    return registry


class MetricsHandler(tornado.web.RequestHandler):
    """``GET`` answers the Prometheus text format."""

    def initialize(self, registry: CollectorRegistry) -> None:
        self.registry = registry

    def get(self) -> None:
        self.set_header("Content-Type", CONTENT_TYPE_LATEST)
        self.finish(generate_latest(self.registry))
