"""The status page's counts, kept current in the same transaction as each change (surveys/reporting/counts.py)."""

from __future__ import annotations

from django.db import models

from surveys.models.accounts import Account, IntegrationSettings
from surveys.models.requests import SurveyOutcome


class CallCount(models.TextChoices):
    TEST_CALLS = "test_calls", "Test requests"
    INVALID_CALLS = "invalid_calls", "Invalid requests"


class DailyCount(models.Model):
    """What the status page counts and charts, kept current as requests change state, so that page
    never scans the log: per account and day, how many survey requests closed that day have each
    outcome, and how many test and invalid calls were made that day."""

    account = models.ForeignKey(Account, on_delete=models.CASCADE, related_name="daily_counts")
    day = models.DateField()
    kind = models.CharField(max_length=16, choices=[*SurveyOutcome.choices, *CallCount.choices])
    count = models.IntegerField(default=0)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["account", "day", "kind"], name="one_count_per_account_day_kind")
        ]
        # Every account's counts of one day: /metrics reads today's (surveys/reporting/metrics.py) without scanning the rest.
        indexes = [models.Index(fields=["day"], name="daily_count_day")]

    def __str__(self) -> str:
        return f"{self.account_id} {self.day} {self.kind}: {self.count}"


class TeammateDailyCount(models.Model):
    """The Teammates view's numbers, kept current as feedback records arrive and change, so it reads a bounded
    number of rows: per account, day (of the record's request, in the portal's TIME_ZONE), mode, teammate (the
    employee's email, else custom id) and channel, how many requests Stella recorded, delivered and had answered,
    and the star ratings' sum and count."""

    account = models.ForeignKey(Account, on_delete=models.CASCADE, related_name="teammate_daily_counts")
    day = models.DateField()
    mode = models.CharField(max_length=8, choices=IntegrationSettings.Mode.choices)
    teammate = models.CharField(
        max_length=254, blank=True, help_text="The Stella employee's email, else their custom id; blank: neither."
    )
    teammate_name = models.CharField(max_length=200, blank=True)
    channel = models.CharField(max_length=32, blank=True)
    requested = models.IntegerField(default=0)
    delivered = models.IntegerField(default=0)
    responded = models.IntegerField(default=0)
    rating_sum = models.IntegerField(default=0)
    rating_count = models.IntegerField(default=0)

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["account", "day", "mode", "teammate", "channel"], name="one_teammate_count_per_day"
            )
        ]

    def __str__(self) -> str:
        return f"{self.account_id} {self.day} {self.teammate} {self.channel}: {self.requested}"
