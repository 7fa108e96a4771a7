"""What happened to an account's conversations, the survey requests the rules decided on, and every call made to Stella for them."""

from __future__ import annotations

from datetime import datetime
from typing import Any, ClassVar

from django.db import models

from integrations import messages
from integrations.models import InboundWebhook
from integrations.stella.client import CallOutcome
from integrations.vocabulary import AssigneeKind, Channel
from surveys.decisions.decision import customer_identity
from surveys.decisions.rules import REASON_CHOICES, Decision
from surveys.models.accounts import Account, IntegrationSettings


class ConversationEvent(models.Model):
    """Something that happened to a conversation after a close: it may cancel or change a pending survey."""

    class Kind(models.TextChoices):
        REOPENED = "reopened", "Reopened"
        CUSTOMER_REPLIED = "customer_replied", "Customer replied"
        SNOOZED = "snoozed", "Snoozed"
        DELETED = "deleted", "Deleted"
        TAGGED = "tagged", "First message tagged"

    CANCELLING = (Kind.REOPENED, Kind.CUSTOMER_REPLIED, Kind.SNOOZED, Kind.DELETED)

    account = models.ForeignKey(Account, on_delete=models.CASCADE)
    conversation_id = models.CharField(max_length=64)
    kind = models.CharField(max_length=32, choices=Kind.choices)
    occurred_at = models.DateTimeField(help_text="The notification's created_at: events are ordered by it.")
    tags = models.JSONField(default=list, blank=True)
    inbound_webhook = models.ForeignKey(InboundWebhook, null=True, blank=True, on_delete=models.SET_NULL)

    class Meta:
        ordering = ["occurred_at"]
        indexes = [models.Index(fields=["account", "conversation_id", "occurred_at"])]

    def __str__(self) -> str:
        return f"{self.get_kind_display()} {self.conversation_id}"


class SurveyOutcome(models.TextChoices):
    """Where a survey request stands, as support teams count it: the status page's tabs and chart."""

    WAITING = "waiting", "Waiting"
    SENT = "sent", "Sent"
    DO_NOT_SEND = "do_not_send", "Sent, flagged do not send"
    SUPPRESSED = "suppressed", "Suppressed"
    CANCELLED = "cancelled", "Cancelled"
    INVALID = "invalid", "Invalid"
    FAILED = "failed", "Failed or ambiguous"


class SurveyRequestQuerySet(models.QuerySet["SurveyRequest"]):
    def with_outcome(self, outcome: SurveyOutcome) -> SurveyRequestQuerySet:
        return self.filter(SurveyRequest.outcome_condition(outcome))

    def sent(self) -> SurveyRequestQuerySet:
        """Surveys that went to a customer (not those sent flagged do not send)."""
        return self.with_outcome(SurveyOutcome.SENT)

    def do_not_send(self) -> SurveyRequestQuerySet:
        """Sent to Stella flagged do not send: recorded for reporting, nobody surveyed."""
        return self.with_outcome(SurveyOutcome.DO_NOT_SEND)

    def due(self, *, now: datetime) -> SurveyRequestQuerySet:
        """Scheduled and past their send-after time, the longest waiting first."""
        return self.filter(status=SurveyRequest.Status.SCHEDULED, send_after__lte=now).order_by("send_after")

    def with_resolved(self) -> SurveyRequestQuerySet:
        """Each row's `resolved`: sent since a call for it failed (a resend, a retry), so nothing is left to fix; the
        request's side of ApiRequest.is_resolved."""
        failed_call = ApiRequest.objects.filter(survey_request=models.OuterRef("pk")).exclude(outcome=CallOutcome.SENT)
        resolved = models.Q(status=SurveyRequest.Status.SENT) & models.Exists(failed_call)
        return self.annotate(resolved=models.ExpressionWrapper(resolved, output_field=models.BooleanField()))

    def of_sending_accounts(self) -> SurveyRequestQuerySet:
        """Of accounts that send now: enabled, and not paused (a rejected key). The others' requests wait."""
        return self.filter(account__health__sending_paused_at__isnull=True, account__integration__enabled=True)


