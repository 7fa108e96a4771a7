"""Scaling, measured as users get it: the real task cluster (`manage.py runcluster`) working while webhooks arrive.

The portal runs under gunicorn with 2 workers and deployed settings; each part on a fresh PostgreSQL database
(<BENCH_DATABASE_PREFIX>_scale, created and dropped here) unless it says SQLite. Closures are unique and signed,
as in bench/webhook_intake.py. One JSON line per run, then one per figure (min/median/max over the runs):

- throughput: processing with 1, 2 and 4 cluster processes (Q_WORKERS workers each, default 4) while THROUGHPUT_N
  closures are posted as fast as the load generator can; closures processed a second from the first one stored
  to the last one processed, the machine's CPU use beside it. Targets: at 4 at least 1.8x the rate at 1, and
  at least 400/s. Sends are held back (a 1 h channel delay): this is processing alone.
- burst: BURST_N closures end to end with 4 cluster processes and the sandbox as Stella (its own database): the
  time from the last acknowledgement until every one is processed (target <= 30 s) and until every one is sent;
  0 errors, 0 duplicate POSTs at Stella, every request in a final state. Gives up after BURST_TIMEOUT_S.
- latency: webhooks at 200 req/s open loop for 60 s while the cluster works through a backlog (and what arrives):
  p50/p99/max from each request's scheduled time. Targets: p99 <= 50 ms on PostgreSQL, <= 250 ms on SQLite.
- intake: webhook / no-op requests a second on PostgreSQL (bench/webhook_intake.py). Target >= 0.3.
- rss: one cluster's memory (all its processes) after 1,000 and after RSS_TASKS cheap tasks (the intake task
  with nothing to do) queued through Redis (BENCH_REDIS_URL, a database number of its own). Target within 15%.

Everything is on 127.0.0.1, bounded in count and seconds, and stops by itself. `python bench/scale.py --help`.
"""

from __future__ import annotations

import argparse
import functools
import json
import os
import statistics
import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench import webhook_intake  # noqa: E402
from bench.common import (  # noqa: E402
    DATABASE_PREFIX,
    ROOT,
    Call,
    Portal,
    clusters,
    cpu_busy,
    cpu_sample,
    free_port,
    load,
    open_loop,
    portal_env,
    postgres_database,
    rss_kib,
    serve,
    session_pids,
    workdir,
)
from bench.webhook_intake import WORKSPACE, signed_closures  # noqa: E402

THROUGHPUT_N = 5000
THROUGHPUT_TIMEOUT_S = 240
DRAIN_N, DRAIN_TRICKLE_RATE, DRAIN_TRICKLE_S, DRAIN_TIMEOUT_S = 10_000, 50, 20, 240
BURST_N = 10_000
BURST_TIMEOUT_S = 240
LATENCY_RATE, LATENCY_SECONDS, LATENCY_BACKLOG = 200, 60, 3000
LATENCY_PROCESSES = {"postgres": 4, "sqlite": 1}  # SQLite has one writer: more cluster processes only queue
RSS_FIRST, RSS_TASKS, RSS_TIMEOUT_S = 1000, 100_000, 420
STARTUP_S = 4  # a cluster's start-up, before load arrives
CLIENTS = 4
WORKERS = os.environ.get("Q_WORKERS", "4")
REDIS_URL = os.environ.get("BENCH_REDIS_URL", "redis://127.0.0.1:6379/11")
STELLA_SEED = "from sandbox.demo import sandbox_people_create\nsandbox_people_create()"
FINAL = ("sent", "invalid", "failed", "ambiguous", "suppressed", "cancelled")
ERRORS = ("invalid", "failed", "ambiguous")


