"""Prometheus metrics of one app instance, and per-job gauges read from the database at each scrape."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Histogram
from prometheus_client.core import GaugeMetricFamily
from sqlalchemy import select
from sqlalchemy.orm import sessionmaker

from cloud import overview
from cloud.db import Job
from cloud.lifecycle import ACTIVE


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
        self.keyservice_errors = Counter("fedwear_keyservice_errors_total",
                                         "Calls to the key service that failed or were refused, per job", ["job"],
                                         registry=self.registry)

    def watch_jobs(self, sessions: sessionmaker) -> None:
        """Adds the per-job gauges, read from the database (so every worker reports the same)."""
        self.registry.register(JobGauges(sessions))


class JobGauges:
    """Per job that is running or stopping: open round, contributors, devices, failed and extended rounds."""

    GAUGES = {
        "open_round": ("fedwear_job_open_round", "Number of the job's latest round"),
        "contributors": ("fedwear_job_round_contributors", "Contributors so far in the job's latest round"),
        "devices": ("fedwear_job_devices_enrolled", "Devices enrolled in the job"),
        "rounds_failed": ("fedwear_job_rounds_failed", "Rounds of the job that failed"),
        "rounds_extended": ("fedwear_job_rounds_extended", "Rounds of the job whose deadline was extended"),
    }

    def __init__(self, sessions: sessionmaker) -> None:
        self.sessions = sessions

    def collect(self):
        families = {key: GaugeMetricFamily(name, text, labels=["job"]) for key, (name, text) in self.GAUGES.items()}
        with self.sessions() as db:
            for job in db.scalars(select(Job).where(Job.status.in_(ACTIVE))).all():
                counts = overview.job_counts(db, job)
                latest = overview.progress(db, job) or {"number": 0, "contributors": 0}
                values = {**counts, "open_round": latest["number"], "contributors": latest["contributors"]}
                for key, family in families.items():
                    family.add_metric([job.id], values[key])
            db.rollback()
        yield from families.values()
