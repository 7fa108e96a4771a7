"""The error-rate alert: catch a broken integration within the hour, without paging anyone over
one bad request in three."""

from __future__ import annotations

import logging
from datetime import datetime, timedelta

from django.conf import settings
from django.core.mail import send_mail
from django.db.models import Count, Q

from integrations.stella.client import ERROR_ALERT_THRESHOLD
from surveys.models import ApiRequest, IntegrationHealth

logger = logging.getLogger(__name__)

THRESHOLD = ERROR_ALERT_THRESHOLD  # more than this share invalid or failed...
MINIMUM_VOLUME = 20  # ...of at least this many requests in the last hour
EMAIL_EVERY = timedelta(hours=1)
BAD = [ApiRequest.Outcome.INVALID, ApiRequest.Outcome.FAILED, ApiRequest.Outcome.AMBIGUOUS, ApiRequest.Outcome.RETRY]


def accounts_check_error_rates(*, now: datetime) -> list[IntegrationHealth]:
    """Raise or lower each account's alert from the last hour of requests; email its recipients at most
    once an hour while the alert stands. Returns the accounts alerting now."""
    hour = (
        ApiRequest.objects.filter(created_at__gte=now - timedelta(hours=1))
        .exclude(outcome=ApiRequest.Outcome.PENDING)
        .values("account_id")
        .annotate(total=Count("pk"), bad=Count("pk", filter=Q(outcome__in=BAD)))
    )
    rates = {row["account_id"]: row["bad"] / row["total"] for row in hour if row["total"] >= MINIMUM_VOLUME}
    alerting = []
    for health in IntegrationHealth.objects.select_related("account__integration").filter(
        Q(account_id__in=[account_id for account_id, rate in rates.items() if rate > THRESHOLD])
        | Q(error_alert_since__isnull=False)
    ):
        rate = rates.get(health.account_id, 0.0)
        if rate <= THRESHOLD:
            account_alert_clear(health)
        else:
            account_alert_raise(health, rate=rate, now=now)
            alerting.append(health)
    return alerting


def account_alert_raise(health: IntegrationHealth, *, rate: float, now: datetime) -> None:
    """Keep the alert's rate current, and email the account's recipients at most once an hour."""
    health.error_alert_since = health.error_alert_since or now
    health.error_alert_rate = round(rate * 100, 1)
    recipients = health.account.integration.alert_recipient_list
    if recipients and (health.error_alert_emailed_at is None or health.error_alert_emailed_at <= now - EMAIL_EVERY):
        _email(health, recipients=recipients)
        health.error_alert_emailed_at = now
    health.save(update_fields=["error_alert_since", "error_alert_rate", "error_alert_emailed_at"])


def account_alert_clear(health: IntegrationHealth) -> None:
    health.error_alert_since = health.error_alert_rate = None
    health.save(update_fields=["error_alert_since", "error_alert_rate"])
    logger.info("alert.cleared", extra={"account": health.account_id})


def _email(health: IntegrationHealth, *, recipients: list[str]) -> None:
    account = health.account
    send_mail(
        subject=f"Stella Connect for Intercom: {health.error_alert_rate:.0f}% of {account}'s requests are failing",
        message=(
            f"In the last hour, {health.error_alert_rate:.0f}% of {account}'s requests to Stella Connect were "
            f"invalid or failed (the alert starts above {THRESHOLD:.0%}).\n\n"
            f"See why: {settings.PORTAL_URL}/status/?tab=invalid&account={account.pk}\n\n"
            "You get this at most once an hour while it lasts."
        ),
        from_email=None,
        recipient_list=recipients,
    )
    logger.warning("alert.emailed", extra={"account": account.pk, "rate": health.error_alert_rate})
