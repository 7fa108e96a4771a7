"""Closing the loop with Stella at scale: the real feedback pull (surveys.loop.feedback.stella_feedback_pull) reading
100,000 feedback records from the sandbox's Stella over HTTP on 127.0.0.1 into a portal holding 100,000 survey
requests, and the Teammates view on the counts the pull leaves, against the same on 1,000.

Stella is the portal's own sandbox under gunicorn, with a SQLite file of its own (another system), its records
inserted in bulk: each the record of one survey request (ext_interaction_id its conversation id), sequence ids
1..N, most delivered and answered with a star rating. The portal's side runs with deployed settings on a second
SQLite file, in a `manage.py shell` process: one pull, as many pages of 1,000 as Stella has.

Reported: records/s over the whole pull (the HTTP reads, storing, linking, counting and the reconcile at its end),
the SQL statements each page of 1,000 costs (every statement between two page reads, counted with an execute
wrapper: the same as CaptureQueriesContext without keeping each statement's text), and the Teammates view's
median time as a support user (in-process test client) on 100,000 records against 1,000.
Targets: every record stored and linked, the view within 2x its time on 1,000 records, and a page's statements
bounded (at most MAX_QUERIES_PER_PAGE, the same on the last page as on the first).
"""

from __future__ import annotations

import json
import statistics
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.common import PYTHON, ROOT, free_port, portal_env, serve, workdir  # noqa: E402

SMALL, LARGE = 1_000, 100_000
TARGET_RATIO = 2.0
MAX_QUERIES_PER_PAGE = 50
DAYS = 30
API_SECRET = "bench-stella-api-secret"
LIVE_KEY = "sandbox-live-bench-key"

# Shared by both sides: which conversation, teammate, channel, day and answer record i is.
WORLD = """
from datetime import timedelta
from django.utils import timezone

N = int(__N__)
DAYS = __DAYS__
TEAMMATES = [(f"agent{n}@support.example", f"Agent {n}") for n in range(20)]
START = timezone.now().replace(microsecond=0) - timedelta(days=DAYS)


def conversation(i):
    return str(215_000_000_000 + i)


def created_at(i):
    return START + timedelta(seconds=i * DAYS * 86400 // N)


def channel(i):
    return "email" if i % 3 == 0 else "chat"


def delivery(i):
    # Mostly delivered; some held back by Stella's suppression period, a few bounced for good.
    return "Not sent: suppression period" if i % 20 == 0 else "Hard bounce" if i % 50 == 1 else "Delivered"


def rating(i):
    # 80% of the delivered answered, mostly 4 and 5 stars.
    return None if delivery(i) != "Delivered" or i % 5 == 2 else (5, 4, 5, 3, 4, 5, 1, 5, 2, 4)[i % 10]
"""

STELLA_SEED = (
    WORLD
    + """
from sandbox.models import StellaSandboxCounter, StellaSandboxFeedback


def answers(i):
    stars = rating(i)
    if stars is None:
        return {}
    option = f"opt-star-{stars}"
    return {"agent_star_rating": {
        "question_id": "q-agent-star-rating", "question_text": "How would you rate {{employee_first_name}}?",
        "comment": "Quick and friendly, thanks!" if stars >= 4 else "Took a while.",
        "selected_options": {option: {"option_id": option, "option_text": f"{stars} stars", "integer_value": stars}},
    }}


def record(i):
    email, name = TEAMMATES[i % len(TEAMMATES)]
    created = created_at(i)
    sent = created if delivery(i) != "Not sent: suppression period" else None
    return StellaSandboxFeedback(
        sequence_id=i + 1, mode="live", company="__COMPANY__", ext_interaction_id=conversation(i), channel=channel(i),
        employee_email=email, employee_first_name=name.split()[0], employee_last_name=name.split()[1],
        customer_email=f"customer{i}@customer.example", customer_name=f"Customer {i}", request_created_at=created,
        request_sent_at=sent, request_delivery_status=delivery(i),
        response_received_at=created + timedelta(hours=1) if rating(i) is not None else None, answers=answers(i),
    )


for start in range(0, N, 5000):
    StellaSandboxFeedback.objects.bulk_create([record(i) for i in range(start, min(N, start + 5000))])
StellaSandboxCounter.objects.update_or_create(name="feedback", defaults={"value": N})
print(StellaSandboxFeedback.objects.count())
"""
)

