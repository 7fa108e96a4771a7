"""Acting on stored Intercom webhooks: each notification to its topic's handler, in created_at order
within its conversation, and different conversations side by side.

The request only stored them (integrations/webhooks.py), each with its conversation key (workspace and
conversation, or contact); here the domain finds the account, records events and closures, and lets the
rules decide.

How several drains share the work on PostgreSQL, in one transaction per batch:

1. **Claim**: waiting webhooks in turns across workspaces (each one's oldest, then each one's second...: one
   account's burst never holds back another's), `FOR UPDATE SKIP LOCKED LIMIT INTAKE_BATCH_SIZE`, so drains take
   different rows.
2. **Lease**: for each conversation among them, `pg_try_advisory_xact_lock` on its key. Only the
   holder acts on a conversation, until its transaction ends; a conversation leased by another drain
   is left to it (its rows we claimed stay waiting, and are only locked until we commit).
3. **Take the leased conversations whole**: every waiting webhook of them, oldest first, each cut
   before its first row another drain still has locked from step 1 (that drain commits soon without
   acting on it: it has no lease), so a newer event is never applied before an older one waiting.

The batch is then acted on together (services.IntakeBatch): what its closes need to know (their conversations'
requests and events, their customers' surveys in the window) is read in three queries and kept current in memory,
and their records, invalid calls and sends are written in a few statements, the statuses and the status page's
counts once as it ends (drains of one account would otherwise queue on its day's count rows). If anything in it
raises, the batch is undone and acted on one webhook at a time, read again from the stored rows (never from objects
the undone attempt changed), each in a savepoint, so the one that fails is marked failed with its error and
traceback and the rest still commit. No drain ever waits on a lock, so drains can't deadlock.
A drain whose claims fill a batch queues one more, up to INTAKE_DRAINS at once (a session advisory lock per slot).

On SQLite there are no row locks and one writer: one drain, with short batches (INTAKE_BATCH_SIZE, at most
INTAKE_BATCH_TRANSACTION_SECONDS a transaction) so a webhook request never waits behind it for long.
"""

from __future__ import annotations

import logging
import random
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from functools import partial

from django.conf import settings
from django.db import DatabaseError, OperationalError, connection, transaction
from django.utils import timezone

from integrations.inbox import PRUNE_EVERY as INBOX_PRUNE_EVERY
from integrations.inbox import inbox_draining, inbox_move, inbox_prune, inbox_waiting
from integrations.intercom.payloads import IntercomNotification
from integrations.models import InboundWebhook
from integrations.vocabulary import CLOCK_SKEW_ALLOWED
from portal.errors import exception_summary, exception_traceback
from portal.queue import TaskBatch, enqueue
from portal.schedules import PROCESS_WEBHOOKS_TASK
from portal.write_gate import background_write_turn
from surveys.accounts.privacy import contact_erase
from surveys.delivery.survey_requests import IntakeBatch, closing_of
from surveys.models import Account, ConversationEvent
from surveys.reporting.counts import CountChanges

logger = logging.getLogger(__name__)

MAX_CLOCK_SKEW = CLOCK_SKEW_ALLOWED
CLOSED = "conversation.admin.closed"
# A topic's handler: what to do with the notification, through the batch (which keeps them in order); returns why it
# was ignored, or "".
Handler = Callable[[Account, IntercomNotification, InboundWebhook, IntakeBatch], str]
# Advisory lock namespaces (the first of pg_*advisory*_lock's two keys): conversation leases, drain slots.
LEASE_LOCKS = 0x1A7A
DRAIN_SLOT_LOCKS = 0x1A7B
# A drain whose whole claim belonged to conversations other drains hold waits about this long before looking again.
CONTESTED_PAUSE_SECONDS = 0.02
SLOT_TRIES = 10


@dataclass
class Claim:
    """What one drain holds in its transaction: the webhooks it is to act on, oldest first, and how many
    waiting rows the claim took at all (a full claim means more are waiting)."""

    webhooks: list[InboundWebhook]
    claimed: int
    accounts: dict[str, Account | None] = field(default_factory=dict)


