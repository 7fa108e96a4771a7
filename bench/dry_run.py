"""The dry run on a large account: 100,000 stored closures of 30 days replayed under proposed rules,
against the same on 10,000, with the SQL queries each takes.

One SQLite file (deployed settings) holds both accounts, filled with bulk_create: repeat customers,
conversations closed again, reopens, replies and snoozes, do-not-send and other tags, bots, both
channels (and a few never looked up), four teammates, three teams, teammate replies counted (or not), last replies
days before the close, each closure's place in its teammate's sample. The dry run is then timed in-process (median
of 3, after a warm-up) with a channel delay, a suppression window, a channel turned off and a tag added; and again
with every rule of whom to survey on as well (teams included and excluded, a minimum of replies, a maximum of days
since the last reply, a 50% sample, the last teammate to reply credited, quiet hours).
Target: 100,000 closures in under 10 s, at most 4 queries, and time growing about as the closures do
(10 times the rows: linear would take 10 times as long; under 20, well short of quadratic's 100); with every rule
on, within 2x of the same without the rules of whom to survey.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.common import PYTHON, ROOT, portal_env, workdir  # noqa: E402

SMALL, LARGE = 10_000, 100_000
TARGET_SECONDS = 10.0
TARGET_RATIO = 20.0
TARGET_EVERY_RULE_RATIO = 2.0
MAX_QUERIES = 4

FILL = """
import random, sys
from datetime import timedelta
from django.db import connection
from django.utils import timezone
from surveys.accounts.account import account_upsert
from surveys.models import ConversationEvent, SurveyRequest

