"""GET /metrics: Prometheus's figures behind METRICS_TOKEN, moving as webhooks arrive and work is done, pooled over
every process of a group and carried from each task cluster by its heartbeat."""

import json
import os
import shutil
import socket
import subprocess
import sys
from datetime import timedelta
from pathlib import Path

import pytest
import responses
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from integrations.models import InboundWebhook
from integrations.stella.client import CallOutcome, StellaClient
from portal.heartbeat import Heartbeat, cluster_heartbeat_record
from portal.models import ClusterHeartbeat
from surveys.models import SurveyRequest
from tests.factories import AccountFactory
from tests.helpers import load_fixture, metric_value, notification, post_webhook, sign

ROOT = Path(__file__).resolve().parents[2]
WEBHOOKS = "portal_intercom_webhooks_total"
STELLA_CALLS = "portal_stella_call_duration_seconds_count"

pytestmark = pytest.mark.django_db


def test_metrics_move_when_a_signed_webhook_arrives_and_is_processed(client, account, scrape):
    before = scrape()
    payload = load_fixture("conversation_admin_closed")

    assert post_webhook(client, payload, process=False).json() == {"status": "received"}
    arrived = scrape()
    assert metric_value(arrived, WEBHOOKS, outcome="received") == metric_value(before, WEBHOOKS, outcome="received") + 1
    assert metric_value(arrived, "portal_intercom_webhooks_waiting") == 1
    assert metric_value(arrived, "portal_intercom_webhook_processing_lag_seconds") > 0

    assert post_webhook(client, payload).json() == {"status": "duplicate"}  # and the stored one is processed
    processed = scrape()
    assert (
        metric_value(processed, WEBHOOKS, outcome="duplicate")
        == metric_value(before, WEBHOOKS, outcome="duplicate") + 1
    )
    assert metric_value(processed, "portal_intercom_webhooks_waiting") == 0
    assert metric_value(processed, "portal_intercom_webhook_processing_lag_seconds") == 0
    assert metric_value(processed, "portal_survey_requests_waiting", status="scheduled") == 1


@pytest.mark.parametrize(
    ("send", "outcome"),
    [
        (lambda client, body: post_webhook(client, body, signature=sign(b"another body")), "invalid_signature"),
        (lambda client, body: post_webhook(client, b'{"type": "notification_event"}'), "bad_payload"),
        (lambda client, body: client.post("/webhooks/intercom/", body, content_type="application/json"), "unsigned"),
        (lambda client, body: post_webhook(client, b'{"x": "' + b"x" * (1024 * 1024) + b'"}'), "too_large"),
    ],
)
def test_each_refused_webhook_is_counted_by_why(client, account, scrape, send, outcome):
    before = metric_value(scrape(), WEBHOOKS, outcome=outcome)
    send(client, json.dumps(load_fixture("conversation_admin_closed")).encode())
    assert metric_value(scrape(), WEBHOOKS, outcome=outcome) == before + 1


def test_a_webhook_the_database_could_not_store_is_counted_unavailable(client, account, scrape, database_down):
    body = json.dumps(notification("conversation_admin_closed", id="notif-unavailable")).encode()
    response = client.post(
        "/webhooks/intercom/", body, content_type="application/json", headers={"X-Hub-Signature": sign(body)}
    )
    assert response.status_code == 503
    assert metric_value(scrape(), WEBHOOKS, outcome="unavailable") >= 1


def test_stella_calls_are_counted_by_outcome_with_how_long_they_took(scrape):
    client = StellaClient(base_url="https://stella.test")
    before = scrape()
    with responses.RequestsMock() as stella:
        stella.post("https://stella.test/v1/requests", status=201, json={})
        stella.post("https://stella.test/v1/requests", status=400, json={"message": "Employee not found"})
        assert client.create_request({}, api_key="k" * 12).outcome == CallOutcome.SENT
        assert client.create_request({}, api_key="k" * 12).outcome == CallOutcome.INVALID
    after = scrape()
    for outcome in ("sent", "invalid"):
        assert (
            metric_value(after, STELLA_CALLS, outcome=outcome)
            == metric_value(before, STELLA_CALLS, outcome=outcome) + 1
        )
    # Each call falls in the latency histogram's buckets: Stella answered at once, well within 10 s.
    assert metric_value(after, "portal_stella_call_duration_seconds_bucket", outcome="sent", le="10.0") >= 1


@pytest.mark.parametrize("authorization", [None, "Bearer wrong-token", "Token metrics-token-for-tests-0123456789", ""])
def test_metrics_without_the_right_token_is_the_portals_ordinary_404(client, metrics_token, authorization):
    headers = {"Authorization": authorization} if authorization is not None else {}
    response = client.get("/metrics", headers=headers)
    assert response.status_code == 404
    assert response.content == client.get("/no-such-page").content  # nothing says the endpoint exists
    assert client.get("/metrics", headers={"Authorization": f"Bearer {metrics_token}"}).status_code == 200


def test_metrics_with_no_token_set_is_404_whatever_is_sent(client, settings):
    settings.METRICS_TOKEN = ""
    assert client.get("/metrics", headers={"Authorization": "Bearer "}).status_code == 404
    assert client.get("/metrics", headers={"Authorization": "Bearer anything"}).status_code == 404


def count_in_other_processes(directory: Path, *, processes: int, code: str) -> None:
    """Run `code` in fresh processes counting into `directory`, as gunicorn's or a cluster's workers do."""
    env = {**os.environ, "PROMETHEUS_MULTIPROC_DIR": str(directory), "DJANGO_SETTINGS_MODULE": "portal.settings"}
    for _ in range(processes):
        script = f"import django; django.setup(); {code}"
        subprocess.run([sys.executable, "-c", script], cwd=ROOT, env=env, check=True, capture_output=True)


