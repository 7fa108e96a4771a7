"""Closing the loop with Stella: who Stella knows, what it recorded, and what that says of our requests.

Three jobs per account, each taking `now`, and one entry point for the schedule:

- `stella_employees_sync`: Stella's employees (User Management), and which teammates it won't recognise;
- `stella_feedback_pull`: Stella's feedback records (Data Return), from the saved cursor, each linked to
  the survey request of its conversation and counted per teammate and day; a record that can't be stored
  as Stella sent it is quarantined (surveys/quarantine.py) and the pull moves past it;
- `survey_requests_reconcile`: an ambiguous request Stella reports is sent; a request Stella hasn't
  reported for the account's reconcile-after time is flagged for a person;
- `stella_sync_all`: all three for every account that has an API secret and the feature on, each job
  through `stella_sync_job_run`, which keeps a crash's error and traceback on the account's sync state.

Both reads use the account's current-mode key and its API secret, with the same base URL as sending.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from typing import Any

from django.conf import settings
from django.db import connection, transaction
from django.db.models import Exists, F, Model, OuterRef, Q, QuerySet

from integrations.stella.data import (
    FeedbackPage,
    FeedbackRecord,
    StellaDataClient,
    StellaDataError,
    StellaEmployeeRecord,
    StellaRateLimited,
)
from integrations.vocabulary import AssigneeKind
from portal.crypto import SecretUndecryptable
from portal.errors import exception_traceback
from portal.fields import EncryptedTextField
from portal.text import is_storable, storable, storable_data
from surveys.counts import day_of
from surveys.models import (
    Account,
    ApiRequest,
    Feedback,
    IntegrationSettings,
    QuarantinedFeedback,
    StellaEmployee,
    StellaSyncState,
    SurveyRequest,
    Teammate,
    TeammateDailyCount,
)
from surveys.quarantine import REFUSED, feedback_record_unstorable, feedback_refused_reason, quarantined_feedback
from surveys.services import InvalidTransition, survey_request_transition

logger = logging.getLogger(__name__)

Status = SurveyRequest.Status
Flag = SurveyRequest.ReconcileFlag
Match = Teammate.StellaMatch

EMPLOYEE_SYNC_EVERY = timedelta(hours=1)
FEEDBACK_PAGE_SIZE = 1000
# The statuses in which a request most likely reached Stella: a record of its conversation is theirs first.
REACHED_STELLA = (Status.SENT, Status.AMBIGUOUS)
ERROR_LENGTH = 500  # StellaSyncState's error columns
IN_CHUNK = 500
# Teammates who closed conversations this recently are checked against Stella's employees at each sync.
TEAMMATES_SEEN_SINCE = timedelta(days=30)
# The first reconcile of an account looks at requests sent this long before its cutoff, not at all history.
FIRST_RECONCILE_LOOKBACK = timedelta(days=7)


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
            f"{self.employees} Stella employees ({self.removed} removed); {self.matched} teammates matched, "
            f"{self.unmatched} Stella won't recognise"
        )


@dataclass
class FeedbackPull:
    """What one feedback pull did: pages read, records stored (new ones among them), and whether it reached
    the end of what Stella has (`caught_up`); or why it didn't run, or stopped."""

    pages: int = 0
    records: int = 0
    created: int = 0
    linked: int = 0
    quarantined: int = 0
    caught_up: bool = False
    skipped: str = ""
    error: str = ""
    retry_at: datetime | None = None
    reconciled: Reconciliation | None = None

    def __str__(self) -> str:
        if self.skipped:
            return self.skipped
        text = (
            f"{self.records} feedback records read in {self.pages} pages ({self.created} new, "
            f"{self.linked} linked to survey requests)"
        )
        if self.quarantined:
            text += f"; {self.quarantined} quarantined: they can't be stored as Stella sent them"
        if self.error:
            text += f"; stopped: {self.error}"
        elif not self.caught_up:
            text += "; more to read next run"
        if self.reconciled:
            text += f"; {self.reconciled}"
        return text


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


def stella_sync_state(account: Account) -> StellaSyncState:
    state, _ = StellaSyncState.objects.get_or_create(account=account)
    return state


def stella_data_client(integration: IntegrationSettings) -> StellaDataClient:
    """A client for the account's Stella with the key in use and the API secret (SecretUndecryptable if either
    can't be read), at the same base URL requests are sent to."""
    return StellaDataClient(
        base_url=integration.stella_base_url,
        api_key=integration.api_key_for(integration.mode),
        api_secret=integration.stella_secret,
    )


