"""Every django-q2 schedule the portal runs, declared once, and the tasks they and the code queue.

`schedules_ensure()` makes the database agree with this list; it runs after every migrate and
when `make run` starts, so no migration holds a schedule. Tasks are named by dotted path:
a task already queued or scheduled under an old path fails, so a rename keeps the old name.
"""

from __future__ import annotations

from dataclasses import dataclass

from django.conf import settings
from django.db import transaction
from django_q.models import Schedule

PROCESS_WEBHOOKS_TASK = "surveys.tasks.process_inbound_webhooks"
SEND_TASK = "surveys.tasks.send_survey_request"
SEND_DUE_TASK = "surveys.tasks.send_due_survey_requests"
CHECK_ERROR_RATES_TASK = "surveys.tasks.check_error_rates"
ERASE_EXPIRED_TASK = "surveys.tasks.erase_expired_personal_data"
STELLA_SYNC_TASK = "surveys.tasks.sync_with_stella"
INTERCOM_NOTES_TASK = "surveys.tasks.write_intercom_notes"
RECOVERY_TASK = "surveys.tasks.recover_low_ratings"


def send_task_name(survey_request_id: int) -> str:
    """What a survey request's send task is queued under: django-q2 keeps a failed one, traceback and all, by it."""
    return f"send survey request {survey_request_id}"


@dataclass(frozen=True)
class Every:
    name: str
    func: str
    minutes: int


SCHEDULES = (
    # A webhook queues a drain when none has older work, and drains queue more as the backlog needs (surveys/intake/process.py);
    # this catches any a lost queue message left waiting.
    Every("Process received Intercom webhooks", PROCESS_WEBHOOKS_TASK, minutes=1),
    # Queue whatever is due and nobody holds, and recover what a dead sender left.
    Every("Send due survey requests", SEND_DUE_TASK, minutes=1),
    # Raise or lower each account's error-rate alert.
    Every("Check error rates", CHECK_ERROR_RATES_TASK, minutes=1),
    # Erase customers' names and emails, and raw webhooks, kept longer than PERSONAL_DATA_RETENTION_DAYS.
    Every("Erase expired personal data", ERASE_EXPIRED_TASK, minutes=24 * 60),
    # Read back from Stella, for accounts with an API secret: employees (hourly), feedback records and what they
    # say of ambiguous or unreported requests. Every 15 minutes, as Stella advises batch systems (STELLA_SYNC_MINUTES).
    Every("Read back from Stella: employees and feedback", STELLA_SYNC_TASK, minutes=settings.STELLA_SYNC_MINUTES),
    # Post internal notes on Intercom conversations, for accounts that turn them on.
    Every("Write notes back to Intercom", INTERCOM_NOTES_TASK, minutes=1),
    # Service recovery on low ratings (tag, note, assign, webhook, email), for accounts with a threshold.
    Every("Service recovery on low ratings", RECOVERY_TASK, minutes=1),
)
# Schedules no longer declared, deleted where an older version left them. Delayed sends and retries
# are queued on time by `manage.py runcluster`'s poller now, not by a one-off schedule moved to each.
RETIRED_SCHEDULES = ("Send survey requests coming due",)


def schedules_ensure() -> None:
    """Create or correct every schedule above, and delete retired ones; leaves run times alone, so it is
    safe to call at any time."""
    with transaction.atomic():
        for every in SCHEDULES:
            Schedule.objects.update_or_create(
                name=every.name,
                defaults={
                    "func": every.func,
                    "schedule_type": Schedule.MINUTES,
                    "minutes": every.minutes,
                    "repeats": -1,
                },
            )
        Schedule.objects.filter(name__in=RETIRED_SCHEDULES).delete()
