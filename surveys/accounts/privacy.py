"""Personal data: how long customers' names and emails, and the raw webhooks that carry them, are kept,
and erasing one person on request or when Intercom deletes the contact.

What is erased, column by column, is declared once: PERSONAL_TEXT below (a test fails on any text column of any
model that is neither there nor listed as holding no customer text). Kept: statuses, decisions, reasons, verdicts,
outcomes, ratings and the daily counts, so no number on the status page moves. An erased row says so: `erased_at`
on survey requests, webhooks and Intercom notes, and a note where the data was ("(erased 2025-11-28: personal data
is kept 90 days)") in the webhook's body, the note's body and the call's body.
"""

from __future__ import annotations

import json
import logging
import re
import time
from collections import defaultdict
from collections.abc import Iterator, Sequence
from contextlib import suppress
from dataclasses import asdict, dataclass, fields
from datetime import datetime, timedelta
from typing import NamedTuple

from axes.models import AccessFailureLog, AccessLog
from django.conf import settings
from django.db import transaction
from django.db.models import Max, Min, Model, Q, QuerySet
from django_q.models import Failure, Task

from integrations.models import InboundWebhook
from portal.queue import enqueue
from portal.schedules import ERASE_EXPIRED_TASK, send_task_name
from surveys.decisions.decision import CancelReason, customer_zone_found
from surveys.delivery.survey_requests import InvalidTransition, survey_request_transition
from surveys.models import (
    Account,
    ApiRequest,
    ConversationEvent,
    Feedback,
    IntercomNote,
    QuarantinedFeedback,
    SurveyRequest,
)

logger = logging.getLogger(__name__)

Status = SurveyRequest.Status
# Rows changed per statement, and how long one run of the retention job works before a fresh task takes over.
BATCH = 1000
RUN_SECONDS = 10
# Webhook ids whose bodies one statement of the body search reads.
SEARCH_CHUNK = 5000
# Still being decided or sent: the retention job leaves them until they are done.
IN_FLIGHT = (Status.SCHEDULED, Status.SENDING)
ERASED = "[erased]"
ON_REQUEST = "the customer's personal data was erased on request"
CONTACT_DELETED = "the contact was deleted in Intercom"
NOT_POSTED = "Not posted: the customer's personal data was erased first"
AFTER_ERASURE = "written after the customer's personal data was erased"

# Every column that holds a customer's personal text, and what erasure leaves in it. Erasing on request
# (customer_erase), on Intercom's contact.deleted (contact_erase) and after the retention period
# (personal_data_erase_expired) each reach every one of them; tests/surveys/accounts/test_privacy_coverage.py plants a
# person in each and checks, and fails on any text column of any model that is neither here nor in its list of
# columns that hold no customer text.
PERSONAL_TEXT: dict[type[Model], dict[str, str]] = {
    SurveyRequest: {
        "customer_name": "emptied",
        "customer_email": "emptied",
        "customer_id": "emptied, so nothing can look the person up in Intercom again",
        "customer_time_zone": "emptied (a zone as narrow as Pacific/Pitcairn says where they are)",
        "status_detail": "their email, name and contact id cut out (a vendor's message may quote them)",
    },
    ApiRequest: {
        "request_body": "its customer replaced by the erasure note",
        "response_body": "replaced by the erasure note (Stella's answer echoes the request)",
        "error_message": "their email, name and contact id cut out",
    },
    Feedback: {
        "comment": "emptied",
        "raw": "its customer, and every answer's comment, replaced",
    },
    IntercomNote: {
        "body": "replaced by the erasure note (a feedback note quotes the comment); one still waiting is never posted",
    },
    QuarantinedFeedback: {
        "raw": "Stella's record as it came (customer, comments): replaced by the erasure note",
    },
    InboundWebhook: {
        "body": "replaced by the erasure note",
        "parsed": "emptied (what the parser read from the body: the customer's name, email and id)",
        "conversation_key": "emptied (a contact.deleted's key holds the contact id)",
        "error": "a failure's message replaced by the erasure note after its exception type (it may quote the body)",
        "traceback": "emptied (its messages may quote the body)",
    },
    Task: {
        "result": "a failed send's traceback: their email, name and contact id cut out; every task kept by "
        "django-q2 is deleted after the retention period",
    },
}


