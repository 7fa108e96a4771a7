"""Handing survey requests to the task cluster as they come due, so a delayed send or a retry goes out
about a second after its send-after time rather than at django-q2's next scheduler tick (every 30 s).

One poller runs in each cluster's main process (`manage.py runcluster`). Once a second it asks one
indexed question, "which scheduled requests came due in the last LOOKBACK and were never queued?",
and queues those it marks first. Everything else stays with the minute sweep
(surveys.delivery.sending.survey_requests_send_due): requests due longer ago, those of a paused or disabled
account once it resumes, lost queue messages, dead senders. Two pollers, or a poller and the sweep,
may see the same request: the conditional update lets one queue it, and the send's claim lets one
send it whatever happens to the queue.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from datetime import datetime, timedelta

from django.db import connections, transaction
from django.utils import timezone

from surveys.delivery.survey_requests import survey_requests_queue
from surveys.models import SurveyRequest

logger = logging.getLogger(__name__)

# How far back the poller looks: a request due longer ago than this (the poller was down, its account
# paused) is the sweep's, which runs every minute. It keeps the idle query to a short index range.
LOOKBACK = timedelta(minutes=2)
BATCH = 500


def survey_requests_queue_coming_due(*, now: datetime) -> list[int]:
    """Queue the requests that came due recently and nobody queued yet. Returns the ones this call queued."""
    coming_due = (
        SurveyRequest.objects.due(now=now)
        .of_sending_accounts()
        .filter(send_after__gt=now - LOOKBACK, queued_at__isnull=True)
    )
    ids = list(coming_due.values_list("pk", flat=True)[:BATCH])  # outside a transaction: no lock while idle
    if not ids:
        return []
    with transaction.atomic():
        # Another poller, or the sweep, may have marked some meanwhile: queue only the ones marked here.
        marked = SurveyRequest.objects.filter(pk__in=ids, status=SurveyRequest.Status.SCHEDULED, queued_at__isnull=True)
        marked.update(queued_at=now)
        mine = list(SurveyRequest.objects.filter(pk__in=ids, queued_at=now).values_list("pk", flat=True))
        transaction.on_commit(lambda: survey_requests_queue(mine))
    logger.info("survey_requests.queued_on_time", extra={"count": len(mine)})
    return mine


class DuePoller:
    """A thread that runs survey_requests_queue_coming_due every `interval` seconds until stopped, at the time
    `clock` tells (the wall clock, unless a test gives its own)."""

    def __init__(self, *, interval: float, clock: Callable[[], datetime] = timezone.now) -> None:
        self.interval = interval
        self.clock = clock
        self._stopping = threading.Event()
        self._thread = threading.Thread(target=self._run, name="survey-requests-due-poller", daemon=True)
        self._failing = False

    def start(self) -> None:
        self._thread.start()

    def stop_soon(self) -> None:
        """Ask it to stop after the tick under way (safe in a signal handler)."""
        self._stopping.set()

    def stop(self, *, timeout: float = 30) -> bool:
        """Stop it and wait for the tick under way; True once it has stopped."""
        self._stopping.set()
        if self._thread.is_alive():
            self._thread.join(timeout)
        return not self._thread.is_alive()

    def _run(self) -> None:
        try:
            while not self._stopping.wait(self.interval):
                self.tick()
        finally:
            connections.close_all()  # this thread's own connection

    def tick(self) -> None:
        # One connection kept for good: no health check or reconnect per tick, so an idle tick is one query.
        try:
            survey_requests_queue_coming_due(now=self.clock())
        except Exception:
            connections.close_all()  # this thread's; a connection broken by a database restart is reopened next tick
            if not self._failing:  # once per outage, not every second; the sweep covers the gap
                logger.exception("survey_requests.due_poller_failed")
            self._failing = True
        else:
            if self._failing:
                logger.warning("survey_requests.due_poller_recovered")
            self._failing = False