def inbound_webhooks_process_pending(*, seconds: float | None = None, now: datetime | None = None) -> int:
    """Act on received webhooks until none is left, oldest notification first within each conversation:
    Intercom doesn't promise order, its created_at does.

    After `seconds` (INTAKE_BATCH_SECONDS) a fresh task takes over, so one run stays well inside the
    task timeout however slow the database is. Returns how many webhooks it acted on. `now`: the time its batches
    act at (default: the clock, read once as each batch begins).
    """
    deadline = time.monotonic() + (settings.INTAKE_BATCH_SECONDS if seconds is None else seconds)
    done = 0
    with _drain_slot() as slot, inbox_draining() as alone:
        if not slot or not alone:
            return 0  # as many drains as allowed are at work already
        helper_queued = False
        moved = 0
        while True:
            if time.monotonic() >= deadline:
                enqueue(PROCESS_WEBHOOKS_TASK)
                break
            background_write_turn()  # on SQLite, after any webhook waiting to be stored (portal/write_gate.py)
            tasks = TaskBatch()  # the batch's sends, queued in one statement once it has committed
            with transaction.atomic():
                # On SQLite, what arrived in the inbox first, committed with the batch (integrations/inbox.py).
                arrived = inbox_move(limit=settings.INTAKE_BATCH_SIZE)
                claim = inbound_webhooks_claim(limit=settings.INTAKE_BATCH_SIZE)
                if not claim.claimed and not arrived:
                    break
                if claim.claimed >= settings.INTAKE_BATCH_SIZE and not helper_queued and _parallel():
                    transaction.on_commit(partial(tasks.enqueue, PROCESS_WEBHOOKS_TASK))
                    helper_queued = True
                batch_deadline = min(deadline, time.monotonic() + settings.INTAKE_BATCH_TRANSACTION_SECONDS)
                acted = inbound_webhooks_process_batch(
                    claim, deadline=batch_deadline, now=now or timezone.now(), tasks=tasks
                )
            tasks.push()
            done += acted
            moved += arrived
            if moved >= INBOX_PRUNE_EVERY:
                inbox_prune()
                moved = 0
            if not acted and not arrived:
                time.sleep(CONTESTED_PAUSE_SECONDS * (0.5 + random.random()))  # noqa: S311
        if moved:
            inbox_prune()
    if inbox_waiting():  # stored as this drain stopped: its request found the drain at work, and woke nobody
        enqueue(PROCESS_WEBHOOKS_TASK)
    return done


def inbound_webhooks_claim(*, limit: int) -> Claim:
    """Lock the next waiting webhooks this drain may act on (see the module's docstring), taken in turns across
    workspaces (_FAIR_CLAIM), in the order to act on them. Call it in a transaction: what it holds, it holds until
    that transaction ends."""
    waiting = InboundWebhook.objects.filter(status=InboundWebhook.Status.RECEIVED).order_by("occurred_at", "pk")
    if not _parallel():
        # SQLite: the transaction began IMMEDIATE, holding the only write lock: nobody else can act meanwhile.
        received = InboundWebhook.Status.RECEIVED
        webhooks = list(InboundWebhook.objects.raw(_FAIR_CLAIM.format(columns="w.*"), [received, received, limit]))
        return Claim(webhooks=webhooks, claimed=len(webhooks))
    first = _fair_claim_locked(limit=limit)
    mine = {pk for pk, key in first if not key}  # ordered with nothing else: ours alone
    if leased := _conversations_lease(sorted({key for _, key in first if key})):
        of_leased = waiting.filter(conversation_key__in=leased)
        locked = set(of_leased.select_for_update(skip_locked=True).values_list("pk", flat=True))
        cut: set[str] = set()
        for pk, key in of_leased.values_list("pk", "conversation_key"):
            if pk not in locked:
                cut.add(key)  # another drain claimed it without the lease, and lets go at its commit
            elif key not in cut:
                mine.add(pk)
    webhooks = list(waiting.filter(pk__in=mine)) if mine else []
    return Claim(webhooks=_in_turns(webhooks), claimed=len(first))


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


