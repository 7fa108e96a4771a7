from django.db import models


class InboundWebhook(models.Model):
    """A webhook exactly as it arrived, stored before anything acts on it.

    Kept by workspace id, not by account: which account a workspace belongs to is the
    domain's business, decided when the webhook is processed.
    """

    class Status(models.TextChoices):
        RECEIVED = "received", "Received"
        PROCESSED = "processed", "Processed"
        IGNORED = "ignored", "Ignored"
        INVALID = "invalid", "Invalid"
        FAILED = "failed", "Failed"

    received_at = models.DateTimeField(auto_now_add=True, db_index=True)
    headers = models.JSONField(default=dict)
    # As it arrived when verified; for a request that failed verification, its first few KiB.
    body = models.TextField()
    # What the parser read from the body as it was stored (IntercomNotification.stored), so acting on the webhook
    # doesn't read the body again; empty for a body the parser refused, and for rows stored before it was kept.
    parsed = models.TextField(blank=True)
    body_size = models.PositiveIntegerField(null=True, blank=True, help_text="Bytes received.")
    body_sha256 = models.CharField("body SHA-256", max_length=64, blank=True)
    # Set only once the signature holds, so a forged copy can't block the real delivery.
    notification_id = models.CharField(max_length=100, unique=True, null=True, blank=True)
    topic = models.CharField(max_length=100, blank=True)
    workspace_id = models.CharField(max_length=64, blank=True)
    # What must be acted on in order with it: its workspace and conversation (or contact), set on arrival.
    # Empty (a ping, an unknown topic, a row stored before keys existed): ordered with nothing else.
    conversation_key = models.CharField(max_length=150, blank=True)
    occurred_at = models.DateTimeField(null=True, blank=True, help_text="The notification's created_at.")
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.RECEIVED)
    error = models.TextField(blank=True)
    # A failure's traceback, for whoever fixes the cause (bounded: portal/errors.py); `error` is its last line.
    traceback = models.TextField(blank=True)
    processed_at = models.DateTimeField(null=True, blank=True)
    # Body and headers erased (personal data): the body then says when and why (surveys/accounts/privacy.py).
    erased_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-received_at"]
        # Every index is written by each webhook request (and each status change): only those a query reads.
        indexes = [
            # The intake's claim: waiting webhooks, oldest notification first, in the claim's exact order...
            models.Index(fields=["occurred_at", "id"], condition=models.Q(status="received"), name="webhook_waiting"),
            # ...and the rest of a claimed conversation's waiting webhooks.
            models.Index(
                fields=["conversation_key", "occurred_at", "id"],
                condition=models.Q(status="received"),
                name="webhook_waiting_conversation",
            ),
            # What the retention job still has to erase, oldest first, without walking what it already did.
            models.Index(fields=["received_at"], condition=models.Q(erased_at__isnull=True), name="webhook_not_erased"),
            # A workspace's last webhook: the onboarding checklist and the admin's "no webhook in 24 h".
            models.Index(fields=["workspace_id", "-received_at"], name="webhook_workspace_latest"),
        ]

    def __str__(self) -> str:
        return f"{self.topic or 'webhook'} {self.notification_id or self.pk}"


class WebhookInboxMark(models.Model):
    """How far the intake has moved webhooks from the SQLite inbox into the database (integrations/inbox.py): the
    inbox id moved up to, committed with the rows it moved. One row."""

    moved_up_to = models.BigIntegerField(default=0)

    def __str__(self) -> str:
        return f"inbox moved up to {self.moved_up_to}"


class UnverifiedWebhookCount(models.Model):
    """Requests that failed verification past the rate at which they are stored: only counted, per minute."""

    minute = models.DateTimeField(unique=True)
    count = models.PositiveIntegerField(default=0)

    class Meta:
        ordering = ["-minute"]
        verbose_name = "unverified webhooks only counted"
        verbose_name_plural = "unverified webhooks only counted"

    def __str__(self) -> str:
        return f"{self.count} at {self.minute:%Y-%m-%d %H:%M}"
