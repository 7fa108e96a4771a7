"""Reads only: nothing here writes."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, timedelta

from django.contrib.auth.models import AbstractBaseUser, AnonymousUser, User
from django.db.models import Count, Q, QuerySet, Sum
from django.utils import timezone
from django_q.models import Failure

from integrations.vocabulary import AssigneeKind, Channel
from portal.schedules import send_task_name
from surveys.decisions.rules import (
    Decision,
    SurveyCandidate,
    customer_identity,
    during_delay,
    suppression_window_bounds,
)
from surveys.models import (
    Account,
    ApiRequest,
    ConversationEvent,
    DailyCount,
    IntegrationSettings,
    SurveyRequest,
    Teammate,
)

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
        return cancelling_event(self.events, after=after, before=before)


def cancelling_event(events: list[ConversationEvent], *, after: datetime, before: datetime) -> ConversationEvent | None:
    """The first reopen, reply, snooze or deletion while a close waits out its delay."""
    return next(
        (
            event
            for event in events
            if event.kind in ConversationEvent.CANCELLING
            and during_delay(event.occurred_at, closed_at=after, delay_ends_at=before)
        ),
        None,
    )


HISTORY_FIELDS = (
    "account", "conversation_id", "closure_id", "status", "decision", "closed_at", "send_after", "updated_at",
    "customer_email", "customer_id",
)  # fmt: skip


def conversation_events(survey_request: SurveyRequest) -> list[ConversationEvent]:
    """The events of a request's conversation, oldest first."""
    return list(
        ConversationEvent.objects.filter(
            account_id=survey_request.account_id, conversation_id=survey_request.conversation_id
        ).order_by("occurred_at", "pk")
    )


@dataclass(frozen=True)
class Surveyed:
    """What the rules ask of the portal's other survey requests: the conversation surveyed already,
    the customer surveyed within the suppression window."""

    conversation: bool
    customer_within_window: bool


@dataclass(frozen=True)
class Closing:
    """A closure about to be recorded, as the batch's reads need it: whose conversation, which customer, when."""

    account: Account
    conversation_id: str
    customer_email: str
    customer_id: str
    closed_at: datetime


class IntakeReads:
    """What a batch of closures needs to know of the portal's survey requests, read for the whole batch in
    three queries (their conversations' requests and events, their customers' surveys in the window) and
    kept current in memory as the batch records more: see services.ClosureBatch.

    One object per request row, whichever question found it, so a change made through one answer (a close
    superseded) is what every other answer sees."""

    def __init__(self, closings: list[Closing]) -> None:
        self._histories: dict[tuple[int, str], ConversationHistory] = {}
        self._customers: dict[tuple[int, str, str], list[SurveyRequest]] = {}
        self._by_pk: dict[int, SurveyRequest] = {}
        self.expect(closings)

    def expect(self, closings: list[Closing]) -> None:
        """Read what these closures need to know, unless read already."""
        closings = [
            closing for closing in closings if (closing.account.pk, closing.conversation_id) not in self._histories
        ]
        if not closings:
            return
        account_ids = {closing.account.pk for closing in closings}
        conversation_ids = {closing.conversation_id for closing in closings}
        wanted = {(closing.account.pk, closing.conversation_id) for closing in closings}
        for key in wanted:
            self._histories[key] = ConversationHistory(events=[], survey_requests=[])
        requests = SurveyRequest.objects.filter(account_id__in=account_ids, conversation_id__in=conversation_ids)
        for survey_request in requests.only(*HISTORY_FIELDS).order_by("closed_at", "pk"):
            if (key := (survey_request.account_id, survey_request.conversation_id)) in wanted:
                survey_request = self._by_pk.setdefault(survey_request.pk, survey_request)
                self._histories[key].survey_requests.append(survey_request)
        events = ConversationEvent.objects.filter(account_id__in=account_ids, conversation_id__in=conversation_ids)
        for event in events.order_by("occurred_at", "pk"):
            if (key := (event.account_id, event.conversation_id)) in wanted:
                self._histories[key].events.append(event)
        self._read_customers(closings)

    def _read_customers(self, closings: list[Closing]) -> None:
        """Every survey on its way or sent to the batch's customers, within any of their closes' windows."""
        emails: set[str] = set()
        contact_ids: set[str] = set()
        lowest = highest = None
        for closing in closings:
            customer = customer_identity(closing.customer_email, closing.customer_id)
            bounds = suppression_window_bounds(closing.closed_at, closing.account.integration.suppression_window)
            if customer is None or bounds is None:
                continue
            self._customers.setdefault((closing.account.pk, *customer), [])
            (emails if customer[0] == "customer_email" else contact_ids).add(customer[1])
            lowest = bounds[0] if lowest is None else min(lowest, bounds[0])
            highest = bounds[1] if highest is None else max(highest, bounds[1])
        if lowest is None or highest is None:
            return
        surveys = SurveyRequest.objects.filter(
            account_id__in={closing.account.pk for closing in closings},
            decision=Decision.SEND,
            status__in=SURVEYING,
            closed_at__gt=lowest,
            closed_at__lt=highest,
        ).filter(Q(customer_email__in=emails) | Q(customer_id__in=contact_ids))
        for survey in surveys.only(*HISTORY_FIELDS):
            known = self._customers.get(
                (survey.account_id, *(customer_identity(survey.customer_email, survey.customer_id) or ("", "")))
            )
            if known is not None and survey.pk not in {other.pk for other in known}:
                known.append(self._by_pk.setdefault(survey.pk, survey))

    def history(self, closing: Closing) -> ConversationHistory:
        self.expect([closing])
        return self._histories[(closing.account.pk, closing.conversation_id)]

    def recorded(self, survey_request: SurveyRequest) -> None:
        """A request the batch has just recorded (perhaps not saved yet), of a closure it expected: later
        closures see it."""
        self._histories[(survey_request.account_id, survey_request.conversation_id)].survey_requests.append(
            survey_request
        )
        if identity := customer_identity(survey_request.customer_email, survey_request.customer_id):
            self._customers.setdefault((survey_request.account_id, *identity), []).append(survey_request)

    def surveyed(self, survey_request: SurveyRequest, *, integration: IntegrationSettings) -> Surveyed:
        """As `surveyed_at_send` asks, of what the batch knows: a request of a closure it expected."""
        history = self._histories[(survey_request.account_id, survey_request.conversation_id)]
        conversation = any(
            other.decision == Decision.SEND and other.status in SURVEYED and other is not survey_request
            for other in history.survey_requests
        )
        bounds = suppression_window_bounds(survey_request.closed_at, integration.suppression_window)
        customer = customer_identity(survey_request.customer_email, survey_request.customer_id)
        within = False
        if bounds is not None and customer is not None:
            within = any(
                other is not survey_request
                and other.decision == Decision.SEND
                and other.status in SURVEYING
                and bounds[0] < other.closed_at < bounds[1]
                for other in self._customers.get((survey_request.account_id, *customer), [])
            )
        return Surveyed(conversation=conversation, customer_within_window=within)