class SurveyRequest(models.Model):
    """One closed conversation: what the rules decided, why, and where its survey request stands."""

    class Status(models.TextChoices):
        SCHEDULED = "scheduled", "Scheduled"
        SENDING = "sending", "Sending"
        SENT = "sent", "Sent"
        INVALID = "invalid", "Invalid"
        FAILED = "failed", "Failed"
        AMBIGUOUS = "ambiguous", "Ambiguous: may have reached Stella"
        SUPPRESSED = "suppressed", "Suppressed"
        CANCELLED = "cancelled", "Cancelled"

    class ReconcileFlag(models.TextChoices):
        """Why a person should look at a request Stella's feedback records don't confirm."""

        NONE = "", "—"
        UNCONFIRMED_AMBIGUOUS = "unconfirmed_ambiguous", "Ambiguous, and Stella hasn't reported it: resend?"
        UNREPORTED_SENT = "unreported_sent", "Sent, but Stella hasn't reported it"

    # Where each status counts; a sent request flagged do not send counts as DO_NOT_SEND.
    OUTCOMES = {
        Status.SCHEDULED: SurveyOutcome.WAITING,
        Status.SENDING: SurveyOutcome.WAITING,
        Status.SENT: SurveyOutcome.SENT,
        Status.SUPPRESSED: SurveyOutcome.SUPPRESSED,
        Status.CANCELLED: SurveyOutcome.CANCELLED,
        Status.INVALID: SurveyOutcome.INVALID,
        Status.FAILED: SurveyOutcome.FAILED,
        Status.AMBIGUOUS: SurveyOutcome.FAILED,
    }

    account = models.ForeignKey(Account, on_delete=models.CASCADE, related_name="survey_requests")
    inbound_webhook = models.ForeignKey(InboundWebhook, null=True, blank=True, on_delete=models.SET_NULL)
    conversation_id = models.CharField(max_length=64)
    conversation_url = models.URLField(max_length=300)
    # The close part's id: one survey request per closure, however often it is delivered or replayed.
    closure_id = models.CharField(max_length=100)
    closed_at = models.DateTimeField(help_text="The close notification's created_at.")

    channel = models.CharField(max_length=16, choices=Channel.choices, blank=True, help_text="Blank: to be looked up.")
    channel_source = models.CharField(max_length=32, blank=True, help_text="What Intercom called it.")
    assignee_kind = models.CharField(max_length=16, choices=AssigneeKind.choices)
    teammate_id = models.CharField(max_length=64, blank=True)
    teammate_name = models.CharField(max_length=200, blank=True)
    teammate_email = models.CharField(max_length=254, blank=True)
    customer_id = models.CharField(max_length=64, blank=True)
    customer_role = models.CharField(max_length=16, blank=True)
    customer_name = models.CharField(max_length=200, blank=True)
    customer_email = models.CharField(max_length=254, blank=True)
    tags = models.JSONField(default=list, blank=True, help_text="First-message tags, else the conversation's.")
    # What the account's rules of whom to survey read (issue 20): the team assigned at close; the comments human
    # teammates wrote (None: not counted, Intercom is asked only when a rule needs it); when one last replied; the
    # closure's place among its teammate's closures, for the sample (None: recorded before there was one).
    team_id = models.CharField(max_length=64, blank=True, default="", db_default="")
    teammate_replies = models.PositiveIntegerField(null=True, blank=True)
    last_admin_reply_at = models.DateTimeField(null=True, blank=True)
    sample_position = models.PositiveIntegerField(null=True, blank=True)
    # Whose share of the sample it is: the teammate assigned at close (the one credited may be another, see
    # `attribution`), so the place keeps its meaning.
    sample_stratum = models.CharField(max_length=64, blank=True, default="", db_default="")
    # Whom the survey credits and why, when not simply the assignee at close (the account's attribution rule).
    attribution = models.CharField(max_length=300, blank=True, default="", db_default="")
    # The customer's time zone, for quiet hours read in it: found by the send's look-up of the contact's location
    # (blank: not looked up; "unknown": Intercom didn't say, so the account's zone is used).
    customer_time_zone = models.CharField(max_length=64, blank=True, default="", db_default="")

    status = models.CharField(max_length=16, choices=Status.choices, default=Status.SCHEDULED)
    decision = models.CharField(max_length=16, choices=Decision.choices)
    reason = models.CharField(max_length=32, choices=REASON_CHOICES, blank=True)
    verdicts = models.JSONField(default=dict, help_text="Every rule and what it said.")
    status_detail = models.CharField(
        max_length=500, blank=True, help_text="Why it stands where it stands: Stella's message, the cancelling event…"
    )
    detail_code = models.CharField(
        max_length=40,
        blank=True,
        default="",
        db_default="",
        help_text="The status detail's code in integrations/messages.py; blank: unknown.",
    )
    mode = models.CharField(max_length=8, choices=IntegrationSettings.Mode.choices)
    send_after = models.DateTimeField()
    # The close plus the channel delay, fixed at the close: a reopen, reply, snooze or deletion
    # before then cancels. Unlike send_after, retries and resends never move it.
    delay_ends_at = models.DateTimeField()
    # Handed to the task queue (so the sweep doesn't queue it again) and taken by a sender.
    queued_at = models.DateTimeField(null=True, blank=True)
    claimed_at = models.DateTimeField(null=True, blank=True)
    sent_at = models.DateTimeField(null=True, blank=True)
    attempts = models.PositiveSmallIntegerField(default=0)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)
    # The customer's name, email and contact id erased (surveys/accounts/privacy.py); status and reasons stay.
    erased_at = models.DateTimeField(null=True, blank=True)
    # What Stella's feedback records say of the request, when they don't say what we thought (surveys/loop/feedback.py).
    reconcile_flag = models.CharField(
        max_length=32,
        choices=ReconcileFlag.choices,
        blank=True,
        help_text="Stella hasn't reported the request for longer than the account's reconcile-after time.",
    )
    reconciled_at = models.DateTimeField(null=True, blank=True, help_text="When the flag last changed.")

    objects = SurveyRequestQuerySet.as_manager()

    class Meta:
        ordering = ["-closed_at"]
        constraints = [
            models.UniqueConstraint(fields=["account", "conversation_id", "closure_id"], name="one_survey_per_closure"),
        ]
        indexes = [
            models.Index(fields=["status", "send_after"]),
            models.Index(fields=["account", "conversation_id"]),
            models.Index(fields=["account", "customer_email", "closed_at"]),
            models.Index(fields=["account", "-closed_at"]),
            models.Index(fields=["account", "status", "-closed_at"]),
            # The next place in a teammate's sample (surveys/selectors.py IntakeReads).
            models.Index(fields=["account", "sample_stratum", "-sample_position"], name="survey_request_sample"),
            # Finding a deleted Intercom contact's requests; what the retention job still has to erase.
            models.Index(fields=["account", "customer_id"]),
            models.Index(
                fields=["created_at"], condition=models.Q(erased_at__isnull=True), name="survey_request_not_erased"
            ),
            # The few requests a person should look at, and what the reconcile job clears once Stella reports them.
            models.Index(
                fields=["account", "reconcile_flag"],
                condition=~models.Q(reconcile_flag=""),
                name="survey_request_flagged",
            ),
            # An account's fair share of the queue (surveys/delivery/dispatch.py): its due requests waiting for a
            # slot, oldest first, and those holding one (queued or sending), counted.
            models.Index(
                fields=["account", "send_after"],
                condition=models.Q(status="scheduled", queued_at__isnull=True),
                name="survey_request_unqueued",
            ),
            models.Index(
                fields=["account"],
                condition=models.Q(status="sending") | models.Q(status="scheduled", queued_at__isnull=False),
                name="survey_request_in_flight",
            ),
            # The same, across accounts (does another account hold a slot? which ones do?): without it SQLite's
            # planner took (status, send_after) and read every scheduled request, on each send of a 10,000 backlog.
            models.Index(fields=["status", "queued_at"], name="survey_request_queued"),
        ]

    def __str__(self) -> str:
        return f"Conversation {self.conversation_id} ({self.outcome.label})"

    def save(self, *args: Any, **kwargs: Any) -> None:
        """A row written with a status detail and no code (a test's factory, a shell) gets the code its text has."""
        if self.status_detail and not self.detail_code:
            self.detail_code = messages.code_of(self.status_detail)
        super().save(*args, **kwargs)

    @classmethod
    def outcome_of(cls, status: str, decision: str) -> SurveyOutcome:
        if status == cls.Status.SENT and decision == Decision.DO_NOT_SEND:
            return SurveyOutcome.DO_NOT_SEND
        return cls.OUTCOMES[cls.Status(status)]

    @classmethod
    def outcome_condition(cls, outcome: SurveyOutcome) -> models.Q:
        """The rows `outcome_of` puts under `outcome`, as a query condition."""
        condition = models.Q(status__in=[status for status, counted in cls.OUTCOMES.items() if counted == outcome])
        if outcome == SurveyOutcome.SENT:
            condition &= ~models.Q(decision=Decision.DO_NOT_SEND)
        elif outcome == SurveyOutcome.DO_NOT_SEND:
            condition = models.Q(status=cls.Status.SENT, decision=Decision.DO_NOT_SEND)
        return condition

    @property
    def outcome(self) -> SurveyOutcome:
        return self.outcome_of(self.status, self.decision)

    @property
    def do_not_send(self) -> bool:
        return self.decision == Decision.DO_NOT_SEND

    @property
    def identity(self) -> tuple[str, str] | None:
        """Whom the suppression window follows (decision.customer_identity)."""
        return customer_identity(self.customer_email, self.customer_id)

    @property
    def needs_lookup(self) -> bool:
        """The payload left out something the send needs; the sender asks Intercom's REST API."""
        return (
            not self.channel
            or (not self.customer_email and bool(self.customer_id))
            or (not self.teammate_email and bool(self.teammate_id))
        )


