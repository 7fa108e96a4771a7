"""Fair and steady under load, as ratios measured side by side in one run (issue 18).

- fair: account B closes one conversation every B_INTERVAL_S (B_CLOSURES of them) while the portal is idle, then
  again while account A posts a burst of BURST_N closures as fast as CLIENTS load generators can. B's median time
  from its webhook stored (acknowledged) to processed, and to sent (Stella's answer recorded), during the burst
  against idle. PostgreSQL with 2 cluster processes, SQLite with 1; the sandbox as Stella (a gunicorn of its own
  on a PostgreSQL database of its own). Target: within 2x of idle, or under 2 s (processed) and 5 s (sent); 0 lost,
  0 duplicate POSTs at Stella, A's burst fully processed and sent (gives up after BURST_TIMEOUT_S).
- steady: the webhook's own capacity first (closed loop, CLIENTS clients, no cluster), then webhooks at a third of
  it, open loop, for STEADY_S seconds with no cluster running, and again while the cluster drains a backlog of
  STEADY_BACKLOG closures (and what arrives): p99 from each request's scheduled time. Both databases; the same
  cluster processes as above. Target: p99 with the cluster within 3x of without, and under 1 s; 0 errors.

Everything is on 127.0.0.1, bounded in count and seconds, and stops by itself. One JSON line per run, then one
per figure with min/median/max over the runs and `ok`. `python bench/fairness.py [fair] [steady] --repeat 3`.
"""

from __future__ import annotations

import argparse
import functools
import json
import os
import sqlite3
import statistics
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from datetime import datetime
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.common import (  # noqa: E402
    CLIENT_SECRET,
    DATABASE_PREFIX,
    Call,
    Portal,
    clusters,
    free_port,
    load,
    open_loop,
    portal_env,
    postgres_database,
    serve,
    workdir,
)
from integrations.intercom.signature import signature_for  # noqa: E402
from sandbox.samples import closed_conversation  # noqa: E402

BURST_N = 10_000
BURST_TIMEOUT_S = 600
B_CLOSURES, B_INTERVAL_S = 10, 2.0
STEADY_S, STEADY_BACKLOG, CAPACITY_N = 20, 3000, 1000
PROCESSES = {"postgres": 2, "sqlite": 1}
CLIENTS = 4
STARTUP_S = 4
FINAL = ("sent", "invalid", "failed", "ambiguous", "suppressed", "cancelled")
STELLA_SEED = "from sandbox.demo import sandbox_people_create\nsandbox_people_create()"


def closures(workspace: str, count: int, *, offset: int) -> list[Call]:
    """Unique signed closures of `workspace`, numbered from `offset` (conversation and notification ids)."""
    now = int(time.time())
    calls: list[Call] = []
    for index in range(offset, offset + count):
        payload = closed_conversation(
            app_id=workspace,
            conversation_id=f"{workspace}-{index}",
            at=now,
            customer=(f"contact-{index}", "Bench Customer", f"customer{index}@{workspace}.example"),
            notification_id=f"notif_{workspace}_{index}",
        )
        body = json.dumps(payload).encode()
        headers = {"Content-Type": "application/json", "X-Hub-Signature": signature_for(body, CLIENT_SECRET)}
        calls.append(("POST", "/webhooks/intercom/", body, headers))
    return calls


def closure_call(index: int, *, workspace: str, offset: int) -> Call:
    return closures(workspace, 1, offset=offset + index)[0]


def rows(running: Portal, statement: str) -> list[tuple[Any, ...]]:
    """Read the portal's database directly (SQLite in WAL mode, or PostgreSQL): no lock that would slow it."""
    url = running.env["DATABASE_URL"]
    if url.startswith("sqlite:///"):
        with sqlite3.connect(url.removeprefix("sqlite:///"), timeout=30) as connection:
            return connection.execute(statement).fetchall()
    import psycopg

    with psycopg.connect(url) as connection:
        return connection.execute(statement).fetchall()


def _time(value: Any) -> datetime:
    return value if isinstance(value, datetime) else datetime.fromisoformat(str(value))


def latencies(running: Portal, workspace: str, *, first: int = 0) -> tuple[list[float], list[float], int]:
    """Seconds from each of `workspace`'s closures numbered from `first` stored to processed, and to its request
    sent; and how many of them are not sent yet."""
    found = rows(
        running,
        "SELECT w.notification_id, w.received_at, w.processed_at, r.sent_at FROM integrations_inboundwebhook w "
        "LEFT JOIN surveys_surveyrequest r ON r.inbound_webhook_id = w.id "
        f"WHERE w.workspace_id = '{workspace}'",
    )
    mine = [row[1:] for row in found if int(row[0].rsplit("_", 1)[1]) >= first]
    processed = [(_time(done) - _time(stored)).total_seconds() for stored, done, _ in mine if done]
    sent = [(_time(sent) - _time(stored)).total_seconds() for stored, _, sent in mine if sent]
    return processed, sent, len(mine) - len(sent)


