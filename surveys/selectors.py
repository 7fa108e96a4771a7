"""Reads only: nothing here writes."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, timedelta

from django.contrib.auth.models import AbstractBaseUser, AnonymousUser, User
from django.db.models import Count, OuterRef, Q, QuerySet, Subquery, Sum
from django.utils import timezone

from integrations.models import InboundWebhook
from integrations.vocabulary import AssigneeKind, Channel
from surveys.accounts import account_attention
from surveys.models import (
    Account,
    ApiRequest,
    ConversationEvent,
    DailyCount,
    IntegrationSettings,
    SurveyRequest,
    Teammate,
)
from surveys.rules import Decision, SurveyCandidate, customer_identity, during_delay, suppression_window_bounds

# A survey of the customer on its way or sent (for the suppression window)...
SURVEYING = (SurveyRequest.Status.SCHEDULED, SurveyRequest.Status.SENDING, SurveyRequest.Status.SENT)
# ...and a conversation's survey gone out (a later close of it is "already surveyed").
SURVEYED = (SurveyRequest.Status.SENDING, SurveyRequest.Status.SENT)


@dataclass(frozen=True)
class ConversationHistory:
    """What the portal already knows of one conversation, read in two queries."""

    events: list[ConversationEvent]
    survey_requests: list[SurveyRequest]

    @property
    def first_message_tags(self) -> tuple[str, ...]:
        return tuple(tag for event in self.events if event.kind == ConversationEvent.Kind.TAGGED for tag in event.tags)

    def survey_request_for(self, closure_id: str) -> SurveyRequest | None:
        """The closure's record, if it was recorded before (Intercom retried, or the webhook was replayed)."""
        return next((other for other in self.survey_requests if other.closure_id == closure_id), None)

    def cancelling_event(self, *, after: datetime, before: datetime) -> ConversationEvent | None:
        """The first reopen, reply, snooze or deletion while a close waits out its delay."""
        return next(
            (
                event
                for event in self.events
                if event.kind in ConversationEvent.CANCELLING
                and during_delay(event.occurred_at, closed_at=after, delay_ends_at=before)
            ),
            None,
        )


def conversation_history(*, account: Account, conversation_id: str, with_events: bool = True) -> ConversationHistory:
    """`with_events=False` skips the events, for a caller that knows none can matter."""
    events = ConversationEvent.objects.filter(account=account, conversation_id=conversation_id)
    return ConversationHistory(
        events=list(events) if with_events else [],
        survey_requests=list(
            SurveyRequest.objects.filter(account=account, conversation_id=conversation_id).only(
                "account", "closure_id", "status", "decision", "closed_at", "send_after", "updated_at"
            )
        ),
    )


def customer_surveyed_within_window(survey_request: SurveyRequest, *, integration: IntegrationSettings) -> bool:
    """Another survey for this customer, sent or on its way, closed within the window either side of this one."""
    bounds = suppression_window_bounds(survey_request.closed_at, integration.suppression_window)
    customer = customer_identity(survey_request.customer_email, survey_request.customer_id)
    if bounds is None or customer is None:
        return False
    field, value = customer
    return (
        SurveyRequest.objects.filter(
            account_id=survey_request.account_id,
            decision=Decision.SEND,
            status__in=SURVEYING,
            closed_at__gt=bounds[0],
            closed_at__lt=bounds[1],
            **{field: value},
        )
        .exclude(pk=survey_request.pk)
        .exists()
    )


def survey_candidate(
    survey_request: SurveyRequest,
    *,
    integration: IntegrationSettings,
    history: ConversationHistory,
    looked_up: bool = False,
) -> SurveyCandidate:
    conversation_surveyed = any(
        other.decision == Decision.SEND and other.status in SURVEYED and other.pk != survey_request.pk
        for other in history.survey_requests
    )
    return SurveyCandidate(
        channel=Channel(survey_request.channel) if survey_request.channel else None,
        assignee_kind=AssigneeKind(survey_request.assignee_kind),
        customer_email=survey_request.customer_email or None,
        customer_email_pending=not looked_up and not survey_request.customer_email and bool(survey_request.customer_id),
        tags=tuple(survey_request.tags),
        enabled_channels=integration.enabled_channels,
        do_not_send_tags=integration.do_not_send_tag_names,
        customer_surveyed_within_window=customer_surveyed_within_window(survey_request, integration=integration),
        conversation_already_surveyed=conversation_surveyed,
    )