# Every allowed move; survey_request_transition is the only code that changes a status.
TRANSITIONS: dict[str, frozenset[str]] = {
    SurveyRequest.Status.SCHEDULED: frozenset(
        {
            SurveyRequest.Status.SENDING,
            SurveyRequest.Status.CANCELLED,
            SurveyRequest.Status.SUPPRESSED,
            SurveyRequest.Status.INVALID,
            SurveyRequest.Status.SCHEDULED,  # re-decided (a tag arrived) or rescheduled
        }
    ),
    SurveyRequest.Status.SENDING: frozenset(
        {
            SurveyRequest.Status.SENT,
            SurveyRequest.Status.INVALID,
            SurveyRequest.Status.FAILED,
            SurveyRequest.Status.AMBIGUOUS,
            SurveyRequest.Status.SENDING,  # still ours: what the look-ups learnt is saved as the call is logged
            SurveyRequest.Status.SCHEDULED,  # a retryable error: try again later
            SurveyRequest.Status.CANCELLED,  # the last check before sending found a reopen
            SurveyRequest.Status.SUPPRESSED,  # the rules, with what Intercom told us, say so
        }
    ),
    SurveyRequest.Status.FAILED: frozenset({SurveyRequest.Status.SCHEDULED}),  # resent
    SurveyRequest.Status.INVALID: frozenset({SurveyRequest.Status.SCHEDULED}),  # resent
    SurveyRequest.Status.AMBIGUOUS: frozenset(
        {
            SurveyRequest.Status.SCHEDULED,  # resent, after a person confirmed
            SurveyRequest.Status.SENT,  # Stella's feedback data shows it arrived (surveys/loop/feedback.py)
        }
    ),
    SurveyRequest.Status.SENT: frozenset(),
    SurveyRequest.Status.SUPPRESSED: frozenset(),
    SurveyRequest.Status.CANCELLED: frozenset(),
}