def wait_for(check: Any, *, seconds: float) -> bool:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if check():
            return True
        time.sleep(0.5)
    return bool(check())


def post_paced(running: Portal, calls: list[Call], *, interval: float) -> list[int]:
    from bench.common import request

    statuses = []
    started = time.monotonic()
    for index, (method, path, body, headers) in enumerate(calls):
        if (wait := started + index * interval - time.monotonic()) > 0:
            time.sleep(wait)
        statuses.append(request(running.port, method, path, body, headers)[0])
    return statuses


@contextmanager
def portal_on(database: str, name: str, **overrides: str) -> Iterator[Portal]:
    with workdir() as path:
        port = free_port()
        if database == "postgres":
            with postgres_database(f"{DATABASE_PREFIX}_{name}") as url:
                with serve(portal_env(path, port, DATABASE_URL=url, **overrides)) as running:
                    yield running
            return
        with serve(portal_env(path, port, **overrides)) as running:
            yield running


@contextmanager
def stella_server() -> Iterator[Portal]:
    """The sandbox's Stella (and Intercom), on a PostgreSQL database of its own, for the whole run."""
    with postgres_database(f"{DATABASE_PREFIX}_fair_stella") as url, workdir() as path:
        env = portal_env(path, free_port(), DEBUG="true", SANDBOX="true", DATABASE_URL=url)
        with serve(env, workers=2, gunicorn_args=("--worker-class", "gthread", "--threads", "8")) as stella:
            stella.manage("shell", "-c", STELLA_SEED)
            yield stella


def fair(database: str, stella: Portal, run: int) -> dict[str, Any]:
    account_a, account_b = f"fairA{run}{database[:2]}", f"fairB{run}{database[:2]}"
    stella_api = {
        "STELLA_API_URL": f"{stella.url}/sandbox/stella",
        "INTERCOM_API_URL": f"{stella.url}/sandbox/intercom",
    }
    with portal_on(database, "fair", **stella_api) as running:
        for workspace in (account_a, account_b):
            running.manage(
                "account_upsert", workspace, "--name", workspace, "--suppression-window", "0", "--channel-delay", "0",
                "--test-api-key", f"sandbox-test-key-{workspace}", "--intercom-access-token", f"sandbox-intercom-token-{workspace}",
            )  # fmt: skip
        with clusters(running.env, PROCESSES[database]):
            time.sleep(STARTUP_S)
            idle_statuses = post_paced(running, closures(account_b, B_CLOSURES, offset=0), interval=B_INTERVAL_S)
            wait_for(lambda: latencies(running, account_b)[2] == 0, seconds=30)
            idle_processed, idle_sent, _ = latencies(running, account_b)
            burst: list[Any] = []
            posting = threading.Thread(
                target=lambda: burst.append(load(running.port, closures(account_a, BURST_N, offset=0), clients=CLIENTS))
            )
            started = time.monotonic()
            posting.start()
            time.sleep(1)  # A's burst is under way
            busy_statuses = post_paced(
                running, closures(account_b, B_CLOSURES, offset=B_CLOSURES), interval=B_INTERVAL_S
            )
            posting.join()
            acknowledged_s = time.monotonic() - started

            def b_done() -> bool:
                return latencies(running, account_b, first=B_CLOSURES)[2] == 0

            wait_for(b_done, seconds=60)
            busy_processed, busy_sent, _ = latencies(running, account_b, first=B_CLOSURES)
            (a_queued,) = rows(
                running,
                "SELECT count(*) FROM surveys_surveyrequest r JOIN surveys_account a ON a.id = r.account_id "
                f"WHERE a.intercom_workspace_id = '{account_a}' AND r.status NOT IN {FINAL}",
            )[0]

            def all_final() -> bool:
                waiting, recorded, unfinished = rows(
                    running,
                    "SELECT (SELECT count(*) FROM integrations_inboundwebhook WHERE status = 'received'), "
                    "count(*), "
                    f"sum(CASE WHEN status NOT IN {FINAL} THEN 1 ELSE 0 END) FROM surveys_surveyrequest",
                )[0]
                return not waiting and recorded >= BURST_N + 2 * B_CLOSURES and not unfinished

            finished = wait_for(all_final, seconds=max(0.0, BURST_TIMEOUT_S - (time.monotonic() - started)))
            finished_s = time.monotonic() - started
        stored, processed = rows(
            running, "SELECT count(*), count(processed_at) FROM integrations_inboundwebhook WHERE status != 'invalid'"
        )[0]
        sent, errors = rows(
            running,
            "SELECT sum(CASE WHEN status = 'sent' THEN 1 ELSE 0 END), "
            "sum(CASE WHEN status IN ('invalid', 'failed', 'ambiguous') THEN 1 ELSE 0 END) FROM surveys_surveyrequest",
        )[0]
    accepted, distinct = rows(
        stella,
        "SELECT count(*), count(DISTINCT body->>'ext_interaction_id') FROM sandbox_stellasandboxrequest "
        f"WHERE status_code = 200 AND (body->>'ext_interaction_id' LIKE '{account_a}-%' "
        f"OR body->>'ext_interaction_id' LIKE '{account_b}-%')",
    )[0]
    acknowledged = sum(200 <= s < 300 for s in idle_statuses + busy_statuses) + sum(
        count for status, count in burst[0].statuses.items() if 200 <= status < 300
    )
    median = statistics.median
    return {
        "bench": "fairness.fair",
        "database": database,
        "cluster_processes": PROCESSES[database],
        "burst": BURST_N,
        "burst_acknowledged_s": round(acknowledged_s, 1),
        "b_idle_processed_s": round(median(idle_processed), 3) if idle_processed else None,
        "b_idle_sent_s": round(median(idle_sent), 3) if idle_sent else None,
        "b_busy_processed_s": round(median(busy_processed), 3) if busy_processed else None,
        "b_busy_sent_s": round(median(busy_sent), 3) if busy_sent else None,
        "b_busy_processed_max_s": round(max(busy_processed), 3) if busy_processed else None,
        "b_busy_sent_max_s": round(max(busy_sent), 3) if busy_sent else None,
        "processed_ratio": round(median(busy_processed) / median(idle_processed), 2) if busy_processed else None,
        "sent_ratio": round(median(busy_sent) / median(idle_sent), 2) if busy_sent else None,
        "a_not_final_when_b_done": a_queued,
        "all_sent_after_s": round(finished_s, 1) if finished else None,
        "acknowledged": acknowledged,
        "lost": acknowledged - processed,
        "stored": stored,
        "sent": sent,
        "errors": errors,
        "accepted_by_stella": accepted,
        "duplicates": accepted - distinct,
    }


