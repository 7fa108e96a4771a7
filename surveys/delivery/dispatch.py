"""Handing due survey requests to the task queue, a fair share to each account.

The queue is first in, first out: an account whose 10,000 requests were queued at once would hold every other
account's sends behind them, and one whose Stella calls time out or answer 429 would hold every worker. So while
another account has sends queued or under way, an account has at most SEND_ACCOUNT_IN_FLIGHT requests queued or
sending at once, across all clusters; alone, every live cluster's workers but one (at the share alone, 3 of 2
clusters' 8 workers, A's 10,000 burst was half sent after 10 minutes on a busy 2-core machine). The rest wait in
the database, unqueued, oldest first, until one of its slots frees:

- a send that ends hands its slot to the account's next due request at once: the same worker sends it, for up to
  SEND_CHAIN_SECONDS (`survey_request_take_next`), then hands the slot on through the queue
  (`survey_requests_dispatch_account`), so an account with a backlog keeps its share of the workers busy;
- the cluster's poller, every SEND_POLL_SECONDS, tops every account up to its share, at most
  SEND_ACCOUNT_PER_TICK an account a tick, taking turns (each account's oldest, then each one's second...), so it
  also queues delayed sends and retries as they come due (surveys/delivery/on_time.py); the minute sweep does the same for
  what was queued and lost (surveys/delivery/sending.py).

A request is "in flight" while it is scheduled and marked queued (`queued_at`), or sending. A queue message that is
lost keeps its slot until the sweep queues it again. On PostgreSQL an advisory lock per account makes the count
exact with any number of clusters (the poller's turn over all accounts takes them all); on SQLite the write lock
does. The database stays the truth about what is due: the send's own claim keeps a request queued twice from being
sent twice.
"""

from __future__ import annotations

import itertools
import logging
from collections.abc import Collection
from datetime import datetime

from django.conf import settings
from django.db import connection, transaction
from django.db.models import Count, Q

from portal.heartbeat import clusters_alive
from portal.queue import TaskBatch, enqueue
from portal.schedules import SEND_TASK, send_task_name
from surveys.models import Account, SurveyRequest

logger = logging.getLogger(__name__)

Status = SurveyRequest.Status
# Advisory lock namespace (the first of pg_advisory_xact_lock's two keys): dispatching an account's requests.
# Key 0 in it is every account at once (the poller's and sweep's turn), taken shared by a single account's dispatch.
DISPATCH_LOCKS = 0x1A7C
ALL_ACCOUNTS = 0
IN_FLIGHT = Q(status=Status.SENDING) | Q(status=Status.SCHEDULED, queued_at__isnull=False)


def in_flight_cap() -> int:
    """An account's share while another account has sends queued or under way."""
    return max(1, settings.SEND_ACCOUNT_IN_FLIGHT)


def in_flight_cap_alone(*, now: datetime) -> int:
    """An account's share while no other account has anything to send: every live cluster's workers but one (kept
    for another account's first send), and never less than its share. A cluster counts while it reports in."""
    return max(in_flight_cap(), clusters_alive(now=now) * settings.Q_CLUSTER["workers"] - 1)


def _caps(accounts: Collection[int], *, waiting: Collection[int], now: datetime) -> dict[int, int]:
    """Each account's share now: alone (in_flight_cap_alone) if no other account has sends waiting (of `waiting`,
    those the caller knows of) or in flight, else in_flight_cap. An account over its share when another's sends
    arrive gets nothing more, so each of its senders stops after the send under way."""
    shared, alone = in_flight_cap(), in_flight_cap_alone(now=now)
    busy = set(SurveyRequest.objects.filter(IN_FLIGHT).order_by().values_list("account_id", flat=True).distinct())
    others = busy | set(waiting)
    return {account_id: alone if others <= {account_id} else shared for account_id in accounts}


def survey_requests_admit(
    survey_request_ids: Collection[int], *, now: datetime, tasks: TaskBatch | None = None
) -> list[int]:
    """Requests marked queued by whoever made them due (a close recorded, a resend): queued now, oldest first, as far
    as their accounts have room; the rest given back to wait for a slot. Call once they are committed (on_commit)."""
    if not survey_request_ids:
        return []
    due = list(
        SurveyRequest.objects.filter(pk__in=survey_request_ids, status=Status.SCHEDULED, send_after__lte=now)
        .order_by("send_after", "pk")
        .values_list("pk", "account_id")
    )
    accounts = {account_id for _, account_id in due}
    with transaction.atomic():
        _lock(accounts)
        # Given back first, so they count only once queued again.
        SurveyRequest.objects.filter(pk__in=survey_request_ids, status=Status.SCHEDULED).update(queued_at=None)
        sending = _sending(accounts)
        caps = _caps(sending, waiting=sending, now=now)
        free = {account_id: caps[account_id] - held for account_id, held in _in_flight(sending).items()}
        chosen = []
        for pk, account_id in due:
            if free.get(account_id, 0) > 0:
                chosen.append(pk)
                free[account_id] -= 1
        marked = _mark(chosen, now=now)
    survey_requests_enqueue(marked, tasks=tasks)
    return marked


