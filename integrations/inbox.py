"""On SQLite, webhooks are stored in an inbox file of their own, so Intercom never waits on the cluster.

SQLite lets one writer at a time into a database. The cluster's intake holds that lock for each batch it processes,
and on a busy machine (the cluster runs at a lower CPU priority, CLUSTER_NICE) a batch of a few milliseconds' work
can hold it for seconds: a webhook request storing its row waited behind it (bench/fairness.py measured a p99 of
1.4 s at 52 requests/s while a 3,000 backlog drained, against 32 ms without the cluster). So a verified webhook is
written to `<database>.inbox`, another SQLite file nobody else writes to but other webhook requests (one INSERT, in
WAL mode). The intake moves what arrived into the database at the start of each batch, in the batch's own
transaction (`inbox_move`): the rows and a watermark, the inbox id moved up to, commit together, so a drain killed
mid-batch moves the same rows again and none twice; a notification id already in the database is skipped (INSERT OR
IGNORE), and what was moved is deleted from the inbox now and then (`inbox_prune`). Every acknowledged webhook is
in one file or the other.

A notification id seen before is still answered `duplicate`: the inbox's unique column catches a retry while the
first delivery waits in it, a read of the database one already moved. On PostgreSQL (row locks) and with
WEBHOOK_INBOX=false the request stores into the database as before.
"""

from __future__ import annotations

import fcntl
import json
import os
import sqlite3
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime
from typing import Any

from django.conf import settings
from django.db import connection
from django.utils import timezone

from integrations.models import InboundWebhook, WebhookInboxMark

SCHEMA = (
    "CREATE TABLE IF NOT EXISTS webhook_inbox "
    "(id INTEGER PRIMARY KEY AUTOINCREMENT, notification_id TEXT NOT NULL UNIQUE, fields TEXT NOT NULL)"
)
# What a row of the inbox keeps of the webhook: what the request set (the rest are the model's defaults).
FIELDS = (
    "received_at", "headers", "body", "body_size", "body_sha256", "notification_id", "topic", "workspace_id",
    "conversation_key", "occurred_at", "parsed",
)  # fmt: skip
PRUNE_EVERY = 1000  # rows moved
# The inbox's write-ahead log is copied into its file by the drain, as it prunes (`inbox_prune`), not by a webhook
# request: SQLite makes the commit that takes the log past its checkpoint size (1,000 pages by default) do it, fsyncs
# and all, while Intercom waits on the answer. A request still does it past this many pages (about 40 MB), so the log
# stays bounded while no cluster runs.
CHECKPOINT_PAGES = 10_000

_local = threading.local()


class InboxDuplicate(Exception):
    """The notification is in the inbox already, or in the database."""


def inbox_path() -> str | None:
    """Where the inbox is: beside the SQLite database file, if the inbox is on (WEBHOOK_INBOX) and there is one."""
    if not settings.WEBHOOK_INBOX or connection.vendor != "sqlite":
        return None
    name = str(connection.settings_dict["NAME"])
    if not name or name == ":memory:" or name.startswith("file:"):
        return None
    return f"{name}.inbox"


def _inbox() -> sqlite3.Connection:
    """This process's (and thread's) connection to the inbox, opened once: autocommit, WAL, waiting for the lock
    as long as a request may (SQLITE_BUSY_TIMEOUT)."""
    path = inbox_path()
    assert path is not None
    key = (os.getpid(), path)
    if getattr(_local, "key", None) != key:
        timeout = connection.settings_dict.get("OPTIONS", {}).get("timeout", 5.0)
        opened = sqlite3.connect(path, timeout=timeout, isolation_level=None)
        opened.execute("PRAGMA journal_mode=WAL")
        opened.execute("PRAGMA synchronous=NORMAL")
        opened.execute(f"PRAGMA wal_autocheckpoint={CHECKPOINT_PAGES}")
        opened.execute(SCHEMA)
        _local.connection, _local.key = opened, key
    return _local.connection


def inbox_store(webhook: InboundWebhook) -> int:
    """Store a verified webhook (not saved) in the inbox; its inbox id. Raises InboxDuplicate if its notification
    was seen before."""
    assert webhook.notification_id
    webhook.received_at = webhook.received_at or timezone.now()
    if _in_database(webhook.notification_id):
        raise InboxDuplicate(webhook.notification_id)
    fields = {name: _plain(getattr(webhook, name)) for name in FIELDS}
    try:
        cursor = _inbox().execute(
            "INSERT INTO webhook_inbox (notification_id, fields) VALUES (?, ?)",
            [webhook.notification_id, json.dumps(fields)],
        )
    except sqlite3.IntegrityError:
        raise InboxDuplicate(webhook.notification_id) from None
    assert cursor.lastrowid is not None
    return cursor.lastrowid


# On every webhook request: as plain SQL these cost a fraction of building the same ORM queries
# (= InboundWebhook.objects.filter(notification_id=...).exists(), WebhookInboxMark's moved_up_to).
def _in_database(notification_id: str) -> bool:
    table = connection.ops.quote_name(InboundWebhook._meta.db_table)
    with connection.cursor() as cursor:
        cursor.execute(f"SELECT 1 FROM {table} WHERE notification_id = %s LIMIT 1", [notification_id])
        return cursor.fetchone() is not None