class ApiRequestQuerySet(models.QuerySet["ApiRequest"]):
    def test_calls(self) -> ApiRequestQuerySet:
        """Stella's Test Requests: every request made to Stella with a test key (see ApiRequest.is_test_call)."""
        return self.filter(mode=IntegrationSettings.Mode.TEST).exclude(url="")

    def invalid(self) -> ApiRequestQuerySet:
        """Stella's Invalid Requests: rejected by Stella, or here before reaching it (see ApiRequest.is_invalid)."""
        return self.filter(outcome=CallOutcome.INVALID)


class ApiRequest(models.Model):
    """One call to Stella's Requests API (or a request rejected before any call), with its outcome."""

    Outcome = CallOutcome

    survey_request = models.ForeignKey(SurveyRequest, on_delete=models.CASCADE, related_name="api_requests")
    account = models.ForeignKey(Account, on_delete=models.CASCADE, related_name="api_requests")
    mode = models.CharField(max_length=8, choices=IntegrationSettings.Mode.choices)
    method = models.CharField(max_length=8, default="POST")
    url = models.URLField(max_length=300, blank=True, help_text="Blank: rejected here, Stella was not called.")
    request_headers = models.JSONField(default=dict, blank=True)
    request_body = models.JSONField(default=dict, blank=True)
    status_code = models.PositiveSmallIntegerField(null=True, blank=True)
    response_body = models.TextField(blank=True)
    duration_ms = models.PositiveIntegerField(null=True, blank=True)
    outcome = models.CharField(max_length=16, choices=CallOutcome.choices, default=CallOutcome.PENDING)
    error_message = models.CharField(max_length=500, blank=True)
    # What the message is, in integrations/messages.py (a rejection here: the rule's); blank: a message
    # nobody knows, shown verbatim.
    error_code = models.CharField(max_length=40, blank=True, default="", db_default="")
    created_at = models.DateTimeField(auto_now_add=True, db_index=True)
    finished_at = models.DateTimeField(null=True, blank=True)

    objects = ApiRequestQuerySet.as_manager()

    class Meta:
        ordering = ["-created_at"]
        verbose_name = "request"
        verbose_name_plural = "requests"
        indexes = [
            models.Index(fields=["account", "-created_at"]),
            models.Index(fields=["outcome", "-created_at"]),
            models.Index(fields=["mode", "-created_at"]),
            models.Index(fields=["account", "outcome", "-created_at"]),
            models.Index(fields=["account", "mode", "-created_at"]),
        ]

    def __str__(self) -> str:
        return f"{self.method} {self.url or '(not sent)'} → {self.get_outcome_display()}"

    def save(self, *args: Any, **kwargs: Any) -> None:
        """A row written with a message and no code (a test's factory, a shell) gets the code its text has."""
        if self.error_message and not self.error_code:
            self.error_code = self.message_code
        super().save(*args, **kwargs)

    @property
    def rejected_locally(self) -> bool:
        return not self.url

    @property
    def message_code(self) -> str:
        """The error's code in integrations/messages.py: as stored, else (a row written without one) the rule's
        for a rejection here, or the one its text has; "" for a message nobody knows."""
        if self.error_code or not self.error_message:
            return self.error_code
        rule = messages.message(self.survey_request.reason) if self.rejected_locally else None
        if rule is not None and self.error_message in (rule.words, messages.words_of(rule.stella)):
            return rule.code
        return messages.code_of(self.error_message)

    # The same ideas as ApiRequestQuerySet.test_calls() and .invalid(), for one row in hand.
    @property
    def is_test_call(self) -> bool:
        return self.mode == IntegrationSettings.Mode.TEST and bool(self.url)

    @property
    def is_invalid(self) -> bool:
        return self.outcome == CallOutcome.INVALID

    @staticmethod
    def unresolved_condition() -> models.Q:
        """The calls `is_resolved` is false for, among failed ones, as a query condition (the admin's
        "Still to fix" filter, go-live's counts)."""
        return ~models.Q(survey_request__status=SurveyRequest.Status.SENT)

    @property
    def is_resolved(self) -> bool:
        """A call that failed, but whose survey request was sent since (by a resend): nothing left to fix."""
        return self.outcome != CallOutcome.SENT and self.survey_request.status == SurveyRequest.Status.SENT


