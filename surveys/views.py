"""The API Request Status page for support teams: read-only, behind login, their accounts only."""

import csv
from collections.abc import Iterator
from typing import Any

from django.contrib.auth.mixins import LoginRequiredMixin
from django.http import HttpRequest, HttpResponse, StreamingHttpResponse
from django.utils.http import urlencode
from django.views import View
from django.views.generic import TemplateView

from surveys.presenters import present
from surveys.selectors import accounts_visible_to
from surveys.status import (
    CHART_KINDS,
    TABS,
    StatusFilter,
    StatusFilterForm,
    alerting_accounts,
    status_chart,
    status_counts,
    status_page,
    status_rows,
)

CHART_COLOURS = {
    "sent": "#2e7d32",
    "do_not_send": "#81c784",
    "suppressed": "#9e9e9e",
    "cancelled": "#bdbdbd",
    "invalid": "#e65100",
    "failed": "#c62828",
    "waiting": "#1565c0",
}


class StatusPageView(LoginRequiredMixin, TemplateView):
    template_name = "surveys/status.html"

    def get_context_data(self, **kwargs: Any) -> dict[str, Any]:
        accounts = accounts_visible_to(self.request.user).select_related("health")
        form = StatusFilterForm(self.request.GET, accounts=accounts)
        context = super().get_context_data(form=form, accounts=accounts, **kwargs)
        if not form.is_valid():
            return context
        status_filter = StatusFilter.from_form(form, accounts=accounts)
        rows, older = status_page(status_filter)
        counts = status_counts(status_filter)
        query = {key: value for key, value in self.request.GET.dict().items() if key not in ("before", "tab") and value}
        context.update(
            status_filter=status_filter,
            tab=status_filter.tab,
            tabs=[(tab, counts.per_kind.get(tab.count, 0), _url(query, tab=tab.key)) for tab in TABS],
            rows=[present(row) for row in rows],
            older_url=_url(query, tab=status_filter.tab.key, before=older) if older else "",
            newest_url=_url(query, tab=status_filter.tab.key) if status_filter.before else "",
            export_url="export.csv?" + urlencode({**query, "tab": status_filter.tab.key}),
            chart=(chart := status_chart(counts, status_filter)),
            chart_top=max((bar.total for bar in chart), default=0),
            legend=[(kind.label, CHART_COLOURS[kind]) for kind in CHART_KINDS],
            colours=CHART_COLOURS,
            alerts=alerting_accounts(accounts),
        )
        return context


class StatusExportView(LoginRequiredMixin, View):
    """The current tab and filter as CSV: every matching row, streamed, customer emails masked."""

    def get(self, request: HttpRequest) -> HttpResponse | StreamingHttpResponse:
        accounts = accounts_visible_to(request.user)
        form = StatusFilterForm(request.GET, accounts=accounts)
        if not form.is_valid():
            return HttpResponse(form.errors.as_text(), status=400, content_type="text/plain")
        status_filter = StatusFilter.from_form(form, accounts=accounts)
        rows = status_rows(status_filter).iterator(chunk_size=2000)
        filename = f"{status_filter.tab.key}-{status_filter.date_from}-{status_filter.date_to}.csv"
        response = StreamingHttpResponse(_csv(rows), content_type="text/csv")
        response["Content-Disposition"] = f'attachment; filename="{filename}"'
        return response


COLUMNS = [
    "time",
    "account",
    "conversation",
    "conversation_url",
    "channel",
    "customer",
    "teammate",
    "mode",
    "outcome",
    "reason",
]


def _csv(rows: Iterator) -> Iterator[str]:
    class Line:
        def write(self, value: str) -> str:
            return value

    writer = csv.writer(Line())
    yield writer.writerow(COLUMNS)
    for row in rows:
        shown = present(row)
        yield writer.writerow(
            [
                shown.time.isoformat(),
                shown.account,
                shown.conversation_id,
                shown.conversation_url,
                shown.channel,
                shown.customer,
                shown.teammate,
                shown.mode,
                shown.outcome,
                shown.reason,
            ]
        )


def _url(query: dict[str, str], **extra: str) -> str:
    return "?" + urlencode({**query, **extra})