def _moved_up_to() -> int:
    table = connection.ops.quote_name(WebhookInboxMark._meta.db_table)
    with connection.cursor() as cursor:
        cursor.execute(f"SELECT moved_up_to FROM {table} ORDER BY id LIMIT 1")
        row = cursor.fetchone()
    return row[0] if row else 0


def inbox_wake_needed(inbox_id: int) -> bool:
    """Whether this webhook's request must wake the intake (queue its task, a write to the database): not while a
    drain is at work (it holds the inbox's drain lock, and looks at the inbox again after letting go of it), nor
    when a webhook that arrived before this one still waits in the inbox (whoever stored it woke one, or found one
    at work, and that drain moves this one too). Reads only, and no wait on the database's write lock."""
    path = inbox_path()
    assert path is not None
    if not _flock(f"{path}.drain", fcntl.LOCK_SH | fcntl.LOCK_NB):
        return False
    moved = _moved_up_to()
    found = _inbox().execute("SELECT 1 FROM webhook_inbox WHERE id > ? AND id < ? LIMIT 1", [moved, inbox_id])
    return found.fetchone() is None


@contextmanager
def inbox_draining() -> Iterator[bool]:
    """Hold the inbox's drain lock while draining: True if this drain has it (or there is no inbox), False if
    another drain is at work. A webhook stored while it is held wakes nobody: on letting go, call
    `inbox_waiting()` and drain again if anything arrived."""
    path = inbox_path()
    if path is None:
        yield True
        return
    descriptor = os.open(f"{path}.drain", os.O_RDWR | os.O_CREAT, 0o600)
    try:
        try:
            fcntl.flock(descriptor, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            yield False
            return
        yield True
    finally:
        os.close(descriptor)  # and the lock with it


def _flock(path: str, mode: int) -> bool:
    """Whether a lock of `mode` on the file could be taken now (it is let go at once)."""
    descriptor = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(descriptor, mode)
    except BlockingIOError:
        return False
    finally:
        os.close(descriptor)
    return True


def inbox_move(*, limit: int) -> int:
    """Move up to `limit` webhooks from the inbox into the database, oldest first. Call it in the transaction that
    then acts on them: the watermark commits with the rows. Returns how many it read from the inbox."""
    if inbox_path() is None:
        return 0
    mark, _ = WebhookInboxMark.objects.get_or_create(pk=1)
    rows = (
        _inbox()
        .execute("SELECT id, fields FROM webhook_inbox WHERE id > ? ORDER BY id LIMIT ?", [mark.moved_up_to, limit])
        .fetchall()
    )
    if not rows:
        return 0
    values = [json.loads(fields) for _, fields in rows]
    columns = [*FIELDS, "status", "error", "traceback"]
    table = connection.ops.quote_name(InboundWebhook._meta.db_table)
    placeholders = "(" + ", ".join(["%s"] * len(columns)) + ")"
    with connection.cursor() as cursor:
        for start in range(0, len(values), 50):  # well under SQLite's parameter limit
            chunk = values[start : start + 50]
            parameters: list[Any] = [value for fields in chunk for value in _row(fields)]
            cursor.execute(
                f"INSERT OR IGNORE INTO {table} ({', '.join(columns)}) VALUES {', '.join([placeholders] * len(chunk))}",
                parameters,
            )
    mark.moved_up_to = rows[-1][0]
    mark.save(update_fields=["moved_up_to"])
    return len(rows)


def inbox_prune() -> int:
    """Delete from the inbox what the database has (up to the committed watermark). Returns how many."""
    if inbox_path() is None:
        return 0
    moved = WebhookInboxMark.objects.values_list("moved_up_to", flat=True).first() or 0
    pruned = _inbox().execute("DELETE FROM webhook_inbox WHERE id <= ?", [moved]).rowcount
    _inbox().execute("PRAGMA wal_checkpoint(PASSIVE)")  # never waits on a request's write or read (CHECKPOINT_PAGES)
    return pruned


def inbox_waiting() -> int:
    """How many webhooks wait in the inbox, not moved yet (for /metrics)."""
    if inbox_path() is None:
        return 0
    moved = WebhookInboxMark.objects.values_list("moved_up_to", flat=True).first() or 0
    return _inbox().execute("SELECT count(*) FROM webhook_inbox WHERE id > ?", [moved]).fetchone()[0]


def _plain(value: object) -> object:
    return value.isoformat() if isinstance(value, datetime) else value


def _row(fields: dict[str, object]) -> list[object]:
    adapt = connection.ops.adapt_datetimefield_value
    values: list[object] = []
    for name in FIELDS:
        value = fields[name]
        if name in ("received_at", "occurred_at") and value is not None:
            value = adapt(datetime.fromisoformat(str(value)))
        elif name == "headers":
            value = json.dumps(value)
        values.append(value)
    return [*values, InboundWebhook.Status.RECEIVED, "", ""]
