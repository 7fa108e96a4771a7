"""Webhook intake throughput against a no-op view, side by side in one run.

The portal runs under gunicorn with 2 workers (deployed settings) on SQLite, or on a fresh PostgreSQL
database with `main(database="postgres")` (bench/scale.py runs that one). Each
round sends the same number of requests to /healthz (no-op, no database) and then to
/webhooks/intercom/ (unique signed closures); the ratio is taken within each round,
so both sides see the same machine load, and the median round is reported.
Afterwards every acknowledged notification must be stored, then processed.
"""

from __future__ import annotations

import json
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.common import CLIENT_SECRET, DATABASE_PREFIX, load, portal, postgres_database  # noqa: E402
from integrations.intercom.signature import signature_for  # noqa: E402
from sandbox.samples import closed_conversation  # noqa: E402

TARGETS = {"sqlite": 0.5, "postgres": 0.3}
ROUNDS = 5
PER_ROUND = 1000
CLIENTS = 4
WORKSPACE = "bench01"


def signed_closures(count: int, *, offset: int) -> list[tuple[str, str, bytes, dict[str, str]]]:
    now = int(time.time())
    requests_ = []
    for index in range(offset, offset + count):
        payload = closed_conversation(
            app_id=WORKSPACE,
            conversation_id=f"7{index:012d}",
            at=now,
            customer=(f"contact-{index}", "Bench Customer", f"customer{index}@bench.example"),
            notification_id=f"notif_bench_{index}",
        )
        body = json.dumps(payload).encode()
        headers = {"Content-Type": "application/json", "X-Hub-Signature": signature_for(body, CLIENT_SECRET)}
        requests_.append(("POST", "/webhooks/intercom/", body, headers))
    return requests_


def main(database: str = "sqlite") -> dict[str, object]:
    if database == "postgres":
        with postgres_database(f"{DATABASE_PREFIX}_intake") as url:
            return _measure(database, extra_env={"DATABASE_URL": url})
    return _measure(database, extra_env={})


def _measure(database: str, *, extra_env: dict[str, str]) -> dict[str, object]:
    with portal(workers=2, extra_env=extra_env) as running:
        running.manage("account_upsert", WORKSPACE, "--name", "Bench", "--suppression-window", "7d")
        noop_rounds, webhook_rounds = [], []
        acknowledged = non_2xx = 0
        for round_ in range(ROUNDS):
            noop = load(running.port, [("GET", "/healthz", None, {})] * PER_ROUND, clients=CLIENTS)
            webhook = load(running.port, signed_closures(PER_ROUND, offset=round_ * PER_ROUND), clients=CLIENTS)
            noop_rounds.append(noop.per_second)
            webhook_rounds.append(webhook.per_second)
            non_2xx += noop.non_2xx + webhook.non_2xx
            acknowledged += sum(count for status, count in webhook.statuses.items() if 200 <= status < 300)
        # Stored: in the database, or (SQLite) in the inbox waiting to be moved in (integrations/inbox.py).
        stored = running.query(
            "import json; from integrations.models import InboundWebhook as W; from integrations.inbox import inbox_waiting\n"
            "print(json.dumps(W.objects.count() + inbox_waiting()))"
        )
        # Then what the cluster would do: act on every stored webhook, timed.
        processed, seconds, survey_requests = running.query_numbers(
            "import json, time; from surveys.tasks import process_inbound_webhooks\n"
            "from surveys.models import SurveyRequest\n"
            "t = time.perf_counter(); n = 0\n"
            "while (batch := process_inbound_webhooks()): n += batch\n"
            "print(json.dumps([n, time.perf_counter() - t, SurveyRequest.objects.count()]))"
        )
    ratios = sorted(webhook / noop for webhook, noop in zip(webhook_rounds, noop_rounds, strict=True))
    ratio = statistics.median(ratios)
    noop_rps, webhook_rps = statistics.median(noop_rounds), statistics.median(webhook_rounds)
    return {
        "bench": "webhook_intake",
        "workers": 2,
        "database": database,
        "requests_per_round": PER_ROUND,
        "rounds": ROUNDS,
        "noop_rps": round(noop_rps, 1),
        "webhook_rps": round(webhook_rps, 1),
        "ratio": round(ratio, 3),
        "round_ratios": [round(r, 3) for r in ratios],
        "target_ratio": TARGETS[database],
        "non_2xx": non_2xx,
        "acknowledged": acknowledged,
        "stored_webhooks": stored,
        "survey_requests": survey_requests,
        "processed_per_second_one_task": round(processed / seconds, 1),
        "ok": ratio >= TARGETS[database] and non_2xx == 0 and stored == acknowledged == survey_requests,
    }


if __name__ == "__main__":
    print(json.dumps(main(*sys.argv[1:2])))
