"""The built-in stand-ins' data. Only served when SANDBOX=true (make run, tests, benchmarks)."""

from django.db import models


class StellaEmployee(models.Model):
    """An employee the sandbox's Stella knows, by email or custom id."""

    email = models.CharField(max_length=254, blank=True)
    custom_id = models.CharField(max_length=100, blank=True)
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
    """A conversation, contact or teammate the sandbox's Intercom REST API answers with, as stored JSON."""

    class Kind(models.TextChoices):
        CONVERSATION = "conversations", "Conversation"
        CONTACT = "contacts", "Contact"
        ADMIN = "admins", "Teammate"

    kind = models.CharField(max_length=16, choices=Kind.choices)
    intercom_id = models.CharField(max_length=64)
    data = models.JSONField()

    class Meta:
        verbose_name = "Intercom record (sandbox)"
        verbose_name_plural = "Intercom records (sandbox)"
        constraints = [models.UniqueConstraint(fields=["kind", "intercom_id"], name="one_sandbox_record_per_id")]

    def __str__(self) -> str:
        return f"{self.get_kind_display()} {self.intercom_id}"