def steady(database: str) -> dict[str, Any]:
    workspace = f"steady{database[:2]}"
    with portal_on(database, "steady") as running:
        running.manage("account_upsert", workspace, "--name", workspace, "--channel-delay", "1h")
        capacity = load(running.port, closures(workspace, CAPACITY_N, offset=0), clients=CLIENTS)
        rate = max(5.0, round(capacity.per_second / 3))
        offset = CAPACITY_N
        make = functools.partial(closure_call, workspace=workspace)
        without = open_loop(running.port, functools.partial(make, offset=offset), rate=rate, seconds=STEADY_S)
        offset += int(rate * STEADY_S)
        if (more := STEADY_BACKLOG - offset) > 0:
            load(running.port, closures(workspace, more, offset=offset), clients=CLIENTS)
            offset += more
        backlog = offset  # all acknowledged, none processed: no cluster ran (on SQLite, most wait in the inbox)
        with clusters(running.env, PROCESSES[database]):
            started = time.time()
            drained: list[float] = []

            def watch() -> None:  # when the backlog is gone, to tell how much of the run the drain covered
                def done() -> bool:
                    query = "SELECT count(*) FROM integrations_inboundwebhook WHERE processed_at IS NOT NULL"
                    return rows(running, query)[0][0] >= backlog

                if wait_for(done, seconds=STEADY_S + 30):
                    drained.append(time.time() - started)

            watcher = threading.Thread(target=watch)
            watcher.start()
            busy = open_loop(running.port, functools.partial(make, offset=offset), rate=rate, seconds=STEADY_S)
            watcher.join()
    p99_without, p99_with = without.percentile(0.99), busy.percentile(0.99)
    return {
        "bench": "fairness.steady",
        "database": database,
        "cluster_processes": PROCESSES[database],
        "webhook_capacity_per_s": round(capacity.per_second, 1),
        "rate": rate,
        "seconds": STEADY_S,
        "backlog": backlog,
        # The load starts about 3 s after the cluster (the senders build their requests first).
        "backlog_drained_after_s": round(drained[0], 1) if drained else None,
        "p50_ms_without": round(without.percentile(0.5), 1),
        "p99_ms_without": round(p99_without, 1),
        "p50_ms_with": round(busy.percentile(0.5), 1),
        "p99_ms_with": round(p99_with, 1),
        "max_ms_with": round(max(busy.latencies_ms, default=float("nan")), 1),
        "p99_ratio": round(p99_with / p99_without, 2),
        "errors": without.errors + busy.errors + capacity.non_2xx,
    }


def spread(values: list[float | None]) -> dict[str, float] | None:
    present = [value for value in values if value is not None]
    if not present:
        return None
    return {"min": min(present), "median": round(statistics.median(present), 3), "max": max(present)}


