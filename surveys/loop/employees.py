"""Who Stella knows: the account's copy of Stella's employees (User Management), and which teammates Stella won't
recognise."""

from __future__ import annotations

import logging
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta

from django.db import transaction
from django.db.models import QuerySet

from integrations import messages
from integrations.stella.data import (
    StellaDataClient,
    StellaDataError,
    StellaEmployeeRecord,
)
from integrations.vocabulary import AssigneeKind, email_normalised
from portal.crypto import SecretUndecryptable
from portal.text import is_storable, plural
from surveys.loop.stella import IN_CHUNK, clip, error_text, stella_data_client, stella_sync_state
from surveys.models import (
    Account,
    StellaEmployee,
    StellaSyncState,
    SurveyRequest,
    Teammate,
)

logger = logging.getLogger(__name__)

Match = Teammate.StellaMatch


TEAMMATES_SEEN_SINCE = timedelta(days=30)


@dataclass(frozen=True)
class EmployeeSync:
    """What one employee sync did, or why it didn't run (`skipped`) or failed (`error`)."""

    employees: int = 0
    removed: int = 0
    matched: int = 0
    unmatched: int = 0
    skipped: str = ""
    error: str = ""

    def __str__(self) -> str:
        if self.skipped or self.error:
            return self.skipped or f"Employee sync failed: {self.error}"
        return (
            f"{plural(self.employees, 'Stella employee')} ({self.removed} removed); "
            f"{plural(self.matched, 'teammate')} matched, "
            f"{self.unmatched} Stella won't recognise"
        )


def stella_employees_sync(account: Account, *, now: datetime, client: StellaDataClient | None = None) -> EmployeeSync:
    """Keep the account's copy of Stella's employees, and mark each teammate (bots aside) by whether Stella
    will recognise them: by the custom id when one is set (Stella is told it instead of the email), else by
    email; only an active employee counts. A failure is kept on the sync state; a success clears it."""
    integration = account.integration
    if not integration.employee_sync_enabled:
        return EmployeeSync(skipped="Employee sync is turned off for this account.")
    if not integration.stella_api_secret:
        return EmployeeSync(skipped="No Stella API secret: employee sync needs one.")
    state = stella_sync_state(account)
    StellaSyncState.objects.filter(pk=state.pk).update(employees_attempted_at=now)
    try:
        records = (client or stella_data_client(integration)).employees()
    except (StellaDataError, SecretUndecryptable) as exc:
        error = error_text(exc)
        StellaSyncState.objects.filter(pk=state.pk).update(employees_error=error, employees_traceback="")
        logger.warning("stella.employees.sync_failed", extra={"account": account.pk, "error": error})
        return EmployeeSync(error=error)
    with transaction.atomic():
        employees, removed = _employees_store(account, records, now=now)
        matched, unmatched = _teammates_match(account, employees, now=now)
        StellaSyncState.objects.filter(pk=state.pk).update(
            employees_synced_at=now, employees_error="", employees_traceback=""
        )
    result = EmployeeSync(employees=len(employees), removed=removed, matched=matched, unmatched=unmatched)
    logger.info("stella.employees.synced", extra={"account": account.pk, "employees": len(employees)})
    return result