def survey_requests_hand_over(survey_request_id: int, *, now: datetime) -> list[int]:
    """After a send task failed: its request's account tops up to its share (the send may have freed a slot)."""
    account_id = SurveyRequest.objects.filter(pk=survey_request_id).values_list("account_id", flat=True).first()
    return [] if account_id is None else survey_requests_dispatch_account(account_id, now=now)


def survey_requests_dispatch_account(account_id: int, *, now: datetime) -> list[int]:
    """Top one account up to its share: after one of its sends ended, its slot goes to its next due request.
    With nothing to queue, a few indexed reads and no lock."""
    if not _next_of_account(account_id, now=now):
        return []
    with transaction.atomic():
        _lock([account_id])
        marked = _mark(_next_in_turn(now=now, accounts=[account_id]), now=now)
    survey_requests_enqueue(marked)
    return marked


def survey_requests_dispatch(*, now: datetime) -> list[int]:
    """Top every account that has due requests waiting up to its share, in turns across accounts, at most
    SEND_ACCOUNT_PER_TICK each. Returns the ids queued. With nothing due, one query and no lock."""
    waiting = SurveyRequest.objects.filter(status=Status.SCHEDULED, queued_at__isnull=True, send_after__lte=now)
    accounts = set(waiting.order_by().values_list("account_id", flat=True).distinct())
    if not accounts or not _next_in_turn(now=now, accounts=accounts):
        return []
    with transaction.atomic():
        _lock(None)
        marked = _mark(_next_in_turn(now=now, accounts=accounts), now=now)
    survey_requests_enqueue(marked)  # once marked and committed
    return marked


def _lock(accounts: Collection[int] | None) -> None:
    if connection.vendor != "postgresql":
        return  # SQLite: the transaction began IMMEDIATE, holding the only write lock
    with connection.cursor() as cursor:
        if accounts is None:
            cursor.execute("SELECT pg_advisory_xact_lock(%s, %s)", [DISPATCH_LOCKS, ALL_ACCOUNTS])
            return
        cursor.execute("SELECT pg_advisory_xact_lock_shared(%s, %s)", [DISPATCH_LOCKS, ALL_ACCOUNTS])
        cursor.execute(  # in one order, so two dispatches never wait on each other's
            "SELECT count(pg_advisory_xact_lock(%s, a)) FROM unnest(%s::int[]) AS a",
            [DISPATCH_LOCKS, sorted(accounts)],
        )


def survey_request_take_next(account_id: int, *, now: datetime) -> int | None:
    """For a sender whose request is done: its account's next due request, if the account sends and has a slot
    free, marked queued (in flight) for this sender to send itself, without a trip through the queue (which a worker
    looks at only every half second when it found it empty). None if there is none, no slot, or another account's
    send waits in the queue for a worker.

    Once per send of a backlog, so in one statement under the account's lock (_TAKE_NEXT): the general path
    (_next_in_turn, then _mark) costs five more round trips, and took as long as the send's own work."""
    if not _sending([account_id]) or _another_account_waits_for_a_worker(account_id):
        return None
    table = connection.ops.quote_name(SurveyRequest._meta.db_table)
    with transaction.atomic(), connection.cursor() as cursor:
        _lock([account_id])
        cursor.execute(
            _TAKE_NEXT.format(table=table),
            {
                "now": connection.ops.adapt_datetimefield_value(now),
                "account": account_id,
                "cap": _caps([account_id], waiting=(), now=now)[account_id],
                "scheduled": Status.SCHEDULED,
                "sending": Status.SENDING,
            },
        )
        taken = cursor.fetchone()
    return taken[0] if taken else None