@contextmanager
def postgres_portal(*, name: str = "scale", **overrides: str) -> Iterator[Portal]:
    """The portal under gunicorn on a fresh PostgreSQL database, with the bench account (sends held back unless
    overridden by `account` options in the caller)."""
    with postgres_database(f"{DATABASE_PREFIX}_{name}") as url, workdir() as path:
        port = free_port()
        with serve(portal_env(path, port, DATABASE_URL=url, Q_WORKERS=WORKERS, **overrides)) as running:
            yield running


def account(running: Portal, *options: str) -> None:
    running.manage("account_upsert", WORKSPACE, "--name", "Bench", "--suppression-window", "7d", *options)


def sql(running: Portal, statement: str) -> tuple[Any, ...]:
    import psycopg

    with psycopg.connect(running.env["DATABASE_URL"]) as connection:
        row = connection.execute(statement).fetchone()
    assert row is not None
    return tuple(row)


def wait_for(check: Callable[[], bool], *, seconds: float) -> bool:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if check():
            return True
        time.sleep(0.25)
    return check()


def throughput(processes: int) -> dict[str, Any]:
    with postgres_portal() as running:
        account(running, "--channel-delay", "1h")
        calls = signed_closures(THROUGHPUT_N, offset=0)
        with clusters(running.env, processes):
            time.sleep(STARTUP_S)
            before = cpu_sample()
            posted = load(running.port, calls, clients=CLIENTS)
            cpu: list[tuple[int, int]] = []

            def drained() -> bool:
                cpu[:] = [cpu_sample()]
                waiting, stored = sql(
                    running,
                    "SELECT count(*) FILTER (WHERE status = 'received'), count(*) FROM integrations_inboundwebhook",
                )
                return stored >= THROUGHPUT_N and not waiting

            done = wait_for(drained, seconds=THROUGHPUT_TIMEOUT_S)
        first, last_stored, last, processed, failed = sql(
            running,
            "SELECT extract(epoch FROM min(received_at)), extract(epoch FROM max(received_at)), "
            "extract(epoch FROM max(processed_at)), count(processed_at), count(*) FILTER (WHERE status = 'failed') "
            "FROM integrations_inboundwebhook",
        )
    seconds = float(last - first) if last is not None else float("nan")
    return {
        "bench": "scale.throughput",
        "database": "postgres",
        "cluster_processes": processes,
        "workers_each": int(WORKERS),
        "closures": THROUGHPUT_N,
        "acknowledged_per_s": round(posted.per_second, 1),
        "non_2xx": posted.non_2xx,
        "processed": processed,
        "failed": failed,
        "drained": done,
        "processed_per_s": round(processed / seconds, 1) if seconds > 0 else 0.0,
        "cpu_busy": round(cpu_busy(before, cpu[0]), 3),
        "seconds": round(seconds, 1),
        # Near 0: processing kept up with intake, and the rate above is intake's (acknowledged_per_s), not a ceiling.
        "processed_after_last_stored_s": round(float(last - last_stored), 1) if last is not None else None,
    }


