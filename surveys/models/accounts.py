"""Accounts and their rules: what a CSM chose (IntegrationSettings), what the portal found (IntegrationHealth), and the account's Intercom teammates."""

from __future__ import annotations

import re
from datetime import timedelta
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from django.conf import settings
from django.core.exceptions import ValidationError
from django.core.validators import MaxValueValidator, MinValueValidator, URLValidator
from django.db import models

from integrations.intercom.client import intercom_api_url
from integrations.stella.client import ERROR_ALERT_THRESHOLD
from integrations.vocabulary import Channel, IntercomRegion
from portal.fields import EncryptedTextField, secret_plaintext
from portal.history import ConfigurationHistory

DEFAULT_DO_NOT_SEND_TAGS = "fraud, dupe, do_not_send_stella"


TEAM_ID = re.compile(r"[A-Za-z0-9_-]{1,64}")


def validate_team_ids(text: str) -> None:
    """Intercom team ids, comma-separated (the admin lists each team's beside its name)."""
    if bad := [team.strip() for team in text.split(",") if team.strip() and not TEAM_ID.fullmatch(team.strip())]:
        raise ValidationError(
            f"Not an Intercom team id: {', '.join(bad)}. Give the ids, comma-separated (e.g. 814865)."
        )


QUIET_HOURS = re.compile(r"([01]\d|2[0-3]):[0-5]\d-([01]\d|2[0-3]):[0-5]\d")


def validate_time_zone(name: str) -> None:
    try:
        ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise ValidationError(f"Not a time zone: {name!r}. Give its IANA name, e.g. Europe/Paris or UTC.") from None


