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
from datetime import datetime, timedelta
from functools import partial

from django.conf import settings
from django.db import OperationalError, connection, transaction
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
from surveys.intake.batch import IntakeBatch, incoming_closure
from surveys.intake.claim import (
    CONTESTED_PAUSE_SECONDS,
    LEASE_LOCKS,
    Claim,
    drain_slot,
    drains_in_parallel,
    inbound_webhooks_claim,
)
from surveys.intake.handlers import CLOSED, HANDLERS
from surveys.models import Account
from surveys.reporting.counts import CountChanges

logger = logging.getLogger(__name__)

MAX_CLOCK_SKEW = CLOCK_SKEW_ALLOWED
# A drain whose whole claim belonged to conversations other drains hold waits about this long before looking again.


def inbound_webhooks_process_pending(*, seconds: float | None = None, now: datetime | None = None) -> int:
    """Act on received webhooks until none is left, oldest notification first within each conversation:
    Intercom doesn't promise order, its created_at does.

    After `seconds` (INTAKE_BATCH_SECONDS) a fresh task takes over, so one run stays well inside the
    task timeout however slow the database is. Returns how many webhooks it acted on. `now`: the time its batches
    act at (default: the clock, read once as each batch begins).
    """
    deadline = time.monotonic() + (settings.INTAKE_BATCH_SECONDS if seconds is None else seconds)
    with drain_slot() as slot, inbox_draining() as alone:
        if not slot or not alone:
            return 0  # as many drains as allowed are at work already
        done = _drain(deadline=deadline, now=now)
    if inbox_waiting():  # stored as this drain stopped: its request found the drain at work, and woke nobody
        enqueue(PROCESS_WEBHOOKS_TASK)
    return done


def _drain(*, deadline: float, now: datetime | None) -> int:
    """Batch after batch until none is left or `deadline` (then a fresh task takes over); the inbox pruned as it goes."""
    done = moved = 0
    helper_queued = False
    while True:
        if time.monotonic() >= deadline:
            enqueue(PROCESS_WEBHOOKS_TASK)
            break
        background_write_turn()  # on SQLite, after any webhook waiting to be stored (portal/write_gate.py)
        batch = _next_batch(deadline=deadline, now=now, helper_queued=helper_queued)
        if batch is None:
            break
        acted, arrived, helper_queued = batch
        done += acted
        moved += arrived
        if moved >= INBOX_PRUNE_EVERY:
            inbox_prune()
            moved = 0
        if not acted and not arrived:
            time.sleep(CONTESTED_PAUSE_SECONDS * (0.5 + random.random()))  # noqa: S311
    if moved:
        inbox_prune()
    return done


def _next_batch(*, deadline: float, now: datetime | None, helper_queued: bool) -> tuple[int, int, bool] | None:
    """One batch in one transaction: (webhooks acted on, moved from the inbox, a helper drain queued), or None when
    nothing is waiting. A full claim on PostgreSQL queues one more drain, once."""
    tasks = TaskBatch()  # the batch's sends, queued in one statement once it has committed
    with transaction.atomic():
        # On SQLite, what arrived in the inbox first, committed with the batch (integrations/inbox.py).
        arrived = inbox_move(limit=settings.INTAKE_INBOX_MOVE)
        claim = inbound_webhooks_claim(limit=settings.INTAKE_BATCH_SIZE)
        if not claim.claimed and not arrived:
            return None
        if claim.claimed >= settings.INTAKE_BATCH_SIZE and not helper_queued and drains_in_parallel():
            transaction.on_commit(partial(tasks.enqueue, PROCESS_WEBHOOKS_TASK))
            helper_queued = True
        batch_deadline = min(deadline, time.monotonic() + settings.INTAKE_BATCH_TRANSACTION_SECONDS)
        acted = inbound_webhooks_process_batch(claim, deadline=batch_deadline, now=now or timezone.now(), tasks=tasks)
    tasks.push()
    return acted, arrived, helper_queued


def inbound_webhooks_process_batch(claim: Claim, *, deadline: float, now: datetime, tasks: TaskBatch) -> int:
    """Act on a claim's webhooks in order until done or `deadline` (monotonic): the rest stay waiting, and as
    each conversation is cut after its oldest, stay in order.

    Together first, in a few statements for the whole batch (IntakeBatch). If that raises, it is undone and
    each webhook is acted on alone in a savepoint, so the one that fails is marked failed with its error and
    the rest are still acted on. Its count changes are written once, as it ends, after the webhooks' statuses:
    other drains of the same accounts wait on those count rows until this one commits (_finish_batch); its sends go
    to `tasks`."""
    try:
        counts = CountChanges()
        with transaction.atomic():
            done = _process_together(claim, deadline=deadline, now=now, counts=counts, tasks=tasks)
            _finish_batch(done, counts)
    except OperationalError:
        raise  # the database is unreachable or locked: leave them received for the next run
    except Exception:
        logger.warning("intake.batch.one_at_a_time", extra={"webhooks": len(claim.webhooks)}, exc_info=True)
        tasks.held.clear()  # what the undone attempt would have queued
        done = _process_one_at_a_time(claim, deadline=deadline, now=now, tasks=tasks)
    return len(done)


def _finish_batch(done: list[InboundWebhook], counts: CountChanges) -> None:
    """The webhooks' statuses, then the counts, last before the commit: a count row a drain writes stays locked until
    it commits, and every drain of the account's day writes the same rows, so what a drain does after them, the
    others wait for (sampled from pg_stat_activity while two clusters drained a backlog, a drain stood waiting on
    another's count row in 50 of 135 samples, while the other went on to update up to 200 statuses)."""
    InboundWebhook.objects.bulk_update(done, FINISH_FIELDS)
    counts.apply()


def _process_together(
    claim: Claim, *, deadline: float, now: datetime, counts: CountChanges, tasks: TaskBatch
) -> list[InboundWebhook]:
    notifications = [_notification(webhook) for webhook in claim.webhooks]
    _accounts_read(claim.accounts, {notification.app_id for notification in notifications})
    closures = [
        incoming_closure(account, notification)
        for notification in notifications
        if notification.topic == CLOSED and (account := claim.accounts.get(notification.app_id))
    ]
    batch = IntakeBatch(closures, now=now, counts=counts, tasks=tasks)
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
    _finish_batch(done, counts)
    return done


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
        if drains_in_parallel() and webhook.conversation_key:
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