def _employees_store(
    account: Account, records: Iterable[StellaEmployeeRecord], *, now: datetime
) -> tuple[list[StellaEmployee], int]:
    """Upsert the listed employees by Stella id and delete those no longer listed; returns the employees
    and how many were deleted."""
    by_id: dict[str, StellaEmployee] = {}
    for record in records:
        if not record.id or not is_storable(record.id):
            continue  # nothing to keep it by
        by_id[record.id] = StellaEmployee(
            account=account,
            stella_id=clip(record.id, StellaEmployee, "stella_id"),
            email=clip(email_normalised(record.email), StellaEmployee, "email"),
            custom_id=clip(record.custom_id.strip(), StellaEmployee, "custom_id"),
            name=clip(" ".join(filter(None, (record.first_name, record.last_name))), StellaEmployee, "name"),
            active=record.active,
            synced_at=now,
        )
    employees = list(by_id.values())
    StellaEmployee.objects.bulk_create(
        employees,
        update_conflicts=True,
        unique_fields=["account", "stella_id"],
        update_fields=["email", "custom_id", "name", "active", "synced_at"],
    )
    listed = {employee.stella_id for employee in employees}
    stored = StellaEmployee.objects.filter(account=account).values_list("pk", "stella_id")
    vanished = [pk for pk, stella_id in stored if stella_id not in listed]
    for start in range(0, len(vanished), IN_CHUNK):
        StellaEmployee.objects.filter(pk__in=vanished[start : start + IN_CHUNK]).delete()
    return employees, len(vanished)


def _teammates_seen(account: Account, *, now: datetime) -> None:
    """The teammates who closed the account's conversations lately, kept as Teammate rows (those the send
    path never had to look up included), so each is checked against Stella before it costs a request."""
    seen = (
        SurveyRequest.objects.filter(
            account=account, assignee_kind=AssigneeKind.ADMIN, closed_at__gte=now - TEAMMATES_SEEN_SINCE
        )
        .exclude(teammate_id="")
        .values_list("teammate_id", "teammate_name", "teammate_email")
        .distinct()
    )
    Teammate.objects.bulk_create(
        [
            Teammate(account=account, intercom_id=intercom_id, name=name, email=email)
            for intercom_id, name, email in seen
        ],
        ignore_conflicts=True,  # known already: their own record (and custom id) stands
    )


def _teammates_match(account: Account, employees: list[StellaEmployee], *, now: datetime) -> tuple[int, int]:
    """Set every teammate's stella_match, in one update per outcome; returns (matched, unmatched)."""
    _teammates_seen(account, now=now)
    by_match = _teammates_by_match(account, [employee for employee in employees if employee.active])
    for match, pks in by_match.items():
        for start in range(0, len(pks), IN_CHUNK):
            Teammate.objects.filter(pk__in=pks[start : start + IN_CHUNK]).update(
                stella_match=match, stella_checked_at=now
            )
    return len(by_match[Match.EMAIL]) + len(by_match[Match.CUSTOM_ID]), len(by_match[Match.UNMATCHED])


def _teammates_by_match(account: Account, active: list[StellaEmployee]) -> dict[str, list[int]]:
    """The account's teammates (bots aside) by how they match these active employees."""
    emails = {email_normalised(employee.email) for employee in active if employee.email}
    custom_ids = {employee.custom_id for employee in active if employee.custom_id}
    by_match: dict[str, list[int]] = {match: [] for match in (Match.EMAIL, Match.CUSTOM_ID, Match.UNMATCHED)}
    teammates = Teammate.objects.filter(account=account, is_bot=False).values_list("pk", "email", "stella_custom_id")
    for pk, email, custom_id in teammates:
        by_match[_match(email=email, custom_id=custom_id, emails=emails, custom_ids=custom_ids)].append(pk)
    return by_match


def _match(*, email: str, custom_id: str, emails: set[str], custom_ids: set[str]) -> str:
    # As the request is made (FeedbackRequest.as_json): with a custom id, Stella is told only that.
    if custom_id.strip():
        return Match.CUSTOM_ID if custom_id.strip() in custom_ids else Match.UNMATCHED
    if email.strip() and email_normalised(email) in emails:
        return Match.EMAIL
    return Match.UNMATCHED


