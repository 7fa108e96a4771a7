from typing import Any

from django.core.management.base import BaseCommand

from surveys.reporting.counts import daily_counts_rebuild


class Command(BaseCommand):
    help = (
        "Rebuild the status page's daily counts from the log. They are kept current as requests change; "
        "this repairs them. Writers wait while it runs."
    )

    def handle(self, *args: Any, **options: Any) -> None:
        self.stdout.write(f"Rebuilt {daily_counts_rebuild()} daily counts from the log.")