PORTAL_SEED = (
    WORLD
    + """
from django.contrib.auth.models import User
from surveys.accounts.account import account_upsert
from surveys.models import SurveyRequest

account, _ = account_upsert(
    workspace_id="bench", name="Bench", mode="live", production_api_key="__LIVE_KEY__",
    stella_api_secret="__API_SECRET__",
)
account.support_users.add(User.objects.create_user("support", password="support-pw-1"))


def request(i):
    email, name = TEAMMATES[i % len(TEAMMATES)]
    closed = created_at(i)
    return SurveyRequest(
        account=account, conversation_id=conversation(i), conversation_url=f"https://app.intercom.com/c/{i}",
        closure_id=f"close-{i}", closed_at=closed, send_after=closed, delay_ends_at=closed, sent_at=closed,
        channel=channel(i), channel_source="conversation", assignee_kind="admin", teammate_id=str(4100000 + i % 20),
        teammate_name=name, teammate_email=email, customer_id=f"contact-{i}", customer_role="user",
        customer_name=f"Customer {i}", customer_email=f"customer{i}@customer.example", status="sent",
        decision="send", mode="live",
    )


for start in range(0, N, 5000):
    SurveyRequest.objects.bulk_create([request(i) for i in range(start, min(N, start + 5000))])
print(SurveyRequest.objects.count())
"""
)

PULL = """
import json, time
from django.db import connection
from django.db.models import Sum
from django.utils import timezone
from surveys.loop.feedback import stella_feedback_pull
from surveys.loop.stella import stella_data_client
from surveys.models import Account, Feedback, TeammateDailyCount

account = Account.objects.select_related("integration").get(intercom_workspace_id="bench")
stella = stella_data_client(account.integration)
statements = [0]
marks = []  # statements run before each page read
fetching = [0.0]


def count(execute, sql, params, many, context):
    statements[0] += 1
    return execute(sql, params, many, context)


class Counted:
    # The real client over HTTP; each page read marks how many statements the pull had run so far.
    def feedback_page(self, *, after, limit):
        marks.append(statements[0])
        started = time.perf_counter()
        try:
            return stella.feedback_page(after=after, limit=limit)
        finally:
            fetching[0] += time.perf_counter() - started


with connection.execute_wrapper(count):
    started = time.perf_counter()
    pull = stella_feedback_pull(account, now=timezone.now(), client=Counted(), max_pages=10_000)
    seconds = time.perf_counter() - started
per_page = [after - before for before, after in zip(marks, marks[1:])]
totals = TeammateDailyCount.objects.aggregate(requested=Sum("requested"), rated=Sum("rating_count"))
print(json.dumps({
    "records": pull.records, "pages": pull.pages, "created": pull.created, "linked": pull.linked,
    "caught_up": pull.caught_up, "error": pull.error, "seconds": seconds, "fetch_seconds": fetching[0],
    "statements": statements[0], "per_page": per_page, "stored": Feedback.objects.count(),
    "linked_rows": Feedback.objects.filter(survey_request__isnull=False).count(),
    "counted": totals["requested"], "rated": totals["rated"], "count_rows": TeammateDailyCount.objects.count(),
}))
"""

MEASURE = """
import json, statistics, time
from django.contrib.auth.models import User
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext, setup_test_environment
from django.utils import timezone

setup_test_environment()  # so the response carries its context: the rows and totals shown
client = Client()
client.force_login(User.objects.get(username="support"))  # signing in is not what is measured
today = timezone.localdate(timezone=timezone.get_default_timezone())
url = f"/status/teammates/?date_from={today - timezone.timedelta(days=__DAYS__ + 1)}&date_to={today}"
for _ in range(3):
    response = client.get(url)
    assert response.status_code == 200, response.status_code
times = []
for _ in range(15):
    started = time.perf_counter()
    client.get(url)
    times.append((time.perf_counter() - started) * 1000)
with CaptureQueriesContext(connection) as queries:
    response = client.get(url)
stats = response.context["stats"]
print(json.dumps({"ms": statistics.median(times), "queries": len(queries.captured_queries), "rows": len(stats.rows),
                  "requests": stats.totals.requested}))
"""


