"""What the API Request Status page, its CSV export and the JSON API show: reads only.

Lists are paged by keyset (newest first, "older than this row"), never by counting or
offsetting through the log; counts and the chart come from DailyCount.

Days (the date filter, the counts, the chart) are the portal's days, in settings.TIME_ZONE, as the counts
are kept; the times shown in them are in the user's zone (portal.middleware).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from functools import partial
from string import capwords
from typing import Any, cast

from django import forms
from django.core.exceptions import NON_FIELD_ERRORS
from django.db.models import Q, QuerySet, Sum
from django.utils import timezone

from integrations import messages
from integrations.vocabulary import Channel
from portal.models import time_zones
from surveys.models import (
    Account,
    ApiRequest,
    ApiRequestQuerySet,
    CallCount,
    DailyCount,
    InvalidApiRequest,
    SurveyOutcome,
    SurveyRequest,
    SurveyRequestQuerySet,
    TestApiRequest,
)

PAGE_SIZE = 50
DEFAULT_DAYS = 30
MAX_CHART_DAYS = 92


class Listing:
    """One kind of row a tab lists, newest first: how to read it, filter it and page through it."""

    time_field: str
    time_label: str  # the heading of the time column

    def base(self) -> QuerySet[Any]:
        raise NotImplementedError

    def filtered(self, rows: QuerySet[Any], status_filter: StatusFilter) -> QuerySet[Any]:
        raise NotImplementedError

    def rows(self, status_filter: StatusFilter) -> QuerySet[Any]:
        """The tab's rows in the filter's accounts, dates, channel, reason and conversation."""
        rows = status_filter.tab.narrow(_of_accounts(self.base(), status_filter))
        rows = rows.filter(
            **{f"{self.time_field}__gte": status_filter.starts, f"{self.time_field}__lt": status_filter.ends}
        )
        return _older_than(self.filtered(rows, status_filter), status_filter.before, self.time_field)

    def cursor(self, row: Any) -> str:
        return f"{getattr(row, self.time_field).timestamp():.6f}_{row.pk}"


class ApiRequestListing(Listing):
    """The log of calls to Stella, and of requests rejected before any call."""

    time_field = "created_at"
    time_label = "Time"

    def base(self) -> ApiRequestQuerySet:
        return ApiRequest.objects.select_related("account", "survey_request").defer(
            "request_headers", "request_body", "response_body", "survey_request__verdicts"
        )

    def filtered(self, rows: QuerySet[Any], status_filter: StatusFilter) -> QuerySet[Any]:
        if status_filter.channel:
            rows = rows.filter(survey_request__channel=status_filter.channel)
        if status_filter.reason:
            rows = rows.filter(error_code__in=messages.codes_like(status_filter.reason))
        if status_filter.q:
            rows = rows.filter(survey_request__conversation_id=status_filter.q)
        return rows


class SurveyRequestListing(Listing):
    """One row per closed conversation, with what was decided and why."""

    time_field = "closed_at"
    time_label = "Closed"

    def base(self) -> SurveyRequestQuerySet:
        # Stella's record of each row (its delivery status, rating and comment) in the same query.
        return SurveyRequest.objects.select_related("account", "feedback").defer("verdicts", "feedback__raw")

    def filtered(self, rows: QuerySet[Any], status_filter: StatusFilter) -> QuerySet[Any]:
        if status_filter.channel:
            rows = rows.filter(channel=status_filter.channel)
        if status_filter.reason:
            codes = messages.codes_like(status_filter.reason)
            rows = rows.filter(Q(reason__in=codes) | Q(detail_code__in=codes))
        if status_filter.q:
            rows = rows.filter(conversation_id=status_filter.q)
        return rows


API_REQUESTS = ApiRequestListing()
SURVEY_REQUESTS = SurveyRequestListing()


def _everything(rows: QuerySet[Any]) -> QuerySet[Any]:
    return rows


@dataclass(frozen=True)
class Tab:
    key: str
    label: str
    listing: Listing
    narrow: Callable[[Any], QuerySet[Any]]  # a queryset method: the tab's rows out of the listing's
    count: str  # the DailyCount kind; empty: the tab counts nothing of its own (Requests: every call)


def _call_tab(key: str, model: type[ApiRequest], narrow: Callable[[Any], QuerySet[Any]], count: str) -> Tab:
    """A tab of calls, named as the admin's tab of them is and as Stella's API Status page words it ("Test Requests")."""
    return Tab(key, capwords(str(model._meta.verbose_name_plural)), API_REQUESTS, narrow, count)


def _outcome_tab(outcome: SurveyOutcome) -> Tab:
    """A tab of survey requests, named by its outcome, in the words the rows' outcome column uses."""
    narrow = partial(SurveyRequestQuerySet.with_outcome, outcome=outcome)
    return Tab(outcome.value, outcome.label, SURVEY_REQUESTS, narrow, outcome)