def _error_text(exc: Exception) -> str:
    # StellaDataError and SecretUndecryptable messages are written to be shown; nothing else's is. Stella's
    # words in them are storable like any text from outside.
    if isinstance(exc, StellaDataError | SecretUndecryptable):
        return storable(str(exc))[:ERROR_LENGTH]
    return f"Unexpected error ({type(exc).__name__}): see the portal's logs"[:ERROR_LENGTH]


def _secrets(account: Account) -> list[str]:
    """The account's stored secrets (keys, token, API secret), to mask should an error quote one."""
    integration = getattr(account, "integration", None)
    fields = IntegrationSettings._meta.concrete_fields
    return [getattr(integration, field.attname, "") for field in fields if isinstance(field, EncryptedTextField)]


# Employees -----------------------------------------------------------------------------------------------------


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
        error = _error_text(exc)
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


def _clip(value: str, model: type[Model], name: str) -> str:
    """Stella sets no length on names: cut what would not fit its column rather than lose the row."""
    max_length = getattr(model._meta.get_field(name), "max_length", None)
    return value[:max_length] if max_length else value


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
            stella_id=_clip(record.id, StellaEmployee, "stella_id"),
            email=_clip(record.email.strip().lower(), StellaEmployee, "email"),
            custom_id=_clip(record.custom_id.strip(), StellaEmployee, "custom_id"),
            name=_clip(" ".join(filter(None, (record.first_name, record.last_name))), StellaEmployee, "name"),
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
    emails = {employee.email.casefold() for employee in active if employee.email}
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
    if email.strip() and email.strip().casefold() in emails:
        return Match.EMAIL
    return Match.UNMATCHED


def teammate_match_refresh(teammate: Teammate, *, now: datetime) -> Teammate:
    """Check one teammate again against the Stella employees last synced (a CSM gave them a custom id, say);
    left unchecked if the account has none synced."""
    employees = StellaEmployee.objects.filter(account_id=teammate.account_id, active=True)
    if teammate.is_bot or not StellaEmployee.objects.filter(account_id=teammate.account_id).exists():
        return teammate
    emails = {email.casefold() for email in employees.exclude(email="").values_list("email", flat=True)}
    custom_ids = set(employees.exclude(custom_id="").values_list("custom_id", flat=True))
    teammate.stella_match = _match(
        email=teammate.email, custom_id=teammate.stella_custom_id, emails=emails, custom_ids=custom_ids
    )
    teammate.stella_checked_at = now
    Teammate.objects.filter(pk=teammate.pk).update(stella_match=teammate.stella_match, stella_checked_at=now)
    return teammate


def teammates_unknown_to_stella(account: Account) -> QuerySet[Teammate]:
    """The account's teammates (bots aside) for whom the last employee sync found no active Stella employee:
    their surveys would come back "Employee not found"."""
    return Teammate.objects.filter(account=account, is_bot=False, stella_match=Match.UNMATCHED).order_by("name")


# Feedback ------------------------------------------------------------------------------------------------------


def stella_feedback_pull(
    account: Account, *, now: datetime, client: StellaDataClient | None = None, max_pages: int | None = None
) -> FeedbackPull:
    """Read Stella's feedback records after the saved cursor, a page at a time until an empty page (or
    `max_pages`, STELLA_FEEDBACK_MAX_PAGES), storing each page with the cursor in one transaction; then
    reconcile the account's requests with what Stella reported. A record that can't be stored as Stella
    sent it is quarantined, and the cursor moves past it. A 429 stops the pull, and no pull runs before the
    time Stella asked for."""
    integration = account.integration
    if skipped := _feedback_pull_off(integration):
        return skipped
    state = stella_sync_state(account)
    if state.feedback_retry_at and state.feedback_retry_at > now:
        return FeedbackPull(
            skipped=f"Waiting until {state.feedback_retry_at.astimezone(UTC):%H:%M:%S} UTC, as Stella asked (429).",
            retry_at=state.feedback_retry_at,
        )
    pull = FeedbackPull()
    try:
        _feedback_pages_store(
            account,
            integration,
            client or stella_data_client(integration),
            pull,
            cursor=state.feedback_cursor,
            max_pages=max_pages or settings.STELLA_FEEDBACK_MAX_PAGES,
            now=now,
        )
    except StellaRateLimited as exc:
        pull.retry_at = now + timedelta(seconds=exc.retry_after)
        pull.error = _error_text(exc)
    except (StellaDataError, SecretUndecryptable) as exc:
        pull.error = _error_text(exc)
    _feedback_pull_record(account, state, pull, now=now)
    pull.reconciled = survey_requests_reconcile(account, now=now, flag_unreported=pull.caught_up)
    return pull


