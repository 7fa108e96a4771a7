"""The API Request Status page for support teams: read-only, behind login, their accounts only."""

from collections.abc import Iterator, Mapping
from datetime import tzinfo
from typing import Any

from django.contrib.auth.mixins import LoginRequiredMixin
from django.db.models import QuerySet
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect, StreamingHttpResponse
from django.urls import reverse
from django.utils import timezone
from django.utils.http import url_has_allowed_host_and_scheme, urlencode
from django.views import View
from django.views.generic import TemplateView

from portal.csv_export import Cell, csv_response
from portal.middleware import user_time_zone_save
from portal.models import time_zones
from surveys.models import Account
from surveys.reporting.attention import support_alerts
from surveys.reporting.presenters import present
from surveys.reporting.status import (
    CHART_KINDS,
    DEFAULT_DAYS,
    SURVEY_REQUESTS,
    TABS,
    TABS_BY_KEY,
    Counts,
    StatusFilter,
    StatusFilterForm,
    Tab,
    TimeZoneForm,
    status_chart,
    status_counts,
    status_page,
    status_rows,
)
from surveys.reporting.teammate_stats import TEAMMATE_FILTERS, TeammateRow, feedback_freshness, teammate_stats
from surveys.selectors import accounts_visible_to

# What the page shows instead of a field the user got wrong, until it is fixed.
DEFAULTS_SHOWN = {
    "date_from": f"the last {DEFAULT_DAYS} days",
    "account": "all your accounts",
    "channel": "any channel",
    "reason": "any reason",
    "q": "every conversation",
    "tab": f"the {TABS[0].label} tab",
}


class StatusPageView(LoginRequiredMixin, TemplateView):
    template_name = "surveys/status.html"

    def get_context_data(self, **kwargs: Any) -> dict[str, Any]:
        accounts = accounts_visible_to(self.request.user).select_related("health")
        form = StatusFilterForm(self.request.GET, accounts=accounts)
        # A mistake in the filter keeps the page: what was typed stays in the fields with the reason beside it,
        # and the rest of the page shows the filter less the mistake (the defaults in its place) and says so.
        shown = form if form.is_valid() else form.without_mistakes()
        status_filter = StatusFilter.from_form(shown, accounts=accounts)
        rows, older = status_page(status_filter)
        counts = status_counts(status_filter)
        query = {key: value for key, value in shown.data.items() if key not in ("before", "tab") and value}
        return super().get_context_data(
            form=form,
            accounts=accounts,
            instead=_defaults_shown(form) if shown is not form else "",
            status_filter=status_filter,
            tab=status_filter.tab,
            tabs=[(tab, _count(counts, tab), _url(query, tab=tab.key)) for tab in TABS],
            rows=[present(row) for row in rows],
            stella_column=status_filter.tab.listing is SURVEY_REQUESTS,
            older_url=_url(query, tab=status_filter.tab.key, before=older) if older else "",
            newest_url=_url(query, tab=status_filter.tab.key) if status_filter.before else "",
            export_url=reverse("status_export") + _url(query, tab=status_filter.tab.key),
            teammates_url=reverse("status_teammates") + _url(_teammate_query(query)),
            chart=status_chart(counts, status_filter),
            legend=[(kind.label, kind.value) for kind in CHART_KINDS],  # coloured by portal.css, as the bars are
            **_page_head(accounts),
            **kwargs,
        )


def _page_head(accounts: QuerySet[Account]) -> dict[str, Any]:
    """What the head of every status view shows: alerts, and the zone times are shown in."""
    return {
        "alerts": support_alerts(accounts, now=timezone.now()),
        "time_zone": timezone.get_current_timezone_name(),
        "days_zone": timezone.get_default_timezone_name(),
        "time_zones_grouped": list(zip(("Common", "Every zone"), time_zones(), strict=True)),
        "invalid_tab": TABS_BY_KEY["invalid"],
    }


def _teammate_query(params: Mapping[str, str]) -> dict[str, str]:
    """The filters of the status page the Teammates view takes (account and dates), as given."""
    return {name: params[name] for name in TEAMMATE_FILTERS if params.get(name)}


class TeammatesView(LoginRequiredMixin, TemplateView):
    """Per teammate and channel, over the chosen days: the requests Stella recorded, delivered and had answered,
    and the star ratings, from Stella's feedback records; the user's accounts only."""

    template_name = "surveys/teammates.html"

    def get_context_data(self, **kwargs: Any) -> dict[str, Any]:
        accounts = accounts_visible_to(self.request.user).select_related("health")
        form = StatusFilterForm(_teammate_query(self.request.GET), accounts=accounts)
        shown = form if form.is_valid() else form.without_mistakes()
        status_filter = StatusFilter.from_form(shown, accounts=accounts)
        query = _teammate_query(shown.data)
        return super().get_context_data(
            form=form,
            accounts=accounts,
            instead=_defaults_shown(form) if shown is not form else "",
            status_filter=status_filter,
            stats=teammate_stats(status_filter),
            freshness=feedback_freshness(status_filter),
            status_url=reverse("status") + _url(query),
            export_url=reverse("status_teammates_export") + _url(query),
            **_page_head(accounts),
            **kwargs,
        )