def _in_turns(webhooks: list[InboundWebhook]) -> list[InboundWebhook]:
    """Webhooks given oldest first, reordered by turn across workspaces (each workspace's own order kept), so a
    batch cut short by its time has acted on every workspace's oldest rather than on one workspace's burst."""
    seen: dict[str, int] = {}
    turns = []
    for webhook in webhooks:
        turns.append(seen.get(webhook.workspace_id, 0))
        seen[webhook.workspace_id] = turns[-1] + 1
    return [webhook for _, webhook in sorted(zip(turns, webhooks, strict=True), key=lambda pair: pair[0])]


def inbound_webhooks_process_batch(claim: Claim, *, deadline: float, now: datetime, tasks: TaskBatch) -> int:
    """Act on a claim's webhooks in order until done or `deadline` (monotonic): the rest stay waiting, and as
    each conversation is cut after its oldest, stay in order.

    Together first, in a few statements for the whole batch (IntakeBatch). If that raises, it is undone and
    each webhook is acted on alone in a savepoint, so the one that fails is marked failed with its error and
    the rest are still acted on. Its count changes are written once, as it ends; its sends go to `tasks`."""
    try:
        counts = CountChanges()
        with transaction.atomic():
            done = _process_together(claim, deadline=deadline, now=now, counts=counts, tasks=tasks)
            counts.apply()
    except OperationalError:
        raise  # the database is unreachable or locked: leave them received for the next run
    except Exception:
        logger.warning("intake.batch.one_at_a_time", extra={"webhooks": len(claim.webhooks)}, exc_info=True)
        tasks.held.clear()  # what the undone attempt would have queued
        done = _process_one_at_a_time(claim, deadline=deadline, now=now, tasks=tasks)
    InboundWebhook.objects.bulk_update(done, FINISH_FIELDS)
    return len(done)


def _process_together(
    claim: Claim, *, deadline: float, now: datetime, counts: CountChanges, tasks: TaskBatch
) -> list[InboundWebhook]:
    notifications = [_notification(webhook) for webhook in claim.webhooks]
    _accounts_read(claim.accounts, {notification.app_id for notification in notifications})
    closings = [
        closing_of(account, notification)
        for notification in notifications
        if notification.topic == CLOSED and (account := claim.accounts.get(notification.app_id))
    ]
    batch = IntakeBatch(closings, now=now, counts=counts, tasks=tasks)
    done: list[InboundWebhook] = []
    for webhook, notification in zip(claim.webhooks, notifications, strict=True):
        if done and time.monotonic() >= deadline:
            break
        inbound_webhook_process(webhook, notification=notification, accounts=claim.accounts, batch=batch)
        done.append(webhook)
    batch.flush()
    return done


def _process_one_at_a_time(claim: Claim, *, deadline: float, now: datetime, tasks: TaskBatch) -> list[InboundWebhook]:
    """Start again from what is stored: the attempt together was undone in the database, not in the objects it
    changed (a contact.deleted replaces its webhook's body with the erasure note, a handler may leave what it read
    on an account). So the webhooks are read again, in one query, and the accounts afresh; counts start empty."""
    stored = InboundWebhook.objects.in_bulk([webhook.pk for webhook in claim.webhooks])
    webhooks = [stored[webhook.pk] for webhook in claim.webhooks if webhook.pk in stored]
    accounts: dict[str, Account | None] = {}
    done: list[InboundWebhook] = []
    counts = CountChanges()
    for webhook in webhooks:
        if done and time.monotonic() >= deadline:
            break
        counted_before, queued_before = counts.snapshot(), len(tasks.held)
        if not _process_or_fail(webhook, accounts=accounts, now=now, counts=counts, tasks=tasks):
            counts.restore(counted_before)  # its savepoint was rolled back: so are the counts it moved
            del tasks.held[queued_before:]
        done.append(webhook)
    counts.apply()
    return done


