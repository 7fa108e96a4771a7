"""The Teammates view of the status page, its CSV and the API: per Stella employee and channel, over the chosen
days, how many requests Stella recorded, delivered and had answered, and their star ratings. Reads only
TeammateDailyCount, which the feedback pull keeps current (surveys/loop/teammate_counts.py): one query, whatever the log holds.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import datetime

from django.db.models import Count, Max, Min, Q, Sum

from surveys.models import TeammateDailyCount
from surveys.reporting.presenters import (
    average_rating,
    percent_label,
    rating_label,
    response_rate,
    stella_channel_label,
    teammate_label,
)
from surveys.reporting.status import StatusFilter

# The status page's filters the Teammates view takes: its figures are per teammate and channel, whatever the
# reason or conversation.
TEAMMATE_FILTERS = ("account", "date_from", "date_to")


@dataclass(frozen=True)
class TeammateRow:
    """One teammate on one channel over the chosen days (or, with teammate and channel empty, everyone's total)."""

    teammate: str  # the Stella employee's email, else their custom id; empty: Stella named nobody
    teammate_name: str
    channel: str  # in Stella's words
    requested: int
    delivered: int
    responded: int
    rating_sum: int
    rating_count: int

    @property
    def response_rate(self) -> float | None:
        return response_rate(self.responded, self.delivered)

    @property
    def average_rating(self) -> float | None:
        return average_rating(self.rating_sum, self.rating_count)

    @property
    def label(self) -> str:
        return teammate_label(self.teammate, self.teammate_name)

    @property
    def channel_label(self) -> str:
        return stella_channel_label(self.channel)

    @property
    def response_rate_label(self) -> str:
        return percent_label(self.response_rate)

    @property
    def average_rating_label(self) -> str:
        return rating_label(self.average_rating)


@dataclass(frozen=True)
class TeammateStats:
    rows: list[TeammateRow]  # most requests first
    totals: TeammateRow


def teammate_stats(status_filter: StatusFilter) -> TeammateStats:
    """Per teammate and channel in the filter's accounts and days (the day Stella created the request, in the
    portal's TIME_ZONE), summed over the days, most requests first, and their totals. A teammate keeps one name
    on every channel (the one Stella gave their busiest row that has any); renamed within the days, they are
    still listed once per channel."""
    counts = TeammateDailyCount.objects.filter(day__gte=status_filter.date_from, day__lte=status_filter.date_to)
    if status_filter.account_ids is not None:
        counts = counts.filter(account_id__in=status_filter.account_ids)
    grouped = (
        counts.values("teammate", "channel")
        .annotate(
            name=Max("teammate_name"),
            requested_total=Sum("requested"),
            delivered_total=Sum("delivered"),
            responded_total=Sum("responded"),
            rating_sum_total=Sum("rating_sum"),
            rating_count_total=Sum("rating_count"),
        )
        .order_by("-requested_total", "teammate", "channel")
    )
    rows = [
        TeammateRow(
            teammate=row["teammate"],
            teammate_name=row["name"] or "",
            channel=row["channel"],
            requested=row["requested_total"],
            delivered=row["delivered_total"],
            responded=row["responded_total"],
            rating_sum=row["rating_sum_total"],
            rating_count=row["rating_count_total"],
        )
        for row in grouped
    ]
    # One name per teammate, whichever channel's counts carry it.
    names = {row.teammate: row.teammate_name for row in reversed(rows) if row.teammate_name}
    rows = [replace(row, teammate_name=names.get(row.teammate, "")) for row in rows]
    totals = TeammateRow(
        teammate="",
        teammate_name="",
        channel="",
        requested=sum(row.requested for row in rows),
        delivered=sum(row.delivered for row in rows),
        responded=sum(row.responded for row in rows),
        rating_sum=sum(row.rating_sum for row in rows),
        rating_count=sum(row.rating_count for row in rows),
    )
    return TeammateStats(rows=rows, totals=totals)


@dataclass(frozen=True)
class FeedbackFreshness:
    """How current the figures are: the oldest last successful read of Stella's feedback among the accounts
    that have read any, and how many of the accounts never have."""

    oldest_read_at: datetime | None
    never_read: int


def feedback_freshness(status_filter: StatusFilter) -> FeedbackFreshness:
    """One query over the filter's accounts and their sync states."""
    read = status_filter.accounts.aggregate(
        oldest=Min("stella_sync__feedback_synced_at"),
        never=Count("pk", filter=Q(stella_sync__feedback_synced_at__isnull=True)),
    )
    return FeedbackFreshness(oldest_read_at=read["oldest"], never_read=read["never"])
