import getpass
import os
import sys
from argparse import ArgumentParser, ArgumentTypeError, BooleanOptionalAction
from datetime import timedelta
from typing import IO, Any

from django.contrib.auth.models import User
from django.core.exceptions import ValidationError
from django.core.management.base import BaseCommand, CommandError
from django.core.validators import validate_email
from django.db import transaction

from integrations.vocabulary import IntercomRegion
from portal.durations import format_duration, parse_duration_text
from portal.history import Source, configuration_changed_by
from portal.redaction import mask_secret
from surveys.accounts.account import account_upsert
from surveys.decisions.dry_run import whom_to_survey_summary
from surveys.models import Account, IntegrationSettings

# Each secret's option, its field and what to call it; each may come from the command line (shows in `ps`
# and shell history), an environment variable (--…-env NAME) or standard input (the value -).
SECRETS = {
    "test_api_key": "test API key",
    "production_api_key": "production API key",
    "intercom_access_token": "Intercom access token",
    "stella_api_secret": "Stella API secret",
    # Inbox app and service recovery: a webhook URL (Slack's holds its token) is a secret too.
    "low_rating_webhook": "low rating webhook URL",
}
# Settings the command passes on as they are given; "" clears a text one.
PLAIN_SETTINGS = (
    "enabled",
    "mode",
    "stella_api_url",
    "brand",
    "language",
    "channel_delay",
    "suppression_window",
    "do_not_send_tags",
    "employee_sync_enabled",
    "feedback_return_enabled",
    "reconcile_after",
    "intercom_notes_enabled",
    "intercom_note_author_id",
    "intercom_region",
    # Inbox app and service recovery.
    "low_rating_threshold",
    "low_rating_tag",
    "low_rating_note",
    "low_rating_assign",
    # Whom to survey (issue 20).
    "include_teams",
    "exclude_teams",
    "min_teammate_replies",
    "max_days_since_reply",
    "sample_percent",
    "attribution",
    "time_zone",
    "quiet_hours",
    "quiet_hours_zone",
)


def duration(text: str) -> timedelta:
    try:
        return parse_duration_text(text)
    except ValueError as exc:
        raise ArgumentTypeError(str(exc)) from None


def stars(text: str) -> int:
    """A low-rating threshold: 1 to 5 stars, or 0 for none (stored as empty)."""
    try:
        value = int(text)
    except ValueError:
        raise ArgumentTypeError(f"{text!r} is not a number of stars") from None
    if not 0 <= value <= 5:
        raise ArgumentTypeError("give 1 to 5 stars, or 0 to turn service recovery off")
    return value


def names(text: str) -> list[str]:
    """Comma-separated names, blanks dropped: "a, b," → ["a", "b"]."""
    return [name.strip() for name in text.split(",") if name.strip()]


def os_user() -> str:
    """Who runs the command, as the history records them: the OS user (there is no portal user here)."""
    try:
        return f"{getpass.getuser()} (shell)"
    except (KeyError, OSError):
        return "shell"


def plain_settings(options: dict[str, Any]) -> dict[str, Any]:
    """The settings given as plain values; those that say "off" (a threshold of 0, days "off") as empty."""
    fields = {name: options[name] for name in PLAIN_SETTINGS if options[name] is not None}
    if fields.get("low_rating_threshold") == 0:
        fields["low_rating_threshold"] = None
    if fields.get("max_days_since_reply") == OFF:
        fields["max_days_since_reply"] = None
    return fields


def days_or_off(text: str) -> int | str:
    """A number of days, or "off" ("" too): the rule turned off."""
    if text.strip().lower() in ("", "off"):
        return OFF
    try:
        return int(text)
    except ValueError:
        raise ArgumentTypeError(f"{text!r} is not a number of days, or off") from None


OFF = "off"


def option(field: str) -> str:
    return "--" + field.replace("_", "-")


