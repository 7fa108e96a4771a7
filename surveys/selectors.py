"""Reads only: nothing here writes."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from django.db.models import Count, Q, QuerySet
from django.utils import timezone

from integrations.intercom.payloads import AssigneeKind, Channel
from integrations.models import Account, ConversationEvent, IntegrationSettings
from surveys.models import ApiRequest, SurveyRequest
from surveys.suppression import Decision, SurveyCandidate

SURVEYING = (SurveyRequest.Status.SCHEDULED, SurveyRequest.Status.SENDING, SurveyRequest.Status.SENT)


@dataclass(frozen=True)
class ConversationHistory:
    """What the portal already knows of one conversation, read in two queries."""

    events: list[ConversationEvent]
    survey_requests: list[SurveyRequest]

    @property
    def first_message_tags(self) -> tuple[str, ...]:
        return tuple(tag for event in self.events if event.kind == ConversationEvent.Kind.TAGGED for tag in event.tags)

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


def customer_surveyed_within_window(survey_request: SurveyRequest, *, settings: IntegrationSettings) -> bool:
    """Another survey for this customer, sent or on its way, closed within the window either side of this one."""
    window = settings.suppression_window
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
    settings: IntegrationSettings,
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
        enabled_channels=settings.enabled_channels,
        do_not_send_tags=settings.do_not_send_tag_names,
        customer_surveyed_within_window=customer_surveyed_within_window(survey_request, settings=settings),
        conversation_already_surveyed=conversation_surveyed,
    )


def survey_requests_due(*, now: datetime) -> QuerySet[SurveyRequest]:
    return SurveyRequest.objects.filter(status=SurveyRequest.Status.SCHEDULED, send_after__lte=now).order_by(
        "send_after"
    )


def account_test_week(account: Account) -> dict[str, int]:
    """How the last 7 days of testing went: what a CSM looks at before switching an account to live."""
    since = timezone.now() - timedelta(days=7)
    calls = ApiRequest.objects.filter(account=account, mode=IntegrationSettings.Mode.TEST, created_at__gte=since)
    return calls.aggregate(
        succeeded=Count("pk", filter=Q(outcome=ApiRequest.Outcome.SENT)),
        invalid=Count("pk", filter=Q(outcome=ApiRequest.Outcome.INVALID)),
        other=Count("pk", filter=~Q(outcome__in=[ApiRequest.Outcome.SENT, ApiRequest.Outcome.INVALID])),
    )