class TeammatesExportView(LoginRequiredMixin, View):
    """The Teammates view as CSV: the same rows and figures, then the totals."""

    def get(self, request: HttpRequest) -> HttpResponse | StreamingHttpResponse:
        accounts = accounts_visible_to(request.user)
        form = StatusFilterForm(_teammate_query(request.GET), accounts=accounts)
        if not form.is_valid():
            return HttpResponse(form.errors.as_text(), status=400, content_type="text/plain; charset=utf-8")
        status_filter = StatusFilter.from_form(form, accounts=accounts)
        stats = teammate_stats(status_filter)
        rows = [[row.teammate, row.teammate_name, row.channel, *_figures(row)] for row in stats.rows]
        totals: list[Cell] = ["", TOTAL, "", *_figures(stats.totals)]
        filename = f"teammates-{status_filter.date_from}-{status_filter.date_to}.csv"
        return csv_response(filename, TEAMMATE_COLUMNS, [*rows, totals])


TEAMMATE_COLUMNS = [
    "teammate",
    "teammate_name",
    "channel",
    "requests",
    "delivered",
    "responded",
    "ratings",
    "response_rate",
    "average_rating",
]
TOTAL = "Total"


def _figures(row: TeammateRow) -> list[Cell]:
    """A row's numbers as the API gives them: the rate from 0 to 1, the rating to one decimal, empty for none."""
    return [
        row.requested,
        row.delivered,
        row.responded,
        row.rating_count,
        "" if row.response_rate is None else row.response_rate,
        "" if row.average_rating is None else row.average_rating,
    ]


def _count(counts: Counts, tab: Tab) -> int | None:
    """The tab's count in the filter's accounts and dates; None for a tab that counts nothing of its own."""
    return counts.per_kind.get(tab.count, 0) if tab.count else None


def _defaults_shown(form: StatusFilterForm) -> str:
    """What the page shows in place of the wrong fields, in words: "the last 30 days and any channel"."""
    shown = [DEFAULTS_SHOWN[name] for name in form.wrong_fields() if name in DEFAULTS_SHOWN]
    return " and ".join([", ".join(shown[:-1]), shown[-1]] if len(shown) > 1 else shown)


class TimeZoneView(LoginRequiredMixin, View):
    """The zone the user reads times in, chosen from the status page's header; back to the page they were on."""

    def post(self, request: HttpRequest) -> HttpResponse:
        form = TimeZoneForm(request.POST)
        if form.is_valid():
            user_time_zone_save(request, form.cleaned_data["time_zone"])
        back = request.POST.get("next", "")
        if not url_has_allowed_host_and_scheme(back, allowed_hosts={request.get_host()}):
            back = reverse("status")
        return HttpResponseRedirect(back)


class StatusExportView(LoginRequiredMixin, View):
    """The current tab and filter as CSV: every matching row, streamed, customers masked as on the page.

    UTF-8 with a byte order mark, so that Excel reads the masked names and the dashes right; times in ISO 8601
    with their offset, in the user's zone."""

    def get(self, request: HttpRequest) -> HttpResponse | StreamingHttpResponse:
        accounts = accounts_visible_to(request.user)
        form = StatusFilterForm(request.GET, accounts=accounts)
        if not form.is_valid():
            return HttpResponse(form.errors.as_text(), status=400, content_type="text/plain; charset=utf-8")
        status_filter = StatusFilter.from_form(form, accounts=accounts)
        rows = status_rows(status_filter).iterator(chunk_size=2000)
        filename = f"{status_filter.tab.key}-{status_filter.date_from}-{status_filter.date_to}.csv"
        # Streamed after this view returns, when the user's zone is no longer active: the rows take it along.
        return csv_response(filename, COLUMNS, _csv_rows(rows, timezone.get_current_timezone()))


COLUMNS = [
    "time",
    "account",
    "conversation",
    "conversation_url",
    "channel",
    "customer_name",
    "customer_email",
    "teammate",
    "mode",
    "outcome",
    "reason",
    "explanation",
    "delivery_status",
    "star_rating",
    "comment",
    "reconcile",
]


def _csv_rows(rows: Iterator, zone: tzinfo) -> Iterator[list[Cell]]:
    for row in rows:
        with timezone.override(zone):  # for the times in the words too ("resent … on 2026-11-29 10:14 CET")
            shown = present(row)
        yield [
            shown.time.astimezone(zone).isoformat(),
            shown.account,
            shown.conversation_id,
            shown.conversation_url,
            shown.channel,
            shown.customer_name,
            shown.customer,
            shown.teammate,
            shown.mode,
            shown.outcome,
            shown.reason,
            shown.explanation,
            shown.delivery_status,
            shown.star_rating,
            shown.comment,
            shown.reconcile,
        ]


def _url(query: dict[str, str], **extra: str) -> str:
    return "?" + urlencode({**query, **extra})