def fill(workspace_id, closures, seed):
    rng = random.Random(seed)
    account, _ = account_upsert(workspace_id=workspace_id, name=f"Bench {closures}")
    now = timezone.now()
    start = now - timedelta(days=30)
    times = sorted(start + timedelta(seconds=rng.uniform(0, 30 * 86400 - 60)) for _ in range(closures))
    customers = [f"customer{n}@example.com" for n in range(closures // 3)]
    regulars = customers[: max(1, len(customers) // 10)]  # a tenth of the customers close half the conversations
    recent = []  # (conversation id, customer, surveyed) of the last closes, for closing again
    requests, events = [], []
    positions = {}  # each teammate's next place in the sample
    for n, closed_at in enumerate(times):
        roll = rng.random()
        if recent and roll < 0.12:  # the same conversation closed again
            conversation_id, email, surveyed = recent[rng.randrange(len(recent))]
        else:
            conversation_id = f"{workspace_id}-{n}"
            email = rng.choice(regulars) if rng.random() < 0.5 else rng.choice(customers)
            surveyed = False
        customer_id = f"contact-{email}"
        if rng.random() < 0.02:
            email = ""  # only the contact id: to be looked up
        channel = rng.choices(["chat", "email", "unsupported", ""], [55, 38, 2, 5])[0]
        kind = rng.choices(["admin", "bot", "nobody"], [91, 8, 1])[0]
        tags = rng.choices([[], ["billing"], ["fraud"], ["VIP"], ["dupe", "billing"]], [80, 10, 3, 5, 2])[0]
        if kind == "bot" or {"fraud", "dupe"} & set(tags):
            status, decision, reason = "sent", "do_not_send", "bot_assignee" if kind == "bot" else "suppressed_tag"
        elif channel == "unsupported":
            status, decision, reason = "invalid", "invalid", "channel_unsupported"
        elif kind == "nobody":
            status, decision, reason = "invalid", "invalid", "employee_not_found"
        elif surveyed:
            status, decision, reason = "suppressed", "suppressed", "already_surveyed"
        else:
            status, decision, reason = rng.choices(["sent", "failed", "invalid"], [95, 2, 3])[0], "send", ""
            surveyed = status == "sent"
        teammate_id = rng.choice(["4100001", "4100002", "4100003", "4100004"])
        positions[teammate_id] = positions.get(teammate_id, -1) + 1
        replies = None if rng.random() < 0.1 else rng.choices([0, 1, 2, 5], [10, 30, 30, 30])[0]
        last_reply = closed_at - timedelta(seconds=rng.expovariate(1 / (2 * 86400))) if replies else None
        requests.append(SurveyRequest(
            team_id=rng.choice(["", "814865", "814866"]), teammate_replies=replies, last_admin_reply_at=last_reply,
            sample_position=positions[teammate_id], sample_stratum=teammate_id,
            account=account, conversation_id=conversation_id,
            conversation_url=f"https://app.intercom.com/a/apps/{workspace_id}/conversations/{conversation_id}",
            closure_id=f"part-{n}", closed_at=closed_at, channel=channel, channel_source=channel or "",
            assignee_kind=kind, teammate_id=teammate_id, teammate_email="tess@support.example", customer_id=customer_id,
            customer_email=email, customer_name="Customer", tags=tags, status=status, decision=decision, reason=reason,
            verdicts={"customer_email_missing": None}, status_detail="", mode="test", send_after=closed_at,
            delay_ends_at=closed_at, sent_at=closed_at if status == "sent" else None,
        ))
        recent = [*recent[-49:], (conversation_id, email or customer_id, surveyed)]
        event_roll = rng.random()
        if event_roll < 0.21:  # reopened, replied to or snoozed, mostly within minutes
            kind = "reopened" if event_roll < 0.15 else "customer_replied" if event_roll < 0.20 else "snoozed"
            occurred_at = closed_at + timedelta(seconds=rng.expovariate(1 / 600))
            events.append(ConversationEvent(account=account, conversation_id=conversation_id, kind=kind, occurred_at=occurred_at))
        elif event_roll < 0.22:
            occurred_at = closed_at + timedelta(seconds=rng.uniform(0, 1200))
            events.append(ConversationEvent(account=account, conversation_id=conversation_id, kind="tagged", occurred_at=occurred_at, tags=["fraud"]))
    SurveyRequest.objects.bulk_create(requests, batch_size=2000)
    ConversationEvent.objects.bulk_create(events, batch_size=2000)
    return len(requests)

sizes = [int(size) for size in sys.stdin.read().split()]
made = [fill(f"bench{size}", size, seed) for seed, size in enumerate(sizes)]
with connection.cursor() as cursor:
    cursor.execute("ANALYZE")
print(made)
"""

MEASURE = """
import json, statistics, time
from datetime import timedelta
from django.db import connection
from django.test.utils import CaptureQueriesContext
from surveys.decisions.dry_run import dry_run, proposed_settings
from surveys.models import Account

results = {}
for size in json.loads(input()):
    account = Account.objects.select_related("integration").get(intercom_workspace_id=f"bench{size}")
    proposed = proposed_settings(
        account.integration, chat_enabled=False, channel_delay=timedelta(minutes=10),
        suppression_window=timedelta(days=7), do_not_send_tags="fraud, dupe, do_not_send_stella, vip",
    )
    every_rule = proposed_settings(
        account.integration, chat_enabled=False, channel_delay=timedelta(minutes=10),
        suppression_window=timedelta(days=7), do_not_send_tags="fraud, dupe, do_not_send_stella, vip",
        include_teams="814865, 814866", exclude_teams="814866", min_teammate_replies=1, max_days_since_reply=7,
        sample_percent=50, attribution="last_replier", time_zone="Europe/Paris", quiet_hours="21:00-08:00",
    )
    dry_run(account, proposed)  # warm-up
    times, every_times = [], []
    for _ in range(3):  # side by side, so the machine's load falls on both alike
        started = time.perf_counter()
        result = dry_run(account, proposed)
        times.append(time.perf_counter() - started)
        started = time.perf_counter()
        every = dry_run(account, every_rule)
        every_times.append(time.perf_counter() - started)
    with CaptureQueriesContext(connection) as queries:
        dry_run(account, every_rule)
    results[size] = {
        "seconds": statistics.median(times), "closures": result.closures, "events": result.events,
        "changed": result.changed_count, "load_seconds": result.load_seconds, "queries": len(queries.captured_queries),
        "every_rule_seconds": statistics.median(every_times), "every_rule_changed": every.changed_count,
    }
print(json.dumps(results))
"""


def main() -> dict[str, object]:
    with workdir() as path:
        env = portal_env(path, 0)

        def run(*args: str, stdin: str = "") -> str:
            return subprocess.run(
                [PYTHON, "manage.py", *args], cwd=ROOT, env=env, input=stdin, check=True, capture_output=True, text=True
            ).stdout

        run("migrate", "--noinput")
        started = time.perf_counter()
        made = json.loads(run("shell", "-c", FILL, stdin=f"{SMALL} {LARGE}").strip().splitlines()[-1])
        assert made == [SMALL, LARGE], made
        fill_seconds = time.perf_counter() - started
        measured = json.loads(run("shell", "-c", MEASURE, stdin=json.dumps([SMALL, LARGE])).strip().splitlines()[-1])
    small, large = measured[str(SMALL)], measured[str(LARGE)]
    ratio = large["seconds"] / small["seconds"]
    every_rule_ratio = large["every_rule_seconds"] / large["seconds"]
    return {
        "bench": "dry_run",
        "database": "sqlite",
        "closures": [SMALL, LARGE],
        "fill_seconds": round(fill_seconds),
        "seconds_10k": round(small["seconds"], 2),
        "seconds_100k": round(large["seconds"], 2),
        "ratio": round(ratio, 2),
        "rows_per_s_100k": round(LARGE / large["seconds"]),
        "load_seconds_100k": round(large["load_seconds"], 2),
        "events_100k": large["events"],
        "changed_100k": large["changed"],
        "every_rule_seconds_100k": round(large["every_rule_seconds"], 2),
        "every_rule_changed_100k": large["every_rule_changed"],
        "every_rule_ratio": round(every_rule_ratio, 2),
        "target_every_rule_ratio": TARGET_EVERY_RULE_RATIO,
        "queries": large["queries"],
        "target_seconds_100k": TARGET_SECONDS,
        "target_ratio": TARGET_RATIO,
        "ok": large["seconds"] < TARGET_SECONDS
        and ratio < TARGET_RATIO
        and large["queries"] <= MAX_QUERIES
        and every_rule_ratio <= TARGET_EVERY_RULE_RATIO,
    }


if __name__ == "__main__":
    print(json.dumps(main()))
