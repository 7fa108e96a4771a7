"""Reads only: nothing here writes."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from django.contrib.auth.models import AbstractBaseUser, AnonymousUser, User
from django.db.models import Count, Q, QuerySet
from django.utils import timezone

from integrations.vocabulary import AssigneeKind, Channel
from surveys.models import Account, ApiRequest, ConversationEvent, IntegrationSettings, SurveyRequest, Teammate
from surveys.rules import Decision, SurveyCandidate

SURVEYING = (SurveyRequest.Status.SCHEDULED, SurveyRequest.Status.SENDING, SurveyRequest.Status.SENT)


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
                if event.kind in ConversationEvent.CANCELLING and after <= event.occurred_at < before
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
    window = integration.suppression_window
    if not window or not (survey_request.customer_email or survey_request.customer_id):
        return False
    same_customer = (
        {"customer_email": survey_request.customer_email}
        if survey_request.customer_email
        else {"customer_id": survey_request.customer_id}
    )
    return (
        SurveyRequest.objects.filter(
            account_id=survey_request.account_id,
            decision=Decision.SEND,
            status__in=SURVEYING,
            closed_at__gt=survey_request.closed_at - window,
            closed_at__lt=survey_request.closed_at + window,
            **same_customer,
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
        other.decision == Decision.SEND
        and other.status in (SurveyRequest.Status.SENDING, SurveyRequest.Status.SENT)
        and other.pk != survey_request.pk
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
    return calls.aggregate(
        succeeded=Count("pk", filter=Q(outcome=ApiRequest.Outcome.SENT)),
        invalid=Count("pk", filter=Q(outcome=ApiRequest.Outcome.INVALID)),
        other=Count("pk", filter=~Q(outcome__in=[ApiRequest.Outcome.SENT, ApiRequest.Outcome.INVALID])),
    )