def _feedback_pull_off(integration: IntegrationSettings) -> FeedbackPull | None:
    """Why the account's settings allow no pull, if they don't."""
    if not integration.feedback_return_enabled:
        return FeedbackPull(skipped="Feedback return is turned off for this account.")
    if not integration.stella_api_secret:
        return FeedbackPull(skipped="No Stella API secret: feedback return needs one.")
    return None


def _feedback_pages_store(
    account: Account,
    integration: IntegrationSettings,
    client: StellaDataClient,
    pull: FeedbackPull,
    *,
    cursor: int | None,
    max_pages: int,
    now: datetime,
) -> None:
    """Store pages after `cursor` until an empty one or `max_pages`, counting them in `pull`."""
    for _ in range(max_pages):
        page = client.feedback_page(after=cursor, limit=FEEDBACK_PAGE_SIZE)
        if page.cursor is None:
            pull.caught_up = True
            return
        stored = _feedback_page_store(account, integration, page, cursor=cursor, now=now)
        if stored is None:
            return  # another pull of this account stored this page first: it carries on from there
        cursor = stored.cursor
        pull.pages += 1
        pull.records += len(page.records) + len(page.unreadable)
        pull.created += stored.created
        pull.linked += stored.linked
        pull.quarantined += stored.quarantined


def _feedback_pull_record(account: Account, state: StellaSyncState, pull: FeedbackPull, *, now: datetime) -> None:
    """Keep how the pull went on the account's sync state, and log it."""
    fields: dict[str, object] = {
        "feedback_retry_at": pull.retry_at,
        "feedback_error": pull.error,
        "feedback_traceback": "",
    }
    if not pull.error:
        fields["feedback_synced_at"] = now
    StellaSyncState.objects.filter(pk=state.pk).update(**fields)
    log = logger.warning if pull.error else logger.info
    log(
        "stella.feedback.pulled",
        extra={
            "account": account.pk,
            "pages": pull.pages,
            "records": pull.records,
            "quarantined": pull.quarantined,
            "error": pull.error,
        },
    )


@dataclass(frozen=True)
class StoredPage:
    cursor: int
    created: int
    linked: int
    quarantined: int


@dataclass
class _Stored:
    """What storing some records did: how many were new, how many linked, and their uuids."""

    created: int = 0
    linked: int = 0
    uuids: list[str] = field(default_factory=list)

    def __iadd__(self, other: _Stored) -> _Stored:
        self.created += other.created
        self.linked += other.linked
        self.uuids += other.uuids
        return self


@dataclass
class _Candidate:
    pk: int
    status: str
    closed_at: datetime
    mode: str
    taken: bool


def _feedback_page_store(
    account: Account, integration: IntegrationSettings, page: FeedbackPage, *, cursor: int | None, now: datetime
) -> StoredPage | None:
    """Store one page and advance the cursor past it, in one transaction: of two pulls of the account, only
    the one that moves the cursor from `cursor` stores the page (None for the other: nothing is stored).
    Its records are stored (`_feedback_records_store`) but for those that can't be as Stella sent them,
    which are quarantined; should the database refuse the page anyway, each record is stored on its own,
    a savepoint each, and one it refuses is quarantined. A quarantined record of a uuid now stored is gone:
    Stella sent a version that could be."""
    assert page.cursor is not None, "an empty page is the end: nothing to store"
    records, quarantine = _feedback_page_sorted(account, page, now=now)
    new_cursor = page.cursor if cursor is None else max(page.cursor, cursor)
    with transaction.atomic():
        claimed = StellaSyncState.objects.filter(account=account, feedback_cursor=cursor).update(
            feedback_cursor=new_cursor
        )
        if not claimed:
            return None
        try:
            with transaction.atomic():
                stored = _feedback_records_store(account, integration, records)
        except REFUSED:
            logger.warning("stella.feedback.page_refused", extra={"account": account.pk}, exc_info=True)
            stored = _feedback_records_store_each(account, integration, records, quarantine=quarantine, now=now)
        if stored.uuids:
            QuarantinedFeedback.objects.filter(account=account, uuid__in=stored.uuids).delete()
        if quarantine:
            # A page read again (its cursor set back) quarantines nothing twice.
            QuarantinedFeedback.objects.bulk_create(quarantine, ignore_conflicts=True)
            logger.warning(
                "stella.feedback.quarantined",
                extra={"account": account.pk, "sequence_ids": [row.sequence_id for row in quarantine]},
            )
        if stored.created:
            StellaSyncState.objects.filter(account=account).update(
                feedback_records=F("feedback_records") + stored.created
            )
    return StoredPage(cursor=new_cursor, created=stored.created, linked=stored.linked, quarantined=len(quarantine))


