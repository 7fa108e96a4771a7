"""The demo's people and accounts: Stella's employees and Intercom's teammates and contacts in the
sandbox, and the accounts `make run` creates (and `make demo` relies on)."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from django.conf import settings

from portal.durations import format_duration
from sandbox.models import IntercomRecord, StellaSandboxEmployee
from sandbox.samples import Person, comment, conversation_item
from surveys.accounts.account import account_upsert
from surveys.decisions.decision import QuietHours, sampled
from surveys.models import Account, IntegrationSettings, Teammate
from surveys.selectors import sample_places_next

WORKSPACE = "demo"
DELAYED_WORKSPACE = "demo-delayed"
RULES_WORKSPACE = "demo-rules"
QUIET_WORKSPACE = "demo-quiet"
SAMPLE_WORKSPACE = "demo-sample"
DELAY = timedelta(minutes=1)
SUPPRESSION_WINDOW = timedelta(days=7)
ONBOARDING_TEAM = "5100003"  # left out by Demo Company, rules (one of TEAMS)
BILLING_TEAM = "5100001"  # surveyed by Demo Company, rules, crediting the last teammate to reply (one of TEAMS)
MAX_DAYS_SINCE_REPLY = 7
SAMPLE_PERCENT = 50  # Demo Company, sample: of any two closures of a teammate's in a row, one is in the sample
# Demo Company, quiet hours' quiet hours are moved to around now only when they would hold a close now for less.
QUIET_HOURS_LEFT = timedelta(minutes=10)

# Each demo account, and the settings the demo's scenarios rely on: Demo Company surveys chat only
# (an email closure is invalid) and holds a customer back for 7 days; the delayed one waits a minute.
DEMO_ACCOUNTS: dict[str, tuple[str, dict[str, Any]]] = {
    WORKSPACE: (
        "Demo Company",
        {
            "enabled": True,
            "chat_enabled": True,
            "email_enabled": False,
            "channel_delay": timedelta(0),
            "suppression_window": SUPPRESSION_WINDOW,
        },
    ),
    DELAYED_WORKSPACE: (
        "Demo Company, delayed",
        {
            "enabled": True,
            "chat_enabled": True,
            "email_enabled": True,
            "channel_delay": DELAY,
            "suppression_window": timedelta(0),
        },
    ),
    RULES_WORKSPACE: (
        "Demo Company, rules",
        {
            "enabled": True,
            "chat_enabled": True,
            "channel_delay": timedelta(0),
            "suppression_window": timedelta(0),
            "exclude_teams": ONBOARDING_TEAM,
            "min_teammate_replies": 1,
            "max_days_since_reply": MAX_DAYS_SINCE_REPLY,
            "attribution": "last_replier",
        },
    ),
    SAMPLE_WORKSPACE: (
        "Demo Company, sample",
        {
            "enabled": True,
            "chat_enabled": True,
            "channel_delay": timedelta(0),
            "suppression_window": timedelta(0),
            "sample_percent": SAMPLE_PERCENT,
        },
    ),
    # Its quiet hours are set around the time of each run (demo_quiet_hours_now): a close always falls in them.
    QUIET_WORKSPACE: (
        "Demo Company, quiet hours",
        {
            "enabled": True,
            "chat_enabled": True,
            "channel_delay": timedelta(0),
            "time_zone": "UTC",
            "quiet_hours_zone": "customer",
        },
    ),
}

TEAMMATES: list[Person] = [
    ("4100001", "Tess Teammate", "tess@support.example"),
    ("4100002", "Omar Operator", "omar@support.example"),
    ("4100003", "Ines Inbox", "ines@support.example"),
]
# Intercom's teams in the sandbox (GET /teams): id, name.
TEAMS: list[tuple[str, str]] = [("5100001", "Billing"), ("5100002", "VIP customers"), (ONBOARDING_TEAM, "Onboarding")]
BOT: tuple[str, str, str] = ("4109999", "Fin", f"operator+{WORKSPACE}@intercom.io")
# Stella needs an employee even for a do-not-send request: the bot is mapped to one by custom id.
BOT_EMPLOYEE_ID = "fin-bot"
# A teammate Intercom knows and Stella doesn't (no Stella employee has her email): Stella answers that no employee matches.
NEWCOMER: Person = ("4100004", "Nia Newhire", "nia@support.example")
CUSTOMERS: list[Person] = [
    ("contact-ada", "Ada Customer", "ada@customer.example"),
    ("contact-bea", "Bea Buyer", "bea@customer.example"),
    ("contact-cai", "Cai Client", "cai@client.example"),
    ("contact-dee", None, "dee@customer.example"),
]
# Where the sandbox's Intercom says a customer is (GET /contacts/{id}, `location`), for quiet hours kept in the
# customer's time zone: Bea is in Japan; the others' contacts don't say.
CUSTOMER_LOCATIONS: dict[str, dict[str, str]] = {
    "contact-bea": {"country": "Japan", "region": "Tokyo", "city": "Tokyo"}
}


def demo_accounts_create() -> list[Account]:
    """Demo Company (chat only, no delay, a 7-day suppression window) and Demo Company, delayed (a
    one-minute channel delay), each only if missing."""
    accounts = []
    for workspace, (name, demo_settings) in DEMO_ACCOUNTS.items():
        account = Account.objects.filter(intercom_workspace_id=workspace).first()
        if account is None:
            account, _ = account_upsert(
                workspace_id=workspace,
                name=name,
                test_api_key=f"sandbox-test-key-{workspace}",
                production_api_key=f"sandbox-live-key-{workspace}",
                intercom_access_token=f"sandbox-intercom-token-{workspace}",
                stella_api_secret=settings.SANDBOX_STELLA_API_SECRET,
                **demo_settings,
            )
            Teammate.objects.get_or_create(
                account=account,
                intercom_id=BOT[0],
                defaults={"name": BOT[1], "email": BOT[2], "is_bot": True, "stella_custom_id": BOT_EMPLOYEE_ID},
            )
        accounts.append(account)
    return accounts


def demo_accounts_ensure() -> tuple[list[Account], list[str]]:
    """The demo accounts, with the settings the demo's scenarios rely on put back if they were changed
    (in the admin, or by an older `make run`). Returns them, and what was put back, in words."""
    accounts, put_back = demo_accounts_create(), []
    for account in accounts:
        wanted = DEMO_ACCOUNTS[account.intercom_workspace_id][1]
        integration = IntegrationSettings.objects.filter(account=account).first()
        changed = {
            field: value
            for field, value in wanted.items()
            if integration is None or getattr(integration, field) != value
        }
        if integration is not None and not integration.stella_api_secret:  # an account from before the read-back
            changed["stella_api_secret"] = settings.SANDBOX_STELLA_API_SECRET
        if changed:
            account_upsert(workspace_id=account.intercom_workspace_id, **changed)
            put_back.append(
                f"{account.name}: {', '.join(_setting_words(field, value) for field, value in changed.items())}"
            )
    return accounts, put_back


def demo_quiet_hours_now(now: datetime) -> tuple[str, bool]:
    """Demo Company, quiet hours' quiet hours, such that a close at `now` waits for them to end: as they are if they
    hold it for QUIET_HOURS_LEFT or more (a run soon after another changes nothing, and leaves nothing on record),
    else set to the two hours around `now` (UTC). Returns them, and whether they were set now."""
    integration = IntegrationSettings.objects.get(account__intercom_workspace_id=QUIET_WORKSPACE)
    current = QuietHours.of(integration.quiet_hours, integration.time_zone)
    if current is not None and current.ends_after(now) >= now + QUIET_HOURS_LEFT:
        return integration.quiet_hours, False
    quiet = f"{now - timedelta(hours=1):%H:%M}-{now + timedelta(hours=1):%H:%M}"
    account_upsert(workspace_id=QUIET_WORKSPACE, quiet_hours=quiet)
    return quiet, True


def demo_sample_next_kept(teammate_id: str) -> bool:
    """Whether the next closure of `teammate_id`'s that Demo Company, sample records is in its sample: where the
    teammate's sample stands, asked as the intake asks it, and decided by the one rule."""
    account = Account.objects.get(intercom_workspace_id=SAMPLE_WORKSPACE)
    place = sample_places_next({(account.pk, teammate_id)})[(account.pk, teammate_id)]
    return sampled(teammate_id, place, account.integration.sample_percent)


