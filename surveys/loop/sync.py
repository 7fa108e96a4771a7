"""Closing the loop with Stella: who Stella knows, what it recorded, and what that says of our requests.

Three jobs per account, each taking `now`, and one entry point for the schedule:

- `stella_employees_sync`: Stella's employees (User Management), and which teammates it won't recognise;
- `stella_feedback_pull`: Stella's feedback records (Data Return), from the saved cursor, each linked to
  the survey request of its conversation and counted per teammate and day; a record that can't be stored
  as Stella sent it is quarantined (surveys/loop/quarantine.py) and the pull moves past it;
- `survey_requests_reconcile`: an ambiguous request Stella reports is sent; a request Stella hasn't
  reported for the account's reconcile-after time is flagged for a person;
- `stella_sync_all`: all three for every account that has an API secret and the feature on, each job
  through `stella_sync_job_run`, which keeps a crash's error and traceback on the account's sync state.

Both reads use the account's current-mode key and its API secret, with the same base URL as sending.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import datetime, timedelta

from django.db.models import Q

from portal.errors import exception_traceback
from surveys.loop.employees import EmployeeSync, stella_employees_sync
from surveys.loop.feedback import FeedbackPull, stella_feedback_pull
from surveys.loop.stella import account_secrets, error_text
from surveys.models import (
    Account,
    StellaSyncState,
)

logger = logging.getLogger(__name__)


EMPLOYEE_SYNC_EVERY = timedelta(hours=1)


def stella_sync_all(*, now: datetime) -> int:
    """For every account with a Stella API secret: its employees, at most hourly, if employee sync is on; its
    feedback records and their reconciling, every run, if feedback return is on. One account's failure is
    logged and kept on its sync state; the others go on. Returns how many accounts were synced without error."""
    accounts = (
        Account.objects.select_related("integration")
        .filter(integration__isnull=False)
        .exclude(integration__stella_api_secret="")
        .filter(Q(integration__employee_sync_enabled=True) | Q(integration__feedback_return_enabled=True))
        .order_by("pk")
    )
    states = {state.account_id: state for state in StellaSyncState.objects.filter(account__in=accounts)}
    succeeded = 0
    for account in accounts:
        integration = account.integration
        state = states.get(account.pk)
        ok = True
        last_attempt = state.employees_attempted_at if state else None
        if integration.employee_sync_enabled and (last_attempt is None or last_attempt <= now - EMPLOYEE_SYNC_EVERY):
            ok &= not stella_sync_job_run(account, job="employees", now=now).error
        if integration.feedback_return_enabled:
            ok &= not stella_sync_job_run(account, job="feedback", now=now).error
        succeeded += ok
    return succeeded


SYNC_JOBS: dict[str, Callable[..., EmployeeSync | FeedbackPull]] = {
    "employees": stella_employees_sync,
    "feedback": stella_feedback_pull,
}


def stella_sync_job_run(account: Account, *, job: str, now: datetime) -> EmployeeSync | FeedbackPull:
    """Run one of the account's SYNC_JOBS (the schedule's, or a CSM's "now"). Whatever it raises is logged and kept on
    the account's sync state, the error in words for a CSM and the traceback for an operator, and comes
    back as the result's error: it stops only this job."""
    try:
        return SYNC_JOBS[job](account, now=now)
    except Exception as exc:
        logger.exception(f"stella.{job}.crashed", extra={"account": account.pk})
        error = error_text(exc)
        StellaSyncState.objects.update_or_create(
            account=account,
            defaults={
                f"{job}_error": error,
                f"{job}_traceback": exception_traceback(exc, secrets=account_secrets(account)),
            },
        )
        return EmployeeSync(error=error) if job == "employees" else FeedbackPull(error=error)
