"""`make run-scaled` as a user runs it: deploy/run_scaled.py starts two gunicorn web processes and three task
clusters over PostgreSQL (a database of this test's own, created by the script and dropped after); signed
closures posted to both web processes are stored once, processed and sent to the sandbox's Stella once each, and
SIGTERM stops every process the script started. Real processes and real HTTP, on 127.0.0.1 only."""

import json
import os
import re
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import psycopg
import pytest

from portal.models import ClusterHeartbeat
from sandbox.demo import TEAMMATES, WORKSPACE
from sandbox.models import StellaSandboxRequest
from sandbox.samples import closed_conversation
from surveys.models import SurveyRequest
from tests.helpers import metric_value, sign, wait_until

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[2]
CLOSURES = 6
STARTUP_SECONDS = 240  # a fresh database's migrations, on a shared 2-core machine
SEND_SECONDS = 120
WEBHOOKS = "portal_intercom_webhooks_total"
STELLA_CALLS = "portal_stella_call_duration_seconds_count"
STOP_SECONDS = 120  # the script's own limit (75 s) and its last kill
TESS = TEAMMATES[0]
METRICS_TOKEN = "run-scaled-metrics-token"


def scaled_database_url() -> str:
    """The PostgreSQL server the suite runs on (or the local default), with a database of this test's own."""
    suite = os.environ.get("DATABASE_URL", "")
    base = (
        suite if urlsplit(suite).scheme in ("postgres", "postgresql") else "postgres://postgres@127.0.0.1:5432/portal"
    )
    parts = urlsplit(base)
    return urlunsplit(parts._replace(path=f"{parts.path.strip('/')}_run_scaled_{os.getpid()}"))


def admin_url(url: str) -> str:
    return urlunsplit(urlsplit(url)._replace(scheme="postgresql", path="/postgres"))


@dataclass
class Scaled:
    popen: subprocess.Popen[str]
    database_url: str
    output: list[str] = field(default_factory=list)

    def text(self) -> str:
        return "".join(self.output)

    def children(self) -> dict[str, int]:
        """The processes the script announced: name → pid (each leads its own process group)."""
        return {name: int(pid) for name, pid in re.findall(r"^  (\w+ \d+) +pid (\d+)", self.text(), re.M)}

    def ports(self) -> list[int]:
        return [int(port) for port in re.findall(r"pid \d+ +http://127\.0\.0\.1:(\d+)", self.text())]


def two_free_ports() -> int:
    """A port p with p + 1 free too: run_scaled.py puts its web processes on consecutive ports."""
    for _ in range(50):
        with socket.socket() as first:
            first.bind(("127.0.0.1", 0))
            port = first.getsockname()[1]
            with socket.socket() as second:
                try:
                    second.bind(("127.0.0.1", port + 1))
                except OSError:
                    continue
        return port
    raise RuntimeError("no two consecutive free ports on 127.0.0.1")


def group_alive(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    return True


@pytest.fixture
def scaled() -> Iterator[Scaled]:
    database_url = scaled_database_url()
    try:
        psycopg.connect(admin_url(database_url), connect_timeout=3).close()
    except psycopg.Error as error:
        server = f"{urlsplit(database_url).hostname}:{urlsplit(database_url).port or 5432}"
        pytest.skip(f"make run-scaled runs over PostgreSQL, and none answered at {server}: {error}")
    env = {**os.environ, "DATABASE_URL": database_url, "WEB_CONCURRENCY": "2", "Q_WORKERS": "2"}
    # Clusters report in every 2 s, so their counts reach /metrics soon after the sends.
    env.update(METRICS_TOKEN=METRICS_TOKEN, CLUSTER_HEARTBEAT_SECONDS="2", CLUSTER_HEARTBEAT_MAX_AGE_SECONDS="30")
    env.pop("PORTAL_URL", None)
    popen = subprocess.Popen(
        [sys.executable, "deploy/run_scaled.py", "--port", str(two_free_ports())],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
    )
    running = Scaled(popen, database_url)

    def read() -> None:
        for line in popen.stdout or []:
            running.output.append(line)

    threading.Thread(target=read, daemon=True).start()
    try:
        yield running
    finally:
        # Whatever the test left running (it stops everything itself when it passes).
        for pgid in [popen.pid, *running.children().values()]:
            if group_alive(pgid):
                os.killpg(pgid, signal.SIGKILL)
        popen.wait(timeout=30)
        with psycopg.connect(admin_url(database_url), autocommit=True) as connection:
            name = urlsplit(database_url).path.strip("/")
            connection.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def post_closure(port: int, payload: dict) -> tuple[int, dict]:
    body = json.dumps(payload).encode()
    request = urllib.request.Request(
        f"http://127.0.0.1:{port}/webhooks/intercom/",
        data=body,
        headers={"Content-Type": "application/json", "X-Hub-Signature": sign(body)},
    )
    with urllib.request.urlopen(request, timeout=10) as response:
        return response.status, json.loads(response.read())


def healthz(port: int) -> tuple[int, bytes]:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=10) as response:
        return response.status, response.read()


