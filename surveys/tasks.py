"""django-q2 entry points: a few lines each, no rules. Schedules and queued tasks name these by
dotted path (portal/schedules.py), so a rename strands whatever is queued under the old one."""

import time

from django.conf import settings
from django.utils import timezone

from surveys.accounts.privacy import personal_data_erase_expired
from surveys.delivery.dispatch import (
    survey_request_take_next,
    survey_requests_dispatch_account,
    survey_requests_hand_over,
)
from surveys.delivery.sending import survey_request_send, survey_requests_send_due
from surveys.intake.process import inbound_webhooks_process_pending
from surveys.loop.notes import intercom_notes_write_all
from surveys.loop.recovery import recovery_all
from surveys.loop.sync import stella_sync_all
from surveys.reporting.alerts import accounts_check_error_rates


def process_inbound_webhooks() -> int:
    return inbound_webhooks_process_pending()


def send_survey_request(survey_request_id: int) -> str:
    """Send it; then, its slot free, its account's next due requests, for up to SEND_CHAIN_SECONDS; then hand the
    slot on through the queue (surveys/delivery/dispatch.py). Returns what came of the first."""
    # Well inside the task's timeout (a send may take Stella's own timeout after it), whatever the setting says.
    deadline = time.monotonic() + min(settings.SEND_CHAIN_SECONDS, settings.Q_CLUSTER["timeout"] / 4)
    outcomes: list[str] = []
    pk: int | None = survey_request_id
    while pk is not None:
        try:
            survey_request = survey_request_send(pk, now=timezone.now())
        except Exception:
            survey_requests_hand_over(pk, now=timezone.now())
            raise
        outcomes.append(survey_request.status)
        more = time.monotonic() < deadline
        pk = survey_request_take_next(survey_request.account_id, now=timezone.now()) if more else None
    survey_requests_dispatch_account(survey_request.account_id, now=timezone.now())
    return outcomes[0]


def send_due_survey_requests() -> int:
    return survey_requests_send_due(now=timezone.now())


def check_error_rates() -> int:
    return len(accounts_check_error_rates(now=timezone.now()))


def erase_expired_personal_data() -> int:
    return personal_data_erase_expired(now=timezone.now()).total


def sync_with_stella() -> int:
    return stella_sync_all(now=timezone.now())


def write_intercom_notes() -> int:
    return intercom_notes_write_all(now=timezone.now())


def recover_low_ratings() -> int:
    return recovery_all(now=timezone.now())
