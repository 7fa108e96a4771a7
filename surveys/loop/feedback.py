"""What Stella recorded: its feedback records (Data Return), read from the saved cursor, each linked to the survey
request of its conversation and counted per teammate and day; a record that can't be stored as Stella sent it is
quarantined (surveys/loop/quarantine.py) and the pull moves past it."""

from __future__ import annotations

import logging
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from django.conf import settings
from django.db import transaction
from django.db.models import F

from integrations.stella.data import (
    FeedbackPage,
    FeedbackRecord,
    StellaDataClient,
    StellaDataError,
    StellaRateLimited,
)
from integrations.vocabulary import email_normalised
from portal.crypto import SecretUndecryptable
from portal.text import plural, storable_data
from surveys.loop.quarantine import REFUSED, feedback_record_unstorable, feedback_refused_reason, quarantined_feedback
from surveys.loop.reconcile import Reconciliation, survey_requests_reconcile
from surveys.loop.stella import clip, error_text, stella_data_client, stella_sync_state
from surveys.loop.teammate_counts import COUNTED_FIELDS, TeammateCounts
from surveys.models import (
    Account,
    Feedback,
    IntegrationSettings,
    QuarantinedFeedback,
    StellaSyncState,
    SurveyRequest,
)

logger = logging.getLogger(__name__)

Status = SurveyRequest.Status


FEEDBACK_PAGE_SIZE = 1000
REACHED_STELLA = (Status.SENT, Status.AMBIGUOUS)


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
            f"{plural(self.records, 'feedback record')} read in {plural(self.pages, 'page')} ({self.created} new, "
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
        pull.error = error_text(exc)
    except (StellaDataError, SecretUndecryptable) as exc:
        pull.error = error_text(exc)
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
UPDATED_FIELDS = [
    "sequence_id", "ext_interaction_id", "survey_request", "mode", "is_recovery", "channel", "employee_email",
    "employee_custom_id", "employee_name", "team", "delivery_status", "request_created_at", "request_sent_at",
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
        uuid=clip(record.uuid, Feedback, "uuid"),
        sequence_id=record.sequence_id,
        ext_interaction_id=clip(record.ext_interaction_id, Feedback, "ext_interaction_id"),
        survey_request_id=link[0] if link else None,
        mode=mode,
        is_recovery=record.is_recovery,
        channel=clip(record.channel, Feedback, "channel"),
        employee_email=clip(email_normalised(record.employee_email), Feedback, "employee_email"),
        employee_custom_id=clip(record.employee_custom_id.strip(), Feedback, "employee_custom_id"),
        employee_name=clip(record.employee_name, Feedback, "employee_name"),
        team=clip(record.team, Feedback, "team"),
        delivery_status=clip(record.request_delivery_status, Feedback, "delivery_status"),
        request_created_at=record.request_created_at,
        request_sent_at=record.request_sent_at,
        response_received_at=record.response_received_at,
        star_rating=record.star_rating if record.star_rating is None or -32768 <= record.star_rating < 32768 else None,
        comment=record.comment,
        raw=storable_data(record.raw),
    )