def _feedback_page_sorted(
    account: Account, page: FeedbackPage, *, now: datetime
) -> tuple[list[FeedbackRecord], list[QuarantinedFeedback]]:
    """The page's records to store (of a uuid that comes twice, its newest version), in sequence order; and
    the rows that quarantine the rest, unread or unstorable."""
    quarantine = [quarantined_feedback(account, item, reason=item.reason, now=now) for item in page.unreadable]
    latest: dict[str, FeedbackRecord] = {}
    for record in page.records:
        if record.uuid not in latest or record.sequence_id > latest[record.uuid].sequence_id:
            latest[record.uuid] = record
    records = []
    for record in sorted(latest.values(), key=lambda record: record.sequence_id):
        if reason := feedback_record_unstorable(record):
            quarantine.append(quarantined_feedback(account, record, reason=reason, now=now))
        else:
            records.append(record)
    return records, quarantine


def _feedback_records_store_each(
    account: Account,
    integration: IntegrationSettings,
    records: list[FeedbackRecord],
    *,
    quarantine: list[QuarantinedFeedback],
    now: datetime,
) -> _Stored:
    """Store records one at a time, each in a savepoint; add one the database refuses to `quarantine`."""
    stored = _Stored()
    for record in records:
        try:
            with transaction.atomic():
                stored += _feedback_records_store(account, integration, [record])
        except REFUSED as exc:
            logger.warning(
                "stella.feedback.record_refused",
                extra={"account": account.pk, "sequence_id": record.sequence_id},
                exc_info=True,
            )
            quarantine.append(quarantined_feedback(account, record, reason=feedback_refused_reason(exc), now=now))
    return stored


def _feedback_records_store(
    account: Account, integration: IntegrationSettings, records: list[FeedbackRecord]
) -> _Stored:
    """Upsert records (one per uuid) by uuid, link each to its survey request, and move the teammates'
    counts by the difference each record makes, in a bounded number of queries."""
    if not records:
        return _Stored()
    existing = {
        row.uuid: row
        for row in Feedback.objects.filter(account=account, uuid__in=[record.uuid for record in records]).only(
            *COUNTED_FIELDS
        )
    }
    links = _links(account, records, existing)
    rows = [
        _feedback_row(
            account, record, link=links.get(record.uuid), old=existing.get(record.uuid), integration=integration
        )
        for record in records
    ]
    Feedback.objects.bulk_create(
        rows, update_conflicts=True, unique_fields=["account", "uuid"], update_fields=UPDATED_FIELDS
    )
    TeammateCounts.of_changes(rows, existing).write(account_id=account.pk)
    return _Stored(
        created=sum(1 for record in records if record.uuid not in existing),
        linked=sum(1 for row in rows if row.survey_request_id is not None),
        uuids=[record.uuid for record in records],
    )


def _links(
    account: Account, records: Iterable[FeedbackRecord], existing: dict[str, Feedback]
) -> dict[str, tuple[int, str]]:
    """The survey request (pk, mode) each record is Stella's record of, by conversation id within the
    account: one a record was linked to stays; otherwise the latest request of the conversation that
    reached Stella (sent or ambiguous), else its latest, that no other record has. Recovery records are
    Stella's own follow-ups: never linked. One query."""
    wanted = [record for record in records if record.ext_interaction_id and not record.is_recovery]
    conversation_ids = {record.ext_interaction_id for record in wanted}
    if not conversation_ids:
        return {}
    by_conversation, by_pk = _link_candidates(account, conversation_ids)
    links: dict[str, tuple[int, str]] = {}
    unlinked = []
    for record in wanted:
        old = existing.get(record.uuid)
        if old is not None and old.survey_request_id in by_pk:
            kept = by_pk[old.survey_request_id]
            links[record.uuid] = (kept.pk, kept.mode)
        else:
            unlinked.append(record)
    return links | _links_chosen(unlinked, by_conversation)