def surveyed_at_send(survey_request: SurveyRequest, *, integration: IntegrationSettings) -> Surveyed:
    """`Surveyed` for a request about to be sent, in one query. Within the window, a survey already sending
    or sent counts, and of those still scheduled only one that goes first (closed earlier, or recorded
    earlier at the same time): two closes recorded side by side by parallel drains, each unaware of the
    other, then survey the customer once rather than not at all."""
    others = SurveyRequest.objects.filter(account_id=survey_request.account_id, decision=Decision.SEND).exclude(
        pk=survey_request.pk
    )
    conversation = Q(conversation_id=survey_request.conversation_id, status__in=SURVEYED)
    customer = Q(pk__in=[])
    bounds = suppression_window_bounds(survey_request.closed_at, integration.suppression_window)
    identity = customer_identity(survey_request.customer_email, survey_request.customer_id)
    if bounds is not None and identity is not None:
        goes_first = Q(closed_at__lt=survey_request.closed_at)
        if survey_request.pk is not None:  # one not recorded yet comes after every recorded one
            goes_first |= Q(closed_at=survey_request.closed_at, pk__lt=survey_request.pk)
        else:
            goes_first |= Q(closed_at=survey_request.closed_at)
        customer = Q(**{identity[0]: identity[1]}, closed_at__gt=bounds[0], closed_at__lt=bounds[1]) & (
            Q(status__in=SURVEYED) | (Q(status=SurveyRequest.Status.SCHEDULED) & goes_first)
        )
    found = others.filter(conversation | customer).aggregate(
        conversation=Count("pk", filter=conversation), customer=Count("pk", filter=customer)
    )
    return Surveyed(conversation=bool(found["conversation"]), customer_within_window=bool(found["customer"]))


def survey_candidate(
    survey_request: SurveyRequest,
    *,
    integration: IntegrationSettings,
    surveyed: Surveyed,
    looked_up: bool = False,
    employee_unknown: bool = False,
) -> SurveyCandidate:
    return SurveyCandidate(
        channel=Channel(survey_request.channel) if survey_request.channel else None,
        assignee_kind=AssigneeKind(survey_request.assignee_kind),
        customer_email=survey_request.customer_email or None,
        customer_email_pending=not looked_up and not survey_request.customer_email and bool(survey_request.customer_id),
        tags=tuple(survey_request.tags),
        enabled_channels=integration.enabled_channels,
        do_not_send_tags=integration.do_not_send_tag_names,
        customer_surveyed_within_window=surveyed.customer_within_window,
        conversation_already_surveyed=surveyed.conversation,
        employee_unknown_to_stella=employee_unknown,
    )


def survey_request_send_failures(survey_request_id: int) -> QuerySet[Failure]:
    """Its send tasks that raised, newest first, traceback and all. django-q2's monitor saves a failed task in the
    database (save_task) whichever broker carried it, the database's queue table or Redis."""
    return Failure.objects.filter(name=send_task_name(survey_request_id)).order_by("-stopped")


def teammate_custom_ids(pairs: set[tuple[int, str]]) -> dict[tuple[int, str], str]:
    """The Stella custom ids CSMs gave teammates, by (account id, Intercom id), in one query: only those set."""
    if not (pairs := {(account_id, intercom_id) for account_id, intercom_id in pairs if intercom_id}):
        return {}
    rows = Teammate.objects.filter(
        account_id__in={account_id for account_id, _ in pairs},
        intercom_id__in={intercom_id for _, intercom_id in pairs},
    ).exclude(stella_custom_id="")
    return {
        (account_id, intercom_id): custom_id
        for account_id, intercom_id, custom_id in rows.values_list("account_id", "intercom_id", "stella_custom_id")
        if (account_id, intercom_id) in pairs
    }


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


def daily_count_totals(accounts: QuerySet[Account], *, day: date | None = None) -> dict[str, int]:
    """How many survey requests closed (on `day`, or ever) have each outcome, and how many test and
    invalid calls were made: per DailyCount kind, one query over the counts, never over the log."""
    rows = DailyCount.objects.filter(account__in=accounts)
    if day is not None:
        rows = rows.filter(day=day)
    return dict(rows.values_list("kind").annotate(total=Sum("count")).order_by())
