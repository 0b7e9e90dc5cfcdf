"""Prometheus metrics of one app instance."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Histogram


class Metrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.requests = Histogram("fedwear_request_seconds", "HTTP request duration",
                                  ["method", "endpoint", "status"], registry=self.registry)
        self.uploads = Counter("fedwear_uploads_total", "Update uploads by result", ["result"],
                               registry=self.registry)
        self.bytes_in = Counter("fedwear_bytes_in_total", "Update bytes accepted", registry=self.registry)
        self.bytes_out = Counter("fedwear_bytes_out_total", "Bundle and weight bytes served",
                                 registry=self.registry)
        self.published = Counter("fedwear_rounds_published_total", "Rounds published", registry=self.registry)