# As on Stella's API Status page (and the admin's tabs): Requests | Test Requests | Invalid Requests, then the
# survey requests by outcome.
TABS = [
    _call_tab("requests", ApiRequest, _everything, ""),
    _call_tab("test", TestApiRequest, ApiRequestQuerySet.test_calls, CallCount.TEST_CALLS),
    _call_tab("invalid", InvalidApiRequest, ApiRequestQuerySet.invalid, CallCount.INVALID_CALLS),
    _outcome_tab(SurveyOutcome.SENT),
    _outcome_tab(SurveyOutcome.DO_NOT_SEND),
    _outcome_tab(SurveyOutcome.SUPPRESSED),
    _outcome_tab(SurveyOutcome.CANCELLED),
    _outcome_tab(SurveyOutcome.FAILED),
    _outcome_tab(SurveyOutcome.WAITING),
]
TABS_BY_KEY = {tab.key: tab for tab in TABS}
# The JSON API's lists when no tab narrows them.
EVERY_API_REQUEST = Tab("", "API requests", API_REQUESTS, _everything, "")
EVERY_SURVEY_REQUEST = Tab("", "Survey requests", SURVEY_REQUESTS, _everything, "")
# Stacked in the chart, bottom up.
CHART_KINDS = [
    SurveyOutcome.SENT,
    SurveyOutcome.DO_NOT_SEND,
    SurveyOutcome.SUPPRESSED,
    SurveyOutcome.CANCELLED,
    SurveyOutcome.INVALID,
    SurveyOutcome.FAILED,
    SurveyOutcome.WAITING,
]


class StatusFilterForm(forms.Form):
    """The filter of the page, the export and the API alike; only the user's accounts can be chosen."""

    tab = forms.ChoiceField(
        choices=[(tab.key, tab.label) for tab in TABS],
        required=False,
        error_messages={"invalid_choice": "No tab “%(value)s”."},
    )
    account = forms.ModelChoiceField(
        queryset=Account.objects.none(),
        required=False,
        empty_label="All my accounts",
        error_messages={"invalid_choice": "Not one of your accounts."},
    )
    date_from = forms.DateField(required=False, label="From")
    date_to = forms.DateField(required=False, label="To")
    channel = forms.ChoiceField(
        choices=[("", "Any channel"), *Channel.choices],
        required=False,
        error_messages={"invalid_choice": "No channel “%(value)s”: choose one from the list."},
    )
    reason = forms.ChoiceField(
        choices=[("", "Any reason"), *messages.REASON_CHOICES],
        required=False,
        error_messages={"invalid_choice": "No reason “%(value)s”: choose one from the list."},
    )
    q = forms.CharField(required=False, max_length=254, label="Conversation id")
    before = forms.CharField(required=False, max_length=64, widget=forms.HiddenInput)

    def __init__(self, data: dict, *, accounts: QuerySet[Account]) -> None:
        reason = data.get("reason")
        if isinstance(reason, str) and reason in messages.REASON_GROUPS:  # a reason by its words, as it reads
            data = data.copy()
            data["reason"] = messages.REASON_GROUPS[reason][0]
        super().__init__(data)
        self.accounts = accounts
        cast("forms.ModelChoiceField[Account]", self.fields["account"]).queryset = accounts

    def clean_date_from(self) -> date | None:
        return _within_range(self.cleaned_data.get("date_from"))

    def clean_date_to(self) -> date | None:
        return _within_range(self.cleaned_data.get("date_to"))

    def clean(self) -> dict[str, Any]:
        super().clean()
        data = self.cleaned_data
        if "date_from" in self.errors or "date_to" in self.errors:
            return data
        today = timezone.localdate(timezone=timezone.get_default_timezone())
        data["date_to"] = data.get("date_to") or today
        data["date_from"] = data.get("date_from") or data["date_to"] - timedelta(days=DEFAULT_DAYS - 1)
        if data["date_from"] > data["date_to"]:
            raise forms.ValidationError("“From” is after “To”.")
        return data

    def wrong_fields(self) -> list[str]:
        """The fields the errors are about; a wrong date, or a range that runs backwards, is about both dates."""
        wrong = set(self.errors)
        if wrong & {NON_FIELD_ERRORS, "date_from", "date_to"}:
            wrong |= {"date_from", "date_to"}
        return [name for name in self.fields if name in wrong]

    def without_mistakes(self) -> StatusFilterForm:
        """The same filter less what is wrong in it (the defaults instead): what the page shows meanwhile, so a
        mistake keeps the page, with what was typed and why it is wrong beside it."""
        form = self
        for _ in self.fields:  # each round leaves out at least one field
            if form.is_valid():
                return form
            wrong = form.wrong_fields()
            form = StatusFilterForm(
                {name: value for name, value in form.data.items() if name not in wrong}, accounts=self.accounts
            )
        form = StatusFilterForm({}, accounts=self.accounts)
        form.full_clean()
        return form