def _parallel() -> bool:
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
def _drain_slot() -> Iterator[bool]:
    """One of INTAKE_DRAINS places for a drain, held for its run (a session advisory lock on PostgreSQL,
    freed if the process dies); False if all are taken. SQLite runs one drain: there is nothing to share."""
    if not _parallel():
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


FINISH_FIELDS = ["status", "error", "traceback", "processed_at"]
REPLAYABLE = (InboundWebhook.Status.PROCESSED, InboundWebhook.Status.IGNORED, InboundWebhook.Status.FAILED)


def inbound_webhook_replay(webhook: InboundWebhook, *, now: datetime | None = None) -> InboundWebhook:
    """Act on a stored webhook again, now: after a fix, or an account created for its workspace.
    A closure already recorded is not recorded twice; a webhook that failed verification never replays."""
    if webhook.status not in REPLAYABLE:
        raise ValueError(f"A webhook that is {webhook.get_status_display().lower()} can't be replayed.")
    if webhook.erased_at:
        raise ValueError("Its body was erased (personal data): it can't be replayed.")
    now = now or timezone.now()
    tasks = TaskBatch()
    with transaction.atomic():
        if _parallel() and webhook.conversation_key:
            with connection.cursor() as cursor:  # wait for any drain acting on its conversation to commit
                cursor.execute(
                    "SELECT pg_advisory_xact_lock(%s, hashtext(%s))", [LEASE_LOCKS, webhook.conversation_key]
                )
        webhook.status, webhook.error, webhook.traceback = InboundWebhook.Status.RECEIVED, "", ""
        webhook.processed_at = None
        webhook.save(update_fields=FINISH_FIELDS)
        counts = CountChanges()
        _process_or_fail(webhook, now=now, counts=counts, tasks=tasks)
        counts.apply()
        webhook.save(update_fields=FINISH_FIELDS)
    tasks.push()
    return webhook


def _process_or_fail(
    webhook: InboundWebhook,
    *,
    now: datetime,
    counts: CountChanges,
    tasks: TaskBatch,
    accounts: dict[str, Account | None] | None = None,
) -> bool:
    """Act on it alone, in a savepoint; False if that raised, and it is marked failed with the error and traceback."""
    try:
        with transaction.atomic():
            batch = IntakeBatch([], now=now, counts=counts, tasks=tasks)
            inbound_webhook_process(webhook, notification=_notification(webhook), accounts=accounts or {}, batch=batch)
            batch.flush()
    except OperationalError:
        raise  # the database is unreachable or locked: leave it received for the next run
    except Exception as exc:
        logger.exception("intercom.webhook.failed", extra={"webhook": webhook.pk})
        _finish(
            webhook, InboundWebhook.Status.FAILED, exception_summary(exc), now=now, traceback=exception_traceback(exc)
        )
        return False
    return True


def _notification(webhook: InboundWebhook) -> IntercomNotification:
    """What the request read from the body, kept beside it; the body is read again only when that wasn't kept
    (stored before it was, or by an earlier parser)."""
    if (notification := IntercomNotification.from_stored(webhook.parsed)) is not None:
        return notification
    return IntercomNotification.from_json(webhook.body, app_url=settings.INTERCOM_APP_URL)


def inbound_webhook_process(
    webhook: InboundWebhook,
    *,
    notification: IntercomNotification,
    accounts: dict[str, Account | None],
    batch: IntakeBatch,
) -> None:
    """Hand a stored notification to its topic's handler and record what came of it.
    `accounts`: accounts by workspace already read in this batch, and where to keep those read now;
    `batch`: what the handler acts through, at the batch's time (its caller flushes it once, at the end)."""
    now = batch.now
    if too_old_or_early := _outside_replay_window(notification, now=now):
        _finish(webhook, InboundWebhook.Status.IGNORED, too_old_or_early, now=now)
        return
    handler = HANDLERS.get(notification.topic)
    if handler is None:
        _finish(webhook, InboundWebhook.Status.IGNORED, f"Topic {notification.topic} is not acted on", now=now)
        return
    account = _account(notification.app_id, accounts=accounts)
    if account is None:
        _finish(webhook, InboundWebhook.Status.IGNORED, f"No account for workspace {notification.app_id}", now=now)
        return
    if not account.integration.enabled:
        _finish(webhook, InboundWebhook.Status.IGNORED, "Integration disabled for this account", now=now)
        return
    ignored_because = handler(account, notification, webhook, batch)
    if ignored_because:
        _finish(webhook, InboundWebhook.Status.IGNORED, ignored_because, now=now)
    else:
        _finish(webhook, InboundWebhook.Status.PROCESSED, "", now=now)