@dataclass
class Erased:
    """How many rows an erasure changed; `in_flight`: requests being sent meanwhile, worth erasing again."""

    survey_requests: int = 0
    api_requests: int = 0
    webhooks: int = 0
    intercom_notes: int = 0
    cancelled: int = 0
    in_flight: int = 0

    def __iadd__(self, other: Erased) -> Erased:
        for field in fields(self):
            setattr(self, field.name, getattr(self, field.name) + getattr(other, field.name))
        return self

    @property
    def total(self) -> int:
        return self.survey_requests + self.api_requests + self.webhooks + self.intercom_notes


class _Person(NamedTuple):
    """One survey request of the person being erased: what finds the rest of them."""

    pk: int
    account_id: int
    conversation_id: str
    customer_id: str
    customer_email: str


def erasure_note(why: str, *, now: datetime) -> str:
    """What an erased body says instead, so support sees why it is empty."""
    return f"(erased {now:%Y-%m-%d}: {why})"


def survey_requests_expired(*, cutoff: datetime) -> QuerySet[SurveyRequest]:
    """Survey requests stored before `cutoff` still holding a customer, oldest first; not those still in flight."""
    return (
        SurveyRequest.objects.filter(erased_at__isnull=True, created_at__lt=cutoff)
        .exclude(status__in=IN_FLIGHT)
        .order_by("created_at")
    )


def inbound_webhooks_expired(*, cutoff: datetime) -> QuerySet[InboundWebhook]:
    """Webhooks received before `cutoff` and not erased, oldest first; not those still waiting to be processed."""
    return (
        InboundWebhook.objects.filter(erased_at__isnull=True, received_at__lt=cutoff)
        .exclude(status=InboundWebhook.Status.RECEIVED)
        .order_by("received_at")
    )


def personal_data_erase_expired(*, now: datetime, seconds: float = RUN_SECONDS) -> Erased:
    """Erase what has been kept longer than PERSONAL_DATA_RETENTION_DAYS: customers on survey requests
    and all that was written of them (PERSONAL_TEXT), and raw webhooks. A request still waiting or being sent
    keeps its customer until it is done. BATCH rows per transaction, for at most `seconds`; a fresh task takes
    over what is left."""
    days = settings.PERSONAL_DATA_RETENTION_DAYS
    cutoff = now - timedelta(days=days)
    note = erasure_note(f"personal data is kept {days} days", now=now)
    deadline = time.monotonic() + seconds
    erased = Erased()
    survey_requests = survey_requests_expired(cutoff=cutoff)
    webhooks = inbound_webhooks_expired(cutoff=cutoff)
    for pending, erase in ((survey_requests, _survey_requests_erase), (webhooks, _inbound_webhooks_erase)):
        while ids := list(pending.values_list("pk", flat=True)[:BATCH]):
            if time.monotonic() >= deadline:
                enqueue(ERASE_EXPIRED_TASK)
                logger.info("privacy.expired_erased", extra={**asdict(erased), "finished": False})
                return erased
            with transaction.atomic():
                erased += erase(ids, note=note, now=now, retention=True)
    # Stella's records of conversations the portal has no request for (linked ones went with their request).
    unlinked = Feedback.objects.filter(survey_request__isnull=True, first_seen_at__lt=cutoff)
    while ids := list(unlinked.exclude(raw__has_key="erased").values_list("pk", flat=True)[:BATCH]):
        Feedback.objects.filter(pk__in=ids).update(raw={"erased": note}, comment="")
    _quarantined_erase(QuarantinedFeedback.objects.filter(quarantined_at__lt=cutoff), note=note, now=now)
    erased += _written_after_erasure(now=now)
    # django-q2 keeps failed tasks, tracebacks and all: they go by the same rule.
    Task.objects.filter(stopped__lt=cutoff).delete()
    # The login logs name people and addresses too: they go by the same rule.
    AccessLog.objects.filter(attempt_time__lt=cutoff).delete()
    AccessFailureLog.objects.filter(attempt_time__lt=cutoff).delete()
    logger.info("privacy.expired_erased", extra={**asdict(erased), "finished": True})
    return erased


