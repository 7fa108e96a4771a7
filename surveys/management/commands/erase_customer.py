from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.utils import timezone

from portal.text import plural
from surveys.accounts.privacy import customer_erase


class Command(BaseCommand):
    help = (
        "Erase one customer's personal data everywhere, in every account: the name, email and Intercom "
        "contact id on their survey requests (waiting ones are cancelled), the customer in the calls logged "
        "for them and Stella's answers and records, the Intercom notes about them, and the raw webhooks of "
        "their conversations. Statuses, reasons, ratings and counts stay."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--email", required=True, help="The customer's email address, in any case.")
        parser.add_argument(
            "--linked-only",
            action="store_true",
            help=(
                "Erase only the webhooks of their conversations, found through the rows those made; skip reading "
                "every stored webhook not yet erased for the email (ignored topics, unknown workspaces)."
            ),
        )

    def handle(self, *args: Any, **options: Any) -> None:
        email = options["email"].strip()
        try:
            erased = customer_erase(email=email, now=timezone.now(), search_bodies=not options["linked_only"])
        except ValueError as exc:
            raise CommandError(f"{exc}: give the customer's email, e.g. --email someone@example.com") from None
        self.stdout.write(
            f"Erased {email}: {plural(erased.survey_requests, 'survey request')} "
            f"({erased.cancelled} waiting {'one' if erased.cancelled == 1 else 'ones'} cancelled), "
            f"{plural(erased.api_requests, 'logged call')}, {plural(erased.intercom_notes, 'Intercom note')}, "
            f"{plural(erased.webhooks, 'webhook')}."
        )
        if erased.in_flight:
            self.stdout.write(
                self.style.WARNING(
                    f"{plural(erased.in_flight, 'request')} {'was' if erased.in_flight == 1 else 'were'} being sent to Stella meanwhile: run this again in a "
                    "minute to erase what that send records."
                )
            )
