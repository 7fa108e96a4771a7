"""The API Request Status page for support teams, and the CSVs of it and of the satisfaction report (whose pages are
teammate_views.py): read-only, behind login, their accounts only."""

from collections.abc import Iterator
from datetime import tzinfo
from typing import Any

from django.contrib.auth.mixins import LoginRequiredMixin
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect, StreamingHttpResponse
from django.urls import reverse
from django.utils import timezone
from django.utils.http import url_has_allowed_host_and_scheme
from django.views import View
from django.views.generic import TemplateView

from portal.csv_export import Cell, csv_response
from portal.middleware import user_time_zone_save
from surveys.reporting.presenters import present, stella_channel_label
from surveys.reporting.status import (
    CHART_KINDS,
    SURVEY_REQUESTS,
    TABS,
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
from surveys.reporting.teammate_figures import TeammateRow
from surveys.reporting.teammate_stats import teammate_stats
from surveys.reporting.view_helpers import (
    defaults_shown,
    page_head,
    query_string,
    report_choices,
    teammate_query,
)
from surveys.selectors import accounts_visible_to, is_csm


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
        csm = is_csm(self.request.user)  # reads each reason's fix where a support user reads who to ask
        query = {key: value for key, value in shown.data.items() if key not in ("before", "tab") and value}
        return super().get_context_data(
            form=form,
            accounts=accounts,
            instead=defaults_shown(form) if shown is not form else "",
            status_filter=status_filter,
            tab=status_filter.tab,
            tabs=[(tab, _count(counts, tab), query_string(query, tab=tab.key)) for tab in TABS],
            rows=[present(row, csm=csm) for row in rows],
            stella_column=status_filter.tab.listing is SURVEY_REQUESTS,
            **_status_links(query, status_filter, older=older),
            chart=status_chart(counts, status_filter),
            legend=[(kind.label, kind.value) for kind in CHART_KINDS],  # coloured by portal.css, as the bars are
            **page_head(accounts),
            **kwargs,
        )


def _status_links(query: dict[str, str], status_filter: StatusFilter, *, older: str) -> dict[str, str]:
    """Where the page's links go, keeping its filter: the next page (rows `older` than these), the first, the
    export and the Teammates view."""
    tab = status_filter.tab.key
    return {
        "older_url": query_string(query, tab=tab, before=older) if older else "",
        "newest_url": query_string(query, tab=tab) if status_filter.before else "",
        "export_url": reverse("status_export") + query_string(query, tab=tab),
        "teammates_url": reverse("status_teammates") + query_string(teammate_query(query)),
    }


class TeammatesExportView(LoginRequiredMixin, View):
    """The satisfaction report as CSV: the same rows, figures and order, then the totals."""

    def get(self, request: HttpRequest) -> HttpResponse | StreamingHttpResponse:
        accounts = accounts_visible_to(request.user)
        form = StatusFilterForm(teammate_query(request.GET), accounts=accounts)
        if not form.is_valid():
            return HttpResponse(form.errors.as_text(), status=400, content_type="text/plain; charset=utf-8")
        status_filter = StatusFilter.from_form(form, accounts=accounts)
        group, bots, sort = report_choices(request.GET)
        stats = teammate_stats(status_filter, group=group, bots=bots, sort=sort)
        # The channel as the page and the status page's CSV name it ("Chat"), not Stella's "chat".
        rows = [
            [row.teammate, row.teammate_name, row.team, _channel(row.channel), *_figures(row)] for row in stats.rows
        ]
        totals: list[Cell] = ["", TOTAL, "", "", *_figures(stats.totals)]
        header = [*TEAMMATE_COLUMNS, *(f"satisfaction_week_of_{week}" for week in stats.weeks)]
        filename = f"teammates-{status_filter.date_from}-{status_filter.date_to}.csv"
        return csv_response(filename, header, [*rows, totals])


def _channel(channel: str) -> str:
    return stella_channel_label(channel) if channel else ""


TEAMMATE_COLUMNS = [
    "teammate",
    "teammate_name",
    "team",
    "channel",
    "requests",
    "delivered",
    "responded",
    "ratings",
    "response_rate",
    "average_rating",
    "satisfied",
    "satisfaction",
    "stars_1",
    "stars_2",
    "stars_3",
    "stars_4",
    "stars_5",
    "few_ratings",
    "previous_ratings",
    "previous_satisfaction",
    "change",
]
TOTAL = "Total"


def _figures(row: TeammateRow) -> list[Cell]:
    """A row's numbers as the API gives them: rates and shares from 0 to 1, the rating to one decimal, the change
    in share (0.05: 5 points up), empty for none; then each week's satisfaction share."""
    return [
        row.requested,
        row.delivered,
        row.responded,
        row.rating_count,
        row.response_rate,
        row.average_rating,
        row.satisfied,
        row.satisfaction,
        *row.stars,
        "yes" if row.few else "no",
        row.previous.rating_count,
        row.previous.satisfaction,
        row.change,
        *(week.satisfaction for week in row.weeks),
    ]


def _count(counts: Counts, tab: Tab) -> int | None:
    """The tab's count in the filter's accounts and dates; None for a tab that counts nothing of its own."""
    return counts.per_kind.get(tab.count, 0) if tab.count else None


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
    with their offset, to the second on every tab, in the user's zone."""

    def get(self, request: HttpRequest) -> HttpResponse | StreamingHttpResponse:
        accounts = accounts_visible_to(request.user)
        form = StatusFilterForm(request.GET, accounts=accounts)
        if not form.is_valid():
            return HttpResponse(form.errors.as_text(), status=400, content_type="text/plain; charset=utf-8")
        status_filter = StatusFilter.from_form(form, accounts=accounts)
        rows = status_rows(status_filter).iterator(chunk_size=2000)
        filename = f"{status_filter.tab.key}-{status_filter.date_from}-{status_filter.date_to}.csv"
        # Streamed after this view returns, when the user's zone is no longer active: the rows take it along.
        rows_shown = _csv_rows(rows, timezone.get_current_timezone(), csm=is_csm(request.user))
        return csv_response(filename, COLUMNS, rows_shown)


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


def _csv_rows(rows: Iterator, zone: tzinfo, *, csm: bool) -> Iterator[list[Cell]]:
    for row in rows:
        with timezone.override(zone):  # for the times in the words too ("resent … on 2026-11-29 10:14 CET")
            shown = present(row, csm=csm)
        yield [
            shown.time.astimezone(zone).isoformat(timespec="seconds"),  # one format on every tab: no microseconds
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