def teammate_match_refresh(teammate: Teammate, *, now: datetime) -> Teammate:
    """Check one teammate again against the Stella employees last synced (a CSM gave them a custom id, say);
    left unchecked if the account has none synced."""
    employees = StellaEmployee.objects.filter(account_id=teammate.account_id, active=True)
    if teammate.is_bot or not StellaEmployee.objects.filter(account_id=teammate.account_id).exists():
        return teammate
    emails = {email_normalised(email) for email in employees.exclude(email="").values_list("email", flat=True)}
    custom_ids = set(employees.exclude(custom_id="").values_list("custom_id", flat=True))
    teammate.stella_match = _match(
        email=teammate.email, custom_id=teammate.stella_custom_id, emails=emails, custom_ids=custom_ids
    )
    teammate.stella_checked_at = now
    Teammate.objects.filter(pk=teammate.pk).update(stella_match=teammate.stella_match, stella_checked_at=now)
    return teammate


def teammates_unknown_to_stella(account: Account) -> QuerySet[Teammate]:
    """The account's teammates (bots aside) for whom the last employee sync found no active Stella employee:
    Stella would refuse their surveys (integrations/messages.py, EMPLOYEE_UNKNOWN)."""
    return Teammate.objects.filter(account=account, is_bot=False, stella_match=Match.UNMATCHED).order_by("name")


# ---- Before a resend ----


@dataclass(frozen=True)
class ResendRecheck:
    """What reading Stella's employees again before a resend found."""

    still_unknown: list[SurveyRequest]  # Stella still has no active employee for their teammate: not to resend
    unchecked: list[str]  # per account that couldn't be read again, why (its requests are resent as before)


def employee_not_found(survey_request: SurveyRequest) -> bool:
    """Refused because Stella has no such employee: by Stella, or by the portal from its copy of Stella's list."""
    return survey_request.status == SurveyRequest.Status.INVALID and (
        survey_request.reason == messages.EMPLOYEE_UNKNOWN.code
        or survey_request.detail_code == messages.STELLA_EMPLOYEE_NOT_FOUND.code
    )


def teammates_recheck_before_resend(survey_requests: Iterable[SurveyRequest], *, now: datetime) -> ResendRecheck:
    """Before resending requests refused because Stella has no such employee, read each account's Stella employees once more
    (one employee list per account, the employee sync's), so a teammate added in Stella, or given their custom id,
    since is recognised at once ("add them in Stella, then resend" works in one action), and one Stella still
    doesn't know is left alone rather than refused again."""
    by_account: dict[int, list[SurveyRequest]] = {}
    for survey_request in survey_requests:
        if employee_not_found(survey_request):
            by_account.setdefault(survey_request.account_id, []).append(survey_request)
    still_unknown: list[SurveyRequest] = []
    unchecked: list[str] = []
    for requests in by_account.values():
        account = Account.objects.select_related("integration").get(pk=requests[0].account_id)
        synced = stella_employees_sync(account, now=now)
        if synced.skipped or synced.error:
            unchecked.append(f"{account}: {synced.skipped or synced.error}")
            continue
        still_unknown += _unmatched(account, requests)
    return ResendRecheck(still_unknown=still_unknown, unchecked=unchecked)


def _unmatched(account: Account, requests: list[SurveyRequest]) -> list[SurveyRequest]:
    """Those of an account's requests whose teammate matches none of its active Stella employees, by email or by the
    custom id a CSM gave the teammate."""
    active = StellaEmployee.objects.filter(account=account, active=True)
    emails = {email_normalised(email) for email in active.exclude(email="").values_list("email", flat=True)}
    custom_ids = set(active.exclude(custom_id="").values_list("custom_id", flat=True))
    custom_id_of = dict(
        Teammate.objects.filter(account=account, intercom_id__in=[r.teammate_id for r in requests if r.teammate_id])
        .exclude(stella_custom_id="")
        .values_list("intercom_id", "stella_custom_id")
    )
    return [
        survey_request
        for survey_request in requests
        if _match(
            email=survey_request.teammate_email,
            custom_id=custom_id_of.get(survey_request.teammate_id, "") if survey_request.teammate_id else "",
            emails=emails,
            custom_ids=custom_ids,
        )
        == Match.UNMATCHED
    ]
