"""Claiming waiting webhooks for a drain: a batch of the oldest, in turns across workspaces, each conversation's in
order; on PostgreSQL several drains side by side, each holding a lease on its batch's conversations and a drain slot."""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field

from django.conf import settings
from django.db import DatabaseError, connection
from django.db.models import QuerySet

from integrations.models import InboundWebhook
from surveys.models import Account

logger = logging.getLogger(__name__)

CONTESTED_PAUSE_SECONDS = 0.02  # before trying a contested drain slot again

# Advisory lock namespaces (the first of pg_*advisory*_lock's two keys): conversation leases, drain slots.
LEASE_LOCKS = 0x1A7A


DRAIN_SLOT_LOCKS = 0x1A7B


SLOT_TRIES = 10


@dataclass
class Claim:
    """What one drain holds in its transaction: the webhooks it is to act on, oldest first, and how many
    waiting rows the claim took at all (a full claim means more are waiting)."""

    webhooks: list[InboundWebhook]
    claimed: int
    accounts: dict[str, Account | None] = field(default_factory=dict)


def inbound_webhooks_claim(*, limit: int) -> Claim:
    """Lock the next waiting webhooks this drain may act on (see the module's docstring), taken in turns across
    workspaces (_FAIR_CLAIM), in the order to act on them. Call it in a transaction: what it holds, it holds until
    that transaction ends."""
    waiting = InboundWebhook.objects.filter(status=InboundWebhook.Status.RECEIVED).order_by("occurred_at", "pk")
    if not drains_in_parallel():
        # SQLite: the transaction began IMMEDIATE, holding the only write lock: nobody else can act meanwhile.
        received = InboundWebhook.Status.RECEIVED
        webhooks = list(InboundWebhook.objects.raw(_FAIR_CLAIM.format(columns="w.*"), [received, received, limit]))
        return Claim(webhooks=webhooks, claimed=len(webhooks))
    first = _fair_claim_locked(limit=limit)
    mine = {pk for pk, key in first if not key}  # ordered with nothing else: ours alone
    if leased := _conversations_lease(sorted({key for _, key in first if key})):
        mine |= _of_leased_conversations(waiting.filter(conversation_key__in=leased))
    webhooks = list(waiting.filter(pk__in=mine)) if mine else []
    return Claim(webhooks=in_turns(webhooks), claimed=len(first))


def _of_leased_conversations(of_leased: QuerySet[InboundWebhook]) -> set[int]:
    """The waiting webhooks of conversations this drain holds the lease of, locked, up to the first of each that
    another drain claimed without the lease (it lets go at its commit): a conversation is never acted on out of order."""
    locked = set(of_leased.select_for_update(skip_locked=True).values_list("pk", flat=True))
    cut: set[str] = set()
    mine: set[int] = set()
    for pk, key in of_leased.values_list("pk", "conversation_key"):
        if pk not in locked:
            cut.add(key)
        elif key not in cut:
            mine.add(pk)
    return mine


# Each workspace's waiting webhooks numbered oldest first (its turn), and taken by turn: every workspace's first, then
# every workspace's second... so a burst of one never holds back the others, and within a workspace (so within each
# conversation, which belongs to one) the order is created_at's. The numbering reads and sorts every waiting row
# (the partial index on waiting rows finds them), once a batch.
_FAIR_CLAIM = """
    SELECT {columns} FROM integrations_inboundwebhook w JOIN (
        SELECT id, ROW_NUMBER() OVER (PARTITION BY workspace_id ORDER BY occurred_at, id) AS turn
        FROM integrations_inboundwebhook WHERE status = %s
    ) turns ON turns.id = w.id
    WHERE w.status = %s ORDER BY turns.turn, w.occurred_at, w.id LIMIT %s
"""


def _fair_claim_locked(*, limit: int) -> list[tuple[int, str]]:
    """(pk, conversation key) of up to `limit` waiting webhooks, by turn across workspaces, locked, passing over
    those another drain holds (PostgreSQL)."""
    received = InboundWebhook.Status.RECEIVED
    with connection.cursor() as cursor:
        cursor.execute(
            _FAIR_CLAIM.format(columns="w.id, w.conversation_key") + " FOR UPDATE OF w SKIP LOCKED",
            [received, received, limit],
        )
        return [(pk, key) for pk, key in cursor.fetchall()]


def in_turns(webhooks: list[InboundWebhook]) -> list[InboundWebhook]:
    """Webhooks given oldest first, reordered by turn across workspaces (each workspace's own order kept), so a
    batch cut short by its time has acted on every workspace's oldest rather than on one workspace's burst."""
    seen: dict[str, int] = {}
    turns = []
    for webhook in webhooks:
        turns.append(seen.get(webhook.workspace_id, 0))
        seen[webhook.workspace_id] = turns[-1] + 1
    return [webhook for _, webhook in sorted(zip(turns, webhooks, strict=True), key=lambda pair: pair[0])]


def drains_in_parallel() -> bool:
    return connection.vendor == "postgresql"


def _drain_slot_take() -> int | None:
    with connection.cursor() as cursor:
        for slot in range(max(1, settings.INTAKE_DRAINS)):
            cursor.execute("SELECT pg_try_advisory_lock(%s, %s)", [DRAIN_SLOT_LOCKS, slot])
            if cursor.fetchone()[0]:
                return slot
    return None


def _conversations_lease(keys: list[str]) -> list[str]:
    """The keys whose conversations this transaction now holds: none that another drain holds."""
    if not keys:
        return []
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT key FROM unnest(%s::text[]) AS key WHERE pg_try_advisory_xact_lock(%s, hashtext(key))",
            [keys, LEASE_LOCKS],
        )
        return [key for (key,) in cursor.fetchall()]


@contextmanager
def drain_slot() -> Iterator[bool]:
    """One of INTAKE_DRAINS places for a drain, held for its run (a session advisory lock on PostgreSQL,
    freed if the process dies); False if all are taken. SQLite runs one drain: there is nothing to share."""
    if not drains_in_parallel():
        yield True
        return
    slot = _drain_slot_take()
    # A drain that has just found nothing left may not have let go of its place yet: give it a moment.
    for _ in range(SLOT_TRIES):
        if slot is not None:
            break
        time.sleep(CONTESTED_PAUSE_SECONDS)
        slot = _drain_slot_take()
    try:
        yield slot is not None
    finally:
        if slot is not None:
            try:
                with connection.cursor() as cursor:
                    cursor.execute("SELECT pg_advisory_unlock(%s, %s)", [DRAIN_SLOT_LOCKS, slot])
            except DatabaseError:  # the session is gone, and its lock with it
                logger.warning("intake.drain_slot.unlock_failed", extra={"slot": slot})
