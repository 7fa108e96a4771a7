"""What Stella's records say of our requests: an ambiguous request Stella reports is sent; a request Stella hasn't
reported for the account's reconcile-after time is flagged for a person."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from django.db.models import Exists, OuterRef, Q

from surveys.delivery.survey_requests import InvalidTransition, survey_request_transition
from surveys.loop.stella import stella_sync_state
from surveys.models import (
    Account,
    ApiRequest,
    Feedback,
    StellaSyncState,
    SurveyRequest,
)

logger = logging.getLogger(__name__)

Status = SurveyRequest.Status
Flag = SurveyRequest.ReconcileFlag


FIRST_RECONCILE_LOOKBACK = timedelta(days=7)


@dataclass(frozen=True)
class Reconciliation:
    """What one reconcile changed: ambiguous requests Stella reports, now sent; flags raised and cleared."""

    confirmed_sent: int = 0
    flagged_ambiguous: int = 0
    flagged_unreported: int = 0
    cleared: int = 0

    def __str__(self) -> str:
        return (
            f"{self.confirmed_sent} ambiguous requests confirmed sent, "
            f"{self.flagged_ambiguous + self.flagged_unreported} flagged, {self.cleared} flags cleared"
        )


def survey_requests_reconcile(account: Account, *, now: datetime, flag_unreported: bool = True) -> Reconciliation:
    """What Stella's records say of the account's requests. An ambiguous request Stella has a record of
    reached it: it is sent. A flag clears once Stella reports its request (or an ambiguous one is resent).
    With `flag_unreported` (the pull read all Stella has), requests of the mode in use that Stella hasn't
    reported within the account's reconcile-after time are flagged for a person: ambiguous since their
    last call ("resend?"), or sent."""
    confirmed = _ambiguous_confirm(account, now=now)
    has_feedback = Exists(Feedback.objects.filter(survey_request=OuterRef("pk")))
    cleared = (
        SurveyRequest.objects.filter(account=account)
        .exclude(reconcile_flag=Flag.NONE)
        .filter(has_feedback | (Q(reconcile_flag=Flag.UNCONFIRMED_AMBIGUOUS) & ~Q(status=Status.AMBIGUOUS)))
        .update(reconcile_flag=Flag.NONE, reconciled_at=now)
    )
    flagged_ambiguous = flagged_unreported = 0
    if flag_unreported:
        integration = account.integration
        cutoff = now - integration.reconcile_after
        unreported = SurveyRequest.objects.filter(
            account=account, mode=integration.mode, reconcile_flag=Flag.NONE
        ).exclude(has_feedback)
        recent_call = ApiRequest.objects.filter(survey_request=OuterRef("pk"), created_at__gt=cutoff)
        flagged_ambiguous = (
            unreported.filter(status=Status.AMBIGUOUS)
            .exclude(Exists(recent_call))
            .update(reconcile_flag=Flag.UNCONFIRMED_AMBIGUOUS, reconciled_at=now)
        )
        # Sent requests are many: each is checked once, when it passes the cutoff (reconciled_through onwards).
        state = stella_sync_state(account)
        checked_through = state.reconciled_through or cutoff - FIRST_RECONCILE_LOOKBACK
        sent = unreported.filter(status=Status.SENT, sent_at__gt=checked_through, sent_at__lte=cutoff)
        flagged_unreported = sent.update(reconcile_flag=Flag.UNREPORTED_SENT, reconciled_at=now)
        StellaSyncState.objects.filter(pk=state.pk).update(reconciled_through=cutoff)
    result = Reconciliation(
        confirmed_sent=confirmed,
        flagged_ambiguous=flagged_ambiguous,
        flagged_unreported=flagged_unreported,
        cleared=cleared,
    )
    if confirmed or flagged_ambiguous or flagged_unreported or cleared:
        logger.info("survey_requests.reconciled", extra={"account": account.pk, **result.__dict__})
    return result


def _ambiguous_confirm(account: Account, *, now: datetime) -> int:
    """Ambiguous requests Stella has a record of reached it: sent, saying which record shows it."""
    confirmed = 0
    ambiguous = SurveyRequest.objects.filter(
        account=account, status=Status.AMBIGUOUS, feedback__isnull=False
    ).select_related("feedback")
    for survey_request in ambiguous:
        record = survey_request.feedback
        created = record.request_created_at
        when = f"{created.astimezone(UTC):%Y-%m-%d %H:%M} UTC" if created else "at an unknown time"
        try:
            survey_request_transition(
                survey_request,
                to=Status.SENT,
                status_detail=f"Stella reports it: record {record.uuid}, created {when}",
                sent_at=survey_request.sent_at or created or now,
                reconcile_flag=Flag.NONE,
                reconciled_at=now,
            )
        except InvalidTransition:
            # Moved meanwhile (resent by a person): nothing to confirm any more.
            logger.warning("survey_request.reconcile_skipped", extra={"survey_request": survey_request.pk})
            continue
        confirmed += 1
    return confirmed