def _link_candidates(
    account: Account, conversation_ids: set[str]
) -> tuple[dict[str, list[_Candidate]], dict[int, _Candidate]]:
    """The account's survey requests of these conversations, by conversation and by pk."""
    by_conversation: dict[str, list[_Candidate]] = {}
    by_pk: dict[int, _Candidate] = {}
    candidates = SurveyRequest.objects.filter(account=account, conversation_id__in=conversation_ids).values_list(
        "pk", "conversation_id", "status", "closed_at", "mode", "feedback__uuid"
    )
    for pk, conversation_id, status, closed_at, mode, linked_uuid in candidates:
        candidate = _Candidate(pk=pk, status=status, closed_at=closed_at, mode=mode, taken=linked_uuid is not None)
        by_conversation.setdefault(conversation_id, []).append(candidate)
        by_pk[pk] = candidate
    return by_conversation, by_pk


def _links_chosen(
    unlinked: list[FeedbackRecord], by_conversation: dict[str, list[_Candidate]]
) -> dict[str, tuple[int, str]]:
    """For each record, oldest first, its conversation's latest request that reached Stella, else its latest,
    that no other record has taken."""
    links: dict[str, tuple[int, str]] = {}
    for record in sorted(unlinked, key=lambda record: record.sequence_id):
        free = [candidate for candidate in by_conversation.get(record.ext_interaction_id, []) if not candidate.taken]
        if not free:
            continue
        chosen = max(
            free, key=lambda candidate: (candidate.status in REACHED_STELLA, candidate.closed_at, candidate.pk)
        )
        chosen.taken = True
        links[record.uuid] = (chosen.pk, chosen.mode)
    return links


# What a stored row needs for its old contribution to the counts and its link; what an upsert rewrites.
COUNTED_FIELDS = (
    "uuid", "survey_request", "mode", "is_recovery", "channel", "employee_email", "employee_custom_id",
    "employee_name", "delivery_status", "request_created_at", "request_sent_at", "response_received_at",
    "star_rating",
)  # fmt: skip
UPDATED_FIELDS = [
    "sequence_id", "ext_interaction_id", "survey_request", "mode", "is_recovery", "channel", "employee_email",
    "employee_custom_id", "employee_name", "delivery_status", "request_created_at", "request_sent_at",
    "response_received_at", "star_rating", "comment", "raw", "updated_at",
]  # fmt: skip


def _feedback_row(
    account: Account,
    record: FeedbackRecord,
    *,
    link: tuple[int, str] | None,
    old: Feedback | None,
    integration: IntegrationSettings,
) -> Feedback:
    # The mode it counts under: its request's; else what it counted under before; else the account's now.
    mode = link[1] if link else (old.mode if old is not None else integration.mode)
    return Feedback(
        account=account,
        uuid=_clip(record.uuid, Feedback, "uuid"),
        sequence_id=record.sequence_id,
        ext_interaction_id=_clip(record.ext_interaction_id, Feedback, "ext_interaction_id"),
        survey_request_id=link[0] if link else None,
        mode=mode,
        is_recovery=record.is_recovery,
        channel=_clip(record.channel, Feedback, "channel"),
        employee_email=_clip(record.employee_email.strip().lower(), Feedback, "employee_email"),
        employee_custom_id=_clip(record.employee_custom_id.strip(), Feedback, "employee_custom_id"),
        employee_name=_clip(record.employee_name, Feedback, "employee_name"),
        delivery_status=_clip(record.request_delivery_status, Feedback, "delivery_status"),
        request_created_at=record.request_created_at,
        request_sent_at=record.request_sent_at,
        response_received_at=record.response_received_at,
        star_rating=record.star_rating if record.star_rating is None or -32768 <= record.star_rating < 32768 else None,
        comment=record.comment,
        raw=storable_data(record.raw),
    )


# Teammates' daily counts ---------------------------------------------------------------------------------------

COUNT_COLUMNS = ("requested", "delivered", "responded", "rating_sum", "rating_count")


def feedback_delivered(delivery_status: str, request_sent_at: datetime | None) -> bool:
    """Stella sent the survey and it didn't bounce for good ("Not sent: …" and "Hard bounce" weren't delivered)."""
    status = delivery_status.strip().lower()
    return request_sent_at is not None and not status.startswith("not sent") and "hard bounce" not in status


