"""Operations: ``/healthz`` for load balancers, ``/metrics`` for Prometheus.

Counts that must agree across gunicorn workers (deliveries by verdict, images archived,
the fetch queue, cost) are read from the catalogue, the one place all processes share.
The ingest latency histogram is per process, or aggregated over workers when
``PROMETHEUS_MULTIPROC_DIR`` is set (``serve --workers`` sets it).
"""

import os
import shutil
import time
from datetime import datetime, timezone

from flask import Blueprint, Response, current_app, jsonify
from prometheus_client import (
    CONTENT_TYPE_LATEST, CollectorRegistry, Histogram, generate_latest, multiprocess,
)
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily

from archive import delivery_log, health
from receiver import get_catalogue, replica
from receiver.storage import get_store

bp = Blueprint("ops", __name__)
MIN_FREE_BYTES = 100 * 1024 * 1024

INGEST_SECONDS = Histogram(
    "runware_archive_ingest_seconds", "Time to verify, store and acknowledge a webhook",
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5),
)


def age_seconds(stamp):
    """Seconds since an ISO UTC timestamp, or None."""
    if not stamp:
        return None
    then = datetime.strptime(stamp, "%Y-%m-%dT%H:%M:%S.%fZ").replace(tzinfo=timezone.utc)
    return round(time.time() - then.timestamp(), 3)


@bp.get("/healthz")
def healthz():
    """200 when the catalogue takes writes and the disk has room (and, with a replica,
    Litestream runs and is less than a minute behind), else 503."""
    catalogue = get_catalogue()
    free = shutil.disk_usage(current_app.config["RUNWARE_ARCHIVE_DIR"]).free
    pending, oldest = health.queue_state(catalogue.conn)
    checks = {"catalogueWritable": health.can_write(catalogue.path), "diskFreeBytes": free,
              "diskOk": free >= MIN_FREE_BYTES, "fetchQueue": pending,
              "oldestPendingSeconds": age_seconds(oldest),
              "provider": current_app.config["PROVIDER"],
              "storage": get_store(current_app).kind}
    checks["storageOk"] = storage_ok(checks)
    ok = checks["catalogueWritable"] and checks["diskOk"] and checks["storageOk"]
    copy = replica.status(current_app.config)
    if copy is not None:  # RUNWARE_ARCHIVE_REPLICA: Litestream running, and its lag
        checks["replica"] = copy
        ok = ok and copy["ok"]
    return jsonify(status="ok" if ok else "failing", **checks), 200 if ok else 503


def storage_ok(checks):
    """Whether the image store answers (a bucket: HeadBucket); the error goes in ``checks``."""
    try:
        get_store(current_app).check()
    except Exception as exc:  # noqa: BLE001 - any failure to reach the store is the answer
        checks["storageError"] = f"{type(exc).__name__}: {exc}"
        return False
    return True


class CatalogueCollector:
    """Prometheus metrics read from the catalogue at scrape time."""

    def __init__(self, conn):
        self.conn = conn

    def collect(self):
        deliveries = CounterMetricFamily(
            "runware_archive_deliveries", "Deliveries received, by verdict",
            labels=["verdict"])
        for verdict, count in sorted(delivery_log.counts_by_verdict(self.conn).items()):
            deliveries.add_metric([verdict], count)
        yield deliveries
        states = GaugeMetricFamily("runware_archive_images", "Results by archive state",
                                   labels=["state"])
        counts = health.image_states(self.conn)
        for state, count in sorted(counts.items()):
            states.add_metric([state], count)
        yield states
        pending, oldest = health.queue_state(self.conn)
        yield GaugeMetricFamily("runware_archive_fetch_queue", "Images waiting to be "
                                "archived", value=pending)
        yield GaugeMetricFamily("runware_archive_oldest_pending_seconds", "Age of the "
                                "oldest image waiting", value=age_seconds(oldest) or 0)
        yield CounterMetricFamily("runware_archive_cost_usd", "Sum of returned costs",
                                  value=health.cost_total(self.conn))


@bp.get("/metrics")
def metrics():
    """Prometheus text format."""
    registry = CollectorRegistry()
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        multiprocess.MultiProcessCollector(registry)
    else:
        registry.register(INGEST_SECONDS)
    registry.register(CatalogueCollector(get_catalogue().conn))
    return Response(generate_latest(registry), mimetype=CONTENT_TYPE_LATEST)