def teammate_custom_id(*, account_id: int, intercom_id: str) -> str:
    """The Stella custom id a CSM gave the teammate, or "" (Stella then knows them by email)."""
    if not intercom_id:
        return ""
    return (
        Teammate.objects.filter(account_id=account_id, intercom_id=intercom_id)
        .values_list("stella_custom_id", flat=True)
        .first()
        or ""
    )


def accounts_visible_to(user: AbstractBaseUser | AnonymousUser) -> QuerySet[Account]:
    """CSMs (staff who may view survey requests) see every account; support users see theirs;
    anonymous and inactive users see none."""
    if not isinstance(user, User) or not user.is_active:
        return Account.objects.none()
    if user.is_staff and user.has_perm("surveys.view_surveyrequest"):
        return Account.objects.all()
    return Account.objects.filter(support_users=user)


def account_test_week(account: Account) -> dict[str, int]:
    """How the last 7 days of testing went: what a CSM looks at before switching an account to live."""
    since = timezone.now() - timedelta(days=7)
    # Every request in test mode, those rejected here before any call included.
    calls = ApiRequest.objects.filter(account=account, mode=IntegrationSettings.Mode.TEST, created_at__gte=since)
    # A failure a resend has since fixed (its survey request was sent) is nothing to worry about.
    unresolved = ApiRequest.unresolved_condition()
    return calls.aggregate(
        succeeded=Count("pk", filter=Q(outcome=ApiRequest.Outcome.SENT)),
        invalid=Count("pk", filter=Q(outcome=ApiRequest.Outcome.INVALID) & unresolved),
        other=Count("pk", filter=~Q(outcome__in=[ApiRequest.Outcome.SENT, ApiRequest.Outcome.INVALID]) & unresolved),
    )


# An enabled account that hears nothing from Intercom for this long has lost its webhook, or never had one.
WEBHOOK_SILENCE = timedelta(hours=24)


@dataclass(frozen=True)
class AccountAttention:
    account: Account
    problems: list[str]


def accounts_with_last_webhook(accounts: QuerySet[Account]) -> QuerySet[Account]:
    """The accounts, each with `last_webhook_at` (its workspace's last webhook, read off an index) and
    its settings and health: what `account_problems` needs, in one query."""
    last_webhook = (
        InboundWebhook.objects.filter(workspace_id=OuterRef("intercom_workspace_id"))
        .order_by("-received_at")
        .values("received_at")[:1]
    )
    return accounts.select_related("integration", "health").annotate(last_webhook_at=Subquery(last_webhook))


def account_problems(account: Account, *, now: datetime) -> list[str]:
    """What a CSM has to fix on an account from `accounts_with_last_webhook`: its health, and an enabled
    account that never heard from Intercom or stopped hearing."""
    problems = account_attention(account.health) if hasattr(account, "health") else []
    last_webhook_at = getattr(account, "last_webhook_at", None)
    if not account.integration.enabled:
        return problems
    if last_webhook_at is None:
        problems.append("No webhook received yet: paste the webhook URL into Intercom (see the onboarding checklist).")
    elif last_webhook_at < now - WEBHOOK_SILENCE:
        problems.append(
            f"No webhook from Intercom since {timezone.localtime(last_webhook_at):%Y-%m-%d %H:%M %Z}: "
            "check the webhook in Intercom's Developer Hub."
        )
    return problems


def accounts_needing_attention(accounts: QuerySet[Account], *, now: datetime) -> list[AccountAttention]:
    """Every account with something to fix, most problems first: what the admin's front page starts with."""
    attention = []
    for account in accounts_with_last_webhook(accounts).order_by("name"):
        if problems := account_problems(account, now=now):
            attention.append(AccountAttention(account, problems))
    return sorted(attention, key=lambda item: -len(item.problems))


def daily_count_totals(accounts: QuerySet[Account], *, day: date | None = None) -> dict[str, int]:
    """How many survey requests closed (on `day`, or ever) have each outcome, and how many test and
    invalid calls were made: per DailyCount kind, one query over the counts, never over the log."""
    rows = DailyCount.objects.filter(account__in=accounts)
    if day is not None:
        rows = rows.filter(day=day)
    return dict(rows.values_list("kind").annotate(total=Sum("count")).order_by())
