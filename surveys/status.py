"""What the API Request Status page, its CSV export and the JSON API show: reads only.

Lists are paged by keyset (newest first, "older than this row"), never by counting or
offsetting through the log; counts and the chart come from DailyCount.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta

from django import forms
from django.db.models import Q, QuerySet, Sum
from django.utils import timezone

from integrations.intercom.payloads import Channel
from integrations.models import Account
from surveys.models import ApiRequest, DailyCount, SurveyRequest
from surveys.reasons import KNOWN_MESSAGES
from surveys.suppression import Decision, SuppressionReason

K = DailyCount.Kind
S = SurveyRequest.Status
PAGE_SIZE = 50
DEFAULT_DAYS = 30
MAX_CHART_DAYS = 92


@dataclass(frozen=True)
class Tab:
    key: str
    label: str
    of: str  # "api": rows of the call log; "survey": survey requests
    where: Q
    count: str  # the DailyCount kind


TABS = [
    Tab("test", "Test Requests", "api", Q(mode="test") & ~Q(url=""), K.TEST_CALLS),
    Tab("invalid", "Invalid Requests", "api", Q(outcome=ApiRequest.Outcome.INVALID), K.INVALID_CALLS),
    Tab("sent", "Sent", "survey", Q(status=S.SENT) & ~Q(decision=Decision.DO_NOT_SEND), K.SENT),
    Tab("do_not_send", "Do not send", "survey", Q(status=S.SENT, decision=Decision.DO_NOT_SEND), K.DO_NOT_SEND),
    Tab("suppressed", "Suppressed", "survey", Q(status=S.SUPPRESSED), K.SUPPRESSED),
    Tab("cancelled", "Cancelled", "survey", Q(status=S.CANCELLED), K.CANCELLED),
    Tab("failed", "Failed", "survey", Q(status__in=[S.FAILED, S.AMBIGUOUS]), K.FAILED),
    Tab("waiting", "Waiting", "survey", Q(status__in=[S.SCHEDULED, S.SENDING]), K.WAITING),
]
TABS_BY_KEY = {tab.key: tab for tab in TABS}
# The JSON API's lists when no tab narrows them.
EVERY_API_REQUEST = Tab("", "API requests", "api", Q(), "")
EVERY_SURVEY_REQUEST = Tab("", "Survey requests", "survey", Q(), "")
# Stacked in the chart, bottom up.
CHART_KINDS = [K.SENT, K.DO_NOT_SEND, K.SUPPRESSED, K.CANCELLED, K.INVALID, K.FAILED, K.WAITING]


class StatusFilterForm(forms.Form):
    """The filter of the page, the export and the API alike; only the user's accounts can be chosen."""

    tab = forms.ChoiceField(choices=[(tab.key, tab.label) for tab in TABS], required=False)
    account = forms.ModelChoiceField(queryset=Account.objects.none(), required=False, empty_label="All my accounts")
    date_from = forms.DateField(required=False, label="From")
    date_to = forms.DateField(required=False, label="To")
    channel = forms.ChoiceField(choices=[("", "Any channel"), *Channel.choices], required=False)
    reason = forms.ChoiceField(required=False)
    q = forms.CharField(required=False, max_length=254, label="Conversation id")
    before = forms.CharField(required=False, max_length=64, widget=forms.HiddenInput)

    def __init__(self, data: dict, *, accounts: QuerySet[Account]) -> None:
        super().__init__(data)
        self.fields["account"].queryset = accounts
        self.fields["reason"].choices = [
            ("", "Any reason"),
            *[(message, message) for message in KNOWN_MESSAGES],
            *SuppressionReason.choices,
        ]

    def clean(self) -> dict:
        data = super().clean()
        today = timezone.localdate()
        data["date_to"] = data.get("date_to") or today
        data["date_from"] = data.get("date_from") or data["date_to"] - timedelta(days=DEFAULT_DAYS - 1)
        if data["date_from"] > data["date_to"]:
            raise forms.ValidationError("“From” is after “To”.")
        return data


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
        return timezone.make_aware(datetime.combine(self.date_from, time.min))

    @property
    def ends(self) -> datetime:
        return timezone.make_aware(datetime.combine(self.date_to + timedelta(days=1), time.min))


