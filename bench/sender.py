"""Sending throughput: the cluster's workers against Stella answering after 100 ms, side by side with
the same number of sequential `requests` calls to the same Stella, in one run.

Stella is the portal's own sandbox under gunicorn; the cluster runs with deployed settings on the
same SQLite file. The rate is taken from the database's own times, from the first claim to the last
send, so the cluster's start-up doesn't count.

Target: 0.8 x workers / 0.1 s, i.e. 80% of what the workers could do if each made one 100 ms call
after another. It is judged as a ratio against the sequential calls of the same run (a speedup of
at least 0.8 x workers), which measure what one call really costs on this machine; the absolute
rate is reported beside it.
"""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
from datetime import datetime
from pathlib import Path

import requests

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.common import PYTHON, ROOT, free_port, portal_env, serve, workdir  # noqa: E402

WORKERS = int(os.environ.get("Q_WORKERS", "4"))
LATENCY_MS = 100
COUNT = 200
TIMEOUT_S = 120

STELLA_SEED = """
from sandbox.demo import sandbox_people_create
sandbox_people_create()
"""
SEED = """
from datetime import timedelta
from django.utils import timezone
from surveys.accounts.account import account_upsert
from surveys.models import SurveyRequest
from surveys.delivery.sending import survey_requests_send_due

account, _ = account_upsert(workspace_id="bench", name="Bench", test_api_key="sandbox-test-key-bench")
closed = timezone.now() - timedelta(minutes=1)
SurveyRequest.objects.bulk_create(
    SurveyRequest(
        account=account, conversation_id=str(9000000 + n), conversation_url=f"https://app.intercom.com/c/{n}",
        closure_id=f"close-{n}", closed_at=closed, send_after=closed, delay_ends_at=closed, channel="chat", channel_source="conversation",
        assignee_kind="admin", teammate_id="4100001", teammate_name="Tess Teammate",
        teammate_email="tess@support.example", customer_id=f"contact-{n}", customer_role="user",
        customer_name="Bench Customer", customer_email=f"customer{n}@bench.example", status="scheduled",
        decision="send", mode="test",
    )
    for n in range(COUNT)
)
print(survey_requests_send_due(now=timezone.now()))
"""


def sequential(stella_url: str) -> float:
    body = {
        "channel": "chat",
        "employee": {"email": "tess@support.example"},
        "customer": {"name": "Bench Customer", "email": "baseline@bench.example"},
        "ext_interaction_id": "baseline",
    }
    session = requests.Session()
    started = time.perf_counter()
    for _ in range(COUNT):
        response = session.post(f"{stella_url}/v1/requests", json=body, headers={"x-api-key": "sandbox-test-key-bench"})
        response.raise_for_status()
    return COUNT / (time.perf_counter() - started)


def main() -> dict[str, object]:
    with workdir() as path:
        port = free_port()
        # Stella is another system: the sandbox gets a database of its own.
        stella_env = portal_env(
            path,
            port,
            DEBUG="true",
            SANDBOX="true",
            SANDBOX_STELLA_LATENCY_MS=str(LATENCY_MS),
            DATABASE_URL=f"sqlite:///{path / 'stella.sqlite3'}",
        )
        with serve(stella_env, workers=2, gunicorn_args=("--worker-class", "gthread", "--threads", "16")) as stella:
            stella_url = f"{stella.url}/sandbox/stella"
            stella.manage("shell", "-c", STELLA_SEED)
            sequential_per_s = sequential(stella_url)

            cluster_env = {**portal_env(path, port), "STELLA_API_URL": stella_url, "Q_WORKERS": str(WORKERS)}
            subprocess.run(
                [PYTHON, "manage.py", "migrate", "--noinput"],
                cwd=ROOT,
                env=cluster_env,
                check=True,
                capture_output=True,
            )
            queued = int(
                subprocess.run(
                    [PYTHON, "manage.py", "shell", "-c", SEED.replace("COUNT", str(COUNT))],
                    cwd=ROOT, env=cluster_env, check=True, capture_output=True, text=True,
                ).stdout.strip().splitlines()[-1]
            )  # fmt: skip
            cluster = subprocess.Popen(
                [PYTHON, "manage.py", "qcluster"],
                cwd=ROOT,
                env=cluster_env,
                start_new_session=True,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
            )
            database = sqlite3.connect(path / "bench.sqlite3", timeout=30)
            try:
                deadline = time.monotonic() + TIMEOUT_S
                while time.monotonic() < deadline:
                    (sent,) = database.execute(
                        "SELECT count(*) FROM surveys_surveyrequest WHERE status = 'sent'"
                    ).fetchone()
                    if sent == COUNT:
                        break
                    time.sleep(0.5)
            finally:
                cluster.send_signal(signal.SIGTERM)
                try:
                    cluster.wait(timeout=20)
                except subprocess.TimeoutExpired:
                    os.killpg(cluster.pid, signal.SIGKILL)
            first_claim, last_sent = database.execute(
                "SELECT min(claimed_at), max(sent_at) FROM surveys_surveyrequest WHERE status = 'sent'"
            ).fetchone()
            database.close()
            stella_database = sqlite3.connect(path / "stella.sqlite3", timeout=30)
            accepted = stella_database.execute(
                "SELECT count(*), count(DISTINCT json_extract(body, '$.ext_interaction_id')) "
                "FROM sandbox_stellasandboxrequest "
                "WHERE status_code = 200 AND json_extract(body, '$.ext_interaction_id') != 'baseline'"
            ).fetchone()
            stella_database.close()

    seconds = (datetime.fromisoformat(last_sent) - datetime.fromisoformat(first_claim)).total_seconds() if sent else 0
    sender_per_s = sent / seconds if seconds else 0.0
    target = 0.8 * WORKERS / (LATENCY_MS / 1000)
    speedup = sender_per_s / sequential_per_s
    return {
        "bench": "sender",
        "workers": WORKERS,
        "stella_latency_ms": LATENCY_MS,
        "requests": COUNT,
        "queued": queued,
        "sent": sent,
        "sequential_per_s": round(sequential_per_s, 1),
        "sender_per_s": round(sender_per_s, 1),
        "speedup": round(speedup, 2),
        "target_speedup": 0.8 * WORKERS,
        "target_per_s": target,
        "accepted_by_stella": accepted[0],
        "duplicates": accepted[0] - accepted[1],
        "ok": sent == COUNT and speedup >= 0.8 * WORKERS and accepted[0] == accepted[1] == COUNT,
    }


if __name__ == "__main__":
    print(json.dumps(main()))
