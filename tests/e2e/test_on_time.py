"""Two real clusters started as deployed (`manage.py runcluster`), with django-q2's scheduler given nothing to
run: requests coming due after they started are sent by the clusters' pollers alone, each exactly once, and
both clusters stop cleanly on SIGTERM."""

import os
import signal
import subprocess
import sys
from collections import Counter
from datetime import timedelta
from pathlib import Path

import pytest
from django.utils import timezone
from django_q.models import Schedule

from sandbox.demo import sandbox_people_create
from sandbox.models import StellaSandboxRequest
from surveys.models import SurveyRequest
from tests.e2e.test_cluster_faults import ROOT, database_url
from tests.factories import AccountFactory, SurveyRequestFactory
from tests.helpers import wait_until

pytestmark = [pytest.mark.slow, pytest.mark.django_db(transaction=True)]

COUNT = 10


def start_runcluster(stella_url: str) -> subprocess.Popen:
    env = {
        **os.environ,
        "Q_WORKERS": "2",
        "DATABASE_URL": database_url(),
        "STELLA_API_URL": stella_url,
        "LOG_LEVEL": "WARNING",
        "SEND_POLL_SECONDS": "0.5",
    }
    return subprocess.Popen(
        [sys.executable, "manage.py", "runcluster"],
        cwd=ROOT,
        env=env,
        start_new_session=True,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )


def test_two_runclusters_send_what_comes_due_once_without_the_scheduler(live_server):
    sandbox_people_create()
    account = AccountFactory(integration__test_api_key="sandbox-test-key-0001")
    Schedule.objects.all().delete()  # no sweep, no wake-up: only the pollers can queue these
    # Due once both clusters run: nothing is queued when they start.
    coming_due = timezone.now() + timedelta(seconds=5)
    for _ in range(COUNT):
        SurveyRequestFactory(account=account, send_after=coming_due, teammate_email="tess@support.example")

    clusters = [start_runcluster(f"{live_server.url}/sandbox/stella") for _ in range(2)]
    try:
        # Each runs at CLUSTER_NICE (10) niceness: webhooks on the same machine are answered first.
        wait_until(
            lambda: os.getpriority(os.PRIO_PROCESS, clusters[0].pid) != os.getpriority(os.PRIO_PROCESS, 0),
            timeout=30,
            message="runcluster never lowered its priority",
        )
        assert os.getpriority(os.PRIO_PROCESS, clusters[0].pid) == min(19, os.getpriority(os.PRIO_PROCESS, 0) + 10)
        # It leads a session of its own, which Linux's autogroup schedules as one against the web's: lowered too.
        autogroup = Path(f"/proc/{clusters[0].pid}/autogroup")
        if autogroup.exists():
            wait_until(
                lambda: autogroup.read_text().split()[-2:] == ["nice", "10"],
                timeout=10,
                message=lambda: f"the cluster's session was left at {autogroup.read_text().strip()}",
            )
        wait_until(
            lambda: not SurveyRequest.objects.exclude(status=SurveyRequest.Status.SENT).exists(),
            timeout=90,
            message=lambda: Counter(SurveyRequest.objects.values_list("status", flat=True)),
            interval=0.2,
        )
    finally:
        for cluster in clusters:
            cluster.send_signal(signal.SIGTERM)
        exit_codes = []
        for cluster in clusters:
            try:
                exit_codes.append(cluster.wait(timeout=30))
            except subprocess.TimeoutExpired:
                os.killpg(cluster.pid, signal.SIGKILL)
                exit_codes.append(cluster.wait())
    assert exit_codes == [0, 0]  # stopped by SIGTERM, poller and cluster both, not killed

    accepted = Counter(
        body["ext_interaction_id"]
        for body in StellaSandboxRequest.objects.filter(status_code=200).values_list("body", flat=True)
    )
    assert sorted(accepted) == sorted(SurveyRequest.objects.values_list("conversation_id", flat=True))
    assert set(accepted.values()) == {1}
    assert not SurveyRequest.objects.filter(sent_at__lt=coming_due).exists()
