from django.db import models

from integrations.intercom.payloads import AssigneeKind, Channel
from integrations.models import Account, InboundWebhook, IntegrationSettings
from surveys.suppression import Decision, SuppressionReason


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
    reason = models.CharField(max_length=32, choices=SuppressionReason.choices, blank=True)
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
        ]

    def __str__(self) -> str:
        return f"Conversation {self.conversation_id} ({self.get_status_display()})"

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


TERMINAL = frozenset({SurveyRequest.Status.SENT, SurveyRequest.Status.SUPPRESSED, SurveyRequest.Status.CANCELLED})

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
            SurveyRequest.Status.SCHEDULED,  # a retryable error: try again later
            SurveyRequest.Status.CANCELLED,  # the last check before sending found a reopen
            SurveyRequest.Status.SUPPRESSED,  # the rules, with what Intercom told us, say so
        }
    ),
    SurveyRequest.Status.FAILED: frozenset({SurveyRequest.Status.SCHEDULED}),
    SurveyRequest.Status.INVALID: frozenset({SurveyRequest.Status.SCHEDULED}),
    SurveyRequest.Status.AMBIGUOUS: frozenset({SurveyRequest.Status.SCHEDULED}),
    SurveyRequest.Status.SENT: frozenset(),
    SurveyRequest.Status.SUPPRESSED: frozenset(),
    SurveyRequest.Status.CANCELLED: frozenset(),
}


class ApiRequest(models.Model):
    """One call to Stella's Requests API (or a request rejected before any call), with its outcome."""

    class Outcome(models.TextChoices):
        PENDING = "pending", "In flight"
        SENT = "sent", "Accepted"
        INVALID = "invalid", "Invalid"
        RETRY = "retry", "Will retry"
        FAILED = "failed", "Failed"
        AMBIGUOUS = "ambiguous", "Ambiguous"

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
    outcome = models.CharField(max_length=16, choices=Outcome.choices, default=Outcome.PENDING)
    error_message = models.CharField(max_length=500, blank=True)
    created_at = models.DateTimeField(auto_now_add=True, db_index=True)
    finished_at = models.DateTimeField(null=True, blank=True)

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


class TestApiRequestManager(models.Manager["TestApiRequest"]):
    def get_queryset(self) -> models.QuerySet["TestApiRequest"]:
        return super().get_queryset().filter(mode=IntegrationSettings.Mode.TEST).exclude(url="")


class TestApiRequest(ApiRequest):
    """Stella's Test Requests tab: every request made to Stella with a test key."""

    objects = TestApiRequestManager()

    class Meta:
        proxy = True
        verbose_name = "test request"
        verbose_name_plural = "test requests"


class InvalidApiRequestManager(models.Manager["InvalidApiRequest"]):
    def get_queryset(self) -> models.QuerySet["InvalidApiRequest"]:
        return super().get_queryset().filter(outcome=ApiRequest.Outcome.INVALID)


class InvalidApiRequest(ApiRequest):
    """Stella's Invalid Requests tab: every request rejected, by Stella or before it, from either key."""

    objects = InvalidApiRequestManager()

    class Meta:
        proxy = True
        verbose_name = "invalid request"
        verbose_name_plural = "invalid requests"


class DailyCount(models.Model):
    """What the status page counts and charts, kept current as requests change state, so that page
    never scans the log: per account and day, how many survey requests closed that day stand in
    each state, and how many test and invalid calls were made that day."""

    class Kind(models.TextChoices):
        WAITING = "waiting", "Waiting"
        SENT = "sent", "Sent"
        DO_NOT_SEND = "do_not_send", "Do not send"
        SUPPRESSED = "suppressed", "Suppressed"
        CANCELLED = "cancelled", "Cancelled"
        INVALID = "invalid", "Invalid"
        FAILED = "failed", "Failed or ambiguous"
        TEST_CALLS = "test_calls", "Test requests"
        INVALID_CALLS = "invalid_calls", "Invalid requests"

    account = models.ForeignKey(Account, on_delete=models.CASCADE, related_name="daily_counts")
    day = models.DateField()
    kind = models.CharField(max_length=16, choices=Kind.choices)
    count = models.IntegerField(default=0)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["account", "day", "kind"], name="one_count_per_account_day_kind")
        ]

    def __str__(self) -> str:
        return f"{self.account_id} {self.day} {self.kind}: {self.count}"