def load_spread(results: list[dict[str, Any]]) -> dict[str, float]:
    """The lowest, median and highest 1-minute load average seen during any of these runs."""
    return {
        "min": min(r["load_1min"]["min"] for r in results),
        "median": round(statistics.median(r["load_1min"]["median"] for r in results), 2),
        "max": max(r["load_1min"]["max"] for r in results),
    }


@contextmanager
def load_seen(every: float = 5.0) -> Iterator[list[float]]:
    """The 1-minute load average, sampled every `every` seconds while the block runs (other work on the machine)."""
    seen = [round(os.getloadavg()[0], 2)]
    stop = threading.Event()

    def sample() -> None:
        while not stop.wait(every):
            seen.append(round(os.getloadavg()[0], 2))

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    try:
        yield seen
    finally:
        stop.set()
        sampler.join()
        seen.append(round(os.getloadavg()[0], 2))


def figures(runs: dict[str, list[dict[str, Any]]]) -> list[dict[str, Any]]:
    lines: list[dict[str, Any]] = []
    for database in PROCESSES:
        results = [r for r in runs.get("fair", []) if r["database"] == database]
        if results:
            keys = ("b_idle_processed_s", "b_busy_processed_s", "processed_ratio", "b_idle_sent_s", "b_busy_sent_s",
                    "sent_ratio", "a_not_final_when_b_done", "all_sent_after_s")  # fmt: skip
            lines.append({
                "figure": f"fair_{database}", **{key: spread([r[key] for r in results]) for key in keys},
                "load_1min": load_spread(results),
                "lost": sum(r["lost"] for r in results), "duplicates": sum(r["duplicates"] for r in results),
                "errors": sum(r["errors"] for r in results), "target": "B within 2x of idle, or under 2 s / 5 s",
                "ok": all(
                    r["b_busy_processed_s"] is not None and r["b_busy_sent_s"] is not None
                    and (r["processed_ratio"] <= 2 or r["b_busy_processed_s"] < 2)
                    and (r["sent_ratio"] <= 2 or r["b_busy_sent_s"] < 5)
                    and r["all_sent_after_s"] is not None and not r["lost"] and not r["duplicates"]
                    and r["sent"] == BURST_N + 2 * B_CLOSURES
                    for r in results
                ),
            })  # fmt: skip
        results = [r for r in runs.get("steady", []) if r["database"] == database]
        if results:
            steady_keys = ("rate", "p99_ms_without", "p99_ms_with", "p99_ratio", "backlog_drained_after_s")
            lines.append({
                "figure": f"steady_{database}", **{key: spread([r[key] for r in results]) for key in steady_keys},
                "load_1min": load_spread(results),
                "errors": sum(r["errors"] for r in results), "target": "p99 with <= 3x without, and < 1000 ms",
                "ok": all(r["p99_ratio"] <= 3 and r["p99_ms_with"] < 1000 and not r["errors"] for r in results),
            })  # fmt: skip
    return lines


def main(parts: tuple[str, ...], repeat: int) -> bool:
    print(json.dumps({"bench": "fairness", "nproc": os.cpu_count(), "load_average": os.getloadavg()}), flush=True)
    runs: dict[str, list[dict[str, Any]]] = {}
    with ExitStack() as stack:
        stella = stack.enter_context(stella_server()) if "fair" in parts else None
        for run in range(repeat):
            for database in PROCESSES:
                for part in parts:
                    with load_seen() as seen:
                        result = fair(database, stella, run) if stella and part == "fair" else steady(database)
                    result["load_average"] = [round(load, 2) for load in os.getloadavg()]
                    result["load_1min"] = {"min": min(seen), "median": statistics.median(seen), "max": max(seen)}
                    print(json.dumps(result), flush=True)
                    runs.setdefault(part, []).append(result)
    lines = figures(runs)
    for line in lines:
        print(json.dumps(line), flush=True)
    return all(line["ok"] for line in lines)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("parts", nargs="*", help="fair, steady (default: both)")
    parser.add_argument(
        "--repeat", "--runs", type=int, default=1, help="Runs of each part (figures give min/median/max)."
    )
    parser.add_argument("--burst", type=int, default=BURST_N, help="A's burst (a smaller one to try the bench out).")
    parser.add_argument("--database", choices=list(PROCESSES), action="append", help="Only these (default: both).")
    arguments = parser.parse_args()
    BURST_N = arguments.burst
    PROCESSES = {database: PROCESSES[database] for database in arguments.database or PROCESSES}
    if unknown := set(arguments.parts) - {"fair", "steady"}:
        parser.error(f"unknown parts {sorted(unknown)}: choose from fair, steady")
    sys.exit(0 if main(tuple(arguments.parts) or ("fair", "steady"), arguments.repeat) else 1)
