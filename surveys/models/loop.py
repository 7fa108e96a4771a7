"""What Stella told us back: its employees, the feedback it recorded, the records it sent that can't be stored, and the notes written back to Intercom."""

from __future__ import annotations

from django.db import models

from surveys.models.accounts import Account, IntegrationSettings
from surveys.models.requests import SurveyRequest


class StellaSyncState(models.Model):
    """Where an account's reading back from Stella stands: its employees and its feedback records.

    Runtime state, changed only by the jobs in surveys/loop/ (sync.py runs them); created by the first of them to run.
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
    # How far the Intercom notes have looked (surveys/loop/notes.py): survey requests decided, feedback received.
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
    team = models.CharField(
        max_length=200, blank=True, help_text="The employee's team leader in Stella (full name, else custom id)."
    )
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
            # The satisfaction report's drill-down: one teammate's records of the chosen days (a record Stella
            # names by custom id only has an empty email, the same index's other branch), not every record.
            models.Index(fields=["account", "employee_email", "request_created_at"], name="feedback_teammate_days"),
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


class IntercomNote(models.Model):
    """An internal note the portal posts on an Intercom conversation (when the account turns notes on): one per
    survey request and event, which the unique constraint holds to whatever runs twice (surveys/loop/notes.py)."""

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
    # Its body erased with the customer (surveys/accounts/privacy.py): the body then says when and why.
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


class RecoveryAction(models.Model):
    """One service-recovery action on a low rating (surveys/loop/recovery.py): an outbox row, one per Stella feedback
    record and kind, which the unique constraint holds to whatever runs twice (an edited record, two pulls at once).
    Claimed (`doing`) before it is done; one found still `doing` may have reached the other side, so it is never
    done again: it is marked failed."""

    class Kind(models.TextChoices):
        TAG = "tag", "Tagged the conversation"
        NOTE = "note", "Internal note"
        ASSIGN = "assign", "Assigned for follow-up"
        WEBHOOK = "webhook", "Webhook"
        EMAIL = "email", "Email to the alert recipients"

    class Status(models.TextChoices):
        WAITING = "waiting", "Waiting"
        DOING = "doing", "Under way"
        DONE = "done", "Done"
        FAILED = "failed", "Failed"

    account = models.ForeignKey(Account, on_delete=models.CASCADE, related_name="recovery_actions")
    feedback = models.ForeignKey(Feedback, on_delete=models.CASCADE, related_name="recovery_actions")
    survey_request = models.ForeignKey(
        SurveyRequest, null=True, blank=True, on_delete=models.SET_NULL, related_name="recovery_actions"
    )
    kind = models.CharField(max_length=16, choices=Kind.choices)
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.WAITING)
    do_after = models.DateTimeField(help_text="Not before: a rate limit's reset, after a 429.")
    error = models.CharField(max_length=500, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    claimed_at = models.DateTimeField(null=True, blank=True)
    done_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["created_at", "pk"]
        constraints = [models.UniqueConstraint(fields=["feedback", "kind"], name="one_recovery_action_per_kind")]
        indexes = [
            models.Index(
                fields=["account", "do_after"], condition=models.Q(status="waiting"), name="recovery_action_waiting"
            )
        ]

    def __str__(self) -> str:
        return f"{self.get_kind_display()} for feedback {self.feedback_id}"