@pytest.mark.slow
def test_every_worker_of_the_web_process_group_is_counted(scrape, settings, tmp_path):
    count_in_other_processes(
        tmp_path, processes=2, code="from integrations.metrics import WEBHOOKS; WEBHOOKS.labels('received').inc(3)"
    )
    settings.PROMETHEUS_MULTIPROC_DIR = str(tmp_path)
    text = scrape()
    assert metric_value(text, WEBHOOKS, outcome="received") == 6
    assert metric_value(text, WEBHOOKS, outcome="received", process=f"web {socket.gethostname()}:{tmp_path}") == 6


@pytest.mark.slow
def test_a_clusters_heartbeat_carries_its_workers_counts_to_the_web_process(scrape, settings, tmp_path):
    count_in_other_processes(
        tmp_path,
        processes=2,
        code="from integrations.metrics import STELLA_CALLS; STELLA_CALLS.labels('sent').observe(0.2)",
    )
    now = timezone.now()
    settings.PROMETHEUS_MULTIPROC_DIR = str(tmp_path)  # the cluster's own directory, as runcluster has it
    assert Heartbeat(interval=15, now=now, name="worker-host:4242").beat_if_due(now=now)

    settings.PROMETHEUS_MULTIPROC_DIR = ""  # the web process: another directory, or none
    text = scrape()
    assert metric_value(text, STELLA_CALLS, outcome="sent", process="cluster worker-host:4242") == 2
    assert metric_value(text, "portal_stella_call_duration_seconds_sum", process="cluster worker-host:4242") == 0.4
    assert metric_value(text, "portal_clusters_alive") == 1
    assert 0 <= metric_value(text, "portal_cluster_heartbeat_age_seconds") < 60


def test_with_no_cluster_running_the_heartbeat_age_is_infinite(scrape):
    assert metric_value(scrape(), "portal_cluster_heartbeat_age_seconds") == float("inf")


def test_a_heartbeat_is_renewed_at_its_interval_and_forgotten_once_its_cluster_is_long_gone():
    now = timezone.now()
    heartbeat = Heartbeat(interval=15, now=now, name="host:1")
    assert heartbeat.beat_if_due(now=now)
    assert not heartbeat.beat_if_due(now=now + timedelta(seconds=14))
    assert heartbeat.beat_if_due(now=now + timedelta(seconds=15))
    assert ClusterHeartbeat.objects.get(name="host:1").beat_at == now + timedelta(seconds=15)

    # host:1 was killed and never stopped: a day later another cluster's beat deletes its row.
    cluster_heartbeat_record("host:2", started_at=now, now=now + timedelta(days=1, seconds=16), metrics=[])
    assert list(ClusterHeartbeat.objects.values_list("name", flat=True)) == ["host:2"]
    Heartbeat(interval=15, now=now, name="host:2").stop()  # a cluster that stops deletes its own
    assert not ClusterHeartbeat.objects.exists()


def test_with_the_database_down_metrics_still_answers_and_says_which_figures_are_missing(scrape, database_down):
    text = scrape()
    assert metric_value(text, "portal_metrics_collector_up", collector="surveys.reporting.metrics.survey_metrics") == 0
    assert metric_value(text, "portal_metrics_collector_up", collector="portal.heartbeat.cluster_metrics") == 0
    assert "portal_survey_requests_waiting" not in text


def test_a_scrape_costs_the_same_queries_however_much_is_stored(client, account, scrape, settings):
    with CaptureQueriesContext(connection) as empty:
        scrape()
    for n in range(30):
        post_webhook(client, notification("conversation_admin_closed", id=f"notif-{n}"), process=n % 2 == 0)
    AccountFactory.create_batch(3)
    now = timezone.now()
    for n in range(3):
        cluster_heartbeat_record(f"host:{n}", started_at=now, now=now, metrics=[])
    assert InboundWebhook.objects.filter(status=InboundWebhook.Status.RECEIVED).exists()
    assert SurveyRequest.objects.exists()
    with CaptureQueriesContext(connection) as full:
        scrape()
    assert len(full) == len(empty) <= 15


def test_counting_waiting_rows_sorts_nothing(scrape):
    """A count capped with LIMIT reads the partial index; the models' default ordering would sort every row first."""
    with CaptureQueriesContext(connection) as queries:
        scrape()
    counts = [query["sql"] for query in queries if "COUNT(" in query["sql"].upper()]
    assert counts and not [sql for sql in counts if "ORDER BY" in sql.upper()]


@pytest.mark.slow
@pytest.mark.skipif(not shutil.which("promtool"), reason="promtool (Debian's prometheus package) is not installed")
def test_the_exposition_and_the_example_alert_rules_pass_promtool(client, account, scrape, tmp_path):
    post_webhook(client, load_fixture("conversation_admin_closed"))
    now = timezone.now()
    cluster_heartbeat_record("host:1", started_at=now, now=now, metrics=[])
    checked = subprocess.run(["promtool", "check", "metrics"], input=scrape(), capture_output=True, text=True)
    assert checked.returncode == 0, checked.stdout + checked.stderr
    rules = subprocess.run(
        ["promtool", "check", "rules", str(ROOT / "deploy" / "prometheus" / "alerts.yml")], capture_output=True
    )
    assert rules.returncode == 0, rules.stdout + rules.stderr
