import os
import subprocess
import uuid
from collections.abc import Iterator

import pytest
from django.conf import settings as django_settings
from django_q.brokers import get_broker
from django_q.conf import Conf

from integrations.stella.client import close_connections
from portal import queue as portal_queue
from surveys.models import Account
from tests.factories import AccountFactory
from tests.helpers import WORKSPACE_ID
from tests.servers import refused_port


def pytest_configure(config: pytest.Config) -> None:
    if not django_settings.SANDBOX:
        raise pytest.UsageError(
            "The tests play Stella and Intercom with the sandbox: unset SANDBOX, or set it to true."
        )


@pytest.fixture(autouse=True)
def only_slow_tests_start_processes(request, monkeypatch):
    """The fast tier (make test-fast: -m "not slow") starts no other process and no live server: a test that does
    must be marked slow, or it fails here. Every way the tests start a process (subprocess.run, Popen, Playwright's
    browser through asyncio) goes through Popen._execute_child; the live server is a fixture the test asks for."""
    if request.node.get_closest_marker("slow"):
        return
    if "live_server" in request.fixturenames:
        pytest.fail("This test uses the live server: mark it slow (pytest.mark.slow).", pytrace=False)

    def refuse(popen, args, *rest, **kwargs):
        pytest.fail(f"This test starts a process ({args!r}): mark it slow (pytest.mark.slow).", pytrace=False)

    monkeypatch.setattr(subprocess.Popen, "_execute_child", refuse)


@pytest.fixture(autouse=True)
def webhooks_stored_in_the_database(settings):
    """Webhook requests store into the database, where a test looks for them right after posting; the SQLite inbox
    the portal uses by default (integrations/inbox.py) has tests of its own, and the end-to-end tests run with it."""
    settings.WEBHOOK_INBOX = False


@pytest.fixture
def account(db) -> Account:
    return AccountFactory(intercom_workspace_id=WORKSPACE_ID)


@pytest.fixture
def behind_proxy(settings):
    """Deployed behind a TLS proxy on the same machine: BEHIND_TLS_PROXY=true and the proxy settings it brings
    (tests/portal/test_settings.py checks these are its defaults). The test client's peer is 127.0.0.1, the proxy."""
    settings.BEHIND_TLS_PROXY = True
    settings.TRUSTED_PROXIES = ["127.0.0.1", "::1"]
    settings.TRUSTED_PROXY_COUNT = 1


@pytest.fixture
def refused_url() -> Iterator[str]:
    """http://127.0.0.1:<port>, where a connection is refused throughout the test."""
    with refused_port() as port:
        yield f"http://127.0.0.1:{port}"


@pytest.fixture(autouse=True)
def fixtures_are_never_too_old(settings):
    """The fixtures' notifications carry fixed times, some from 2019: the replay window's own tests set it back."""
    settings.INTERCOM_WEBHOOK_MAX_AGE_DAYS = 36500


@pytest.fixture(autouse=True)
def clusters_counted_afresh(monkeypatch):
    """A process reads how many clusters are alive once every CLUSTER_HEARTBEAT_SECONDS (portal/heartbeat.py): each
    test counts the heartbeats it made, not those of a test before it."""
    monkeypatch.setattr("portal.heartbeat._alive", (None, 0))


@pytest.fixture(autouse=True)
def fast_password_hashing(settings):
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]


@pytest.fixture(autouse=True)
def no_kept_alive_connections():
    """A kept-alive connection holds the live server's request thread, and its database session, open."""
    yield
    close_connections()


@pytest.fixture(scope="session", autouse=True)
def own_redis_queue():
    """On the Redis broker, this run queues under a name of its own, which the clusters its tests start inherit,
    so runs sharing one Redis never take each other's tasks; its keys are deleted at the end."""
    if not django_settings.Q_CLUSTER.get("redis"):
        yield
        return
    name = f"portal-test-{uuid.uuid4().hex[:12]}"
    before = (Conf.PREFIX, Conf.CLUSTER_NAME, Conf.Q_STAT, os.environ.get("Q_CLUSTER_NAME"))
    Conf.PREFIX = Conf.CLUSTER_NAME = name
    Conf.Q_STAT = f"django_q:{name}:cluster"
    os.environ["Q_CLUSTER_NAME"] = name
    portal_queue._broker.cache_clear()
    try:
        yield
    finally:
        connection = get_broker().connection
        keys = list(connection.scan_iter(match=f"django_q:{name}:*"))
        if keys:
            connection.delete(*keys)
        Conf.PREFIX, Conf.CLUSTER_NAME, Conf.Q_STAT, environ_name = before
        if environ_name is None:
            os.environ.pop("Q_CLUSTER_NAME", None)
        else:
            os.environ["Q_CLUSTER_NAME"] = environ_name
        portal_queue._broker.cache_clear()


@pytest.fixture(autouse=True)
def no_task_outlives_its_test():
    """The database's queue table is rolled back or flushed after each test; Redis's list has to be emptied."""
    yield
    if django_settings.Q_CLUSTER.get("redis"):
        get_broker().purge_queue()