def drain(processes: int) -> dict[str, Any]:
    """Processing's own ceiling: a backlog of DRAIN_N closures stored while no cluster runs, then drained by
    `processes` cluster processes while more closures keep arriving (DRAIN_TRICKLE_RATE a second, open loop).
    The rate is the backlog over the time from the cluster's start to its last backlog closure processed."""
    with postgres_portal() as running:
        account(running, "--channel-delay", "1h")
        stored = load(running.port, signed_closures(DRAIN_N, offset=0), clients=CLIENTS)
        (backlog_last,) = sql(running, "SELECT max(id) FROM integrations_inboundwebhook")
        trickle: list[Any] = []
        with clusters(running.env, processes):
            started, before = time.time(), cpu_sample()
            arriving = threading.Thread(
                target=lambda: trickle.append(
                    open_loop(
                        running.port,
                        functools.partial(closure_call, offset=DRAIN_N),
                        rate=DRAIN_TRICKLE_RATE,
                        seconds=DRAIN_TRICKLE_S,
                        processes=1,
                        threads=8,
                    )
                )
            )
            arriving.start()
            cpu: list[tuple[int, int]] = []

            def drained() -> bool:
                cpu[:] = [cpu_sample()]
                waiting = sql(
                    running,
                    f"SELECT count(*) FROM integrations_inboundwebhook WHERE status = 'received' AND id <= {backlog_last}",
                )[0]
                return not waiting

            done = wait_for(drained, seconds=DRAIN_TIMEOUT_S)
            busy = cpu_busy(before, cpu[0])
            arriving.join()
        last, processed, failed = sql(
            running,
            "SELECT extract(epoch FROM max(processed_at)), count(processed_at), count(*) FILTER (WHERE status = 'failed') "
            f"FROM integrations_inboundwebhook WHERE id <= {backlog_last}",
        )
    seconds = float(last) - started if last is not None else float("nan")
    return {
        "bench": "scale.drain",
        "database": "postgres",
        "cluster_processes": processes,
        "workers_each": int(WORKERS),
        "backlog": DRAIN_N,
        "backlog_stored_per_s": round(stored.per_second, 1),
        "non_2xx": stored.non_2xx + (trickle[0].errors if trickle else 0),
        "arriving_per_s": DRAIN_TRICKLE_RATE,
        "processed": processed,
        "failed": failed,
        "drained": done,
        "processed_per_s": round(processed / seconds, 1) if seconds > 0 else 0.0,
        "cpu_busy": round(busy, 3),
        "seconds": round(seconds, 1),
    }


def burst() -> dict[str, Any]:
    with postgres_database(f"{DATABASE_PREFIX}_scale_stella") as stella_url, workdir() as path:
        stella_port = free_port()
        stella_env = portal_env(path, stella_port, DEBUG="true", SANDBOX="true", DATABASE_URL=stella_url)
        with serve(stella_env, workers=2, gunicorn_args=("--worker-class", "gthread", "--threads", "8")) as stella:
            stella.manage("shell", "-c", STELLA_SEED)
            stella_api = {
                "STELLA_API_URL": f"{stella.url}/sandbox/stella",
                "INTERCOM_API_URL": f"{stella.url}/sandbox/intercom",
            }
            with postgres_portal(**stella_api) as running:
                account(
                    running, "--channel-delay", "0", "--test-api-key", f"sandbox-test-key-{WORKSPACE}",
                    "--intercom-access-token", f"sandbox-intercom-token-{WORKSPACE}",
                )  # fmt: skip
                calls = signed_closures(BURST_N, offset=0)
                with clusters(running.env, 4):
                    time.sleep(STARTUP_S)
                    posted = load(running.port, calls, clients=CLIENTS)
                    last_ack = time.time()
                    (stored,) = sql(running, "SELECT count(*) FROM integrations_inboundwebhook")

                    def processed() -> bool:
                        return not sql(
                            running, "SELECT count(*) FROM integrations_inboundwebhook WHERE status = 'received'"
                        )[0]

                    def final() -> bool:
                        waiting, recorded = sql(
                            running,
                            f"SELECT count(*) FILTER (WHERE status NOT IN {FINAL}), count(*) FROM surveys_surveyrequest",
                        )
                        return recorded >= stored and not waiting

                    all_processed = wait_for(processed, seconds=BURST_TIMEOUT_S)
                    all_final = wait_for(final, seconds=max(0.0, BURST_TIMEOUT_S - (time.time() - last_ack)))
                (last_processed, failed_webhooks) = sql(
                    running,
                    "SELECT extract(epoch FROM max(processed_at)), count(*) FILTER (WHERE status = 'failed') "
                    "FROM integrations_inboundwebhook",
                )
                recorded, sent, errors, not_final, last_sent = sql(
                    running,
                    f"SELECT count(*), count(*) FILTER (WHERE status = 'sent'), count(*) FILTER (WHERE status IN {ERRORS}), "
                    f"count(*) FILTER (WHERE status NOT IN {FINAL}), extract(epoch FROM max(sent_at)) "
                    "FROM surveys_surveyrequest",
                )
            accepted, distinct = sql(
                stella,
                "SELECT count(*), count(DISTINCT body->>'ext_interaction_id') FROM sandbox_stellasandboxrequest "
                "WHERE status_code = 200",
            )
    return {
        "bench": "scale.burst",
        "database": "postgres",
        "cluster_processes": 4,
        "workers_each": int(WORKERS),
        "closures": BURST_N,
        "acknowledged_s": round(posted.seconds, 1),
        "non_2xx": posted.non_2xx,
        "stored": stored,
        "survey_requests": recorded,
        "sent": sent,
        "processed_after_last_ack_s": round(float(last_processed) - last_ack, 1) if all_processed else None,
        "sent_after_last_ack_s": round(float(last_sent) - last_ack, 1) if all_final and last_sent else None,
        "gave_up_after_s": None if all_final else BURST_TIMEOUT_S,
        "errors": posted.non_2xx + failed_webhooks + errors,
        "failed_webhooks": failed_webhooks,
        "requests_invalid_failed_ambiguous": errors,
        "not_final": not_final,
        "accepted_by_stella": accepted,
        "duplicates": accepted - distinct,
    }


