"""Task clusters report in: each `manage.py runcluster` renews a row of its own every CLUSTER_HEARTBEAT_SECONDS,
with what its processes counted. /readyz asks whether any did lately; /metrics shows how long ago, and serves
the counts they carried."""

from __future__ import annotations

import logging
import os
import socket
from collections.abc import Iterable
from datetime import datetime, timedelta

from django.conf import settings
from django.db import connections
from django.db.models import Max
from prometheus_client.metrics_core import GaugeMetricFamily, Metric

from portal.metrics import metrics_from_snapshot, metrics_snapshot
from portal.models import ClusterHeartbeat

logger = logging.getLogger(__name__)

# A cluster killed without stopping (kill -9, a machine gone) leaves its row; after this long, the others delete it.
FORGET_AFTER = timedelta(days=1)


def cluster_heartbeat_record(name: str, *, started_at: datetime, now: datetime, metrics: list[dict]) -> None:
    """This cluster is alive at `now`, having counted `metrics`; rows of clusters long silent are deleted."""
    ClusterHeartbeat.objects.update_or_create(
        name=name, defaults={"started_at": started_at, "beat_at": now, "metrics": metrics}
    )
    ClusterHeartbeat.objects.filter(beat_at__lt=now - FORGET_AFTER).delete()


def cluster_heartbeat_delete(name: str) -> None:
    ClusterHeartbeat.objects.filter(name=name).delete()


def cluster_heartbeat_latest() -> datetime | None:
    """When a cluster last reported in, any cluster; None if none has (or every one stopped)."""
    return ClusterHeartbeat.objects.aggregate(latest=Max("beat_at"))["latest"]


def cluster_heartbeat_max_age() -> timedelta:
    return timedelta(seconds=settings.CLUSTER_HEARTBEAT_MAX_AGE_SECONDS)


def cluster_alive(heartbeat: ClusterHeartbeat, *, now: datetime) -> bool:
    """It reported in within CLUSTER_HEARTBEAT_MAX_AGE_SECONDS."""
    return now - heartbeat.beat_at <= cluster_heartbeat_max_age()


def clusters_alive(*, now: datetime) -> int:
    """How many task clusters reported in lately (cluster_alive): read at most once every CLUSTER_HEARTBEAT_SECONDS
    in a process, as the dispatch of sends asks on every send."""
    global _alive  # noqa: PLW0603  (this process's last reading)
    read_at, count = _alive
    if read_at is None or not timedelta(0) <= now - read_at < timedelta(seconds=settings.CLUSTER_HEARTBEAT_SECONDS):
        count = ClusterHeartbeat.objects.filter(beat_at__gte=now - cluster_heartbeat_max_age()).count()
        _alive = (now, count)
    return count


_alive: tuple[datetime | None, int] = (None, 0)


def cluster_metrics(now: datetime) -> Iterable[Metric]:
    """For /metrics: how long since a cluster last reported in, how many did lately, and what each counted."""
    heartbeats = list(ClusterHeartbeat.objects.all())  # a row per cluster process: a handful
    freshest = max((heartbeat.beat_at for heartbeat in heartbeats), default=None)
    age = GaugeMetricFamily(
        "portal_cluster_heartbeat_age_seconds",
        "Seconds since a task cluster last reported in, the freshest of them (+Inf: none is running).",
        value=(now - freshest).total_seconds() if freshest else float("inf"),
    )
    alive = GaugeMetricFamily(
        "portal_clusters_alive",
        "Task clusters that reported in within CLUSTER_HEARTBEAT_MAX_AGE_SECONDS.",
        value=sum(cluster_alive(heartbeat, now=now) for heartbeat in heartbeats),
    )
    yield from (age, alive)
    for heartbeat in heartbeats:
        yield from metrics_from_snapshot(heartbeat.metrics, labels={"process": f"cluster {heartbeat.name}"})


class Heartbeat:
    """One cluster process's heartbeat, renewed from its main loop (so it stops when the cluster does). A database
    that is down is logged once per outage; the beats resume when it is back."""

    def __init__(self, *, interval: float, now: datetime, name: str | None = None) -> None:
        self.interval = timedelta(seconds=interval)
        self.name = (name or f"{socket.gethostname()}:{os.getpid()}")[:200]
        self.started_at = now
        self._last: datetime | None = None
        self._failing = False

    def beat_if_due(self, *, now: datetime) -> bool:
        """Renew the row if the interval has passed since the last beat; True if it did."""
        if self._last is not None and now - self._last < self.interval:
            return False
        self._last = now  # after a failure too: the next try waits its turn, the database isn't hammered
        try:
            cluster_heartbeat_record(self.name, started_at=self.started_at, now=now, metrics=metrics_snapshot())
        except Exception:
            connections.close_all()  # a connection broken by a database restart is opened afresh next time
            if not self._failing:
                logger.exception("cluster.heartbeat_failed", extra={"cluster": self.name})
            self._failing = True
            return False
        if self._failing:
            logger.warning("cluster.heartbeat_recovered", extra={"cluster": self.name})
        self._failing = False
        return True

    def stop(self) -> None:
        """The cluster is stopping: its row goes, so nobody mistakes it for one still running."""
        try:
            cluster_heartbeat_delete(self.name)
        except Exception:  # the database is down: the row goes a day later (FORGET_AFTER)
            logger.warning("cluster.heartbeat_not_deleted", extra={"cluster": self.name}, exc_info=True)
