"""Feedback records Stella sent that the portal can't store as sent: why not, and the row that keeps them raw.

Free text in a record is made storable as it is read (integrations/stella/data.py); what is left can't be
changed without changing what the record says: an identifier holding a NUL or half a surrogate pair (the
record or conversation it names would be another), a date no database holds, or a record the database
refused. Such a record is quarantined so the pull moves past it (surveys/loop/feedback.py), and listed on the
account's page for a CSM to raise with Stella.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from django.db import DataError, IntegrityError
from django.db.models import QuerySet

from integrations.stella.data import FeedbackRecord, UnreadableRecord
from portal.text import is_storable, storable, storable_json
from surveys.models import Account, Feedback, QuarantinedFeedback

# What the database (or its driver) raises for data it won't take (SQLite's driver a UnicodeEncodeError, and an
# OverflowError for a number past 64 bits), as opposed to being unreachable or locked (OperationalError) or our
# own SQL being wrong (ProgrammingError): only these quarantine a record; anything else fails the pull, to retry.
REFUSED = (DataError, IntegrityError, UnicodeError, OverflowError)
# A day to spare at each end of what Python and the databases hold, so no time zone takes a date past it.
EARLIEST = datetime(1, 1, 2, tzinfo=UTC)
LATEST = datetime(9999, 12, 30, tzinfo=UTC)
# Each identifier, and what a changed one would get wrong.
IDENTIFIERS = {
    "uuid": ("uuid", "it would name another record"),
    "ext_interaction_id": ("conversation id (ext_interaction_id)", "it could link another conversation"),
}
DATES = ("request_created_at", "request_sent_at", "response_received_at")


def feedback_record_unstorable(record: FeedbackRecord) -> str:
    """Why `record` can't be stored as Stella sent it, in plain words; "" if it can."""
    for name, (label, wrong) in IDENTIFIERS.items():
        if not is_storable(getattr(record, name)):
            return f"Its {label} holds a NUL or half a surrogate pair: changed, {wrong}."
    uuid_length = Feedback._meta.get_field("uuid").max_length or 0
    if len(record.uuid) > uuid_length:
        # Cut, it could become another record's uuid; a long conversation id is cut instead: no conversation
        # of ours has one that long, so it links nothing either way.
        return f"Its uuid is longer than {uuid_length} characters."
    for name in DATES:
        moment: datetime | None = getattr(record, name)
        if moment is not None and not EARLIEST <= moment <= LATEST:
            return f"Its {name} ({moment.isoformat()}) is outside the dates the portal can store."
    return ""


def feedback_refused_reason(exc: Exception) -> str:
    """A record the database refused, in words for a CSM: the error itself (it may quote the record) is logged."""
    return f"The database refused to store it ({type(exc).__name__}): the portal's logs say why."


def quarantined_feedback(
    account: Account, item: FeedbackRecord | UnreadableRecord, *, reason: str, now: datetime
) -> QuarantinedFeedback:
    """The row that keeps `item` as Stella sent it, with `reason`; not saved."""
    raw: Any = item.raw
    return QuarantinedFeedback(
        account=account,
        sequence_id=item.sequence_id,
        uuid=_fitted(item.uuid, "uuid"),
        ext_interaction_id=_fitted(item.ext_interaction_id, "ext_interaction_id"),
        reason=_fitted(reason, "reason"),
        raw=storable_json(raw),
        quarantined_at=now,
    )


def quarantined_feedback_of(account: Account) -> QuerySet[QuarantinedFeedback]:
    """The account's quarantined feedback records, latest first."""
    return QuarantinedFeedback.objects.filter(account=account).defer("raw").order_by("-quarantined_at", "-pk")


def _fitted(text: str, name: str) -> str:
    """For showing: what can't be stored as U+FFFD, cut to the column."""
    max_length = getattr(QuarantinedFeedback._meta.get_field(name), "max_length", None)
    return storable(text)[:max_length]