def closure_call(index: int, *, offset: int) -> Call:
    return signed_closures(1, offset=offset + index)[0]


def latency(database: str) -> dict[str, Any]:
    with contextlib_database(database) as running:
        account(running, "--channel-delay", "1h")
        load(running.port, signed_closures(LATENCY_BACKLOG, offset=0), clients=CLIENTS)  # the backlog
        with clusters(running.env, LATENCY_PROCESSES[database]):
            time.sleep(STARTUP_S)
            result = open_loop(
                running.port,
                functools.partial(closure_call, offset=LATENCY_BACKLOG),
                rate=LATENCY_RATE,
                seconds=LATENCY_SECONDS,
            )
            waiting = running.query(
                "import json; from integrations.models import InboundWebhook as W\n"
                "print(json.dumps(W.objects.filter(status='received').count()))"
            )
    return {
        "bench": "scale.latency",
        "database": database,
        "cluster_processes": LATENCY_PROCESSES[database],
        "workers_each": int(WORKERS),
        "backlog": LATENCY_BACKLOG,
        "rate": LATENCY_RATE,
        "seconds": LATENCY_SECONDS,
        "requests": len(result.latencies_ms),
        "p50_ms": round(result.percentile(0.5), 1),
        "p99_ms": round(result.percentile(0.99), 1),
        "max_ms": round(max(result.latencies_ms, default=float("nan")), 1),
        "errors": result.errors,
        "sent_late": result.sent_late,
        "dropped_overdue_30s": result.dropped,
        "still_waiting_after": waiting,
    }


@contextmanager
def contextlib_database(database: str) -> Iterator[Portal]:
    if database == "postgres":
        with postgres_portal() as running:
            yield running
        return
    with workdir() as path:
        port = free_port()
        with serve(portal_env(path, port, Q_WORKERS=WORKERS)) as running:
            yield running