def customer_erase(*, email: str, now: datetime, search_bodies: bool = True) -> Erased:
    """Erase one person everywhere, in every account: their survey requests (by email in any case, and by
    the Intercom contact ids those hold), the calls logged for them, and the webhooks of their conversations.
    With `search_bodies`, also every stored webhook not yet erased whose body mentions one of their emails or
    contact ids (an ignored topic, an unknown workspace), read a chunk of ids at a time."""
    email = email.strip()
    if "@" not in email:
        raise ValueError(f"{email!r} is not an email address")
    note = erasure_note(ON_REQUEST, now=now)
    people = _people(Q(customer_email__iexact=email), account=None)
    erased = _people_erase(people, note=note, now=now)
    # Stella's records name the customer too, even of a conversation the portal never surveyed.
    erased_feedback = _feedback_erase(Feedback.objects.filter(raw__customer__email__iexact=email), note=note)
    erased_feedback += _quarantined_erase(QuarantinedFeedback.objects.filter(raw__icontains=email), note=note, now=now)
    logger.info("privacy.feedback_erased", extra={"records": erased_feedback})
    if search_bodies:
        emails = {email.lower(), *(person.customer_email for person in people if person.customer_email)}
        contact_ids = {person.customer_id for person in people if person.customer_id}
        for ids in _inbound_webhooks_mentioning(emails | contact_ids):
            with transaction.atomic():
                erased += _inbound_webhooks_erase(ids, note=note, now=now)
    logger.info("privacy.customer_erased", extra=asdict(erased))
    return erased


def contact_erase(*, account: Account, contact_id: str, webhook: InboundWebhook | None, now: datetime) -> Erased:
    """Intercom deleted a contact: erase them in this account as `customer_erase` would, found by their
    contact id and the emails their requests hold, then the deletion notification itself (it names them)."""
    note = erasure_note(CONTACT_DELETED, now=now)
    erased = _people_erase(_people(Q(account=account, customer_id=contact_id), account=account), note=note, now=now)
    if webhook is not None:
        erased += _inbound_webhooks_erase([webhook.pk], note=note, now=now)
        webhook.body, webhook.parsed, webhook.headers, webhook.conversation_key = note, "", {}, ""
        webhook.erased_at = now
    logger.info("privacy.contact_erased", extra={"account": account.pk, **asdict(erased)})
    return erased


def _people(first: Q, *, account: Account | None) -> list[_Person]:
    """The survey requests `first` finds, and those with the same emails (within `account`, if given)
    or the same contact ids (always within their account: Intercom ids are per workspace)."""
    columns = ("pk", "account_id", "conversation_id", "customer_id", "customer_email")
    found = [_Person(*row) for row in SurveyRequest.objects.filter(first).values_list(*columns)]
    same = _same_people(found, account=account)
    if not same:
        return found
    return [_Person(*row) for row in SurveyRequest.objects.filter(first | same).values_list(*columns)]


def _same_people(found: list[_Person], *, account: Account | None) -> Q:
    """Requests to the same emails (within `account`, if given) or contact ids (within their account) as `found`."""
    same = Q()
    emails = {person.customer_email for person in found if person.customer_email}
    if emails:
        same |= Q(customer_email__in=emails, **({"account": account} if account else {}))
    contacts: dict[int, set[str]] = defaultdict(set)
    for person in found:
        if person.customer_id:
            contacts[person.account_id].add(person.customer_id)
    for account_id, contact_ids in contacts.items():
        same |= Q(account_id=account_id, customer_id__in=contact_ids)
    return same


def _people_erase(people: Sequence[_Person], *, note: str, now: datetime) -> Erased:
    """Cancel what still waits to be sent to them, then erase them and their conversations' webhooks."""
    ids = [person.pk for person in people]
    erased = Erased()
    for survey_request in SurveyRequest.objects.filter(pk__in=ids, status=Status.SCHEDULED):
        with suppress(InvalidTransition):  # a sender took it a moment ago: counted as in flight below
            survey_request_transition(survey_request, to=Status.CANCELLED, reason=CancelReason.ERASED, status_detail="")
            erased.cancelled += 1
    erased.in_flight = SurveyRequest.objects.filter(pk__in=ids, status=Status.SENDING).count()
    for chunk in _chunks(ids):
        with transaction.atomic():
            erased += _survey_requests_erase(chunk, note=note, now=now)
    for chunk in _chunks(_conversation_webhooks(people)):
        with transaction.atomic():
            erased += _inbound_webhooks_erase(chunk, note=note, now=now)
    _quarantined_erase(_quarantined_of(people), note=note, now=now)
    return erased


def _quarantined_of(people: Sequence[_Person]) -> QuerySet[QuarantinedFeedback]:
    """Stella's quarantined records of these people: of their conversations, or naming one of their emails (a
    quarantined record is linked to no request)."""
    of_them = Q(pk__in=[])
    for person in people:
        of_them |= Q(account_id=person.account_id, ext_interaction_id=person.conversation_id)
    for email in {person.customer_email for person in people if person.customer_email}:
        of_them |= Q(raw__icontains=email)
    return QuarantinedFeedback.objects.filter(of_them)


