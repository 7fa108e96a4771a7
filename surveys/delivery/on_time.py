"""Handing survey requests to the task cluster as they come due, so a delayed send or a retry goes out
about a second after its send-after time rather than at django-q2's next scheduler tick (every 30 s).

One poller runs in each cluster's main process (`manage.py runcluster`). Once a second it asks one
question, "which due requests were never queued, and which accounts have room for them?", and queues
each account's share of them (surveys/delivery/dispatch.py) that it marks first. The minute sweep
(surveys.delivery.sending.survey_requests_send_due) recovers lost queue messages and dead senders. Two pollers, or a poller and the sweep,
may see the same request: the conditional update lets one queue it, and the send's claim lets one
send it whatever happens to the queue.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from datetime import datetime

from django.db import connections
from django.utils import timezone

from surveys.delivery.dispatch import survey_requests_dispatch

logger = logging.getLogger(__name__)


def survey_requests_queue_coming_due(*, now: datetime) -> list[int]:
    """Queue the due requests nobody queued yet, each account's fair share (surveys/delivery/dispatch.py): delayed sends and
    retries as they come due, and what waits for an account's slot. Returns the ones this call queued."""
    mine = survey_requests_dispatch(now=now)
    if mine:
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
