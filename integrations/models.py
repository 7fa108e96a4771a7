from datetime import timedelta

from django.conf import settings
from django.db import models

from integrations.intercom.payloads import Channel

DEFAULT_DO_NOT_SEND_TAGS = "fraud, dupe, do_not_send_stella"
STELLA_CREDENTIALS = ("mode", "test_api_key", "production_api_key", "stella_api_url")


class Account(models.Model):
    """A Stella Connect customer company, known to Intercom by its workspace id."""

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
    """What a CSM configures for an account; keys are read only through `api_key_for` and `intercom_token`."""

    class Mode(models.TextChoices):
        TEST = "test", "Test"
        LIVE = "live", "Live"

    account = models.OneToOneField(Account, on_delete=models.CASCADE, related_name="settings")
    enabled = models.BooleanField(default=True, help_text="Off: webhooks are recorded and ignored.")
    mode = models.CharField(
        max_length=8,
        choices=Mode.choices,
        default=Mode.TEST,
        help_text="Test sends with the test key (surveys go to the test address); live with the production key.",
    )
    test_api_key = models.CharField("test API key", max_length=200, blank=True)
    production_api_key = models.CharField("production API key", max_length=200, blank=True)
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
    intercom_access_token = models.CharField(max_length=300, blank=True)
    stella_api_url = models.URLField(
        "Stella API URL",
        blank=True,
        help_text="Only if Stella gave the company its own host, e.g. https://acme.api.stellaconnect.net.",
    )
    # Set by the sender when Stella refuses the key (403): no more calls until a CSM changes a key.
    sending_paused_at = models.DateTimeField(null=True, blank=True)
    sending_paused_reason = models.CharField(max_length=200, blank=True)
    # Set when Intercom refuses the access token (401); cleared when a new token is stored.
    intercom_token_rejected_at = models.DateTimeField(null=True, blank=True)
    alert_recipients = models.CharField(
        max_length=500,
        blank=True,
        help_text="Comma-separated emails told when over 5% of the last hour's requests are invalid or failed.",
    )
    # The error-rate alert, kept up to date every minute: shown as a banner while it lasts.
    error_alert_since = models.DateTimeField(null=True, blank=True)
    error_alert_rate = models.FloatField(null=True, blank=True)
    error_alert_emailed_at = models.DateTimeField(null=True, blank=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        verbose_name = "integration settings"
        verbose_name_plural = "integration settings"

    def __str__(self) -> str:
        return f"Settings for {self.account}"

    def save(self, *args, **kwargs):  # type: ignore[no-untyped-def]
        # A changed key, mode or Stella URL lifts a pause the sender set for a rejected key; a new
        # Intercom token clears the flag for a rejected one. Here, so every writer behaves alike.
        loaded = getattr(self, "_loaded", None)
        if loaded is not None:
            if any(loaded[name] != getattr(self, name) for name in STELLA_CREDENTIALS):
                self.sending_paused_at, self.sending_paused_reason = None, ""
            if loaded["intercom_access_token"] != self.intercom_access_token:
                self.intercom_token_rejected_at = None
        super().save(*args, **kwargs)
        self._loaded = {name: getattr(self, name) for name in (*STELLA_CREDENTIALS, "intercom_access_token")}

    @classmethod
    def from_db(cls, db, field_names, values):  # type: ignore[no-untyped-def]
        instance = super().from_db(db, field_names, values)
        instance._loaded = {name: getattr(instance, name) for name in (*STELLA_CREDENTIALS, "intercom_access_token")}
        return instance

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

    # The only readers of stored secrets: encryption at rest would go here.
    def api_key_for(self, mode: str) -> str:
        return self.production_api_key if mode == self.Mode.LIVE else self.test_api_key

    @property
    def intercom_token(self) -> str:
        return self.intercom_access_token


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


class InboundWebhook(models.Model):
    """A webhook exactly as it arrived, stored before anything acts on it."""

    class Status(models.TextChoices):
        RECEIVED = "received", "Received"
        PROCESSED = "processed", "Processed"
        IGNORED = "ignored", "Ignored"
        INVALID = "invalid", "Invalid"
        FAILED = "failed", "Failed"

    account = models.ForeignKey(Account, null=True, blank=True, on_delete=models.CASCADE)
    received_at = models.DateTimeField(auto_now_add=True, db_index=True)
    headers = models.JSONField(default=dict)
    body = models.TextField()
    # Set only once the signature holds, so a forged copy can't block the real delivery.
    notification_id = models.CharField(max_length=100, unique=True, null=True, blank=True)
    topic = models.CharField(max_length=100, blank=True)
    workspace_id = models.CharField(max_length=64, blank=True)
    occurred_at = models.DateTimeField(null=True, blank=True, help_text="The notification's created_at.")
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.RECEIVED)
    error = models.TextField(blank=True)
    processed_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-received_at"]
        indexes = [models.Index(fields=["status", "occurred_at"])]

    def __str__(self) -> str:
        return f"{self.topic or 'webhook'} {self.notification_id or self.pk}"


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