class TestApiRequestManager(models.Manager["TestApiRequest"]):
    def get_queryset(self) -> models.QuerySet[TestApiRequest]:
        # Typed for ApiRequest, but built on the proxy model it yields proxy rows.
        return ApiRequestQuerySet(self.model, using=self._db).test_calls()  # type: ignore[return-value]


class TestApiRequest(ApiRequest):
    """Stella's Test Requests tab: every request made to Stella with a test key."""

    # Narrows ApiRequest's manager to this proxy's rows; the stubs only accept the parent's manager type.
    objects: ClassVar[TestApiRequestManager] = TestApiRequestManager()  # type: ignore[assignment]

    class Meta:
        proxy = True
        verbose_name = "test request"
        verbose_name_plural = "test requests"


class InvalidApiRequestManager(models.Manager["InvalidApiRequest"]):
    def get_queryset(self) -> models.QuerySet[InvalidApiRequest]:
        # Typed for ApiRequest, but built on the proxy model it yields proxy rows.
        return ApiRequestQuerySet(self.model, using=self._db).invalid()  # type: ignore[return-value]


class InvalidApiRequest(ApiRequest):
    """Stella's Invalid Requests tab: every request rejected, by Stella or before it, from either key."""

    # Narrows ApiRequest's manager to this proxy's rows; the stubs only accept the parent's manager type.
    objects: ClassVar[InvalidApiRequestManager] = InvalidApiRequestManager()  # type: ignore[assignment]

    class Meta:
        proxy = True
        verbose_name = "invalid request"
        verbose_name_plural = "invalid requests"