def _account(workspace_id: str, *, accounts: dict[str, Account | None]) -> Account | None:
    _accounts_read(accounts, {workspace_id})
    return accounts[workspace_id]


def _accounts_read(accounts: dict[str, Account | None], workspace_ids: set[str]) -> None:
    """Read the accounts of these workspaces not read yet, with their settings, into `accounts` (None: no account)."""
    if missing := workspace_ids - accounts.keys():
        found = Account.objects.select_related("integration").filter(intercom_workspace_id__in=missing)
        accounts.update(dict.fromkeys(missing))
        accounts.update({account.intercom_workspace_id: account for account in found})


def _outside_replay_window(notification: IntercomNotification, *, now: datetime) -> str:
    """A signed notification is still never acted on long after it was made (a replayed capture,
    a stale retry) or from the future (a forged clock)."""
    max_age = timedelta(days=settings.INTERCOM_WEBHOOK_MAX_AGE_DAYS)
    if notification.created_at < now - max_age:
        return f"Created more than {settings.INTERCOM_WEBHOOK_MAX_AGE_DAYS} days ago: too old to act on"
    if notification.created_at > now + MAX_CLOCK_SKEW:
        return f"Created more than {MAX_CLOCK_SKEW.seconds // 60} minutes in the future: not acted on"
    return ""


def _finish(webhook: InboundWebhook, status: str, error: str, *, now: datetime, traceback: str = "") -> None:
    """What came of it, on the object: saved by the caller (a batch saves all its webhooks in one query)."""
    webhook.status = status
    webhook.error = error
    webhook.traceback = traceback
    webhook.processed_at = now


def _closed(account: Account, notification: IntercomNotification, webhook: InboundWebhook, batch: IntakeBatch) -> str:
    batch.close(account=account, notification=notification, webhook=webhook)
    return ""


def _event(kind: ConversationEvent.Kind) -> Handler:
    def record(
        account: Account, notification: IntercomNotification, webhook: InboundWebhook, batch: IntakeBatch
    ) -> str:
        tags: list[str] = []
        if kind == ConversationEvent.Kind.TAGGED:
            assert notification.conversation is not None
            tags = list(notification.conversation.first_message_tags)
            if not tags:
                return "Tag is not on the first message"
        assert notification.conversation_id is not None
        batch.event(
            account=account,
            conversation_id=notification.conversation_id,
            kind=kind,
            occurred_at=notification.created_at,
            tags=tags,
            webhook=webhook,
        )
        return ""

    return record


def _contact_deleted(
    account: Account, notification: IntercomNotification, webhook: InboundWebhook, batch: IntakeBatch
) -> str:
    contact_id = notification.contact_id
    assert contact_id is not None, "the parser requires a contact.deleted item's id"
    batch.write(lambda: contact_erase(account=account, contact_id=contact_id, webhook=webhook, now=batch.now))
    return ""


HANDLERS: dict[str, Handler] = {
    CLOSED: _closed,
    "conversation.admin.opened": _event(ConversationEvent.Kind.REOPENED),
    "conversation.user.replied": _event(ConversationEvent.Kind.CUSTOMER_REPLIED),
    "conversation.admin.snoozed": _event(ConversationEvent.Kind.SNOOZED),
    "conversation.deleted": _event(ConversationEvent.Kind.DELETED),
    "conversation_part.tag.created": _event(ConversationEvent.Kind.TAGGED),
    "contact.deleted": _contact_deleted,
}