def _another_account_waits_for_a_worker(account_id: int) -> bool:
    """Another account's send is queued and no worker has taken it yet: this sender hands its worker over (its
    account's next goes through the queue, behind it). A slot kept free for others is not enough: the intake's task
    holds a worker too, and on SQLite's one cluster of 4 an account's 3 chains left another's send queued for up to
    SEND_CHAIN_SECONDS (B's median 6.9 s from stored to sent during A's burst)."""
    waiting = SurveyRequest.objects.filter(status=Status.SCHEDULED, queued_at__isnull=False)
    return waiting.exclude(account_id=account_id).exists()


# The account's oldest due request nobody holds, marked queued if the account has fewer than its share in flight
# (the same rows as _oldest_due and _in_flight read, through the same indexes: SQLite takes the partial index only
# for its condition as written there, so the count reads the account's few in flight, not its whole backlog).
_TAKE_NEXT = """
    UPDATE {table} SET queued_at = %(now)s WHERE id = (
        SELECT id FROM {table} WHERE account_id = %(account)s AND status = %(scheduled)s AND queued_at IS NULL
        AND send_after <= %(now)s ORDER BY send_after, id LIMIT 1
    ) AND (
        SELECT count(*) FROM {table} WHERE account_id = %(account)s
        AND ("status" = %(sending)s OR ("queued_at" IS NOT NULL AND "status" = %(scheduled)s))
    ) < %(cap)s
    RETURNING id
"""


def _mark(ids: list[int], *, now: datetime) -> list[int]:
    """Mark these requests queued, those still scheduled and unqueued; the ones marked, in the order given."""
    if not ids:
        return []
    table = connection.ops.quote_name(SurveyRequest._meta.db_table)
    with connection.cursor() as cursor:  # one statement; a request cancelled or taken meanwhile is left alone
        cursor.execute(
            f"UPDATE {table} SET queued_at = %s WHERE id IN ({', '.join(['%s'] * len(ids))}) "
            "AND status = %s AND queued_at IS NULL RETURNING id",
            [connection.ops.adapt_datetimefield_value(now), *ids, Status.SCHEDULED],
        )
        taken = {pk for (pk,) in cursor.fetchall()}
    return [pk for pk in ids if pk in taken]  # in turns, as chosen


def survey_requests_enqueue(survey_request_ids: list[int], *, tasks: TaskBatch | None = None) -> None:
    """Hand requests already marked queued to the task queue (or to `tasks`, pushed by its owner)."""
    for pk in survey_request_ids:
        (tasks.enqueue if tasks else enqueue)(SEND_TASK, pk, name=send_task_name(pk))


def _next_in_turn(*, now: datetime, accounts: Collection[int]) -> list[int]:
    """Due requests nobody holds, of accounts that send, each account's oldest first: per account at most its free
    slots (SEND_ACCOUNT_IN_FLIGHT less those in flight) and SEND_ACCOUNT_PER_TICK, taken in turns (every account's
    first, then every account's second...). Index reads only: which accounts wait (survey_request_unqueued), how many
    each holds (survey_request_in_flight), then each one's oldest; an account at its share costs no more."""
    if not accounts:
        return []
    busy = _in_flight(accounts)
    per_tick, sending = max(1, settings.SEND_ACCOUNT_PER_TICK), _sending(accounts)
    caps = _caps(sending, waiting=sending, now=now)
    shares = [
        _oldest_due(account_id, now=now, count=free)
        for account_id in sorted(sending)
        if (free := min(caps[account_id] - busy[account_id], per_tick)) > 0
    ]
    return [pk for turn in itertools.zip_longest(*shares) for pk in turn if pk is not None]


def _in_flight(accounts: Collection[int]) -> dict[int, int]:
    """How many requests each account has queued or sending."""
    held = SurveyRequest.objects.filter(IN_FLIGHT, account_id__in=accounts).order_by().values_list("account_id")
    return dict.fromkeys(accounts, 0) | dict(held.annotate(n=Count("pk")))


def _sending(accounts: Collection[int]) -> set[int]:
    """Those of the accounts that send now: enabled, and not paused."""
    sending = Account.objects.filter(pk__in=accounts, health__sending_paused_at__isnull=True, integration__enabled=True)
    return set(sending.values_list("pk", flat=True))


def _next_of_account(account_id: int, *, now: datetime) -> list[int]:
    """One account's: its free slots' worth of its oldest due requests."""
    return _next_in_turn(now=now, accounts=[account_id])


def _oldest_due(account_id: int, *, now: datetime, count: int) -> list[int]:
    waiting = SurveyRequest.objects.filter(
        account_id=account_id, status=Status.SCHEDULED, queued_at__isnull=True, send_after__lte=now
    )
    return list(waiting.order_by("send_after", "pk").values_list("pk", flat=True)[:count])
