"""The status page, the admin's API Status tabs and the satisfaction report on a large log: their first page on
1,000,000 API requests against the same page on 1,000, and the SQL queries each takes. The report reads the daily
teammate counts (here made from the log's sent requests: Stella's record of each, 40 teammates in 8 teams, two
channels, stars 1 to 5) and its drill-down reads those records.

Each size gets its own SQLite file (deployed settings), filled in bulk; every page is then
timed in-process (median of repeated requests, after a warm-up) with its queries counted.
Target: each page under 2x its time on 1,000 rows, with at most 10 queries.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.common import PYTHON, ROOT, portal_env, workdir  # noqa: E402

SMALL, LARGE = 1_000, 1_000_000
TARGET_RATIO = 2.0
MAX_QUERIES = 10
PAGES = {
    "status page (support user, first page)": ("support", "/status/"),
    "status page, Invalid Requests tab": ("support", "/status/?tab=invalid"),
    "admin: Requests": ("csm", "/admin/surveys/apirequest/"),
    "admin: Test Requests": ("csm", "/admin/surveys/testapirequest/"),
    "admin: Invalid Requests": ("csm", "/admin/surveys/invalidapirequest/"),
    "satisfaction report (by teammate)": ("support", "/status/teammates/"),
    "satisfaction report (by team, sorted by change)": ("support", "/status/teammates/?group=team&sort=-change"),
    # t15 has low ratings (every one 1★: the fill gives each teammate one star value), a full page of them.
    "satisfaction report: a teammate's low ratings": (
        "support",
        "/status/teammates/responses/?key=t15%40support.example&rating=low",
    ),
}
# Stella's record of each sent request, and the teammate counts they make (as the feedback pull keeps them).
FEEDBACK_ROWS = """
INSERT INTO surveys_feedback (
    account_id, uuid, sequence_id, ext_interaction_id, survey_request_id, mode, is_recovery, channel, employee_email,
    employee_custom_id, employee_name, team, delivery_status, request_created_at, request_sent_at, response_received_at,
    star_rating, comment, raw, first_seen_at, updated_at)
SELECT account_id, 'u' || id, id, conversation_id, id, mode, 0, channel, 't' || (id % 40) || '@support.example', '',
    'Teammate ' || (id % 40), 'Team lead ' || (id % 8), 'Delivered', closed_at, closed_at,
    CASE WHEN id % 3 = 0 THEN NULL ELSE datetime(closed_at, '+2 hours') END,
    CASE WHEN id % 3 = 0 THEN NULL ELSE 1 + (id * 7) % 5 END, 'Comment ' || id, '{}', datetime('now'), datetime('now')
FROM surveys_surveyrequest WHERE status = 'sent'
"""
TEAMMATE_COUNTS = """
INSERT INTO surveys_teammatedailycount (
    account_id, day, mode, teammate, teammate_name, team, channel, requested, delivered, responded, rating_sum,
    rating_count, stars_1, stars_2, stars_3, stars_4, stars_5)
SELECT account_id, date(request_created_at), mode, employee_email, max(employee_name), max(team), channel, count(*),
    count(*), count(response_received_at), coalesce(sum(star_rating), 0), count(star_rating),
    total(star_rating = 1), total(star_rating = 2), total(star_rating = 3), total(star_rating = 4),
    total(star_rating = 5)
FROM surveys_feedback GROUP BY account_id, date(request_created_at), mode, employee_email, channel
"""

# Ten accounts; the support user's holds half the log, all of it inside the page's default 30 days,
# so that on a thousand rows as on a million every page measured is a full page. Two calls per
# survey request (a retried 503, then the answer); half the requests invalid, half in test mode.
# SQLite makes the rows itself (a recursive CTE): a million in seconds rather than minutes.
SURVEY_ROWS = """
WITH RECURSIVE n(i) AS (SELECT 0 UNION ALL SELECT i + 1 FROM n WHERE i < __REQUESTS__ - 1)
INSERT INTO surveys_surveyrequest (
    account_id, conversation_id, conversation_url, closure_id, closed_at, send_after, delay_ends_at, sent_at, channel,
    channel_source, assignee_kind, teammate_id, teammate_name, teammate_email, customer_id, customer_role,
    customer_name, customer_email, tags, status, decision, reason, verdicts, status_detail, mode, attempts,
    created_at, updated_at, reconcile_flag)
SELECT
    CASE WHEN i % 2 = 0 THEN __FIRST__ ELSE __FIRST__ + 1 + (i / 2) % 9 END, i, 'https://app.intercom.com/c/' || i, i,
    datetime('now', '-' || (abs(random()) % (28 * 86400)) || ' seconds'), datetime('now'), datetime('now'), NULL,
    CASE WHEN i % 3 = 0 THEN 'email' ELSE 'chat' END, 'conversation', 'admin', '4100001', 'Tess Teammate',
    'tess@support.example', 'contact-' || i, 'user', 'Customer ' || i, 'c' || i || '@customer.example', '[]',
    CASE WHEN (i / 4) % 2 = 0 THEN 'invalid' ELSE 'sent' END, CASE WHEN (i / 4) % 2 = 0 THEN 'invalid' ELSE 'send' END,
    '', '{}', CASE WHEN (i / 4) % 2 = 0 THEN '__NOT_FOUND__' ELSE '' END,
    CASE WHEN (i / 8) % 2 = 0 THEN 'test' ELSE 'live' END, 2, datetime('now'), datetime('now'), ''
