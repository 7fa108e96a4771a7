"""Reads only: nothing here writes."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, datetime, timedelta

from django.contrib.auth.models import AbstractBaseUser, AnonymousUser, User
from django.db.models import Count, Max, Q, QuerySet, Sum
from django.utils import timezone
from django_q.models import Failure

from integrations.vocabulary import AssigneeKind, Channel
from portal.schedules import send_task_name
from surveys.decisions.decision import Closure, Rules, customer_identity, suppression_window_bounds
from surveys.decisions.rules import Decision
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

    def tags_added(self, *, since: datetime | None = None, before: datetime) -> tuple[str, ...]:
        """First-message tags the tag events known so far added from `since` (None: ever) until just before `before`,
        whatever order they arrived in."""
        return tuple(
            tag
            for event in self.events
            if event.kind == ConversationEvent.Kind.TAGGED
            and (since is None or since <= event.occurred_at)
            and event.occurred_at < before
            for tag in event.tags
        )

    def survey_request_for(self, closure_id: str) -> SurveyRequest | None:
        """The closure's record, if it was recorded before (Intercom retried, or the webhook was replayed)."""
        return next((other for other in self.survey_requests if other.closure_id == closure_id), None)


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
class IncomingClosure:
    """A closure about to be recorded, as the batch's reads need it: whose conversation, which customer, when."""

    account: Account
    conversation_id: str
    customer_email: str
    customer_id: str
    closed_at: datetime
    teammate_id: str = ""  # whose share of the account's sample the closure is


def _conversation_key(closure: IncomingClosure) -> tuple[int, str]:
    return (closure.account.pk, closure.conversation_id)


@dataclass
class _CustomerSearch:
    """The customers of a batch's closures, and the widest span their suppression windows cover."""

    emails: set[str] = field(default_factory=set)
    contact_ids: set[str] = field(default_factory=set)
    lowest: datetime | None = None
    highest: datetime | None = None

    def add(self, closure: IncomingClosure) -> tuple[str, str] | None:
        """Take in a closure's customer and window; its identity, or None when there is none to search."""
        customer = customer_identity(closure.customer_email, closure.customer_id)
        bounds = suppression_window_bounds(closure.closed_at, closure.account.integration.suppression_window)
        if customer is None or bounds is None:
            return None
        (self.emails if customer[0] == "customer_email" else self.contact_ids).add(customer[1])
        self.lowest = bounds[0] if self.lowest is None else min(self.lowest, bounds[0])
        self.highest = bounds[1] if self.highest is None else max(self.highest, bounds[1])
        return customer


def sample_places_next(wanted: set[tuple[int, str]]) -> dict[tuple[int, str], int]:
    """The next place in the sample of each (account id, teammate id at close) `wanted`, in one query (an index's
    last entry each): 0 for a teammate with no closure recorded yet."""
    last = (
        SurveyRequest.objects.filter(
            account_id__in={account_id for account_id, _ in wanted},
            sample_stratum__in={teammate_id for _, teammate_id in wanted},
            sample_position__isnull=False,
        )
        .values_list("account_id", "sample_stratum")
        .annotate(last=Max("sample_position"))
        .order_by()
    )
    found = {(account_id, stratum): position + 1 for account_id, stratum, position in last}
    return {key: found.get(key, 0) for key in wanted}


