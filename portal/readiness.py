"""GET /readyz: can this portal do its work now? Each check answers for one thing the portal needs, and a failing
one names it (README, "Operating the portal", says what each means and what to do). /healthz stays the cheap
liveness check: it asks nothing of anyone."""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime

from django.db import DEFAULT_DB_ALIAS, connections
from django.db.migrations.executor import MigrationExecutor

from portal.heartbeat import cluster_heartbeat_latest, cluster_heartbeat_max_age
from portal.queue import broker_ping

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class Check:
    ok: bool
    detail: str


def readiness_checks(*, now: datetime) -> dict[str, Check]:
    """Every check, in the order a failure explains the next: without the database nothing else can be known."""
    database = _checked("database", _database)
    checks = {"database": database, "broker": _checked("broker", _broker)}
    if not database.ok:
        unknown = Check(False, "not checked: the database is unreachable")
        return {**checks, "cluster": unknown, "migrations": unknown}
    return {
        **checks,
        "cluster": _checked("cluster", lambda: _cluster(now=now)),
        "migrations": _checked("migrations", _migrations),
    }


def _checked(name: str, check: Callable[[], Check]) -> Check:
    """A check that raised failed; the answer names the kind of error only (it is public), the log has the rest."""
    try:
        return check()
    except Exception as exc:
        logger.warning("readiness.check_failed", extra={"check": name}, exc_info=True)
        return Check(False, f"{type(exc).__name__}: see the portal's log (readiness.check_failed)")


def _database() -> Check:
    connection = connections[DEFAULT_DB_ALIAS]
    with connection.cursor() as cursor:
        cursor.execute("SELECT 1")
    return Check(True, f"{connection.vendor} answered")


def _broker() -> Check:
    broker_ping()
    return Check(True, "answered")


def _cluster(*, now: datetime) -> Check:
    latest, bound = cluster_heartbeat_latest(), cluster_heartbeat_max_age()
    if latest is None:
        return Check(False, "no task cluster is running: none has reported in (manage.py runcluster)")
    age = int((now - latest).total_seconds())
    if now - latest > bound:
        return Check(False, f"no task cluster reported in for {age} s (at most {int(bound.total_seconds())} s)")
    return Check(True, f"a task cluster reported in {age} s ago")


def _migrations() -> Check:
    executor = MigrationExecutor(connections[DEFAULT_DB_ALIAS])
    missing = executor.migration_plan(executor.loader.graph.leaf_nodes())
    if missing:
        names = ", ".join(f"{migration.app_label}.{migration.name}" for migration, _ in missing[:5])
        return Check(False, f"{len(missing)} not applied ({names}{', …' if len(missing) > 5 else ''}): run migrate")
    return Check(True, "all applied")
