from argparse import ArgumentParser
from typing import Any

from django.core.exceptions import ValidationError
from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.urls import reverse
from django.utils import timezone

from portal.text import plural
from surveys.decisions.dry_run import DEFAULT_DAYS, DryRunResult, dry_run, proposed_settings, signed
from surveys.management.commands.account_upsert import duration
from surveys.models import Account

CHANGED_PRINTED = 20


def find_account(key: str) -> Account:
    """By Intercom workspace id, else by the account's id in the portal."""
    accounts = Account.objects.select_related("integration")
    account = accounts.filter(intercom_workspace_id=key).first()
    if account is None and key.isdigit():
        account = accounts.filter(pk=int(key)).first()
    if account is None:
        raise CommandError(f"No account with workspace id or id {key!r}")
    return account


def channel_fields(text: str) -> dict[str, bool]:
    channels = {channel.strip() for channel in text.split(",") if channel.strip()}
    if unknown := channels - {"email", "chat"}:
        raise CommandError(
            f"Unknown {'channel' if len(unknown) == 1 else 'channels'}: {', '.join(sorted(unknown))}; use email and/or chat"
        )
    return {"email_enabled": "email" in channels, "chat_enabled": "chat" in channels}


def table(headers: list[str], rows: list[list[str]], *, right: int) -> list[str]:
    """Columns padded to their widest cell; the last `right` columns aligned right."""
    widths = [max(len(cell) for cell in column) for column in zip(headers, *rows, strict=True)]
    first_right = len(headers) - right
    return [
        "  ".join(
            cell.rjust(width) if index >= first_right else cell.ljust(width)
            for index, (cell, width) in enumerate(zip(line, widths, strict=True))
        ).rstrip()
        for line in [headers, *rows]
    ]


def notes(result: DryRunResult) -> list[str]:
    """What the dry run can't judge, and what it found out of order."""
    found: list[str] = []
    if result.channel_unknown:
        found.append(
            f"{result.channel_unknown} closures ended before their channel was looked up in Intercom: "
            "the channel settings can't change them here."
        )
    if result.replies_unknown and result.proposed_settings["minimum teammate replies"] != "none":
        found.append(
            f"{result.replies_unknown} closures ended before Intercom was asked for their teammates' replies: "
            "the minimum of replies can't change them here."
        )
    if result.zones_unknown:
        found.append(
            f"{result.zones_unknown} closures have no time zone of their customer's (Intercom wasn't asked, or didn't "
            "say): their quiet hours are read in the account's time zone here."
        )
    if result.erased:
        found.append(f"{result.erased} closures lost their customer to the retention: the window can't follow them.")
    if result.baseline_mismatches:
        found.append(
            f"Replayed with the current settings, {result.baseline_mismatches} closures come out otherwise than "
            "they did: the settings changed during these days, or webhooks arrived out of order."
        )
    return found


def report(result: DryRunResult, account: Account, *, changed_printed: int = CHANGED_PRINTED) -> list[str]:
    when = f"{timezone.localtime(result.since):%Y-%m-%d %H:%M} to {timezone.localtime(result.until):%Y-%m-%d %H:%M %Z}"
    lines = [
        f"Dry run for {account} (workspace {account.intercom_workspace_id}): "
        f"{plural(result.closures, 'closure')} from {when}.",
        "Nothing was sent or changed.",
        "",
        *table(
            ["Setting", "Current", "Proposed"],
            [[name, value, result.proposed_settings[name]] for name, value in result.current_settings.items()],
            right=0,
        ),
        "",
        *table(
            ["Outcome", "Reason", "Current", "Proposed", "Change"],
            [
                [row.result.label, row.result.reason_label or "—", f"{row.current:,}", f"{row.proposed:,}"]
                + [signed(row.change)]
                for row in result.rows
            ],
            right=3,
        ),
        "",
        f"{plural(result.changed_count, 'closure')} would come out differently.",
    ]
    lines += notes(result)
    if result.changed:
        shown = result.changed[:changed_printed]
        lines += ["", f"Conversations whose outcome changes (the first {len(shown)} of {result.changed_count}):"]
        lines += table(
            ["Closed", "Conversation", "Channel", "What happened", "What would have", "Survey request"],
            [
                [
                    f"{timezone.localtime(closure.closed_at):%Y-%m-%d %H:%M}",
                    closure.conversation_id,
                    closure.channel_label,
                    ": ".join(filter(None, [closure.current.label, closure.current.reason_label])),
                    ": ".join(filter(None, [closure.proposed.label, closure.proposed.reason_label])),
                    reverse("admin:surveys_surveyrequest_change", args=[closure.survey_request_id]),
                ]
                for closure in shown
            ],
            right=0,
        )
    lines += ["", f"Replayed in {result.seconds:.2f} s ({result.load_seconds:.2f} s reading)."]
    return lines