class IntakeReads:
    """What a batch of closures needs to know of the portal's survey requests, read for the whole batch in
    three queries (their conversations' requests and events, their customers' surveys in the window) and
    kept current in memory as the batch records more: see services.IntakeBatch.

    One object per request row, whichever question found it, so a change made through one answer (a close
    superseded) is what every other answer sees."""

    def __init__(self, closures: list[IncomingClosure]) -> None:
        self._histories: dict[tuple[int, str], ConversationHistory] = {}
        self._customers: dict[tuple[int, str, str], list[SurveyRequest]] = {}
        self._by_pk: dict[int, SurveyRequest] = {}
        self._sample_positions: dict[tuple[int, str], int] = {}
        self.expect(closures)

    def expect(self, closures: list[IncomingClosure]) -> None:
        """Read what these closures need to know, unless read already."""
        closures = [closure for closure in closures if _conversation_key(closure) not in self._histories]
        if not closures:
            return
        wanted = {_conversation_key(closure) for closure in closures}
        for key in wanted:
            self._histories[key] = ConversationHistory(events=[], survey_requests=[])
        self._read_histories(closures, wanted)
        self._read_customers(closures)
        self._read_sample_positions(closures)

    def _read_sample_positions(self, closures: list[IncomingClosure]) -> None:
        """The next place in each of the closures' teammates' samples, in one query (an index's last entry each)."""
        wanted = {(closure.account.pk, closure.teammate_id) for closure in closures} - self._sample_positions.keys()
        if wanted:
            self._sample_positions.update(sample_places_next(wanted))

    def sample_place_take(self, survey_request: SurveyRequest) -> None:
        """The next place in the sample of the request's teammate at close, taken for it: every closure recorded gets one,
        whether the account samples or not, so a dry run can try a sample on closures already recorded. Two
        workers recording the same teammate's closures at the same moment may give two the same place: the
        share stays within a closure or two of the sample's."""
        survey_request.sample_stratum = survey_request.teammate_id
        key = (survey_request.account_id, survey_request.sample_stratum)
        survey_request.sample_position = self._sample_positions.get(key, 0)
        self._sample_positions[key] = survey_request.sample_position + 1

    def _read_histories(self, closures: list[IncomingClosure], wanted: set[tuple[int, str]]) -> None:
        """The requests and events of the closures' conversations, in two queries."""
        scope = {
            "account_id__in": {closure.account.pk for closure in closures},
            "conversation_id__in": {closure.conversation_id for closure in closures},
        }
        requests = SurveyRequest.objects.filter(**scope).only(*HISTORY_FIELDS).order_by("closed_at", "pk")
        for survey_request in requests:
            if (key := (survey_request.account_id, survey_request.conversation_id)) in wanted:
                self._histories[key].survey_requests.append(self._by_pk.setdefault(survey_request.pk, survey_request))
        for event in ConversationEvent.objects.filter(**scope).order_by("occurred_at", "pk"):
            if (key := (event.account_id, event.conversation_id)) in wanted:
                self._histories[key].events.append(event)

    def _read_customers(self, closures: list[IncomingClosure]) -> None:
        """Every survey on its way or sent to the batch's customers, within any of their closes' windows."""
        search = _CustomerSearch()
        for closure in closures:
            if (customer := search.add(closure)) is not None:
                self._customers.setdefault((closure.account.pk, *customer), [])
        if search.lowest is None or search.highest is None:
            return
        surveys = SurveyRequest.objects.filter(
            account_id__in={closure.account.pk for closure in closures},
            decision=Decision.SEND,
            status__in=SURVEYING,
            closed_at__gt=search.lowest,
            closed_at__lt=search.highest,
        ).filter(Q(customer_email__in=search.emails) | Q(customer_id__in=search.contact_ids))
        for survey in surveys.only(*HISTORY_FIELDS):
            self._add_customer_survey(survey)

    def _add_customer_survey(self, survey: SurveyRequest) -> None:
        """A survey read for a customer the batch expects, kept once (one object per row)."""
        identity = customer_identity(survey.customer_email, survey.customer_id) or ("", "")
        known = self._customers.get((survey.account_id, *identity))
        if known is not None and survey.pk not in {other.pk for other in known}:
            known.append(self._by_pk.setdefault(survey.pk, survey))

    def history(self, closure: IncomingClosure) -> ConversationHistory:
        self.expect([closure])
        return self._histories[(closure.account.pk, closure.conversation_id)]

    def recorded(self, survey_request: SurveyRequest) -> None:
        """A request the batch has just recorded (perhaps not saved yet), of a closure it expected: later
        closures see it."""
        self._histories[(survey_request.account_id, survey_request.conversation_id)].survey_requests.append(
            survey_request
        )
        if identity := customer_identity(survey_request.customer_email, survey_request.customer_id):
            self._customers.setdefault((survey_request.account_id, *identity), []).append(survey_request)

    def known(self, survey_request: SurveyRequest) -> list[SurveyRequest]:
        """The candidates the decision weighs for a request of a closure the batch expected: its conversation's
        other requests and its customer's surveys in the window, as the batch knows them now."""
        history = self._histories[(survey_request.account_id, survey_request.conversation_id)]
        customer = (
            self._customers.get((survey_request.account_id, *identity))
            if (identity := survey_request.identity)
            else None
        )
        return [*history.survey_requests, *(customer or ())]


def send_candidates(survey_request: SurveyRequest, *, rules: Rules) -> list[SurveyRequest]:
    """What the decision weighs when a request is sent, in one query: every other request of its conversation,
    and the surveys of its customer within the suppression window still waiting or gone out."""
    others = SurveyRequest.objects.filter(account_id=survey_request.account_id).exclude(pk=survey_request.pk)
    wanted = Q(conversation_id=survey_request.conversation_id)
    bounds = suppression_window_bounds(survey_request.closed_at, rules.window)
    if bounds is not None and (identity := survey_request.identity) is not None:
        wanted |= Q(
            **{identity[0]: identity[1]},
            closed_at__gt=bounds[0],
            closed_at__lt=bounds[1],
            decision=Decision.SEND,
            status__in=SURVEYING,
        )
    # Sorted here, not by the query: ordered by closed_at (the model's default), SQLite read the account's whole
    # (account, closed_at) index to skip a sort, on every send of a 10,000 backlog, rather than the conversation's.
    found = others.filter(wanted).only(*HISTORY_FIELDS).order_by()
    return sorted(found, key=lambda other: other.closed_at, reverse=True)


def closure_of(survey_request: SurveyRequest, *, looked_up: bool = False, employee_unknown: bool = False) -> Closure:
    """A request as the decision reads it; `looked_up`: Intercom has been asked, nothing is pending."""
    return Closure(
        pk=survey_request.pk,
        conversation_id=survey_request.conversation_id,
        closed_at=survey_request.closed_at,
        send_after=survey_request.send_after,
        channel=Channel(survey_request.channel) if survey_request.channel else None,
        assignee_kind=AssigneeKind(survey_request.assignee_kind),
        customer_email=survey_request.customer_email or None,
        customer_email_pending=not looked_up and not survey_request.customer_email and bool(survey_request.customer_id),
        identity=survey_request.identity,
        tags=tuple(survey_request.tags),
        employee_unknown=employee_unknown,
        team_id=survey_request.team_id,
        teammate_replies=survey_request.teammate_replies,
        last_admin_reply_at=survey_request.last_admin_reply_at,
        sample_stratum=survey_request.sample_stratum,
        sample_position=survey_request.sample_position,
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


def is_csm(user: AbstractBaseUser | AnonymousUser) -> bool:
    """A CSM: staff who may view survey requests. They read a reason's fix where a support user reads who to ask."""
    return isinstance(user, User) and user.is_active and user.is_staff and user.has_perm("surveys.view_surveyrequest")


def accounts_visible_to(user: AbstractBaseUser | AnonymousUser) -> QuerySet[Account]:
    """CSMs (staff who may view survey requests) see every account; support users see theirs;
    anonymous and inactive users see none."""
    if not isinstance(user, User) or not user.is_active:
        return Account.objects.none()
    if is_csm(user):
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