EARLIEST_DATE = date(2011, 1, 1)
LATEST_DATE = date(2099, 12, 31)


def _within_range(day: date | None) -> date | None:
    if day is not None and not EARLIEST_DATE <= day <= LATEST_DATE:
        raise forms.ValidationError(f"Choose a date between {EARLIEST_DATE} and {LATEST_DATE}.")
    return day


@dataclass(frozen=True)
class StatusFilter:
    accounts: QuerySet[Account]  # already narrowed to one if the user picked one
    # The same, for the log's queries: one id (the index is walked in order, one page read),
    # several, or None for every account (a CSM's view: no condition at all).
    account_ids: list[int] | None
    tab: Tab
    date_from: date
    date_to: date
    channel: str = ""
    reason: str = ""
    q: str = ""
    before: str = ""

    @classmethod
    def from_form(
        cls, form: StatusFilterForm, *, accounts: QuerySet[Account], default_tab: Tab = TABS[0]
    ) -> StatusFilter:
        data = form.cleaned_data
        if data.get("account"):
            accounts = accounts.filter(pk=data["account"].pk)
        every_account = not accounts.query.has_filters()
        return cls(
            accounts=accounts,
            account_ids=None if every_account else list(accounts.values_list("pk", flat=True)),
            tab=TABS_BY_KEY[data["tab"]] if data.get("tab") else default_tab,
            date_from=data["date_from"],
            date_to=data["date_to"],
            channel=data.get("channel") or "",
            reason=data.get("reason") or "",
            q=(data.get("q") or "").strip(),
            before=data.get("before") or "",
        )

    @property
    def starts(self) -> datetime:
        """The first day's midnight, in the portal's zone: the days the counts are kept in."""
        return timezone.make_aware(datetime.combine(self.date_from, time.min), timezone.get_default_timezone())

    @property
    def ends(self) -> datetime:
        return timezone.make_aware(
            datetime.combine(self.date_to + timedelta(days=1), time.min), timezone.get_default_timezone()
        )


def status_rows(status_filter: StatusFilter) -> QuerySet[Any]:
    """The tab's rows in the filter, newest first: API requests or survey requests."""
    return status_filter.tab.listing.rows(status_filter)


def _of_accounts(rows: QuerySet[Any], status_filter: StatusFilter) -> QuerySet[Any]:
    ids = status_filter.account_ids
    if ids is None:
        return rows
    return rows.filter(account_id=ids[0]) if len(ids) == 1 else rows.filter(account_id__in=ids)


def _older_than(rows: QuerySet[Any], before: str, field: str) -> QuerySet[Any]:
    rows = rows.order_by(f"-{field}", "-pk")
    moment, pk = decode_cursor(before)
    if moment is None:
        return rows
    return rows.filter(Q(**{f"{field}__lt": moment}) | Q(**{field: moment, "pk__lt": pk}))


