"""The built-in stand-ins' data. Only served when SANDBOX=true (make run, tests, benchmarks)."""

import uuid

from django.db import models


class StellaSandboxEmployee(models.Model):
    """An employee the sandbox's Stella knows, by email or custom id."""

    email = models.CharField(max_length=254, blank=True)
    custom_id = models.CharField(max_length=100, blank=True)
    first_name = models.CharField(max_length=100, blank=True)
    last_name = models.CharField(max_length=100, blank=True)
    active = models.BooleanField(default=True)

    class Meta:
        verbose_name = "Stella employee (sandbox)"
        verbose_name_plural = "Stella employees (sandbox)"

    def __str__(self) -> str:
        return self.email or self.custom_id


class StellaSandboxRequest(models.Model):
    """What the sandbox's Stella received, and what it answered."""

    received_at = models.DateTimeField(auto_now_add=True)
    api_key = models.CharField(max_length=20, help_text="Masked.")
    mode = models.CharField(max_length=8, blank=True)
    body = models.JSONField(null=True)
    status_code = models.PositiveSmallIntegerField()
    response = models.JSONField(null=True)

    class Meta:
        ordering = ["-received_at"]
        verbose_name = "request received by Stella (sandbox)"
        verbose_name_plural = "requests received by Stella (sandbox)"

    def __str__(self) -> str:
        return f"{self.status_code} {self.mode} {self.received_at:%Y-%m-%d %H:%M:%S}"


class IntercomRecord(models.Model):
    """A conversation, contact, teammate or team the sandbox's Intercom REST API answers with, as stored JSON."""

    class Kind(models.TextChoices):
        CONVERSATION = "conversations", "Conversation"
        CONTACT = "contacts", "Contact"
        ADMIN = "admins", "Teammate"
        TEAM = "teams", "Team"

    kind = models.CharField(max_length=16, choices=Kind.choices)
    intercom_id = models.CharField(max_length=64)
    data = models.JSONField()

    class Meta:
        verbose_name = "Intercom record (sandbox)"
        verbose_name_plural = "Intercom records (sandbox)"
        constraints = [models.UniqueConstraint(fields=["kind", "intercom_id"], name="one_sandbox_record_per_id")]

    def __str__(self) -> str:
        return f"{self.get_kind_display()} {self.intercom_id}"


class StellaSandboxFeedback(models.Model):
    """One interaction the sandbox's Stella accepted, as its Data Return API (GET /v2/data) serves it.

    Some delivered ones are answered by a made-up customer at `respond_at`: the answer is filled in, and
    the record re-sequenced, when /v2/data is next served (as Stella re-sequences an edited record)."""

    uuid = models.UUIDField(default=uuid.uuid4, unique=True, editable=False)
    sequence_id = models.BigIntegerField(unique=True)
    company = models.CharField(
        max_length=100,
        blank=True,
        db_index=True,
        help_text="The company whose key made it (the key without sandbox-test-/sandbox-live-): only its keys see it.",
    )
    mode = models.CharField(
        max_length=8, help_text="test or live: the key that made it; only the company's key of that mode sees it."
    )
    ext_interaction_id = models.CharField(max_length=200, blank=True)
    channel = models.CharField(max_length=20)
    employee_email = models.CharField(max_length=254, blank=True)
    employee_custom_id = models.CharField(max_length=100, blank=True)
    employee_first_name = models.CharField(max_length=100, blank=True)
    employee_last_name = models.CharField(max_length=100, blank=True)
    customer_email = models.CharField(max_length=254, blank=True)
    customer_name = models.CharField(max_length=200, blank=True)
    tags = models.JSONField(default=list, blank=True)
    request_created_at = models.DateTimeField()
    request_sent_at = models.DateTimeField(null=True, blank=True)
    request_delivery_status = models.CharField(max_length=60)
    response_received_at = models.DateTimeField(null=True, blank=True)
    answers = models.JSONField(default=dict, blank=True)
    respond_at = models.DateTimeField(
        null=True,
        blank=True,
        help_text="When the made-up customer will answer; empty once they have, or if they never will.",
    )

    class Meta:
        ordering = ["-sequence_id"]
        verbose_name = "feedback held by Stella (sandbox)"
        verbose_name_plural = "feedback held by Stella (sandbox)"
        indexes = [
            models.Index(fields=["mode", "sequence_id"], name="sandbox_feedback_cursor"),
            models.Index(fields=["respond_at"], name="sandbox_feedback_respond_at"),
        ]

    def __str__(self) -> str:
        return f"{self.sequence_id} {self.mode} {self.ext_interaction_id}"


class StellaSandboxCounter(models.Model):
    """A counter row: the sandbox's Stella draws sequence ids from it. Bumped inside the transaction that
    stores the records, its lock makes records commit in sequence order, so a cursor never skips one."""

    name = models.CharField(max_length=40, primary_key=True)
    value = models.BigIntegerField(default=0)

    def __str__(self) -> str:
        return f"{self.name}: {self.value}"


class IntercomSandboxNote(models.Model):
    """A note posted to the sandbox's Intercom (POST /conversations/{id}/reply), and what it answered:
    200 when recorded, 429 when the sandbox played Intercom's rate limit."""

    conversation_id = models.CharField(max_length=64)
    admin_id = models.CharField(max_length=64)
    body = models.TextField()
    status_code = models.PositiveSmallIntegerField(default=200)
    received_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-received_at", "-id"]
        verbose_name = "note received by Intercom (sandbox)"
        verbose_name_plural = "notes received by Intercom (sandbox)"
        indexes = [models.Index(fields=["conversation_id"], name="sandbox_note_conversation")]

    def __str__(self) -> str:
        return f"{self.status_code} note on {self.conversation_id}"


class SandboxReceived(models.Model):
    """What service recovery did to the sandbox's Intercom and webhook (sandbox/recovery.py): a tag, an assignment,
    a Slack-compatible webhook message; with what it answered (429 when it played a rate limit)."""

    class Kind(models.TextChoices):
        TAG = "tag", "Conversation tagged"
        ASSIGN = "assign", "Conversation assigned"
        WEBHOOK = "webhook", "Webhook message"

    kind = models.CharField(max_length=16, choices=Kind.choices)
    target = models.CharField(max_length=64, blank=True, help_text="The conversation, or the webhook's name.")
    body = models.JSONField(null=True)
    status_code = models.PositiveSmallIntegerField(default=200)
    received_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-received_at", "-id"]
        verbose_name = "received by the sandbox's Intercom or webhook"
        verbose_name_plural = "received by the sandbox's Intercom or webhook"

    def __str__(self) -> str:
        return f"{self.get_kind_display()} {self.target}"