def status_rows(status_filter: StatusFilter) -> QuerySet:
    """The tab's rows in the filter, newest first: API requests or survey requests."""
    f = status_filter
    if f.tab.of == "api":
        rows = ApiRequest.objects.select_related("account", "survey_request").defer(
            "request_headers", "request_body", "response_body", "survey_request__verdicts"
        )
        rows = _of_accounts(rows, f).filter(f.tab.where, created_at__gte=f.starts, created_at__lt=f.ends)
        if f.channel:
            rows = rows.filter(survey_request__channel=f.channel)
        if f.reason:
            rows = rows.filter(error_message=f.reason)
        if f.q:
            rows = rows.filter(survey_request__conversation_id=f.q)
        return _older_than(rows, f.before, "created_at")
    rows = SurveyRequest.objects.select_related("account").defer("verdicts")
    rows = _of_accounts(rows, f).filter(f.tab.where, closed_at__gte=f.starts, closed_at__lt=f.ends)
    if f.channel:
        rows = rows.filter(channel=f.channel)
    if f.reason:
        rows = rows.filter(Q(reason=f.reason) | Q(status_detail=f.reason))
    if f.q:
        rows = rows.filter(conversation_id=f.q)
    return _older_than(rows, f.before, "closed_at")


def _of_accounts(rows: QuerySet, status_filter: StatusFilter) -> QuerySet:
    ids = status_filter.account_ids
    if ids is None:
        return rows
    return rows.filter(account_id=ids[0]) if len(ids) == 1 else rows.filter(account_id__in=ids)


def _older_than(rows: QuerySet, before: str, field: str) -> QuerySet:
    rows = rows.order_by(f"-{field}", "-pk")
    moment, pk = decode_cursor(before)
    if moment is None:
        return rows
    return rows.filter(Q(**{f"{field}__lt": moment}) | Q(**{field: moment, "pk__lt": pk}))


def encode_cursor(row: ApiRequest | SurveyRequest) -> str:
    moment = row.created_at if isinstance(row, ApiRequest) else row.closed_at
    return f"{moment.timestamp():.6f}_{row.pk}"


def decode_cursor(value: str) -> tuple[datetime | None, int]:
    try:
        seconds, pk = value.split("_")
        return datetime.fromtimestamp(float(seconds), tz=timezone.get_current_timezone()), int(pk)
    except (ValueError, OverflowError, OSError):  # not a cursor we made: start from the newest
        return None, 0


def status_page(status_filter: StatusFilter, *, size: int = PAGE_SIZE) -> tuple[list, str]:
    """One page of rows and the cursor of the next (older) page, if any: one query, no COUNT."""
    rows = list(status_rows(status_filter)[: size + 1])
    return rows[:size], encode_cursor(rows[size - 1]) if len(rows) > size else ""


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
    segments: list[tuple[str, str, float, float, int]]  # kind, label, y, height, count
    total: int


def status_chart(counts: Counts, status_filter: StatusFilter, *, width: int = 720, height: int = 160) -> list[Bar]:
    """Stacked bars of survey requests per closure day by outcome, laid out for an inline SVG."""
    span = (status_filter.date_to - status_filter.date_from).days + 1
    days = [status_filter.date_to - timedelta(days=n) for n in reversed(range(min(span, MAX_CHART_DAYS)))]
    totals = {day: sum(counts.per_day.get(day, {}).get(kind, 0) for kind in CHART_KINDS) for day in days}
    top = max(totals.values(), default=0) or 1
    step = width / len(days)
    bars = []
    for index, day in enumerate(days):
        y, segments = float(height), []
        for kind in CHART_KINDS:
            n = counts.per_day.get(day, {}).get(kind, 0)
            if n:
                h = n / top * height
                y -= h
                segments.append((kind, K(kind).label, round(y, 1), round(h, 1), n))
        bars.append(
            Bar(day=day, x=round(index * step, 1), width=round(step * 0.8, 1), segments=segments, total=totals[day])
        )
    return bars


def alerting_accounts(accounts: Iterable[Account]) -> list[Account]:
    return [account for account in accounts if account.settings.error_alert_since]