@dataclass
class TeammateCounts:
    """Changes to TeammateDailyCount, by (day, mode, teammate, channel), collected for one write."""

    deltas: dict[tuple[date, str, str, str], list[int]] = field(default_factory=dict)
    names: dict[tuple[date, str, str, str], str] = field(default_factory=dict)

    @classmethod
    def of_changes(cls, rows: list[Feedback], existing: dict[str, Feedback]) -> TeammateCounts:
        """What storing `rows` over the `existing` ones (by uuid) changes."""
        deltas = cls()
        for row in rows:
            if (old := existing.get(row.uuid)) is not None:
                deltas.add(old, sign=-1)
            deltas.add(row, sign=1)
        return deltas

    def add(self, row: Feedback, *, sign: int) -> None:
        """Add (sign 1) or take back (sign -1) what one record counts: nothing for a recovery record, or
        one with no request time to give it a day."""
        if row.is_recovery or row.request_created_at is None:
            return
        key = (
            day_of(row.request_created_at),
            row.mode,
            _clip(row.employee_email or row.employee_custom_id, TeammateDailyCount, "teammate"),
            _clip(row.channel, TeammateDailyCount, "channel"),
        )
        values = (
            1,
            int(feedback_delivered(row.delivery_status, row.request_sent_at)),
            int(row.response_received_at is not None),
            row.star_rating or 0,
            int(row.star_rating is not None),
        )
        totals = self.deltas.setdefault(key, [0] * len(COUNT_COLUMNS))
        for index, value in enumerate(values):
            totals[index] += sign * value
        if sign > 0 and row.employee_name:
            self.names[key] = _clip(row.employee_name, TeammateDailyCount, "teammate_name")

    def write(self, *, account_id: int) -> None:
        """Add every non-zero change to its count, creating counts that don't exist yet: one statement per
        chunk of rows (a page's records share few days and teammates), in a fixed order so two writers
        lock shared counts alike. Raw SQL for the same reason as DailyCount's (surveys/counts.py): the ORM
        has no increment-on-conflict."""
        rows = sorted((key, totals) for key, totals in self.deltas.items() if any(totals) or key in self.names)
        if not rows:
            return
        day_field = TeammateDailyCount._meta.get_field("day")
        chunk = max(1, (connection.features.max_query_params or 999) // len(_TEAMMATE_COUNT_NAMES))
        for start in range(0, len(rows), chunk):
            part = rows[start : start + chunk]
            params: list[Any] = []
            for (day, mode, teammate, channel), totals in part:
                day_value = day_field.get_db_prep_value(day, connection)
                name = self.names.get((day, mode, teammate, channel), "")
                params += [account_id, day_value, mode, teammate, channel, name, *totals]
            with connection.cursor() as cursor:
                cursor.execute(_teammate_counts_upsert(len(part)), params)


# Reconciling ---------------------------------------------------------------------------------------------------


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


# For the schedule ----------------------------------------------------------------------------------------------


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
        error = _error_text(exc)
        StellaSyncState.objects.update_or_create(
            account=account,
            defaults={f"{job}_error": error, f"{job}_traceback": exception_traceback(exc, secrets=_secrets(account))},
        )
        return EmployeeSync(error=error) if job == "employees" else FeedbackPull(error=error)


_TEAMMATE_COUNT_KEYS = ("account", "day", "mode", "teammate", "channel")
_TEAMMATE_COUNT_NAMES = (*_TEAMMATE_COUNT_KEYS, "teammate_name", *COUNT_COLUMNS)


def _teammate_counts_upsert(rows: int) -> str:
    """INSERT of `rows` rows of _TEAMMATE_COUNT_NAMES that adds the counts to those already there, and keeps the
    name given unless it is empty."""
    quote = connection.ops.quote_name
    table = quote(TeammateDailyCount._meta.db_table)
    column = {field.name: quote(field.column) for field in TeammateDailyCount._meta.concrete_fields if field.column}
    updates = [f"{column[name]} = {table}.{column[name]} + EXCLUDED.{column[name]}" for name in COUNT_COLUMNS]
    updates.append(
        f"{column['teammate_name']} = CASE WHEN EXCLUDED.{column['teammate_name']} <> '' "
        f"THEN EXCLUDED.{column['teammate_name']} ELSE {table}.{column['teammate_name']} END"
    )
    placeholders = ", ".join(["(" + ", ".join(["%s"] * len(_TEAMMATE_COUNT_NAMES)) + ")"] * rows)
    return (
        f"INSERT INTO {table} ({', '.join(column[name] for name in _TEAMMATE_COUNT_NAMES)}) VALUES {placeholders} "
        f"ON CONFLICT ({', '.join(column[name] for name in _TEAMMATE_COUNT_KEYS)}) DO UPDATE SET {', '.join(updates)}"
    )
