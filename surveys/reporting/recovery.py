"""Service recovery on the satisfaction report: of the low ratings in the chosen days and accounts that started
recovery (surveys/loop/recovery.py), how many are recovered (every action done) and how many are open (an action
waiting, under way or failed)."""

from __future__ import annotations

from dataclasses import dataclass

from django.db.models import Exists, OuterRef

from surveys.models import Feedback, RecoveryAction
from surveys.reporting.status import StatusFilter


@dataclass(frozen=True)
class RecoveryCounts:
    recovered: int
    open: int

    @property
    def total(self) -> int:
        return self.recovered + self.open


def recovery_counts(status_filter: StatusFilter) -> RecoveryCounts:
    """By the day Stella created the request, as the report counts; two queries."""
    low = Feedback.objects.filter(
        account__in=status_filter.accounts,
        request_created_at__date__gte=status_filter.date_from,
        request_created_at__date__lte=status_filter.date_to,
    )
    actions = RecoveryAction.objects.filter(feedback=OuterRef("pk"))
    started = low.filter(Exists(actions)).count()
    still_open = low.filter(Exists(actions.exclude(status=RecoveryAction.Status.DONE))).count()
    return RecoveryCounts(recovered=started - still_open, open=still_open)