def _quarantined_erase(records: QuerySet[QuarantinedFeedback], *, note: str, now: datetime) -> int:
    return records.filter(erased_at__isnull=True).update(raw=json.dumps({"erased": note}), erased_at=now)


def _conversation_webhooks(people: Sequence[_Person]) -> list[int]:
    """The webhooks of these people's conversations not yet erased: every close recorded (theirs or
    not) and every event (reopen, reply, tag…). Found through the rows they made, not their bodies."""
    conversations: dict[int, set[str]] = defaultdict(set)
    for person in people:
        conversations[person.account_id].add(person.conversation_id)
    if not conversations:
        return []
    same_conversation = Q()
    for account_id, conversation_ids in conversations.items():
        same_conversation |= Q(account_id=account_id, conversation_id__in=conversation_ids)
    webhook_ids = {
        *SurveyRequest.objects.filter(same_conversation).values_list("inbound_webhook_id", flat=True),
        *ConversationEvent.objects.filter(same_conversation).values_list("inbound_webhook_id", flat=True),
    }
    return list(
        InboundWebhook.objects.filter(pk__in=webhook_ids - {None}, erased_at__isnull=True).values_list("pk", flat=True)
    )


def _inbound_webhooks_mentioning(words: set[str]) -> Iterator[list[int]]:
    """Ids of webhooks not yet erased whose body (or what was parsed from it) holds one of `words` (any case),
    SEARCH_CHUNK ids per statement."""
    pending = InboundWebhook.objects.filter(erased_at__isnull=True)
    bounds = pending.aggregate(low=Min("pk"), high=Max("pk"))
    if bounds["low"] is None:
        return
    mentions = Q()
    for word in words:
        mentions |= Q(body__icontains=word) | Q(parsed__icontains=word)
    for start in range(bounds["low"], bounds["high"] + 1, SEARCH_CHUNK):
        chunk = pending.filter(mentions, pk__gte=start, pk__lt=start + SEARCH_CHUNK)
        if ids := list(chunk.values_list("pk", flat=True)):
            yield ids


def _survey_requests_erase(ids: list[int], *, note: str, now: datetime, retention: bool = False) -> Erased:
    """Erase the customer on these survey requests and on all that was written of them: the calls logged, Stella's
    records, the Intercom notes, the failed send tasks. `retention` leaves alone any that went back in flight
    since they were chosen."""
    requests = SurveyRequest.objects.filter(pk__in=ids)
    if retention:
        requests = requests.exclude(status__in=IN_FLIGHT)
    people: dict[int, tuple[str, str, str]] = {}
    quoted = []
    columns = ("pk", "customer_email", "customer_name", "customer_id", "customer_time_zone", "status_detail")
    for pk, email, name, contact_id, zone, detail in requests.values_list(*columns):
        people[pk] = (email, name, contact_id)
        # A quiet-hours detail names the customer's zone ("goes at … Pacific/Pitcairn (the customer's time zone)").
        found_zone = zone if customer_zone_found(zone) else ""
        if (scrubbed := _scrub(detail, *people[pk], found_zone)) != detail:
            quoted.append(SurveyRequest(pk=pk, status_detail=scrubbed))
    SurveyRequest.objects.bulk_update(quoted, ["status_detail"], batch_size=BATCH)
    ids = list(people)
    calls = list(
        ApiRequest.objects.filter(survey_request_id__in=ids).only(
            "pk", "survey_request_id", "request_body", "error_message"
        )
    )
    for call in calls:
        if isinstance(call.request_body, dict) and "customer" in call.request_body:
            call.request_body = {**call.request_body, "customer": {"erased": note}}
        call.error_message = _scrub(call.error_message, *people[call.survey_request_id])
    ApiRequest.objects.bulk_update(calls, ["request_body", "error_message"], batch_size=BATCH)
    # Stella's answer to a request echoes it, customer and all.
    ApiRequest.objects.filter(survey_request_id__in=ids).exclude(response_body="").update(response_body=note)
    _feedback_erase(Feedback.objects.filter(survey_request_id__in=ids), note=note)
    notes = _intercom_notes_erase(IntercomNote.objects.filter(survey_request_id__in=ids), note=note, now=now)
    _send_failures_scrub(people)
    # updated_at stays: a sender holding one of these still completes its conditional update.
    count = requests.update(customer_email="", customer_name="", customer_id="", customer_time_zone="", erased_at=now)
    return Erased(survey_requests=count, api_requests=len(calls), intercom_notes=notes)


