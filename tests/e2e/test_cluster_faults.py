"""A real django-q2 cluster, killed with SIGKILL in the middle of a batch of sends, then restarted:
every due request must reach a final state, and no conversation may get two accepted requests."""

import os
import signal
import subprocess
import sys
from collections import Counter
from datetime import timedelta
from pathlib import Path

import pytest
from django.db import connection
from django.utils import timezone

from sandbox.demo import sandbox_people_create
from sandbox.models import StellaSandboxRequest
from surveys.delivery.sending import survey_requests_send_due
from surveys.models import SurveyRequest
from tests.factories import AccountFactory, SurveyRequestFactory
from tests.helpers import wait_until

pytestmark = [pytest.mark.slow, pytest.mark.django_db(transaction=True)]

ROOT = Path(__file__).resolve().parents[2]
BATCH = 40
FINAL = {
    SurveyRequest.Status.SENT,
    SurveyRequest.Status.AMBIGUOUS,
    SurveyRequest.Status.INVALID,
    SurveyRequest.Status.FAILED,
}
CLUSTER = {"Q_WORKERS": "4", "Q_TIMEOUT": "2", "Q_RETRY": "3", "Q_MAX_ATTEMPTS": "3", "INTAKE_BATCH_SECONDS": "0.5"}


def database_url() -> str:
    db = connection.settings_dict
    if connection.vendor == "sqlite":
        return f"sqlite:///{db['NAME']}"
    return (
        f"postgres://{db['USER']}:{db['PASSWORD'] or ''}@{db['HOST'] or '127.0.0.1'}:{db['PORT'] or 5432}/{db['NAME']}"
    )


def start_cluster(stella_url: str, *, settings: dict[str, str] = CLUSTER) -> subprocess.Popen:
    """A real `qcluster` on the test's database, with `settings` (the fault tests' CLUSTER unless given)."""
    env = {
        **os.environ,
        **settings,
        "DATABASE_URL": database_url(),
        "STELLA_API_URL": stella_url,
        "LOG_LEVEL": "WARNING",
    }
    return subprocess.Popen(
        [sys.executable, "manage.py", "qcluster"],
        cwd=ROOT,
        env=env,
        start_new_session=True,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )


def stop(cluster: subprocess.Popen, sig: int) -> None:
    """SIGKILL takes the whole process group at once, as a crash would; SIGTERM goes to the cluster's
    main process, which stops its own workers."""
    if cluster.poll() is None:
        if sig == signal.SIGKILL:
            os.killpg(cluster.pid, sig)
        else:
            cluster.send_signal(sig)
        try:
            cluster.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(cluster.pid, signal.SIGKILL)
            cluster.wait()


def statuses() -> Counter:
    return Counter(SurveyRequest.objects.values_list("status", flat=True))


def test_killed_cluster_loses_nothing_and_surveys_nobody_twice(live_server, settings):
    settings.SANDBOX_STELLA_LATENCY_MS = 250
    settings.Q_CLUSTER = {**settings.Q_CLUSTER, "timeout": 2, "retry": 3}
    sandbox_people_create()
    account = AccountFactory(integration__test_api_key="sandbox-test-key-0001")
    past = timezone.now() - timedelta(minutes=1)
    for _ in range(BATCH):
        SurveyRequestFactory(account=account, closed_at=past, send_after=past, teammate_email="tess@support.example")
    stella_url = f"{live_server.url}/sandbox/stella"
    survey_requests_send_due(now=timezone.now())

    cluster = start_cluster(stella_url)
    try:
        wait_until(lambda: statuses()[SurveyRequest.Status.SENT] >= 5, timeout=60, message=statuses, interval=0.2)
        stop(cluster, signal.SIGKILL)
        at_kill = statuses()
        assert at_kill[SurveyRequest.Status.SENT] < BATCH, "the batch finished before the kill: nothing was tested"

        cluster = start_cluster(stella_url)

        def all_final() -> bool:
            # What the every-minute sweep does in production, run here as often as the test waits.
            survey_requests_send_due(now=timezone.now())
            return set(statuses()) <= FINAL

        wait_until(all_final, timeout=90, message=statuses, interval=0.2)
    finally:
        stop(cluster, signal.SIGTERM)

    accepted = Counter(
        body["ext_interaction_id"]
        for body in StellaSandboxRequest.objects.filter(status_code=200).values_list("body", flat=True)
    )
    assert max(accepted.values()) == 1, [conversation for conversation, n in accepted.items() if n > 1]
    for survey_request in SurveyRequest.objects.all():
        if survey_request.status == SurveyRequest.Status.SENT:
            assert accepted[survey_request.conversation_id] == 1
    final = statuses()
    assert final[SurveyRequest.Status.SENT] + final[SurveyRequest.Status.AMBIGUOUS] == BATCH, final
    assert final[SurveyRequest.Status.AMBIGUOUS] <= 4  # at most the calls in flight when it died
