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
    SurveyRequest.Status.AMBIGUOUS: frozenset({SurveyRequest.Status.SCHEDULED}),  # resent, after a person confirmed
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

    def __str__(self) -> str:
        return f"{self.account_id} {self.day} {self.kind}: {self.count}"
