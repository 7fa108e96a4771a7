"""What the status page's views share: the head of every page, the queries their links carry (the status page's
filters, the satisfaction report's own choices), and the words for the defaults shown in place of a wrong field."""

from collections.abc import Mapping
from typing import Any

from django.db.models import QuerySet
from django.utils import timezone
from django.utils.http import urlencode

from portal.models import time_zones
from surveys.models import Account
from surveys.reporting.attention import support_alerts
from surveys.reporting.status import DEFAULT_DAYS, TABS, TABS_BY_KEY, StatusFilterForm
from surveys.reporting.teammate_figures import GROUPS
from surveys.reporting.teammate_stats import TEAMMATE_FILTERS

# What the page shows instead of a field the user got wrong, until it is fixed.
DEFAULTS_SHOWN = {
    "date_from": f"the last {DEFAULT_DAYS} days",
    "account": "all your accounts",
    "channel": "any channel",
    "reason": "any reason",
    "q": "every conversation",
    "tab": f"the {TABS[0].label} tab",
}


def page_head(accounts: QuerySet[Account]) -> dict[str, Any]:
    """What the head of every status view shows: alerts, and the zone times are shown in."""
    return {
        "alerts": support_alerts(accounts, now=timezone.now()),
        "time_zone": timezone.get_current_timezone_name(),
        "days_zone": timezone.get_default_timezone_name(),
        "time_zones_grouped": list(zip(("Common", "Every zone"), time_zones(), strict=True)),
        "invalid_tab": TABS_BY_KEY["invalid"],
    }


def teammate_query(params: Mapping[str, str]) -> dict[str, str]:
    """The filters of the status page the Teammates view takes (account and dates), as given."""
    return {name: params[name] for name in TEAMMATE_FILTERS if params.get(name)}


# The report's own choices, beside the status page's filters: what it groups by, bots in or out, the sort.
REPORT_CHOICES = ("group", "bots", "sort")


def report_choices(params: Mapping[str, str]) -> tuple[str, bool, str]:
    """The grouping (teammate unless team or channel is asked for), whether bots are counted, and the sort."""
    group = params.get("group", "")
    return (group if group in GROUPS else "teammate"), params.get("bots") == "1", params.get("sort", "")


def report_query(query: Mapping[str, str], group: str, bots: bool, **extra: str) -> dict[str, str]:
    """The link's parameters: the filters, then the report's choices where they aren't the defaults."""
    return {
        **query,
        **({"group": group} if group != "teammate" else {}),
        **({"bots": "1"} if bots else {}),
        **{name: value for name, value in extra.items() if value},
    }


def defaults_shown(form: StatusFilterForm) -> str:
    """What the page shows in place of the wrong fields, in words: "the last 30 days and any channel"."""
    shown = [DEFAULTS_SHOWN[name] for name in form.wrong_fields() if name in DEFAULTS_SHOWN]
    return " and ".join([", ".join(shown[:-1]), shown[-1]] if len(shown) > 1 else shown)


def query_string(query: dict[str, str], **extra: str) -> str:
    return "?" + urlencode({**query, **extra})