def _intercom_notes_erase(notes: QuerySet[IntercomNote], *, note: str, now: datetime) -> int:
    """A note quotes the customer's comment (and a message may quote them): its body becomes `note`. One still
    waiting is never posted, or Intercom would get the erasure note; one being posted this moment goes as it was."""
    notes = notes.filter(erased_at__isnull=True)
    notes.filter(status=IntercomNote.Status.WAITING).update(status=IntercomNote.Status.FAILED, error=NOT_POSTED)
    return notes.update(body=note, erased_at=now)


def _send_failures_scrub(people: dict[int, tuple[str, str, str]]) -> None:
    """The tracebacks django-q2 kept of these requests' failed sends: an exception's message may quote the customer."""
    by_name = {send_task_name(pk): values for pk, values in people.items()}
    for failure in Failure.objects.filter(name__in=by_name).only("id", "name", "result"):
        if (scrubbed := _scrub(str(failure.result), *by_name[failure.name])) != failure.result:
            failure.result = scrubbed
            failure.save(update_fields=["result"])


def _written_after_erasure(*, now: datetime) -> Erased:
    """What was written of a customer after their request was erased: a note the notes job had in hand as the
    erasure ran, a record Stella sent again (an edited answer). Erased in turn, BATCH at a time."""
    note = erasure_note(AFTER_ERASURE, now=now)
    notes = IntercomNote.objects.filter(erased_at__isnull=True, survey_request__erased_at__isnull=False)
    erased = Erased()
    while ids := list(notes.values_list("pk", flat=True)[:BATCH]):
        erased.intercom_notes += _intercom_notes_erase(IntercomNote.objects.filter(pk__in=ids), note=note, now=now)
    refilled = Feedback.objects.filter(survey_request__erased_at__isnull=False).filter(
        ~Q(comment="") | (Q(raw__has_key="customer") & ~Q(raw__customer__has_key="erased"))
    )
    while ids := list(refilled.values_list("pk", flat=True)[:BATCH]):
        _feedback_erase(Feedback.objects.filter(pk__in=ids), note=note)
    return erased


def _feedback_erase(records: QuerySet[Feedback], *, note: str) -> int:
    """Stella's records of the customer: their comment, and the customer and comments in the raw record."""
    erased = []
    for record in records.only("pk", "raw"):
        raw = dict(record.raw) if isinstance(record.raw, dict) else {}
        if "customer" in raw:
            raw["customer"] = {"erased": note}
        answers = raw.get("answers")
        if isinstance(answers, dict):
            raw["answers"] = {
                key: ({**answer, "comment": ERASED} if isinstance(answer, dict) and answer.get("comment") else answer)
                for key, answer in answers.items()
            }
        record.raw, record.comment = raw, ""
        erased.append(record)
    Feedback.objects.bulk_update(erased, ["raw", "comment"], batch_size=BATCH)
    return len(erased)


def _inbound_webhooks_erase(ids: list[int], *, note: str, now: datetime, retention: bool = False) -> Erased:
    """Replace these webhooks' bodies with `note` and drop what was parsed from them, their headers, tracebacks and
    contact keys; a failure's message, which may quote the body, becomes `note` after its exception type. Status,
    topic and ids stay.
    `retention` leaves alone any put back to be processed (replayed) since they were chosen."""
    webhooks = InboundWebhook.objects.filter(pk__in=ids)
    if retention:
        webhooks = webhooks.exclude(status=InboundWebhook.Status.RECEIVED)
    failures = []
    for pk, error in webhooks.filter(status=InboundWebhook.Status.FAILED).values_list("pk", "error"):
        kind, separator, _ = error.partition(":")
        failures.append(InboundWebhook(pk=pk, error=f"{kind}: {note}" if separator else note))
    InboundWebhook.objects.bulk_update(failures, ["error"], batch_size=BATCH)
    erased = webhooks.update(body=note, parsed="", headers={}, traceback="", conversation_key="", erased_at=now)
    return Erased(webhooks=erased)


def _scrub(text: str, *values: str) -> str:
    """`text` without each of `values` (an email, a name, a contact id: a whole word, any case): a vendor's message
    may quote them."""
    for value in values:
        if len(value) >= 2 and value.casefold() in text.casefold():
            text = re.sub(rf"(?<!\w){re.escape(value)}(?!\w)", ERASED, text, flags=re.IGNORECASE)
    return text


def _chunks(ids: list[int]) -> Iterator[list[int]]:
    for start in range(0, len(ids), BATCH):
        yield ids[start : start + BATCH]