def decode_cursor(value: str) -> tuple[datetime | None, int]:
    try:
        seconds, pk = value.split("_")
        return datetime.fromtimestamp(float(seconds), tz=timezone.get_current_timezone()), int(pk)
    except (ValueError, OverflowError, OSError):  # not a cursor we made: start from the newest
        return None, 0


def status_page(status_filter: StatusFilter, *, size: int = PAGE_SIZE) -> tuple[list, str]:
    """One page of rows and the cursor of the next (older) page, if any: one query, no COUNT."""
    rows = list(status_rows(status_filter)[: size + 1])
    return rows[:size], status_filter.tab.listing.cursor(rows[size - 1]) if len(rows) > size else ""


@dataclass(frozen=True)
class Counts:
    per_kind: dict[str, int]
    per_day: dict[date, dict[str, int]]


def status_counts(status_filter: StatusFilter) -> Counts:
    """Counts per tab and per day in the filter's accounts and dates: one query over DailyCount."""
    per_kind: dict[str, int] = {}
    per_day: dict[date, dict[str, int]] = {}
    rows = (
        DailyCount.objects.filter(
            account__in=status_filter.accounts, day__gte=status_filter.date_from, day__lte=status_filter.date_to
        )
        .values("day", "kind")
        .annotate(total=Sum("count"))
    )
    for row in rows:
        per_kind[row["kind"]] = per_kind.get(row["kind"], 0) + row["total"]
        per_day.setdefault(row["day"], {})[row["kind"]] = row["total"]
    return Counts(per_kind=per_kind, per_day=per_day)


@dataclass(frozen=True)
class Bar:
    day: date
    x: float
    width: float
    segments: list[tuple[SurveyOutcome, str, float, float, int]]  # kind, label, y, height, count
    total: int


@dataclass(frozen=True)
class Tick:
    """One mark of the y-axis: its number and where its grid line runs (in the SVG's units). The marks are evenly
    spaced from 0 to the top, and so are their labels beside the plot (portal.css)."""

    value: int
    y: float


@dataclass(frozen=True)
class Chart:
    bars: list[Bar]
    ticks: list[Tick]
    busiest: int  # the most survey requests on one day


def axis_step(busiest: int, *, ticks: int = 4) -> int:
    """A round step (1, 2 or 5 times a power of ten) that takes about `ticks` steps to pass the busiest day."""
    rough = busiest / ticks
    if rough <= 1:
        return 1
    power = 10 ** math.floor(math.log10(rough))
    return next(power * m for m in (1, 2, 5, 10) if power * m >= rough)


def status_chart(counts: Counts, status_filter: StatusFilter, *, width: int = 720, height: int = 160) -> Chart:
    """Stacked bars of survey requests per closure day by outcome, on a y-axis of round numbers, for an inline SVG."""
    span = (status_filter.date_to - status_filter.date_from).days + 1
    days = [status_filter.date_to - timedelta(days=n) for n in reversed(range(min(span, MAX_CHART_DAYS)))]
    totals = {day: sum(counts.per_day.get(day, {}).get(kind, 0) for kind in CHART_KINDS) for day in days}
    busiest = max(totals.values(), default=0)
    step = axis_step(busiest)
    top = max(1, math.ceil(busiest / step)) * step
    ticks = [Tick(value=value, y=round(height - value / top * height, 1)) for value in range(0, top + 1, step)]
    column = width / len(days)
    bars = []
    for index, day in enumerate(days):
        y, segments = float(height), []
        for kind in CHART_KINDS:
            n = counts.per_day.get(day, {}).get(kind, 0)
            if n:
                h = n / top * height
                y -= h
                segments.append((kind, kind.label, round(y, 1), round(h, 1), n))
        bars.append(
            Bar(day=day, x=round(index * column, 1), width=round(column * 0.8, 1), segments=segments, total=totals[day])
        )
    return Chart(bars=bars, ticks=ticks, busiest=busiest)


class TimeZoneForm(forms.Form):
    """The zone a user reads times in: the common ones first, then every zone of the zone database."""

    time_zone = forms.ChoiceField(label="Times in")

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        common, others = time_zones()
        cast("forms.ChoiceField", self.fields["time_zone"]).choices = [
            ("Common", [(name, name) for name in common]),
            ("Every zone", [(name, name) for name in others]),
        ]
