import logging
import signal
import time
from types import FrameType
from typing import Any

from django.conf import settings
from django.core.management.base import BaseCommand
from django.utils import timezone
from django_q.cluster import Cluster

from portal.heartbeat import Heartbeat
from portal.metrics import metrics_dir_prepare
from portal.priority import priority_lower
from portal.write_gate import background_process
from surveys.delivery.on_time import DuePoller

logger = logging.getLogger(__name__)


class Command(BaseCommand):
    help = (
        "The django-q2 task cluster, as `qcluster` runs it, with the poller that queues delayed sends and "
        "retries as they come due (surveys/delivery/on_time.py), at CLUSTER_NICE niceness, reporting in every "
        "CLUSTER_HEARTBEAT_SECONDS (portal/heartbeat.py). SIGTERM or Ctrl-C stops it all."
    )

    def handle(self, *args: Any, **options: Any) -> None:
        settings.SECRET_KEY  # noqa: B018  (as qcluster: signing needs it, so fail now rather than in a worker)
        # Background work yields the CPU to web requests on a shared machine: Intercom waits on the webhook's
        # answer, nobody waits on a drain's next batch. Its workers, forked below, inherit the priority.
        if settings.CLUSTER_NICE:
            lowered = priority_lower(settings.CLUSTER_NICE)
            logger.info("cluster.priority_lowered", extra={"nice": settings.CLUSTER_NICE, "lowered": lowered})
        background_process()  # on SQLite, its connections wait longer for the write lock than a request's
        # Before any worker is forked: its workers pool their counts there, for the heartbeat to carry to /metrics.
        if settings.PROMETHEUS_MULTIPROC_DIR:
            metrics_dir_prepare(settings.PROMETHEUS_MULTIPROC_DIR)
        else:
            logger.warning("cluster.metrics_not_pooled")  # only the main process's counts reach /metrics
        cluster = Cluster()  # installs its own SIGTERM/SIGINT handlers: ours stop the poller first, then call it
        poller = DuePoller(interval=settings.SEND_POLL_SECONDS) if settings.SEND_POLL_SECONDS > 0 else None

        def stop(signum: int, frame: FrameType | None) -> None:
            if poller is not None:
                poller.stop_soon()
            cluster.sig_handler(signum, frame)  # waits for the workers to finish their tasks

        signal.signal(signal.SIGTERM, stop)
        signal.signal(signal.SIGINT, stop)
        cluster.start()
        # Started only now, in this process, after the cluster's processes were forked: none inherits the thread.
        if poller is not None:
            poller.start()
        # From the main loop, so it stops when the cluster's sentinel does.
        heartbeat = Heartbeat(interval=settings.CLUSTER_HEARTBEAT_SECONDS, now=timezone.now())
        try:
            while cluster.sentinel.is_alive():
                heartbeat.beat_if_due(now=timezone.now())
                time.sleep(0.2)
        finally:
            if poller is not None:
                poller.stop()
            heartbeat.stop()