class Command(BaseCommand):
    help = (
        "Create or update an account: its name and workspace id, integration settings and support users, "
        "everything the admin sets, for scripted onboarding. Only the options given change; running it "
        "again with the same options changes nothing. Secrets are best given by environment variable "
        "(--test-api-key-env ACME_TEST_KEY) or on standard input (--test-api-key -): a value on the command "
        "line shows in `ps` and shell history. E.g. ACME_TEST_KEY=… manage.py account_upsert acme123 --name Acme "
        "--test-api-key-env ACME_TEST_KEY --channels chat --channel-delay 10m --suppression-window 7d "
        "--support-user ada.acme"
    )
    stealth_options = ("stdin",)

    def add_arguments(self, parser: ArgumentParser) -> None:
        parser.add_argument("workspace_id", help="The Intercom workspace id (app_id on webhooks): finds the account.")
        parser.add_argument("--name", help="The company's name (a new account is named after its workspace id).")
        parser.add_argument(
            "--new-workspace-id",
            metavar="WORKSPACE_ID",
            help="Move the account to this workspace id (e.g. it was entered wrong); run again, it is found there.",
        )
        parser.add_argument(
            "--enable", dest="enabled", action="store_true", default=None, help="Act on the account's webhooks."
        )
        parser.add_argument(
            "--disable", dest="enabled", action="store_false", help="Record its webhooks but act on none."
        )
        parser.add_argument(
            "--mode", choices=IntegrationSettings.Mode.values, help="Which Stella key to send with: test or live."
        )
        for field, label in SECRETS.items():
            parser.add_argument(
                option(field),
                metavar="VALUE",
                help=f"The {label}; - reads it from standard input. A value here shows in `ps`: prefer "
                f"{option(field)}-env.",
            )
            parser.add_argument(
                f"{option(field)}-env", metavar="VARIABLE", help=f"Read the {label} from this environment variable."
            )
        parser.add_argument(
            "--stella-api-url",
            metavar="URL",
            help="Only if Stella gave the company its own host; an empty value means Stella's.",
        )
        parser.add_argument("--brand", help="Only for multi-brand Stella companies; empty clears it.")
        parser.add_argument("--language", help="ISO 639-1, e.g. en or en-US; empty clears it.")
        parser.add_argument(
            "--channels", metavar="CHANNELS", help="Comma-separated channels to survey: email, chat, both, or none."
        )
        parser.add_argument("--channel-delay", type=duration, metavar="DURATION", help="e.g. 0, 90s, 10m, 2h")
        parser.add_argument("--suppression-window", type=duration, metavar="DURATION", help="e.g. 0 (off), 12h, 7d")
        parser.add_argument("--do-not-send-tags", metavar="TAGS", help="Comma-separated tag names.")
        parser.add_argument(
            "--employee-sync",
            dest="employee_sync_enabled",
            action=BooleanOptionalAction,
            help="Read Stella's employees hourly and mark the teammates it won't recognise (needs the API secret).",
        )
        parser.add_argument(
            "--feedback-return",
            dest="feedback_return_enabled",
            action=BooleanOptionalAction,
            help="Read Stella's feedback records every 15 minutes (needs the API secret).",
        )
        parser.add_argument(
            "--reconcile-after",
            type=duration,
            metavar="DURATION",
            help="How long a request may stay unreported by Stella before a person is asked to look, e.g. 24h.",
        )
        parser.add_argument(
            "--intercom-notes",
            dest="intercom_notes_enabled",
            action=BooleanOptionalAction,
            help="Post an internal note on the conversation when its survey is decided and when feedback arrives.",
        )
        parser.add_argument(
            "--intercom-note-author", dest="intercom_note_author_id", metavar="ADMIN_ID",
            help="The Intercom admin id notes are posted as.",
        )  # fmt: skip
        # ---- Inbox app and service recovery ----
        parser.add_argument(
            "--low-rating-threshold", type=stars, metavar="N",
            help="Start service recovery on a rating of N stars or fewer (1-5); 0 turns it off.",
        )  # fmt: skip
        parser.add_argument("--low-rating-tag", metavar="TAG", help="Tag the conversation; empty: don't.")
        parser.add_argument(
            "--low-rating-note",
            action=BooleanOptionalAction,
            help="Post an internal note with the rating, the comment and the teammate credited.",
        )
        parser.add_argument(
            "--low-rating-assign", metavar="ID",
            help="Assign the conversation to this teammate (Intercom admin id) or team (team:ID); empty: don't.",
        )  # fmt: skip
        parser.add_argument(
            "--intercom-region",
            choices=IntercomRegion.values,
            help="Where Intercom hosts the workspace: us, eu or au (set by itself when Intercom says it).",
        )
        parser.add_argument(
            "--include-teams", metavar="IDS",
            help="Survey only conversations assigned to one of these Intercom teams at close (comma-separated team "
            "ids; the account's admin page lists them by name); empty: any team, or none.",
        )  # fmt: skip
        parser.add_argument(
            "--exclude-teams", metavar="IDS",
            help="Don't survey conversations assigned to one of these Intercom teams at close; empty: none.",
        )  # fmt: skip
        parser.add_argument(
            "--min-teammate-replies", type=int, metavar="N",
            help="Survey only conversations where human teammates wrote at least N replies; 0 turns it off.",
        )  # fmt: skip
        parser.add_argument(
            "--max-days-since-reply", type=days_or_off, metavar="DAYS",
            help="Don't survey a conversation closed more than DAYS days after a teammate last replied; off turns "
            "it off.",
        )  # fmt: skip
        parser.add_argument(
            "--sample-percent", type=int, metavar="N",
            help="Survey N%% of closures (1-100), the same share of each teammate's; 100 surveys all.",
        )  # fmt: skip
        parser.add_argument(
            "--attribution", type=lambda text: text.replace("-", "_"), choices=["assignee", "last_replier"],
            help="Whom a survey credits: assignee (at close), or last-replier (the last human teammate who wrote a "
            "reply, also when the conversation was assigned to a team or nobody).",
        )  # fmt: skip
        parser.add_argument(
            "--time-zone", metavar="TZ", help="The account's time zone, for its quiet hours (IANA, e.g. Europe/Paris)."
        )
        parser.add_argument(
            "--quiet-hours", metavar="HH:MM-HH:MM",
            help="No survey goes out then, in the account's time zone (e.g. 21:00-08:00, past midnight is fine): one "
            "falling due waits until they end. Empty: none.",
        )  # fmt: skip
        parser.add_argument(
            "--quiet-hours-zone", choices=["account", "customer"],
            help="Whose night the quiet hours keep: the account's time zone, or each customer's where Intercom's "
            "contact location names one (else the account's).",
        )  # fmt: skip
        parser.add_argument(
            "--alert-recipients",
            metavar="EMAILS",
            help="Comma-separated emails told of a high error rate; empty clears them.",
        )
        parser.add_argument(
            "--support-user",
            dest="support_users",
            action="append",
            default=[],
            metavar="USERNAME",
            help="Let this user see the account's status page and API (repeat it, or separate usernames by "
            "commas). The user must exist, unless --create-support-users.",
        )
        parser.add_argument(
            "--remove-support-user",
            dest="removed_support_users",
            action="append",
            default=[],
            metavar="USERNAME",
            help="Take this user off the account's support users (the user stays).",
        )
        parser.add_argument(
            "--create-support-users",
            action="store_true",
            help="Create --support-user users that don't exist yet, without a password (set one with "
            "manage.py changepassword, or give them an API token with manage.py api_token_create).",
        )

    def handle(self, *args: Any, **options: Any) -> None:
        fields = plain_settings(options)
        fields.update(self.secrets(options))
        fields.update(self.channels(options["channels"]))
        if options["alert_recipients"] is not None:
            fields["alert_recipients"] = self.alert_recipients(options["alert_recipients"])
        # A value pasted with a stray space or newline would be refused by Stella, or break a header.
        fields = {name: value.strip() if isinstance(value, str) else value for name, value in fields.items()}
        try:
            # A user created for an account that then fails validation is undone; the change is on record as the
            # OS user's, through this command.
            with transaction.atomic(), configuration_changed_by(Source.UPSERT, actor=os_user()):
                added, created_users = self.users(options["support_users"], create=options["create_support_users"])
                removed, _ = self.users(options["removed_support_users"], create=False)
                account, created = account_upsert(
                    workspace_id=options["workspace_id"],
                    name=options["name"],
                    new_workspace_id=options["new_workspace_id"],
                    support_users_add=added,
                    support_users_remove=removed,
                    **fields,
                )
        except ValidationError as exc:
            raise CommandError(
                "; ".join(f"{field}: {' '.join(errors)}" for field, errors in exc.message_dict.items())
            ) from None
        for user in created_users:
            self.stdout.write(
                f"Created the user {user.username!r} without a password: set one with "
                f"`manage.py changepassword {user.username}`, or make an API token with "
                f"`manage.py api_token_create {user.username}`."
            )
        self.summarize(account, created=created)

    def secrets(self, options: dict[str, Any]) -> dict[str, str]:
        """Each secret given, from the command line, its environment variable or standard input; never empty."""
        found, from_stdin = {}, [field for field in SECRETS if options[field] == "-"]
        if len(from_stdin) > 1:
            raise CommandError(
                f"Only one secret can come from standard input ({', '.join(map(option, from_stdin))}): "
                "give the others with their -env option."
            )
        for field, label in SECRETS.items():
            if (value := self.secret(field, label, options)) is not None:
                found[field] = value
        return found

    def secret(self, field: str, label: str, options: dict[str, Any]) -> str | None:
        """One secret, if given: from its environment variable, standard input or the command line."""
        value, variable = options[field], options[f"{field}_env"]
        if value is not None and variable is not None:
            raise CommandError(f"Give {option(field)} or {option(field)}-env, not both.")
        if variable is not None:
            value = os.environ.get(variable, "")
            where = f"{option(field)}-env {variable}: the variable is not set or empty"
        elif value == "-":
            value = self.read_stdin(f"{label.capitalize()}: ", options.get("stdin"))
            where = f"{option(field)} -: nothing on standard input"
        elif value is not None:
            where = f"{option(field)} is empty (an unset shell variable?)"
            self.stderr.write(
                f"Note: {option(field)} on the command line shows in `ps` and shell history; "
                f"{option(field)}-env VARIABLE or {option(field)} - (standard input) keeps it out."
            )
        else:
            return None
        if not value.strip():
            raise CommandError(f"{where}. A stored {label} is never cleared here.")
        return value

    @staticmethod
    def read_stdin(prompt: str, stdin: IO[str] | None) -> str:
        stream = stdin or sys.stdin
        if stdin is None and stream.isatty():
            return getpass.getpass(prompt)  # typed without echo
        return stream.readline()

    @staticmethod
    def channels(text: str | None) -> dict[str, bool]:
        if text is None:
            return {}
        channels = {name.lower() for name in names(text)} - {"none"}
        if unknown := channels - {"email", "chat"}:
            raise CommandError(
                f"Unknown {'channel' if len(unknown) == 1 else 'channels'}: {', '.join(sorted(unknown))}; use email and/or chat, or none"
            )
        return {"email_enabled": "email" in channels, "chat_enabled": "chat" in channels}

    @staticmethod
    def alert_recipients(text: str) -> str:
        emails = names(text)
        for email in emails:
            try:
                validate_email(email)
            except ValidationError:
                raise CommandError(f"--alert-recipients: {email!r} is not an email address") from None
        return ", ".join(emails)

    @staticmethod
    def users(usernames: list[str], *, create: bool) -> tuple[list[User], list[User]]:
        """The users named (each option may hold several, comma-separated), and those created for it."""
        wanted = list(dict.fromkeys(name for text in usernames for name in names(text)))
        found = {user.username: user for user in User.objects.filter(username__in=wanted)}
        missing = [name for name in wanted if name not in found]
        if missing and not create:
            raise CommandError(
                f"No user named {', '.join(map(repr, missing))}. Support users must exist: create them in the "
                "admin (Users), or pass --create-support-users to create them here without a password."
            )
        created = []
        for name in missing:
            user = User(username=name)
            user.set_unusable_password()
            try:
                user.full_clean()
            except ValidationError as exc:
                raise CommandError(f"Can't create the user {name!r}: {' '.join(exc.messages)}") from None
            user.save()
            created.append(user)
        return [*found.values(), *created], created

    def summarize(self, account: Account, *, created: bool) -> None:
        """What the account now is, secrets masked."""
        integration = account.integration
        masked = {field: mask_secret(getattr(integration, field)) or "not set" for field in SECRETS}
        self.stdout.write(
            f"{'Created' if created else 'Updated'} {account.name} (workspace {account.intercom_workspace_id}): "
            f"{'enabled' if integration.enabled else 'disabled'}, {integration.mode} mode, "
            f"channels {', '.join(sorted(integration.enabled_channels)) or 'none'}, "
            f"delay {format_duration(integration.channel_delay)}, window {format_duration(integration.suppression_window)}, "
            f"test key {masked['test_api_key']}, production key {masked['production_api_key']}, "
            f"Intercom token {masked['intercom_access_token']}\n"
            f"  {self.summary_of_requests(account)}\n"
            f"  Stella API secret {masked['stella_api_secret']}, {self.summary_of_the_loop(integration)}\n"
            f"  {self.summary_of_whom_to_survey(integration)}"
        )

    @staticmethod
    def summary_of_whom_to_survey(integration: IntegrationSettings) -> str:
        """The rules of whom to survey, as the dry run words them."""
        return ", ".join(f"{name} {value}" for name, value in whom_to_survey_summary(integration).items())

    @staticmethod
    def summary_of_requests(account: Account) -> str:
        """What the account's requests to Stella carry, and who hears of them."""
        integration = account.integration
        support_users = account.support_users.order_by("username").values_list("username", flat=True)
        return (
            f"Stella API URL {integration.stella_api_url or 'Stella’s own'}, brand {integration.brand or 'none'}, "
            f"language {integration.language or 'none'}, do-not-send tags {integration.do_not_send_tags or 'none'}, "
            f"alert recipients {integration.alert_recipients or 'none'}, "
            f"support users {', '.join(support_users) or 'none'}"
        )

    @staticmethod
    def summary_of_the_loop(integration: IntegrationSettings) -> str:
        """What comes back from Stella, and what goes to Intercom."""
        notes = (
            f"on, as {integration.intercom_note_author_id or 'nobody'}" if integration.intercom_notes_enabled else "off"
        )
        return (
            f"employee sync {'on' if integration.employee_sync_enabled else 'off'}, "
            f"feedback return {'on' if integration.feedback_return_enabled else 'off'}, "
            f"reconcile after {format_duration(integration.reconcile_after)}, "
            f"Intercom notes {notes}, Intercom region {integration.intercom_region}\n"
            f"  {Command.summary_of_recovery(integration)}"
        )

    @staticmethod
    def summary_of_recovery(integration: IntegrationSettings) -> str:
        """Service recovery on low ratings: what it does."""
        if integration.low_rating_threshold is None:
            return "Service recovery off"
        actions = [
            f"tag {integration.low_rating_tag}" if integration.low_rating_tag else "",
            "note" if integration.low_rating_note else "",
            f"assign to {integration.low_rating_assign}" if integration.low_rating_assign else "",
            f"webhook {mask_secret(integration.low_rating_webhook)}" if integration.low_rating_webhook else "",
            "email the alert recipients" if integration.alert_recipients else "",
        ]
        done = ", ".join(action for action in actions if action) or "nothing chosen"
        return f"Service recovery at {integration.low_rating_threshold}★ or fewer: {done}"