def _setting_words(field: str, value: Any) -> str:
    """email_enabled=False → "email channel off"; suppression_window=7 days → "suppression window 7d"."""
    if field == "stella_api_secret":
        return "the sandbox's Stella API secret"
    if isinstance(value, bool):
        name = field.removesuffix("_enabled")
        return f"{name} channel {'on' if value else 'off'}" if name != field else ("enabled" if value else "disabled")
    return f"{field.replace('_', ' ')} {format_duration(value) if isinstance(value, timedelta) else value}"


def sandbox_people_create() -> None:
    """Stella's employees and Intercom's teammates and contacts, as the sandbox serves them. The newcomer
    is an Intercom teammate only: Stella has no employee for her."""
    for teammate_id, name, email in [*TEAMMATES, BOT, NEWCOMER]:
        IntercomRecord.objects.update_or_create(
            kind=IntercomRecord.Kind.ADMIN,
            intercom_id=teammate_id,
            defaults={
                "data": {"type": "admin", "id": teammate_id, "name": name, "email": email, "has_inbox_seat": True}
            },
        )
    for team_id, name in TEAMS:
        IntercomRecord.objects.update_or_create(
            kind=IntercomRecord.Kind.TEAM,
            intercom_id=team_id,
            defaults={"data": {"type": "team", "id": team_id, "name": name, "admin_ids": []}},
        )
    for _, _, email in TEAMMATES:
        StellaSandboxEmployee.objects.get_or_create(email=email)
    StellaSandboxEmployee.objects.get_or_create(custom_id=BOT_EMPLOYEE_ID)
    sandbox_contacts_create(CUSTOMERS)


