"""The survey domain's data: accounts and their rules, what happened to their conversations,
the survey requests the rules decided on, and every call made to Stella for them."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import ClassVar

from django.conf import settings
from django.db import models

from integrations.models import InboundWebhook
from integrations.stella.client import Outcome as CallOutcome
from integrations.vocabulary import AssigneeKind, Channel
from portal.fields import EncryptedTextField, secret_plaintext
from surveys.rules import REASON_CHOICES, Decision

DEFAULT_DO_NOT_SEND_TAGS = "fraud, dupe, do_not_send_stella"


class Account(models.Model):
    """A Stella Connect customer company, known to Intercom by its workspace id.

    Accounts belong to the survey domain, not to the vendor layer: an account is a set of survey
    rules and the credentials to act on them, and only the domain decides which webhooks, calls
    and people belong to one.
    """

    name = models.CharField(max_length=200)
    intercom_workspace_id = models.CharField(
        "Intercom workspace id",
        max_length=64,
        unique=True,
        help_text="The app_id Intercom puts on every webhook (Settings → Workspace data in Intercom).",
    )
    created_at = models.DateTimeField(auto_now_add=True)
    support_users = models.ManyToManyField(
        settings.AUTH_USER_MODEL,
        blank=True,
        related_name="support_accounts",
        help_text="People of this company who may see its status page and API (they need no admin access).",
    )

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name


class IntegrationSettings(models.Model):
    """What a CSM chose for an account; keys are read only through `api_key_for` and `intercom_token`.

    Nothing here changes by itself: what the portal finds while it works (a rejected key, an
    error-rate alert) is kept apart, in IntegrationHealth.
    """

    class Mode(models.TextChoices):
        """Which Stella key requests are made with."""

        TEST = "test", "Test"
        LIVE = "live", "Live"

    account = models.OneToOneField(Account, on_delete=models.CASCADE, related_name="integration")
    enabled = models.BooleanField(default=True, help_text="Off: webhooks are recorded and ignored.")
    mode = models.CharField(
        max_length=8,
        choices=Mode.choices,
        default=Mode.TEST,
        help_text="Test sends with the test key (surveys go to the test address); live with the production key.",
    )
    test_api_key = EncryptedTextField("test API key", blank=True)
    production_api_key = EncryptedTextField("production API key", blank=True)
    email_enabled = models.BooleanField("email channel", default=True)
    chat_enabled = models.BooleanField("chat channel", default=True)
    channel_delay = models.DurationField(
        default=timedelta(0),
        help_text="Wait this long after a close before sending; a reopen in the meantime cancels.",
    )
    suppression_window = models.DurationField(
        default=timedelta(0),
        help_text="Don't survey the same customer again within this time. 0 turns it off.",
    )
    do_not_send_tags = models.CharField(
        max_length=500,
        default=DEFAULT_DO_NOT_SEND_TAGS,
        blank=True,
        help_text="Comma-separated. A first message tagged with one is sent flagged do not send.",
    )
    brand = models.CharField(max_length=100, blank=True, help_text="Only for multi-brand Stella companies.")
    language = models.CharField(max_length=16, blank=True, help_text="ISO 639-1, e.g. en or en-US.")
    intercom_access_token = EncryptedTextField("Intercom access token", blank=True)
    stella_api_url = models.URLField(
        "Stella API URL",
        blank=True,
        help_text="Only if Stella gave the company its own host, e.g. https://acme.api.stellaconnect.net.",
    )
    alert_recipients = models.CharField(
        max_length=500,
        blank=True,
        help_text="Comma-separated emails told when over 5% of the last hour's requests are invalid or failed.",
    )
    # Closing the loop with Stella: its employees and its feedback records, read back with the key in use.
    stella_api_secret = EncryptedTextField(
        "Stella API secret",
        blank=True,
        help_text="From Stella's Settings > Integrations, for the key in use; needed for employee sync and "
        "feedback return.",
    )
    employee_sync_enabled = models.BooleanField(
        "employee sync",
        default=True,
        help_text="Every hour, read Stella's employees and mark the teammates Stella won't recognise.",
    )
    feedback_return_enabled = models.BooleanField(
        "feedback return",
        default=True,
        help_text="Every 15 minutes, read Stella's feedback records and match them to survey requests.",
    )
    intercom_notes_enabled = models.BooleanField(
        "Intercom notes",
        default=False,
        help_text="Post an internal note on the conversation when its survey is decided and when feedback arrives",
    )
    intercom_note_author_id = models.CharField(
        "Intercom note author",
        max_length=64,
        blank=True,
        help_text="The Intercom admin id notes are posted as.",
    )
    reconcile_after = models.DurationField(
        default=timedelta(hours=24),
        help_text="How long an ambiguous or sent request may stay unreported by Stella before a person is asked "
        "to look",
    )
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        verbose_name = "integration settings"
        verbose_name_plural = "integration settings"

    def __str__(self) -> str:
        return f"Settings for {self.account}"

    @property
    def stella_base_url(self) -> str:
        return (self.stella_api_url or settings.STELLA_API_URL).rstrip("/")

    @property
    def enabled_channels(self) -> frozenset[Channel]:
        return frozenset(
            channel
            for channel, enabled in ((Channel.EMAIL, self.email_enabled), (Channel.CHAT, self.chat_enabled))
            if enabled
        )

    @property
    def alert_recipient_list(self) -> list[str]:
        return [email.strip() for email in self.alert_recipients.split(",") if email.strip()]

    @property
    def do_not_send_tag_names(self) -> frozenset[str]:
        return frozenset(tag.strip().casefold() for tag in self.do_not_send_tags.split(",") if tag.strip())

    # The only readers of stored secrets for the vendors' clients: the plaintext, or SecretUndecryptable.
    def api_key_for(self, mode: str) -> str:
        return secret_plaintext(self, "production_api_key" if mode == self.Mode.LIVE else "test_api_key")

    @property
    def intercom_token(self) -> str:
        return secret_plaintext(self, "intercom_access_token")

    @property
    def stella_secret(self) -> str:
        return secret_plaintext(self, "stella_api_secret")


class IntegrationHealth(models.Model):
    """What the portal found while working for an account, shown to CSMs as what needs attention.

    Changed only through the named services in surveys/accounts.py, never by saving settings.
    """

    account = models.OneToOneField(Account, on_delete=models.CASCADE, related_name="health")
    # Stella refused the key (401/403): no more calls until a CSM changes a key, the mode or the URL.
    sending_paused_at = models.DateTimeField(null=True, blank=True)
    sending_paused_reason = models.CharField(max_length=200, blank=True)
    # Intercom refused the access token (401); cleared when a new token is stored.
    intercom_token_rejected_at = models.DateTimeField(null=True, blank=True)
    # What Intercom last said of the stored token (Check now, or connecting): when, and which workspace it is
    # for. Cleared when a new token is stored.
    intercom_token_checked_at = models.DateTimeField(null=True, blank=True)
    intercom_token_workspace_id = models.CharField(max_length=64, blank=True)
    intercom_token_workspace_name = models.CharField(max_length=200, blank=True)
    # The error-rate alert, kept up to date every minute: shown as a banner while it lasts.
    error_alert_since = models.DateTimeField(null=True, blank=True)
    error_alert_rate = models.FloatField(null=True, blank=True)
    error_alert_emailed_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        verbose_name = "integration health"
        verbose_name_plural = "integration health"

    def __str__(self) -> str:
        return f"Health of {self.account}"


class Teammate(models.Model):
    """An Intercom teammate as last looked up, and the Stella employee they are, if not by email."""

    class StellaMatch(models.TextChoices):
        """Whether Stella has an active employee for the teammate, as the last employee sync found."""

        NOT_CHECKED = "", "Not checked yet"
        EMAIL = "email", "Matched by email"
        CUSTOM_ID = "custom_id", "Matched by Stella custom id"
        UNMATCHED = "unmatched", "Stella won't recognise them"

    account = models.ForeignKey(Account, on_delete=models.CASCADE, related_name="teammates")
    intercom_id = models.CharField("Intercom admin id", max_length=64)
    name = models.CharField(max_length=200, blank=True)
    email = models.CharField(max_length=254, blank=True)
    is_bot = models.BooleanField(default=False)
    stella_custom_id = models.CharField(
        "Stella employee custom id",
        max_length=100,
        blank=True,
        help_text="When set, Stella is told this custom id instead of the teammate's email.",
    )
    fetched_at = models.DateTimeField(null=True, blank=True, help_text="Last looked up in Intercom.")
    stella_match = models.CharField(
        "Stella employee",
        max_length=16,
        choices=StellaMatch.choices,
        blank=True,
        help_text="Whether Stella knows the teammate, as the last employee sync found.",
    )
    stella_checked_at = models.DateTimeField("checked against Stella", null=True, blank=True)

    class Meta:
        ordering = ["account", "name"]
        constraints = [models.UniqueConstraint(fields=["account", "intercom_id"], name="one_teammate_per_intercom_id")]

    def __str__(self) -> str:
        return self.name or self.email or self.intercom_id


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

    status = models.CharField(max_length=16, choices=Status.choices, default=Status.SCHEDULED)
    decision = models.CharField(max_length=16, choices=Decision.choices)
    reason = models.CharField(max_length=32, choices=REASON_CHOICES, blank=True)
    verdicts = models.JSONField(default=dict, help_text="Every rule and what it said.")
    status_detail = models.CharField(
        max_length=500, blank=True, help_text="Why it stands where it stands: Stella's message, the cancelling event…"
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
    # The customer's name, email and contact id erased (surveys/privacy.py); status and reasons stay.
    erased_at = models.DateTimeField(null=True, blank=True)
    # What Stella's feedback records say of the request, when they don't say what we thought (surveys/feedback.py).
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
            # An account's fair share of the queue (surveys/dispatch.py): its due requests waiting for a slot, oldest
            # first, and those holding one (queued or sending), counted.
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
        ]

    def __str__(self) -> str:
        return f"Conversation {self.conversation_id} ({self.outcome.label})"

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
            SurveyRequest.Status.SENT,  # Stella's feedback data shows it arrived (surveys/feedback.py)
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

    @property
    def rejected_locally(self) -> bool:
        return not self.url

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


class CallCount(models.TextChoices):
    TEST_CALLS = "test_calls", "Test requests"
    INVALID_CALLS = "invalid_calls", "Invalid requests"


class DailyCount(models.Model):
    """What the status page counts and charts, kept current as requests change state, so that page
    never scans the log: per account and day, how many survey requests closed that day have each
    outcome, and how many test and invalid calls were made that day."""

    account = models.ForeignKey(Account, on_delete=models.CASCADE, related_name="daily_counts")
    day = models.DateField()
    kind = models.CharField(max_length=16, choices=[*SurveyOutcome.choices, *CallCount.choices])
    count = models.IntegerField(default=0)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["account", "day", "kind"], name="one_count_per_account_day_kind")
        ]
        # Every account's counts of one day: /metrics reads today's (surveys/metrics.py) without scanning the rest.
        indexes = [models.Index(fields=["day"], name="daily_count_day")]

    def __str__(self) -> str:
        return f"{self.account_id} {self.day} {self.kind}: {self.count}"


class StellaSyncState(models.Model):
    """Where an account's reading back from Stella stands: its employees and its feedback records.

    Runtime state, changed only by the jobs in surveys/feedback.py; created by the first of them to run.
    """

    account = models.OneToOneField(Account, on_delete=models.CASCADE, related_name="stella_sync")
    employees_attempted_at = models.DateTimeField(
        null=True, blank=True, help_text="The last employee sync, successful or not: one an hour."
    )
    employees_synced_at = models.DateTimeField(null=True, blank=True, help_text="The last successful employee sync.")
    employees_error = models.CharField(max_length=500, blank=True, help_text="Why the last employee sync failed.")
    employees_traceback = models.TextField(
        blank=True, help_text="The traceback of the last employee sync, if it crashed: for an operator."
    )
    feedback_cursor = models.BigIntegerField(
        null=True,
        blank=True,
        help_text="The highest sequence id of the feedback records stored: the next read's after.",
    )
    feedback_synced_at = models.DateTimeField(null=True, blank=True, help_text="The last successful feedback read.")
    feedback_error = models.CharField(max_length=500, blank=True, help_text="Why the last feedback read failed.")
    feedback_traceback = models.TextField(
        blank=True, help_text="The traceback of the last feedback read, if it crashed: for an operator."
    )
    feedback_retry_at = models.DateTimeField(
        null=True, blank=True, help_text="Stella asked us to wait (429): no feedback read before then."
    )
    feedback_records = models.PositiveIntegerField(default=0, help_text="Feedback records stored.")
    # Sent requests closed before this were checked for a feedback record: the next check starts here.
    reconciled_through = models.DateTimeField(null=True, blank=True)
    # How far the Intercom notes have looked (surveys/notes.py): survey requests decided, feedback received.
    notes_decided_through = models.DateTimeField(null=True, blank=True)
    notes_feedback_through = models.DateTimeField(null=True, blank=True)

    class Meta:
        verbose_name = "Stella sync state"
        verbose_name_plural = "Stella sync states"

    def __str__(self) -> str:
        return f"Stella sync of {self.account}"


class StellaEmployee(models.Model):
    """An employee Stella has for an account, as its User Management API last listed them."""

    account = models.ForeignKey(Account, on_delete=models.CASCADE, related_name="stella_employees")
    stella_id = models.CharField("Stella id", max_length=64)
    email = models.CharField(max_length=254, blank=True)
    custom_id = models.CharField(max_length=100, blank=True)
    name = models.CharField(max_length=200, blank=True)
    active = models.BooleanField(default=True, help_text="Stella rejects requests for a deactivated employee.")
    synced_at = models.DateTimeField()

    class Meta:
        ordering = ["account", "name"]
        verbose_name = "Stella employee"
        constraints = [
            models.UniqueConstraint(fields=["account", "stella_id"], name="one_stella_employee_per_id"),
        ]

    def __str__(self) -> str:
        return self.name or self.email or self.custom_id or self.stella_id


class Feedback(models.Model):
    """Stella's record of one interaction (its Data Return API), linked to the survey request that asked for it.

    Stella gives an edited record a new sequence id, so the same uuid comes back: one row per uuid, updated.
    """

    account = models.ForeignKey(Account, on_delete=models.CASCADE, related_name="feedback")
    uuid = models.CharField(max_length=64)
    sequence_id = models.BigIntegerField()
    ext_interaction_id = models.CharField("conversation id", max_length=255, blank=True)
    survey_request = models.OneToOneField(
        SurveyRequest, null=True, blank=True, on_delete=models.SET_NULL, related_name="feedback"
    )
    # The mode it counts under in TeammateDailyCount: its survey request's, else the account's when first seen.
    mode = models.CharField(max_length=8, choices=IntegrationSettings.Mode.choices)
    is_recovery = models.BooleanField(default=False)
    channel = models.CharField(max_length=32, blank=True)
    employee_email = models.CharField(max_length=254, blank=True)
    employee_custom_id = models.CharField(max_length=100, blank=True)
    employee_name = models.CharField(max_length=200, blank=True)
    delivery_status = models.CharField(max_length=100, blank=True, help_text="Stella's request_delivery_status.")
    request_created_at = models.DateTimeField(null=True, blank=True)
    request_sent_at = models.DateTimeField(null=True, blank=True)
    response_received_at = models.DateTimeField(null=True, blank=True)
    star_rating = models.SmallIntegerField(null=True, blank=True)
    comment = models.TextField(blank=True)
    raw = models.JSONField(default=dict, help_text="The record as Stella sent it.")
    first_seen_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["-request_created_at"]
        verbose_name = "feedback record"
        verbose_name_plural = "feedback records"
        constraints = [models.UniqueConstraint(fields=["account", "uuid"], name="one_feedback_per_uuid")]
        indexes = [
            models.Index(fields=["account", "ext_interaction_id"]),
            models.Index(fields=["account", "request_created_at"]),
        ]

    def __str__(self) -> str:
        return f"Feedback {self.uuid} ({self.ext_interaction_id or 'no conversation'})"


class QuarantinedFeedback(models.Model):
    """A feedback record Stella sent that the portal can't store as sent (a NUL in its conversation id, no uuid,
    a date no database holds…): kept raw, with why, so the pull moves past it and a CSM sees it. Deleted when
    Stella sends a version of the record (same uuid) that is stored.

    `raw` holds customer personal data, as Feedback.raw does: erasure and retention replace it (`erased_at`).
    """

    account = models.ForeignKey(Account, on_delete=models.CASCADE, related_name="quarantined_feedback")
    sequence_id = models.BigIntegerField(null=True, blank=True, help_text="Empty: Stella sent none we can read.")
    uuid = models.CharField(
        max_length=64, blank=True, help_text="As far as it can be read (what can't be stored shown as �)."
    )
    ext_interaction_id = models.CharField(
        "conversation id",
        max_length=255,
        blank=True,
        help_text="As far as it can be read (what can't be stored shown as �).",
    )
    reason = models.CharField(max_length=500, help_text="Why it can't be stored, in plain words.")
    raw = models.TextField(
        help_text="The record as Stella sent it: JSON text, a NUL or half a surrogate pair written as its escape."
    )
    quarantined_at = models.DateTimeField()
    erased_at = models.DateTimeField(null=True, blank=True, help_text="When `raw` was erased (personal data).")

    class Meta:
        ordering = ["-quarantined_at", "-pk"]
        verbose_name = "quarantined feedback record"
        verbose_name_plural = "quarantined feedback records"
        constraints = [
            models.UniqueConstraint(fields=["account", "sequence_id"], name="one_quarantined_feedback_per_sequence")
        ]
        indexes = [models.Index(fields=["account", "uuid"])]

    def __str__(self) -> str:
        return f"Quarantined feedback {self.uuid or 'without uuid'} (sequence id {self.sequence_id})"


class TeammateDailyCount(models.Model):
    """The Teammates view's numbers, kept current as feedback records arrive and change, so it reads a bounded
    number of rows: per account, day (of the record's request, in the portal's TIME_ZONE), mode, teammate (the
    employee's email, else custom id) and channel, how many requests Stella recorded, delivered and had answered,
    and the star ratings' sum and count."""

    account = models.ForeignKey(Account, on_delete=models.CASCADE, related_name="teammate_daily_counts")
    day = models.DateField()
    mode = models.CharField(max_length=8, choices=IntegrationSettings.Mode.choices)
    teammate = models.CharField(
        max_length=254, blank=True, help_text="The Stella employee's email, else their custom id; blank: neither."
    )
    teammate_name = models.CharField(max_length=200, blank=True)
    channel = models.CharField(max_length=32, blank=True)
    requested = models.IntegerField(default=0)
    delivered = models.IntegerField(default=0)
    responded = models.IntegerField(default=0)
    rating_sum = models.IntegerField(default=0)
    rating_count = models.IntegerField(default=0)

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["account", "day", "mode", "teammate", "channel"], name="one_teammate_count_per_day"
            )
        ]

    def __str__(self) -> str:
        return f"{self.account_id} {self.day} {self.teammate} {self.channel}: {self.requested}"