def validate_quiet_hours(text: str) -> None:
    """HH:MM-HH:MM, 24-hour clock, two different times."""
    text = text.strip()
    if text and (not QUIET_HOURS.fullmatch(text) or text[:5] == text[6:]):
        raise ValidationError(f"Not quiet hours: {text!r}. Write them as HH:MM-HH:MM, e.g. 21:00-08:00.")


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
    # Every change on record, support users too (portal/history.py).
    history = ConfigurationHistory(m2m_fields=["support_users"])

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
    intercom_region = models.CharField(
        "Intercom region",
        max_length=2,
        choices=IntercomRegion.choices,
        default=IntercomRegion.US,
        help_text="Where Intercom hosts the workspace: its API, notes and connecting use that region's host. Set by "
        "itself when Intercom says it (connecting, Check now).",
    )
    stella_api_url = models.URLField(
        "Stella API URL",
        blank=True,
        help_text="Only if Stella gave the company its own host, e.g. https://acme.api.stellaconnect.net.",
    )
    alert_recipients = models.CharField(
        max_length=500,
        blank=True,
        help_text=f"Comma-separated emails told when over {ERROR_ALERT_THRESHOLD:.0%} of the last hour's requests are "
        "invalid or failed.",
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
    # ---- Inbox app and service recovery (surveys/inbox_app/, surveys/loop/recovery.py) ----
    low_rating_threshold = models.PositiveSmallIntegerField(
        "low rating threshold",
        null=True,
        blank=True,
        validators=[MinValueValidator(1), MaxValueValidator(5)],
        help_text="A rating of this many stars or fewer starts service recovery (the actions below, and an email to "
        "the alert recipients). Empty: off.",
    )
    low_rating_tag = models.CharField(
        "tag low ratings", max_length=100, blank=True, help_text="Tag the Intercom conversation with this tag."
    )
    low_rating_note = models.BooleanField(
        "note on low ratings",
        default=False,
        help_text="Post an internal note with the rating, the comment and the teammate credited (as the Intercom "
        "note author).",
    )
    low_rating_assign = models.CharField(
        "assign low ratings to",
        max_length=70,
        blank=True,
        help_text="Assign the conversation for follow-up: a teammate's Intercom admin id, or team:ID for a team.",
    )
    low_rating_webhook = EncryptedTextField(
        "low rating webhook",
        blank=True,
        validators=[URLValidator(schemes=["https", "http"])],
        help_text='POST {"text": …} here (a Slack incoming webhook, or any automation).',
    )
    # ---- Rules of whom to survey (issue 20): each leaves a closure out, suppressed with the rule as its reason ----
    include_teams = models.CharField(
        max_length=500,
        blank=True,
        validators=[validate_team_ids],
        help_text="Intercom team ids, comma-separated. Set: only conversations assigned to one of these teams when "
        "they close are surveyed. Empty: any team, or none.",
    )
    exclude_teams = models.CharField(
        max_length=500,
        blank=True,
        validators=[validate_team_ids],
        help_text="Intercom team ids, comma-separated: conversations assigned to one of these teams when they close "
        "are not surveyed.",
    )
    min_teammate_replies = models.PositiveSmallIntegerField(
        "minimum teammate replies",
        default=0,
        validators=[MaxValueValidator(100)],
        help_text="Survey only conversations where human teammates wrote at least this many replies (notes and bots "
        "don't count). 0 turns it off; above 0, Intercom is asked for the conversation before sending.",
    )
    max_days_since_reply = models.PositiveSmallIntegerField(
        "maximum days since the last reply",
        null=True,
        blank=True,
        validators=[MaxValueValidator(365)],
        help_text="Don't survey a conversation closed more than this many days after a teammate last replied "
        "(Intercom itself asks within 7). Empty turns it off.",
    )
    sample_percent = models.PositiveSmallIntegerField(
        "sample (% of closures)",
        default=100,
        validators=[MinValueValidator(1), MaxValueValidator(100)],
        help_text="Survey this percentage of closures, the same share of each teammate's, always the same ones "
        "(a closure delivered twice is decided the same). 100 surveys every closure.",
    )
    attribution = models.CharField(
        "credit",
        max_length=16,
        choices=[("assignee", "The assignee at close"), ("last_replier", "The last teammate to reply")],
        default="assignee",
        help_text="Whom a survey names: the teammate assigned when the conversation closed, or the last human "
        "teammate who wrote a reply (also when it was assigned to a team or nobody; Intercom is asked before sending).",
    )
    time_zone = models.CharField(
        max_length=64,
        default="UTC",
        validators=[validate_time_zone],
        help_text="The account's time zone (IANA, e.g. Europe/Paris), for its quiet hours.",
    )
    quiet_hours = models.CharField(
        max_length=11,
        blank=True,
        validators=[validate_quiet_hours],
        help_text="HH:MM-HH:MM in the account's time zone, e.g. 21:00-08:00 (past midnight is fine): a survey falling "
        "due then waits until they end, and a reopen or reply meanwhile still cancels it. Empty: none.",
    )
    quiet_hours_zone = models.CharField(
        "quiet hours in",
        max_length=16,
        choices=[("account", "The account's time zone"), ("customer", "Each customer's time zone")],
        default="account",
        help_text="Whose night the quiet hours keep: the account's, or each customer's where Intercom's contact "
        "location names one zone (a country with one, or a region or city that picks one; Intercom is asked before "
        "sending); otherwise the account's.",
    )
    updated_at = models.DateTimeField(auto_now=True)
    # Every change on record, each field the model has, secrets as mask and fingerprint (portal/history.py).
    history = ConfigurationHistory()

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
    def include_team_ids(self) -> frozenset[str]:
        return team_ids(self.include_teams)

    @property
    def exclude_team_ids(self) -> frozenset[str]:
        return team_ids(self.exclude_teams)

    @property
    def do_not_send_tag_names(self) -> frozenset[str]:
        return frozenset(tag.strip().casefold() for tag in self.do_not_send_tags.split(",") if tag.strip())

    # The only readers of stored secrets for the vendors' clients: the plaintext, or SecretUndecryptable.
    def api_key_for(self, mode: str) -> str:
        return secret_plaintext(self, "production_api_key" if mode == self.Mode.LIVE else "test_api_key")

    @property
    def intercom_api_url(self) -> str:
        """The Intercom API host of the account's region (INTERCOM_API_URL_US / _EU / _AU)."""
        return intercom_api_url(self.intercom_region)

    @property
    def intercom_token(self) -> str:
        return secret_plaintext(self, "intercom_access_token")

    @property
    def stella_secret(self) -> str:
        return secret_plaintext(self, "stella_api_secret")

    @property
    def low_rating_webhook_url(self) -> str:
        return secret_plaintext(self, "low_rating_webhook")


def team_ids(text: str) -> frozenset[str]:
    """Comma-separated Intercom team ids as a set: "12, 34," → {"12", "34"}."""
    return frozenset(team.strip() for team in text.split(",") if team.strip())


class IntegrationHealth(models.Model):
    """What the portal found while working for an account, shown to CSMs as what needs attention.

    Changed only through the named services in surveys/accounts/account.py, never by saving settings.
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
    # Inbox app and service recovery: when Intercom last asked for the inbox app's canvas (to the hour).
    inbox_app_seen_at = models.DateTimeField(null=True, blank=True)

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