def sandbox_newcomer_forget() -> bool:
    """Make the newcomer unknown to Stella again (someone may have added her, to try a resend).
    Returns whether she was known."""
    deleted, _ = StellaSandboxEmployee.objects.filter(email__iexact=NEWCOMER[2]).delete()
    return bool(deleted)


def sandbox_contacts_create(customers: list[Person], *, located_as: list[str] | None = None) -> None:
    """The customers' contacts in the sandbox's Intercom; `located_as`: each one's demo customer, for where it is."""
    for (contact_id, name, email), demo_id in zip(customers, located_as or [c[0] for c in customers], strict=True):
        data: dict[str, Any] = {"type": "contact", "id": contact_id, "role": "user", "name": name, "email": email}
        if location := CUSTOMER_LOCATIONS.get(demo_id):
            data["location"] = {"type": "location", **location}
        IntercomRecord.objects.update_or_create(
            kind=IntercomRecord.Kind.CONTACT, intercom_id=contact_id, defaults={"data": data}
        )


def demo_customers_create(run: str) -> list[Person]:
    """The customers of one demo run: the demo's customers with addresses of their own (ada+<run>@…), so
    Demo Company's suppression window never holds back someone an earlier run surveyed."""
    customers: list[Person] = []
    for contact_id, name, email in CUSTOMERS:
        local, _, domain = (email or "").partition("@")
        customers.append((f"{contact_id}-{run}", name, f"{local}+{run}@{domain}"))
    sandbox_contacts_create(customers, located_as=[contact_id for contact_id, _, _ in CUSTOMERS])
    return customers


def sandbox_conversation_create(
    conversation_id: str,
    *,
    channel: str,
    customer: Person,
    teammate: Person,
    started_at: int,
    replies: tuple[tuple[Person, int], ...] = (),
    team_id: str | None = None,
) -> None:
    """A conversation the sandbox's Intercom returns for GET /conversations/{id}, with a comment part for each of
    `replies` (who wrote it, when) and its statistics."""
    parts = [comment(f"{conversation_id}-reply-{n}", at=at, author=author) for n, (author, at) in enumerate(replies)]
    data = conversation_item(
        conversation_id=conversation_id,
        channel=channel,
        customer_id=customer[0],
        customer_name=customer[1],
        customer_email=customer[2] or "",
        assignee_id=teammate[0],
        tags=(),
        parts=parts,
        state="closed",
        started_at=started_at,
        team_id=team_id,
        last_admin_reply_at=max((at for _, at in replies), default=None),
    )
    IntercomRecord.objects.update_or_create(
        kind=IntercomRecord.Kind.CONVERSATION, intercom_id=conversation_id, defaults={"data": data}
    )