FROM n
"""
CALL_ROWS = """
INSERT INTO surveys_apirequest (
    survey_request_id, account_id, mode, method, url, request_headers, request_body, status_code, response_body,
    duration_ms, outcome, error_message, created_at, finished_at)
SELECT s.id, s.account_id, s.mode, 'POST', 'https://api.stellaconnect.net/v1/requests', '{}', '{}',
    CASE WHEN a.k = 0 THEN 503 WHEN s.status = 'invalid' THEN 400 ELSE 200 END, '', 100,
    CASE WHEN a.k = 0 THEN 'retry' WHEN s.status = 'invalid' THEN 'invalid' ELSE 'sent' END,
    CASE WHEN a.k = 1 AND s.status = 'invalid' THEN '__NOT_FOUND__' ELSE '' END,
    datetime(s.closed_at, '+' || (a.k * 30) || ' seconds'), datetime(s.closed_at, '+' || (a.k * 30) || ' seconds')
FROM surveys_surveyrequest s, (SELECT 0 AS k UNION ALL SELECT 1) a
"""
FILL = """
import sys
from django.contrib.auth.models import User
from django.db import connection
from surveys.accounts.account import account_upsert
from surveys.reporting.counts import daily_counts_rebuild
from surveys.models import ApiRequest
from integrations.messages import STELLA_EMPLOYEE_NOT_FOUND

accounts = [account_upsert(workspace_id=f"ws{n}", name=f"Company {n}")[0] for n in range(10)]
support = User.objects.create_user("support", password="support-pw-1")
accounts[0].support_users.add(support)
User.objects.create_superuser("csm", "csm@example.com", "csm-pw-1")
survey_rows, call_rows, feedback_rows, teammate_counts, requests = sys.stdin.read().split("\\f")
with connection.cursor() as cursor:
    survey_rows = survey_rows.replace("__REQUESTS__", str(int(requests))).replace("__FIRST__", str(accounts[0].pk))
    cursor.execute(survey_rows.replace("__NOT_FOUND__", STELLA_EMPLOYEE_NOT_FOUND.words))
    cursor.execute(call_rows.replace("__NOT_FOUND__", STELLA_EMPLOYEE_NOT_FOUND.words))
    cursor.execute("UPDATE surveys_surveyrequest SET sent_at = closed_at WHERE status = 'sent'")
    cursor.execute(feedback_rows)
    cursor.execute(teammate_counts)
    cursor.execute("ANALYZE")
daily_counts_rebuild()
print(ApiRequest.objects.count())
"""

MEASURE = """
import json, statistics, time
from django.db import connection, reset_queries
from django.test import Client
from django.test.utils import CaptureQueriesContext
from django.contrib.auth.models import User

pages = {pages}
clients = {{}}
for who in ("support", "csm"):
    clients[who] = Client()
    clients[who].force_login(User.objects.get(username=who))  # signing in is not what is measured
results = {{}}
for name, (who, url) in pages.items():
    client = clients[who]
    for _ in range(3):
        assert client.get(url).status_code == 200, url
    times = []
    for _ in range(15):
        started = time.perf_counter()
        client.get(url)
        times.append((time.perf_counter() - started) * 1000)
    with CaptureQueriesContext(connection) as queries:
        response = client.get(url)
    results[name] = {{"ms": statistics.median(times), "queries": len(queries.captured_queries), "bytes": len(response.content)}}
print(json.dumps(results))
"""


def build_and_measure(path: Path, calls: int) -> tuple[dict, float]:
    env = portal_env(path, 0, DATABASE_URL=f"sqlite:///{path / f'log-{calls}.sqlite3'}", ALLOWED_HOSTS="testserver")

    def run(*args: str, stdin: str = "") -> str:
        return subprocess.run(
            [PYTHON, "manage.py", *args], cwd=ROOT, env=env, input=stdin, check=True, capture_output=True, text=True
        ).stdout

    run("migrate", "--noinput")
    run("collectstatic", "--noinput")
    started = time.perf_counter()
    sql = "\f".join([SURVEY_ROWS, CALL_ROWS, FEEDBACK_ROWS, TEAMMATE_COUNTS, str(calls // 2)])
    made = int(run("shell", "-c", FILL, stdin=sql).strip().splitlines()[-1])
    assert made == calls, (made, calls)
    fill_seconds = time.perf_counter() - started
    return json.loads(run("shell", "-c", MEASURE.format(pages=PAGES)).strip().splitlines()[-1]), fill_seconds


def main() -> dict[str, object]:
    with workdir() as path:
        small, _ = build_and_measure(path, SMALL)
        large, fill_seconds = build_and_measure(path, LARGE)
    pages = {
        name: {
            "ms_1k": round(small[name]["ms"], 1),
            "ms_1m": round(large[name]["ms"], 1),
            "ratio": round(large[name]["ms"] / small[name]["ms"], 2),
            "queries": large[name]["queries"],
        }
        for name in PAGES
    }
    return {
        "bench": "status_pages",
        "database": "sqlite",
        "api_requests": [SMALL, LARGE],
        "fill_seconds_1m": round(fill_seconds),
        "target_ratio": TARGET_RATIO,
        "max_queries": MAX_QUERIES,
        "pages": pages,
        "ok": all(page["ratio"] < TARGET_RATIO and page["queries"] <= MAX_QUERIES for page in pages.values()),
    }


if __name__ == "__main__":
    print(json.dumps(main()))
