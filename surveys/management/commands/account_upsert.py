from argparse import ArgumentParser, ArgumentTypeError
from datetime import timedelta
from typing import Any

from django.core.exceptions import ValidationError
from django.core.management.base import BaseCommand, CommandError

from portal.durations import format_duration, parse_duration_text
from portal.redaction import mask_secret
from surveys.accounts import account_upsert
from surveys.models import IntegrationSettings


def duration(text: str) -> timedelta:
    try:
        return parse_duration_text(text)
    except ValueError as exc:
        raise ArgumentTypeError(str(exc)) from None


class Command(BaseCommand):
    help = (
        "Create or update an account and its integration settings, for scripted onboarding. "
        "Only the options given change; e.g. "
        "manage.py account_upsert acme123 --name Acme --test-api-key KEY --channel-delay 10m --suppression-window 7d"
    )

    def add_arguments(self, parser: ArgumentParser) -> None:
        parser.add_argument("workspace_id", help="The Intercom workspace id (app_id on webhooks).")
        parser.add_argument("--name")
        parser.add_argument("--enable", dest="enabled", action="store_true", default=None)
        parser.add_argument("--disable", dest="enabled", action="store_false")
        parser.add_argument("--mode", choices=IntegrationSettings.Mode.values)
        parser.add_argument("--test-api-key")
        parser.add_argument("--production-api-key")
        parser.add_argument("--intercom-access-token")
        parser.add_argument("--channels", help="Comma-separated: email, chat, or both.")
        parser.add_argument("--channel-delay", type=duration, help="e.g. 0, 90s, 10m, 2h")
        parser.add_argument("--suppression-window", type=duration, help="e.g. 0 (off), 12h, 7d")
        parser.add_argument("--do-not-send-tags", help="Comma-separated tag names.")
        parser.add_argument("--brand")
        parser.add_argument("--language")

    def handle(self, *args: Any, **options: Any) -> None:
        fields = {
            name: options[name]
            for name in (
                "enabled",
                "mode",
                "test_api_key",
                "production_api_key",
                "intercom_access_token",
                "channel_delay",
                "suppression_window",
                "do_not_send_tags",
                "brand",
                "language",
            )
            if options[name] is not None
        }
        # A key pasted with a stray space or newline would be refused by Stella, or break the header.
        fields = {name: value.strip() if isinstance(value, str) else value for name, value in fields.items()}
        if options["channels"] is not None:
            channels = {channel.strip() for channel in options["channels"].split(",") if channel.strip()}
            if unknown := channels - {"email", "chat"}:
                raise CommandError(f"Unknown channel(s): {', '.join(sorted(unknown))}; use email and/or chat")
            fields["email_enabled"] = "email" in channels
            fields["chat_enabled"] = "chat" in channels
        try:
            account, created = account_upsert(workspace_id=options["workspace_id"], name=options["name"], **fields)
        except ValidationError as exc:
            raise CommandError(
                "; ".join(f"{field}: {' '.join(errors)}" for field, errors in exc.message_dict.items())
            ) from None
        integration = account.integration
        self.stdout.write(
            f"{'Created' if created else 'Updated'} {account.name} (workspace {account.intercom_workspace_id}): "
            f"{'enabled' if integration.enabled else 'disabled'}, {integration.mode} mode, "
            f"channels {', '.join(sorted(integration.enabled_channels)) or 'none'}, "
            f"delay {format_duration(integration.channel_delay)}, window {format_duration(integration.suppression_window)}, "
            f"test key {mask_secret(integration.test_api_key) or 'not set'}, "
            f"production key {mask_secret(integration.production_api_key) or 'not set'}"
        )
