from typing import Any

from django.core.management.base import BaseCommand

from surveys.loop.teammate_counts import teammate_counts_rebuild
from surveys.reporting.counts import daily_counts_rebuild


class Command(BaseCommand):
    help = (
        "Rebuild the status page's daily counts from the log, and the satisfaction report's teammate counts from "
        "Stella's stored feedback records. Both are kept current as requests and records change; this repairs "
        "them. Writers wait while it runs."
    )

    def handle(self, *args: Any, **options: Any) -> None:
        self.stdout.write(f"Rebuilt {daily_counts_rebuild()} daily counts from the log.")
        self.stdout.write(f"Rebuilt {teammate_counts_rebuild()} teammate counts from Stella's feedback records.")
