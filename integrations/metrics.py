"""What the vendors' side shows on /metrics (portal/metrics.py; README, "Operating the portal").

Counted where it happens, in whichever process does it (prometheus-client; pooled per process group):
- every answer to an Intercom webhook request, by outcome (`webhook_answers_counted`, on the view);
- every call to Stella's Requests API, by outcome, with how long it took (`stella_calls_observed`, on the client).
Read from the database at scrape time (`webhook_metrics`, registered in IntegrationsConfig.ready):
- how many stored webhooks wait to be processed, and how long the oldest next in line has waited.
"""

from __future__ import annotations

import functools
import json
import logging
from collections.abc import Callable, Iterable
from datetime import datetime
from typing import Any, Protocol, TypeVar

from django.http import HttpRequest, HttpResponse
from prometheus_client import Counter, Histogram
from prometheus_client.metrics_core import GaugeMetricFamily, Metric

from integrations.inbox import inbox_waiting
from integrations.models import InboundWebhook

logger = logging.getLogger(__name__)

WEBHOOKS = Counter(
    "portal_intercom_webhooks",
    "Intercom webhook requests answered, by outcome: received, duplicate, invalid_signature (401), bad_payload "
    "(400, signed), unsigned (400), too_large (413), unavailable (503), error (500).",
    ["outcome"],
)
STELLA_CALLS = Histogram(
    "portal_stella_call_duration_seconds",
    "Calls to Stella's Requests API by outcome (sent, invalid, retry, failed, ambiguous), and how long each took.",
    ["outcome"],
    # Stella answers in well under a second; the connect (3.05 s) and read (10 s) timeouts bound the rest.
    buckets=(0.05, 0.1, 0.25, 0.5, 1, 2, 3.5, 5, 10, 12, float("inf")),
)
# Stored webhooks still waiting are counted up to this many: a count of a larger backlog would cost the scrape
# more than it tells (the lag says how bad it is).
WAITING_COUNT_CAP = 100_000
# The lag is the age of the longest-waiting of this many next in line (the claim's order, by the partial index).
NEXT_IN_LINE = 1_000

_ANSWERS = {401: "invalid_signature", 413: "too_large", 503: "unavailable"}


def webhook_answers_counted(view: Callable[[HttpRequest], HttpResponse]) -> Callable[[HttpRequest], HttpResponse]:
    """Count each webhook request (not Intercom's HEAD check) by what the view answered."""

    @functools.wraps(view)
    def counted(request: HttpRequest) -> HttpResponse:
        try:
            response = view(request)
        except Exception:
            _count(WEBHOOKS, "error")
            raise
        if request.method == "POST":
            _count(WEBHOOKS, _webhook_outcome(request, response))
        return response

    return counted


def _webhook_outcome(request: HttpRequest, response: HttpResponse) -> str:
    if response.status_code == 200:
        return str(json.loads(response.content).get("status", "received"))
    if response.status_code == 400:
        # A signed request the parser refused, or one without a signature (not from Intercom at all).
        return "bad_payload" if "X-Hub-Signature" in request.headers else "unsigned"
    return _ANSWERS.get(response.status_code, f"http_{response.status_code}")


class _Result(Protocol):
    @property
    def outcome(self) -> str: ...
    @property
    def duration_ms(self) -> int | None: ...


Result = TypeVar("Result", bound=_Result)


def stella_calls_observed(call: Callable[..., Result]) -> Callable[..., Result]:
    """Count each call to Stella by its outcome, and how long it took."""

    @functools.wraps(call)
    def observed(*args: Any, **kwargs: Any) -> Result:
        result = call(*args, **kwargs)
        try:
            STELLA_CALLS.labels(str(result.outcome)).observe((result.duration_ms or 0) / 1000)
        except Exception:  # counting never stops a send: the call's row still records it
            logger.warning("metrics.count_failed", extra={"metric": "stella_calls"}, exc_info=True)
        return result

    return observed


def _count(counter: Counter, outcome: str) -> None:
    try:
        counter.labels(outcome).inc()
    except Exception:  # a missing multiprocess directory mustn't turn a stored webhook into a 500
        logger.warning("metrics.count_failed", extra={"metric": "webhooks"}, exc_info=True)


def webhook_metrics(now: datetime) -> Iterable[Metric]:
    """Stored webhooks waiting to be processed, read through the intake's own partial index (status received)."""
    waiting = InboundWebhook.objects.filter(status=InboundWebhook.Status.RECEIVED)
    next_in_line = waiting.order_by("occurred_at", "id").values_list("received_at", flat=True)[:NEXT_IN_LINE]
    oldest = min(next_in_line, default=None)
    yield GaugeMetricFamily(
        "portal_intercom_webhooks_waiting",
        f"Stored webhooks waiting to be processed (counted up to {WAITING_COUNT_CAP}).",
        # No ordering: a count reads the index only. On SQLite, with those still in the inbox (integrations/inbox.py).
        value=waiting.order_by()[:WAITING_COUNT_CAP].count() + inbox_waiting(),
    )
    yield GaugeMetricFamily(
        "portal_intercom_webhook_processing_lag_seconds",
        "How long the longest-waiting stored webhook next in line has waited to be processed (0: none waits).",
        value=(now - oldest).total_seconds() if oldest else 0,
    )
