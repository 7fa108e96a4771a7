"""The admin's front page starts with what needs a CSM today."""

from typing import Any

from django import template
from django.utils import timezone

from surveys.admin.tabs import ADMIN_TABS
from surveys.reporting.attention import accounts_attention
from surveys.selectors import accounts_visible_to, daily_count_totals

register = template.Library()


@register.inclusion_tag("admin/surveys/attention.html", takes_context=True)
def attention(context: dict[str, Any]) -> dict[str, Any]:
    request = context["request"]
    accounts = accounts_visible_to(request.user)
    day = timezone.localdate(timezone=timezone.get_default_timezone())  # counts keep the portal's days
    today = daily_count_totals(accounts, day=day)
    return {
        "attention": needing_attention(accounts),
        "today": [(tab.label, today.get(tab.count_kind, 0), tab.url) for tab in ADMIN_TABS if tab.count_kind],
        "today_date": day,
        "portal_zone": timezone.get_default_timezone_name(),
    }


def needing_attention(accounts: Any) -> list[tuple[Any, list[Any]]]:
    """Every account with something to fix, blocking ones first, then most problems first."""
    found = [
        (account, problems)
        for account, problems in accounts_attention(accounts, now=timezone.now()).items()
        if problems
    ]
    return sorted(found, key=lambda item: (-sum(problem.blocking for problem in item[1]), -len(item[1])))
