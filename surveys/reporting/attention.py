"""What needs a CSM on an account, decided once: the front page, the account page, its checklist, go-live and
the status page all read `accounts_attention` (or `account_attention` for one), so no screen says "nothing to
fix" while another lists something.

Each problem has a stable code, a severity (blocking: surveys can't flow; warning: some are lost or wrong),
what is wrong, the fix and where it is made: for a reason of integrations/messages.py, the registry's.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from enum import StrEnum

from django.conf import settings
from django.db.models import Count, Min, OuterRef, QuerySet, Subquery
from django.urls import reverse
from django.utils import timezone

from integrations import messages
from integrations.models import InboundWebhook
from integrations.stella.client import ERROR_ALERT_THRESHOLD
from surveys.models import Account, ApiRequest, IntegrationHealth, QuarantinedFeedback, StellaSyncState, Teammate

# An enabled account that hears nothing from Intercom for this long has lost its webhook, or never had one.
WEBHOOK_SILENCE = timedelta(hours=24)
# Invalid requests still to fix are counted over this many days: recent enough to be worked on, and the
# count reads an index whatever the log's size.
INVALID_WINDOW = timedelta(days=7)
# Teammates named in a problem; the rest are counted.
NAMES_SHOWN = 3


class Severity(StrEnum):
    BLOCKING = "blocking"  # no survey goes out until it is fixed
    WARNING = "warning"  # surveys go out, but some are lost or wrong


@dataclass(frozen=True)
class Problem:
    code: str  # stable: "paused", "intercom_token_missing", "invalid:stella_employee_not_found"…
    severity: Severity
    text: str  # what is wrong
    fix: str  # what a CSM does
    fix_url: str  # where ("" where nothing of ours is to fix)

    @property
    def blocking(self) -> bool:
        return self.severity == Severity.BLOCKING


def _utc(moment: datetime) -> str:
    return f"{moment.astimezone(UTC):%Y-%m-%d %H:%M} UTC"


def _account_url(account: Account, anchor: str = "") -> str:
    return reverse("admin:surveys_account_change", args=[account.pk]) + anchor


def _connect_url(account: Account) -> str:
    return reverse("admin:surveys_account_connect_intercom", args=[account.pk])


def with_attention_facts(accounts: QuerySet[Account]) -> QuerySet[Account]:
    """The accounts with what `account_problems` reads of them, in one query: settings, health, Stella sync,
    and `last_webhook_at` (its workspace's last webhook, off an index)."""
    last_webhook = (
        InboundWebhook.objects.filter(workspace_id=OuterRef("intercom_workspace_id"))
        .order_by("-received_at")
        .values("received_at")[:1]
    )
    return accounts.select_related("integration", "health", "stella_sync").annotate(
        last_webhook_at=Subquery(last_webhook)
    )


def accounts_attention(accounts: QuerySet[Account], *, now: datetime) -> dict[Account, list[Problem]]:
    """Every account's problems, most severe first, in four queries however many accounts (the account rows,
    then the invalid requests, the teammates Stella won't recognise and the quarantined records, grouped)."""
    rows = list(with_attention_facts(accounts).order_by("name"))
    ids = [account.pk for account in rows]
    invalid: dict[int, list[tuple[str, str, int]]] = defaultdict(list)
    for account_id, code, text, count in (
        ApiRequest.objects.invalid()
        .filter(account_id__in=ids, created_at__gte=now - INVALID_WINDOW)
        .filter(ApiRequest.unresolved_condition())
        .values_list("account_id", "error_code", "error_message")
        .annotate(count=Count("pk"))
        .order_by("account_id", "-count")
    ):
        invalid[account_id].append((code, text, count))
    unknown = {
        row["account_id"]: (row["count"], row["first"])
        for row in Teammate.objects.filter(
            account_id__in=ids, is_bot=False, stella_match=Teammate.StellaMatch.UNMATCHED
        )
        .values("account_id")
        .annotate(count=Count("pk"), first=Min("name"))
        .order_by()
    }
    quarantined = dict(
        QuarantinedFeedback.objects.filter(account_id__in=ids)
        .values("account_id")
        .annotate(count=Count("pk"))
        .order_by()
        .values_list("account_id", "count")
    )
    return {
        account: account_problems(
            account,
            now=now,
            invalid=invalid.get(account.pk, []),
            unknown_teammates=unknown.get(account.pk, (0, "")),
            quarantined=quarantined.get(account.pk, 0),
        )
        for account in rows
    }


def account_attention(account: Account, *, now: datetime) -> list[Problem]:
    """One account's problems (`accounts_attention` for it)."""
    return next(iter(accounts_attention(Account.objects.filter(pk=account.pk), now=now).values()), [])


def account_problems(
    account: Account,
    *,
    now: datetime,
    invalid: list[tuple[str, str, int]],
    unknown_teammates: tuple[int, str],
    quarantined: int,
) -> list[Problem]:
    """An account's problems from what `accounts_attention` read, most severe first."""
    problems = [
        *_sending(account),
        *_intercom_token(account),
        *_webhooks(account, now=now),
        *_error_alert(account),
        *_invalid(account, invalid),
        *_unknown_teammates(account, *unknown_teammates),
        *_stella_sync(account),
        *_quarantined(account, quarantined),
    ]
    return sorted(problems, key=lambda problem: not problem.blocking)


def _health(account: Account) -> IntegrationHealth | None:
    """None for an account that has no health row yet (a missing one-to-one raises an AttributeError)."""
    return getattr(account, "health", None)


def _sending(account: Account) -> list[Problem]:
    health = _health(account)
    if health is None or not health.sending_paused_at:
        return []
    return [
        Problem(
            "paused",
            Severity.BLOCKING,
            f"Sending paused since {_utc(health.sending_paused_at)}: {health.sending_paused_reason}.",
            "Enter a new key (or switch mode) to resume.",
            _account_url(account, "#integration-group"),
        )
    ]


def _intercom_token(account: Account) -> list[Problem]:
    """The account's Intercom token: missing (never sent to Intercom, so never "rejected"), rejected, or for
    another workspace than the account's."""
    integration = account.integration
    health = _health(account)
    if not integration.intercom_access_token:
        entry = messages.INTERCOM_TOKEN_MISSING
        return [Problem(entry.code, Severity.BLOCKING, f"{entry.words}.", entry.fix, _connect_url(account))]
    if health is None:
        return []
    if health.intercom_token_rejected_at:
        entry = messages.INTERCOM_TOKEN_REJECTED
        text = f"Intercom rejected the access token on {_utc(health.intercom_token_rejected_at)}."
        return [Problem(entry.code, Severity.BLOCKING, text, entry.fix, _connect_url(account))]
    token_workspace = health.intercom_token_workspace_id
    if token_workspace and token_workspace != account.intercom_workspace_id:
        text = (
            f"The Intercom access token is for workspace {token_workspace}, not this account's "
            f"({account.intercom_workspace_id or 'none yet'})."
        )
        fix = "Connect with Intercom in the account's workspace."
        return [Problem("intercom_other_workspace", Severity.BLOCKING, text, fix, _connect_url(account))]
    return []


def _webhooks(account: Account, *, now: datetime) -> list[Problem]:
    """An enabled account that never heard from Intercom, or stopped hearing."""
    if not account.integration.enabled:
        return []
    last_webhook_at = getattr(account, "last_webhook_at", None)
    checklist = reverse("admin:surveys_account_checklist", args=[account.pk])
    if last_webhook_at is None:
        return [
            Problem(
                "no_webhook",
                Severity.BLOCKING,
                "No webhook received yet.",
                "Paste the webhook URL into Intercom (see the onboarding checklist).",
                checklist,
            )
        ]
    if last_webhook_at < now - WEBHOOK_SILENCE:
        return [
            Problem(
                "webhook_silent",
                Severity.BLOCKING,
                f"No webhook from Intercom since {timezone.localtime(last_webhook_at):%Y-%m-%d %H:%M %Z}.",
                "Check the webhook in Intercom's Developer Hub.",
                checklist,
            )
        ]
    return []


def error_alert_text(account: Account) -> str:
    """The error-rate alert in words, or "" when it doesn't stand (the status page's banner says the same)."""
    health = _health(account)
    if health is None or not health.error_alert_since:
        return ""
    return (
        f"Over {ERROR_ALERT_THRESHOLD:.0%} of {account.name}'s requests in the last hour were invalid or failed "
        f"({health.error_alert_rate:.0f}%, since {_utc(health.error_alert_since)})."
    )


def _error_alert(account: Account) -> list[Problem]:
    text = error_alert_text(account)
    if not text:
        return []
    url = reverse("admin:surveys_invalidapirequest_changelist") + f"?account__id__exact={account.pk}&resolved=no"
    return [Problem("error_alert", Severity.WARNING, text, "See why under Invalid requests, and fix it.", url)]


def _invalid(account: Account, invalid: list[tuple[str, str, int]]) -> list[Problem]:
    """Invalid requests not resolved by a resend, by reason (each name once), where something of ours fixes them."""
    by_words: dict[str, int] = defaultdict(int)
    for code, text, count in invalid:
        by_words[messages.words_of(code or messages.code_of(text), text)] += count
    problems = []
    for words, count in sorted(by_words.items(), key=lambda item: -item[1]):
        entry = messages.message(messages.REASON_GROUPS.get(words, [""])[0])
        if entry is not None and entry.place == messages.FixPlace.NOWHERE:
            continue  # nothing of ours to fix: not a problem of the account
        requests = f"{count} invalid request{'' if count == 1 else 's'} in the last {INVALID_WINDOW.days} days"
        problems.append(
            Problem(
                f"invalid:{entry.code if entry else words}",
                Severity.WARNING,
                f"{words}: {requests}, not resolved by a resend.",
                entry.fix if entry else "See the requests under Invalid requests.",
                messages.fix_url(entry, account.pk) if entry else _account_url(account, "#integration-group"),
            )
        )
    return problems


def _unknown_teammates(account: Account, count: int, first: str) -> list[Problem]:
    if not count:
        return []
    names = first if count == 1 else f"{count} teammates, {first} among them"
    entry = messages.EMPLOYEE_UNKNOWN
    return [
        Problem(
            "unknown_teammates",
            Severity.WARNING,
            f"Teammates Stella won't recognise: {names}. Their surveys come back {entry.words}.",
            entry.fix,
            messages.fix_url(entry, account.pk),
        )
    ]


def _stella_sync(account: Account) -> list[Problem]:
    state: StellaSyncState | None = getattr(account, "stella_sync", None)
    if state is None:
        return []
    failing = [
        (what, job, error)
        for what, job, error in (
            ("employee", "employees", state.employees_error),
            ("feedback", "feedback", state.feedback_error),
        )
        if error
    ]
    return [
        Problem(
            f"stella_sync:{what}",
            Severity.WARNING,
            f"Stella's {what} sync is failing: {error}",
            _stella_sync_fix(error, job=job),
            reverse("admin:surveys_account_stella_sync", args=[account.pk, job]),
        )
        for what, job, error in failing
    ]


# Errors of Stella's side (integrations/stella/data.py's words): nothing of the account's to change.
STELLA_UNAVAILABLE = ("Stella answered 5", "Stella could not be reached")


def _minutes(count: int) -> str:
    return "minute" if count == 1 else f"{count} minutes"


def _stella_sync_fix(error: str, *, job: str) -> str:
    """What a CSM does about a failing sync: wait out Stella's outage, or check the account's Stella keys."""
    run_now = "Sync employees now" if job == "employees" else "Pull feedback now"
    if error.startswith(STELLA_UNAVAILABLE):
        return (
            f"Stella is unavailable: the sync tries again by itself every {_minutes(settings.STELLA_SYNC_MINUTES)} "
            f"(or {run_now}); ask Stella if it lasts."
        )
    return f"Check the account's Stella API key and secret, then {run_now}; ask Stella if it keeps failing."


def _quarantined(account: Account, count: int) -> list[Problem]:
    if not count:
        return []
    url = reverse("admin:surveys_quarantinedfeedback_changelist") + f"?account__id__exact={account.pk}"
    return [
        Problem(
            "quarantined",
            Severity.WARNING,
            f"{count} feedback record{'' if count == 1 else 's'} quarantined: Stella sent "
            f"{'it' if count == 1 else 'them'} in a form the portal can't store.",
            "Ask Stella to correct them; a version that can be stored leaves the list.",
            url,
        )
    ]


# What the status page tells support users, who can't fix it: sending stopped or failing (they ask their CSM).
FOR_SUPPORT = ("paused", "error_alert")


def support_alerts(accounts: QuerySet[Account], *, now: datetime) -> list[tuple[Account, Problem]]:
    """The problems of `accounts` the status views' banner shows (FOR_SUPPORT): the model's own, from what it reads
    of the account rows alone, since those are read off them; one query, never a scan of the log, on every view."""
    return [
        (account, problem)
        for account in with_attention_facts(accounts).order_by("name")
        for problem in account_problems(account, now=now, invalid=[], unknown_teammates=(0, ""), quarantined=0)
        if problem.code in FOR_SUPPORT
    ]
