"""GET /readyz: 200 when the database, the task broker, a task cluster and the migrations are as they should be; 503
naming each that isn't. /healthz asks nothing of anyone."""

from datetime import timedelta

import pytest
from django.db.migrations.recorder import MigrationRecorder
from django.utils import timezone

from portal.heartbeat import cluster_heartbeat_record

pytestmark = pytest.mark.django_db


@pytest.fixture
def cluster_alive():
    now = timezone.now()
    cluster_heartbeat_record("worker-host:4242", started_at=now, now=now, metrics=[])


def test_ready_when_all_is_well(client, cluster_alive):
    response = client.get("/readyz")
    assert response.status_code == 200
    body = response.json()
    assert (body["status"], body["failing"]) == ("ready", [])
    assert list(body["checks"]) == ["database", "broker", "cluster", "migrations"]
    assert all(check["ok"] for check in body["checks"].values())


def test_no_cluster_ever_reported_in_is_503_naming_the_cluster(client):
    response = client.get("/readyz")
    assert (response.status_code, response.json()["failing"]) == (503, ["cluster"])
    assert "no task cluster is running" in response.json()["checks"]["cluster"]["detail"]


def test_a_heartbeat_older_than_the_bound_is_503_naming_the_cluster(client, settings):
    settings.CLUSTER_HEARTBEAT_MAX_AGE_SECONDS = 120
    now = timezone.now()
    cluster_heartbeat_record("worker-host:4242", started_at=now, now=now - timedelta(seconds=121), metrics=[])
    response = client.get("/readyz")
    assert (response.status_code, response.json()["failing"]) == (503, ["cluster"])
    assert "at most 120 s" in response.json()["checks"]["cluster"]["detail"]


def test_the_database_down_is_503_naming_the_database(client, database_down, settings):
    response = client.get("/readyz")
    assert response.status_code == 503
    body = response.json()
    # The database broker is the database (Redis answers on its own); what needs the database can't be known
    # without it.
    broker = [] if settings.Q_CLUSTER.get("redis") else ["broker"]
    assert body["failing"] == ["database", *broker, "cluster", "migrations"]
    assert body["checks"]["database"]["detail"].startswith("OperationalError")
    assert body["checks"]["cluster"]["detail"] == "not checked: the database is unreachable"


def test_a_migration_not_applied_is_503_naming_the_migrations(client, cluster_alive):
    MigrationRecorder.Migration.objects.filter(app="portal", name="0004_cluster_heartbeat").delete()
    response = client.get("/readyz")
    assert (response.status_code, response.json()["failing"]) == (503, ["migrations"])
    assert (
        response.json()["checks"]["migrations"]["detail"]
        == "1 not applied (portal.0004_cluster_heartbeat): run migrate"
    )


def test_a_failing_probe_is_not_logged_as_an_error_of_the_portal(client, caplog):
    assert client.get("/readyz").status_code == 503
    assert not [record for record in caplog.records if record.levelname == "ERROR"]


def test_health_and_readiness_need_no_login_and_no_https_even_where_every_page_does(client, settings, cluster_alive):
    settings.SECURE_SSL_REDIRECT = True
    assert client.get("/login/").status_code == 301
    assert client.get("/healthz").status_code == 200
    assert client.get("/readyz").status_code == 200
    assert client.get("/metrics").status_code == 404  # not redirected, and nothing says it is there