def fill(code: str, n: int) -> str:
    return (
        code.replace("__N__", str(n))
        .replace("__DAYS__", str(DAYS))
        .replace("__LIVE_KEY__", LIVE_KEY)
        .replace("__COMPANY__", LIVE_KEY.removeprefix("sandbox-live-"))
        .replace("__API_SECRET__", API_SECRET)
    )


def run(env: dict[str, str], *args: str, stdin: str = "") -> str:
    done = subprocess.run([PYTHON, "manage.py", *args], cwd=ROOT, env=env, input=stdin, capture_output=True, text=True)
    if done.returncode:
        raise RuntimeError(f"manage.py {args[0]} failed:\n{done.stderr[-3000:]}")
    return done.stdout


def last_json(output: str) -> dict:
    return json.loads(output.strip().splitlines()[-1])


def pull_and_measure(path: Path, n: int) -> dict:
    """A Stella holding n records and a portal holding n survey requests: one pull, then the Teammates view."""
    port = free_port()
    stella_env = portal_env(
        path,
        port,
        DEBUG="true",
        SANDBOX="true",
        SANDBOX_STELLA_API_SECRET=API_SECRET,
        DATABASE_URL=f"sqlite:///{path / f'stella-{n}.sqlite3'}",
    )
    with serve(stella_env, workers=2) as stella:
        started = time.perf_counter()
        assert int(run(stella_env, "shell", "-c", fill(STELLA_SEED, n)).strip().splitlines()[-1]) == n
        stella_fill_seconds = time.perf_counter() - started
        env = portal_env(
            path,
            port,
            DATABASE_URL=f"sqlite:///{path / f'portal-{n}.sqlite3'}",
            STELLA_API_URL=f"{stella.url}/sandbox/stella",
            ALLOWED_HOSTS="testserver",
        )
        run(env, "migrate", "--noinput")
        run(env, "collectstatic", "--noinput")
        assert int(run(env, "shell", "-c", fill(PORTAL_SEED, n)).strip().splitlines()[-1]) == n
        pull = last_json(run(env, "shell", "-c", PULL))
    view = last_json(run(env, "shell", "-c", fill(MEASURE, n)))
    return {**pull, "stella_fill_seconds": stella_fill_seconds, "view": view}


def main() -> dict[str, object]:
    with workdir() as path:
        small = pull_and_measure(path, SMALL)
        large = pull_and_measure(path, LARGE)
    per_page = large["per_page"]
    ratio = large["view"]["ms"] / small["view"]["ms"]
    complete = all(
        world["stored"] == world["linked_rows"] == world["counted"] == world["records"] == n
        and world["caught_up"]
        and not world["error"]
        for world, n in ((small, SMALL), (large, LARGE))
    )
    return {
        "bench": "feedback",
        "database": "sqlite",
        "records": LARGE,
        "pages": large["pages"],
        "pull_seconds": round(large["seconds"], 1),
        "records_per_s": round(large["records"] / large["seconds"]),
        "http_fetch_share": round(large["fetch_seconds"] / large["seconds"], 2),
        "queries_per_page": {
            "min": min(per_page),
            "median": statistics.median(per_page),
            "max": max(per_page),
            "first": per_page[0],
            "last": per_page[-1],
        },
        "max_queries_per_page": MAX_QUERIES_PER_PAGE,
        "stored_and_linked": [large["stored"], large["linked_rows"]],
        "teammate_count_rows": [small["count_rows"], large["count_rows"]],
        "teammates_view": {
            "ms_1k": round(small["view"]["ms"], 1),
            "ms_100k": round(large["view"]["ms"], 1),
            "ratio": round(ratio, 2),
            "queries": large["view"]["queries"],
            "rows": large["view"]["rows"],
        },
        "target_ratio": TARGET_RATIO,
        "ok": complete and ratio < TARGET_RATIO and max(per_page) <= MAX_QUERIES_PER_PAGE,
    }


if __name__ == "__main__":
    print(json.dumps(main()))