class Command(BaseCommand):
    help = (
        "What an account's closures of the last days would have come to under other rules, beside what did: "
        "nothing is sent or changed. E.g. manage.py dry_run acme123 --delay 10m --suppression-window 7d"
    )

    def add_arguments(self, parser: CommandParser | ArgumentParser) -> None:
        parser.add_argument("account", help="The account's Intercom workspace id, or its id in the portal.")
        parser.add_argument("--days", type=int, default=DEFAULT_DAYS, help=f"Default {DEFAULT_DAYS}.")
        parser.add_argument("--channels", help="Comma-separated: email, chat, or both.")
        parser.add_argument("--delay", type=duration, help="The channel delay, e.g. 0, 90s, 10m, 2h")
        parser.add_argument("--suppression-window", type=duration, help="e.g. 0 (off), 12h, 7d")
        parser.add_argument("--do-not-send-tags", help="Comma-separated tag names.")
        parser.add_argument("--include-teams", help="Comma-separated Intercom team ids; empty: any team.")
        parser.add_argument("--exclude-teams", help="Comma-separated Intercom team ids; empty: none.")
        parser.add_argument("--min-teammate-replies", type=int, help="0 turns it off.")
        parser.add_argument("--max-days-since-reply", type=int, help="Days; -1 turns it off.")
        parser.add_argument("--sample-percent", type=int, help="1 to 100.")
        parser.add_argument("--attribution", choices=["assignee", "last_replier"])
        parser.add_argument("--time-zone", help="e.g. Europe/Paris")
        parser.add_argument("--quiet-hours", help="HH:MM-HH:MM, e.g. 21:00-08:00; empty: none.")
        parser.add_argument("--quiet-hours-zone", choices=["account", "customer"])
        parser.add_argument("--changed", type=int, default=CHANGED_PRINTED, help="How many changed closures to list.")

    def handle(self, *args: Any, **options: Any) -> None:
        if options["days"] < 1:
            raise CommandError("--days must be at least 1")
        account = find_account(options["account"])
        changes: dict[str, Any] = channel_fields(options["channels"]) if options["channels"] is not None else {}
        for option, name in (
            ("delay", "channel_delay"),
            ("suppression_window", "suppression_window"),
            ("do_not_send_tags", "do_not_send_tags"),
            ("include_teams", "include_teams"),
            ("exclude_teams", "exclude_teams"),
            ("min_teammate_replies", "min_teammate_replies"),
            ("sample_percent", "sample_percent"),
            ("attribution", "attribution"),
            ("time_zone", "time_zone"),
            ("quiet_hours", "quiet_hours"),
            ("quiet_hours_zone", "quiet_hours_zone"),
        ):
            if options[option] is not None:
                changes[name] = options[option]
        if (days := options["max_days_since_reply"]) is not None:
            changes["max_days_since_reply"] = days if days >= 0 else None
        try:
            proposed = proposed_settings(account.integration, **changes)
        except ValidationError as exc:
            raise CommandError(" ".join(exc.messages)) from None
        result = dry_run(account, proposed, days=options["days"])
        self.stdout.write("\n".join(report(result, account, changed_printed=options["changed"])))