def rss() -> dict[str, Any]:
    import redis

    connection = redis.from_url(REDIS_URL)
    if connection.dbsize():
        return {"bench": "scale.rss", "error": f"{REDIS_URL} is not empty: give BENCH_REDIS_URL a database of its own"}
    queue = "django_q:portal:q"
    enqueue = (
        "from django_q.tasks import async_task\nfrom portal.queue import _broker\n"
        "for _ in range({n}): async_task('math.floor', 1.5, broker=_broker())"
    )
    try:
        with postgres_database(f"{DATABASE_PREFIX}_scale") as url, workdir() as path:
            running = Portal(
                url="", port=0, env=portal_env(path, 0, DATABASE_URL=url, Q_REDIS_URL=REDIS_URL, Q_WORKERS=WORKERS)
            )
            running.manage("migrate", "--noinput")
            with clusters(running.env, 1) as (cluster,):
                time.sleep(STARTUP_S)
                started = time.monotonic()
                sizes = {}
                for count in (RSS_FIRST, RSS_TASKS - RSS_FIRST):
                    running.manage("shell", "-c", enqueue.format(n=count))
                    drained = wait_for(lambda: not connection.llen(queue), seconds=RSS_TIMEOUT_S)
                    time.sleep(2)  # the last tasks finish
                    sizes[count] = (rss_kib(session_pids(cluster.pid)), drained)
                seconds = time.monotonic() - started
    finally:
        connection.delete(queue)
    (first, first_drained), (last, last_drained) = sizes.values()
    return {
        "bench": "scale.rss",
        "broker": "redis",
        "workers": int(WORKERS),
        "tasks": RSS_TASKS,
        "rss_kib_after_first": first,
        "rss_kib_after_all": last,
        "growth": round(last / first - 1, 3),
        "drained": first_drained and last_drained,
        "tasks_per_s": round(RSS_TASKS / seconds, 1),
    }


def spread(values: list[float]) -> dict[str, float] | None:
    if not values:
        return None
    return {"min": min(values), "median": round(statistics.median(values), 3), "max": max(values)}


def figures(runs: dict[str, list[dict[str, Any]]]) -> list[dict[str, Any]]:
    """One line per figure, min/median/max over the runs, judged against its target."""
    lines: list[dict[str, Any]] = []
    if "throughput" in runs:
        # Closures posted as fast as the load generator can, processed as they arrive: where processing keeps up
        # (processed_after_last_stored_s near 0), the rate is intake's, and no target applies (see "drain").
        by = {n: [r["processed_per_s"] for r in runs["throughput"] if r["cluster_processes"] == n] for n in (1, 2, 4)}
        lines.append({
            "figure": "throughput", **{f"processed_per_s_{n}": spread(by[n]) for n in by},
            "acknowledged_per_s": spread([r["acknowledged_per_s"] for r in runs["throughput"]]),
            "processed_after_last_stored_s": spread(
                [r["processed_after_last_stored_s"] for r in runs["throughput"] if r["processed_after_last_stored_s"] is not None]
            ),
            "ok": all(r["drained"] and not r["non_2xx"] and not r["failed"] for r in runs["throughput"]),
        })  # fmt: skip
    if "drain" in runs:
        by = {n: [r["processed_per_s"] for r in runs["drain"] if r["cluster_processes"] == n] for n in (1, 2, 4)}
        speedups = [four / one for one, four in zip(by[1], by[4], strict=False) if one]
        clean = all(r["drained"] and not r["non_2xx"] and not r["failed"] for r in runs["drain"])
        lines.append({
            "figure": "drain", "backlog": DRAIN_N, **{f"processed_per_s_{n}": spread(by[n]) for n in by},
            "cpu_busy": {n: spread([r["cpu_busy"] for r in runs["drain"] if r["cluster_processes"] == n]) for n in by},
            "speedup_4_over_1": spread([round(s, 2) for s in speedups]), "target_speedup": 1.8, "target_per_s_4": 400,
            "ok": clean and bool(speedups) and min(speedups) >= 1.8 and min(by[4]) >= 400,
        })  # fmt: skip
    if "burst" in runs:
        results = runs["burst"]
        processed = [r["processed_after_last_ack_s"] for r in results]
        lines.append({
            "figure": "burst", "closures": BURST_N,
            "processed_after_last_ack_s": spread([p for p in processed if p is not None]),
            "sent_after_last_ack_s": spread([r["sent_after_last_ack_s"] for r in results if r["sent_after_last_ack_s"] is not None]),
            "errors": sum(r["errors"] for r in results), "duplicates": sum(r["duplicates"] for r in results),
            "not_final": sum(r["not_final"] for r in results), "target_processed_s": 30,
            "ok": all(p is not None and p <= 30 for p in processed)
            and not any(r["errors"] or r["duplicates"] or r["not_final"] or r["sent"] != BURST_N for r in results),
        })  # fmt: skip
    for database, target in (("postgres", 50), ("sqlite", 250)):
        results = [r for r in runs.get("latency", []) if r["database"] == database]
        if results:
            lines.append({
                "figure": f"latency_{database}", "rate": LATENCY_RATE, "seconds": LATENCY_SECONDS,
                **{key: spread([r[key] for r in results]) for key in ("p50_ms", "p99_ms", "max_ms")},
                "errors": sum(r["errors"] for r in results), "target_p99_ms": target,
                "ok": all(r["p99_ms"] <= target and not r["errors"] for r in results),
            })  # fmt: skip
    if "intake" in runs:
        results = runs["intake"]
        lines.append({
            "figure": "intake_postgres", "ratio": spread([r["ratio"] for r in results]), "target_ratio": 0.3,
            "ok": all(r["ok"] for r in results),
        })  # fmt: skip
    if "rss" in runs:
        results = runs["rss"]
        lines.append({
            "figure": "rss", "tasks": RSS_TASKS, "growth": spread([r.get("growth", float("nan")) for r in results]),
            "target_growth": 0.15, "ok": all("error" not in r and r["drained"] and r["growth"] <= 0.15 for r in results),
        })  # fmt: skip
    return lines