def scrape(port: int) -> str:
    request = urllib.request.Request(
        f"http://127.0.0.1:{port}/metrics", headers={"Authorization": f"Bearer {METRICS_TOKEN}"}
    )
    with urllib.request.urlopen(request, timeout=10) as response:
        return response.read().decode()


def readyz(port: int) -> tuple[int, dict]:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/readyz", timeout=10) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read())


def heartbeats(database_url: str) -> int:
    with psycopg.connect(database_url.replace("postgres://", "postgresql://", 1)) as connection:
        return connection.execute(f"SELECT count(*) FROM {ClusterHeartbeat._meta.db_table}").fetchone()[0]


def sent_and_accepted(database_url: str, conversations: list[str]) -> tuple[dict[str, str], dict[str, int]]:
    """Each conversation's survey request status, and how many requests Stella (the sandbox) accepted for it."""
    with psycopg.connect(database_url.replace("postgres://", "postgresql://", 1)) as connection:
        statuses = connection.execute(
            f"SELECT conversation_id, status FROM {SurveyRequest._meta.db_table} WHERE conversation_id = ANY(%s)",
            [conversations],
        ).fetchall()
        accepted = connection.execute(
            f"SELECT body->>'ext_interaction_id', count(*) FROM {StellaSandboxRequest._meta.db_table} "
            "WHERE status_code = 200 AND body->>'ext_interaction_id' = ANY(%s) GROUP BY 1",
            [conversations],
        ).fetchall()
    return dict(statuses), dict(accepted)


def test_two_web_processes_and_three_clusters_send_each_closure_once_and_stop_on_sigterm(scaled):
    wait_until(
        lambda: "stops them all" in scaled.text() or scaled.popen.poll() is not None,
        timeout=STARTUP_SECONDS,
        message=lambda: scaled.text()[-3000:],
        interval=0.5,
    )
    assert scaled.popen.poll() is None, scaled.text()[-3000:]
    children = scaled.children()
    assert sorted(children) == ["cluster 1", "cluster 2", "cluster 3", "web 1", "web 2"], scaled.text()[-3000:]
    ports = scaled.ports()
    assert len(ports) == 2

    run = str(time.time_ns() // 1_000_000)
    conversations = [f"{run}{n}" for n in range(CLOSURES)]
    closures = [
        closed_conversation(
            app_id=WORKSPACE,
            conversation_id=conversation,
            at=int(time.time()),
            customer=(f"contact-{conversation}", "Scaled Customer", f"scaled+{conversation}@customer.example"),
            teammate=TESS,
        )
        for conversation in conversations
    ]
    # Alternately to each web process, as a load balancer would; a retry of the first at the other one is a duplicate.
    answers = [post_closure(ports[n % 2], closure) for n, closure in enumerate(closures)]
    assert {status for status, _ in answers} == {200}, answers
    assert post_closure(ports[1], closures[0]) == (200, {"status": "duplicate"})

    def all_sent() -> bool:
        statuses, _ = sent_and_accepted(scaled.database_url, conversations)
        return len(statuses) == CLOSURES and set(statuses.values()) == {SurveyRequest.Status.SENT}

    wait_until(
        all_sent,
        timeout=SEND_SECONDS,
        message=lambda: sent_and_accepted(scaled.database_url, conversations),
        interval=0.5,
    )
    _, accepted = sent_and_accepted(scaled.database_url, conversations)
    assert accepted == dict.fromkeys(conversations, 1)
    assert [healthz(port) for port in ports] == [(200, b"ok")] * 2
    assert [readyz(port)[0] for port in ports] == [200, 200], [readyz(port) for port in ports]

    # Each web process serves the webhooks its own workers answered; both serve every cluster's Stella calls, which
    # the clusters' heartbeats carry, so each scrape sees all the sends whichever cluster's worker made them.
    def stella_calls_reported() -> bool:
        return all(metric_value(scrape(port), STELLA_CALLS, outcome="sent") >= CLOSURES for port in ports)

    wait_until(stella_calls_reported, timeout=30, message=lambda: scrape(ports[0]), interval=0.5)
    scrapes = [scrape(port) for port in ports]
    assert sum(metric_value(text, WEBHOOKS, outcome="received") for text in scrapes) == CLOSURES
    assert sum(metric_value(text, WEBHOOKS, outcome="duplicate") for text in scrapes) == 1
    assert metric_value(scrapes[0], "portal_clusters_alive") == 3
    assert metric_value(scrapes[0], "portal_intercom_webhooks_waiting") == 0
    assert all(group_alive(pid) for pid in children.values()), "a process stopped while the portal ran"

    os.kill(scaled.popen.pid, signal.SIGTERM)
    assert scaled.popen.wait(timeout=STOP_SECONDS) == 0, scaled.text()[-3000:]
    assert "Stopped: web 1, web 2, cluster 1, cluster 2, cluster 3." in scaled.text()
    assert "killed them" not in scaled.text()
    assert [name for name, pid in children.items() if group_alive(pid)] == []
    assert heartbeats(scaled.database_url) == 0  # each cluster deleted its own as it stopped
    with pytest.raises(urllib.error.URLError):
        healthz(ports[0])