class IntercomNote(models.Model):
    """An internal note the portal posts on an Intercom conversation (when the account turns notes on): one per
    survey request and event, which the unique constraint holds to whatever runs twice (surveys/notes.py)."""

    class Event(models.TextChoices):
        DECIDED = "decided", "Survey decided"
        FEEDBACK = "feedback", "Feedback received"

    class Status(models.TextChoices):
        WAITING = "waiting", "Waiting"
        POSTING = "posting", "Posting"
        POSTED = "posted", "Posted"
        FAILED = "failed", "Failed"

    account = models.ForeignKey(Account, on_delete=models.CASCADE, related_name="intercom_notes")
    survey_request = models.ForeignKey(SurveyRequest, on_delete=models.CASCADE, related_name="intercom_notes")
    event = models.CharField(max_length=16, choices=Event.choices)
    body = models.TextField(help_text="What the note says, as posted.")
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.WAITING)
    post_after = models.DateTimeField(help_text="Not before: Intercom's rate-limit reset, after a 429.")
    error = models.CharField(max_length=500, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    posted_at = models.DateTimeField(null=True, blank=True)
    # Its body erased with the customer (surveys/privacy.py): the body then says when and why.
    erased_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at"]
        constraints = [
            models.UniqueConstraint(fields=["survey_request", "event"], name="one_intercom_note_per_event"),
        ]
        indexes = [
            models.Index(
                fields=["account", "post_after"], condition=models.Q(status="waiting"), name="intercom_note_waiting"
            )
        ]

    def __str__(self) -> str:
        return f"{self.get_event_display()} note on conversation {self.survey_request_id}"