PARTS: dict[str, Callable[[], list[dict[str, Any]]]] = {
    "throughput": lambda: [throughput(n) for n in (1, 2, 4)],
    "drain": lambda: [drain(n) for n in (1, 2, 4)],
    "burst": lambda: [burst()],
    "latency": lambda: [latency("postgres"), latency("sqlite")],
    "intake": lambda: [webhook_intake.main(database="postgres")],
    "rss": lambda: [rss()],
}


def code_and_machine() -> dict[str, Any]:
    """What was measured: the commit, the files changed since (work in progress shows here), the machine's load."""
    import hashlib
    import subprocess

    def git(*args: str) -> str:
        return subprocess.run(["git", *args], cwd=ROOT, capture_output=True, text=True).stdout.rstrip()

    changed = [line[3:] for line in git("status", "--porcelain", "surveys", "integrations", "portal").splitlines()]
    return {
        "bench": "scale",
        "commit": git("rev-parse", "--short", "HEAD").strip(),
        "changed_since": changed,
        "changes_sha256": hashlib.sha256(
            git("diff", "HEAD", "--", "surveys", "integrations", "portal").encode()
        ).hexdigest()[:12],
        "nproc": os.cpu_count(),
        "load_average": os.getloadavg(),
    }


def main(parts: tuple[str, ...] = tuple(PARTS), repeat: int = 1) -> bool:
    print(json.dumps(code_and_machine()), flush=True)
    runs: dict[str, list[dict[str, Any]]] = {}
    for _ in range(repeat):
        for part in parts:
            for result in PARTS[part]():
                result["load_average"] = [round(load, 2) for load in os.getloadavg()]
                print(json.dumps(result), flush=True)
                runs.setdefault(part, []).append(result)
    lines = figures(runs)
    for line in lines:
        print(json.dumps(line), flush=True)
    return all(line["ok"] for line in lines)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("parts", nargs="*", help="Which parts (default: all).")
    parser.add_argument("--repeat", type=int, default=1, help="Runs of each part (figures give min/median/max).")
    arguments = parser.parse_args()
    if unknown := set(arguments.parts) - set(PARTS):
        parser.error(f"unknown parts {sorted(unknown)}: choose from {list(PARTS)}")
    sys.exit(0 if main(tuple(arguments.parts) or tuple(PARTS), arguments.repeat) else 1)
