"""Lateness of delayed sends and retries: how long after its send-after time each call reaches Stella.

Deployed as the README says: the portal under gunicorn with deployed settings and `manage.py runcluster`
beside it, on one SQLite file. Stella (and Intercom's REST API) is the sandbox, under gunicorn with a
database of its own; Stella's calls reach it through a small proxy on 127.0.0.1 that notes when each call
arrives and answers the first call of every retried conversation itself, 503 or 429 (Retry-After: 1) in turn.

Closures arrive as signed webhooks, a few a second: DELAYED to an account with a DELAY_S channel delay,
RETRIED to one without a delay whose first call fails (STELLA_RETRY_BASE_SECONDS=1: retried 0.5-1.5 s later).
Lateness is the call's arrival at Stella minus the request's send-after time: for a delayed send, its close
plus the delay; for a retry, the time its failure set.

Two runs: with the poller (SEND_POLL_SECONDS=1, as deployed), then without it (SEND_POLL_SECONDS=0: the
minute sweep alone, what a plain `qcluster` gives). Target: with the poller, every call within 5 s of its
due time, and no conversation accepted twice. Everything is on 127.0.0.1, bounded in count and seconds
(about 3 minutes in all), and stops by itself.
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import signal
import sqlite3
import statistics
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.common import CLIENT_SECRET, PYTHON, ROOT, free_port, portal_env, request, serve, workdir  # noqa: E402
from integrations.intercom.signature import signature_for  # noqa: E402
from sandbox.samples import closed_conversation  # noqa: E402

DELAYED = 20
RETRIED = 20
DELAY_S = 15
TARGET_S = 5.0
SPREAD_S = 4.0  # the closures of each kind arrive spread over this long, so their due times spread too
ROUND_TIMEOUT_S = {"poller": 60, "sweep only": 150}
DELAYED_WORKSPACE, RETRIED_WORKSPACE = "bench-delayed", "bench-retried"
TEAMMATE = ("4100001", "Tess Teammate", "tess@support.example")  # a Stella employee in the sandbox

STELLA_SEED = "from sandbox.demo import sandbox_people_create\nsandbox_people_create()"


class StellaProxy:
    """Stella as the portal sees it: the sandbox behind a proxy that notes arrival times and fails first tries."""

    def __init__(self, upstream_port: int, *, flaky: set[str]) -> None:
        self.arrivals: dict[str, list[float]] = {}  # conversation id: when each of its calls arrived
        lock = threading.Lock()
        arrivals = self.arrivals

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802
                arrived = time.time()
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                try:
                    conversation = str(json.loads(body).get("ext_interaction_id"))
                except (ValueError, AttributeError):
                    conversation = "?"
                with lock:
                    first = conversation not in arrivals
                    arrivals.setdefault(conversation, []).append(arrived)
                headers = {"Content-Type": "application/json"}
                if first and conversation in flaky and int(conversation) % 2:
                    status, answer = 429, b'{"message": "Too many requests"}'
                    headers["Retry-After"] = "1"
                elif first and conversation in flaky:
                    status, answer = 503, b'{"message": "Service unavailable"}'
                else:
                    status, answer = self._forward(body)
                self.send_response(status)
                for name, value in {**headers, "Content-Length": str(len(answer))}.items():
                    self.send_header(name, value)
                self.end_headers()
                self.wfile.write(answer)

            def _forward(self, body: bytes) -> tuple[int, bytes]:
                connection = http.client.HTTPConnection("127.0.0.1", upstream_port, timeout=30)
                try:
                    headers = {"Content-Type": "application/json", "x-api-key": self.headers.get("x-api-key", "")}
                    connection.request("POST", "/sandbox/stella/v1/requests", body=body, headers=headers)
                    response = connection.getresponse()
                    return response.status, response.read()
                finally:
                    connection.close()

            def log_message(self, *args: object) -> None:
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"

    @contextmanager
    def running(self) -> Iterator[StellaProxy]:
        thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        thread.start()
        try:
            yield self
        finally:
            self.httpd.shutdown()
            self.httpd.server_close()


def closure(workspace: str, conversation_id: int) -> bytes:
    """A signed-to-be closure, closed now: built as it is posted, so due times spread as the posts do."""
    payload = closed_conversation(
        app_id=workspace,
        conversation_id=str(conversation_id),
        at=int(time.time()),
        teammate=TEAMMATE,
        customer=(f"contact-{conversation_id}", "Bench Customer", f"customer{conversation_id}@bench.example"),
        notification_id=f"notif_lateness_{conversation_id}",
    )
    return json.dumps(payload).encode()


def post(port: int, body: bytes) -> None:
    headers = {"Content-Type": "application/json", "X-Hub-Signature": signature_for(body, CLIENT_SECRET)}
    status, answer = request(port, "POST", "/webhooks/intercom/", body, headers)
    if status != 200:
        raise RuntimeError(f"webhook answered {status}: {answer[:200]!r}")


def epoch(stored: str) -> float:
    """A datetime as Django stores it in SQLite (UTC, no zone) as seconds since the epoch."""
    return datetime.fromisoformat(stored).replace(tzinfo=UTC).timestamp()


def stop(process: subprocess.Popen) -> int:
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)  # to the cluster's main process, which stops its own
    try:
        return process.wait(timeout=30)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait()
        return -9


def summary(lateness: list[float]) -> dict[str, float | int | None]:
    if not lateness:
        return {"n": 0, "median_s": None, "max_s": None}
    return {"n": len(lateness), "median_s": round(statistics.median(lateness), 2), "max_s": round(max(lateness), 2)}


def one_round(name: str, poll_seconds: str) -> dict[str, Any]:
    delayed_ids, retried_ids = range(8100000, 8100000 + DELAYED), range(8200000, 8200000 + RETRIED)
    with workdir() as path:
        stella_port, portal_port = free_port(), free_port()
        # Stella is another system: the sandbox gets a database of its own.
        stella_env = portal_env(
            path, stella_port, DEBUG="true", SANDBOX="true", DATABASE_URL=f"sqlite:///{path / 'stella.sqlite3'}"
        )
        proxy = StellaProxy(stella_port, flaky={str(n) for n in retried_ids})
        with serve(stella_env, workers=2, gunicorn_args=("--worker-class", "gthread", "--threads", "8")) as stella:
            stella.manage("shell", "-c", STELLA_SEED)
            env = portal_env(
                path,
                portal_port,
                STELLA_API_URL=proxy.url,
                INTERCOM_API_URL=f"{stella.url}/sandbox/intercom",
                STELLA_RETRY_BASE_SECONDS="1",
                SEND_POLL_SECONDS=poll_seconds,
            )
            with proxy.running(), serve(env, workers=2) as portal:
                for workspace, delay in ((DELAYED_WORKSPACE, f"{DELAY_S}s"), (RETRIED_WORKSPACE, "0")):
                    portal.manage(
                        "account_upsert", workspace, "--name", workspace, "--channel-delay", delay,
                        "--suppression-window", "0", "--test-api-key", f"sandbox-test-key-{workspace}",
                        "--intercom-access-token", f"sandbox-intercom-token-{workspace}",
                    )  # fmt: skip
                cluster = subprocess.Popen(
                    [PYTHON, "manage.py", "runcluster"],
                    cwd=ROOT,
                    env=env,
                    start_new_session=True,
                    stdout=subprocess.DEVNULL,
                    stderr=subprocess.DEVNULL,
                )
                database = sqlite3.connect(path / "bench.sqlite3", timeout=30)
                try:
                    time.sleep(3)  # the cluster's start-up, so a retry's first call isn't waiting on it
                    # Interleaved, a few a second, so their due times spread over SPREAD_S.
                    for pair in zip(delayed_ids, retried_ids, strict=True):
                        for workspace, conversation_id in zip(
                            (DELAYED_WORKSPACE, RETRIED_WORKSPACE), pair, strict=True
                        ):
                            post(portal.port, closure(workspace, conversation_id))
                            time.sleep(SPREAD_S / (DELAYED + RETRIED))
                    deadline = time.monotonic() + ROUND_TIMEOUT_S[name]
                    while time.monotonic() < deadline:
                        (waiting,) = database.execute(
                            "SELECT count(*) FROM surveys_surveyrequest WHERE status NOT IN "
                            "('sent', 'invalid', 'failed', 'ambiguous', 'suppressed', 'cancelled')"
                        ).fetchone()
                        (recorded,) = database.execute("SELECT count(*) FROM surveys_surveyrequest").fetchone()
                        if recorded == DELAYED + RETRIED and not waiting:
                            break
                        time.sleep(0.5)
                    rows = database.execute(
                        "SELECT conversation_id, status, send_after, attempts FROM surveys_surveyrequest"
                    ).fetchall()
                finally:
                    exit_code = stop(cluster)
                    database.close()
            stella_database = sqlite3.connect(path / "stella.sqlite3", timeout=30)
            accepted = stella_database.execute(
                "SELECT count(*), count(DISTINCT json_extract(body, '$.ext_interaction_id')) "
                "FROM sandbox_stellasandboxrequest WHERE status_code = 200"
            ).fetchone()
            stella_database.close()

    delayed: list[float] = []
    retried: list[float] = []
    unsent: list[dict[str, object]] = []
    retried_conversations = {str(n) for n in retried_ids}
    for conversation_id, status, send_after, attempts in rows:
        tries = proxy.arrivals.get(conversation_id, [])
        retry = conversation_id in retried_conversations
        expected = 2 if retry else 1
        if status != "sent" or len(tries) != expected or attempts != expected:
            unsent.append({"conversation": conversation_id, "status": status, "calls": len(tries)})
            continue
        (retried if retry else delayed).append(tries[-1] - epoch(send_after))
    return {
        "round": name,
        "send_poll_seconds": float(poll_seconds),
        "delayed": summary(delayed),
        "retried": summary(retried),
        "not_as_expected": unsent[:5],
        "not_as_expected_count": len(unsent) + (DELAYED + RETRIED - len(rows)),
        "accepted_by_stella": accepted[0],
        "duplicates": accepted[0] - accepted[1],
        "cluster_exit_code": exit_code,
    }


def main(rounds: tuple[str, ...] = ("poller", "sweep only")) -> dict[str, object]:
    results = [one_round(name, "1" if name == "poller" else "0") for name in rounds]
    poller = next((result for result in results if result["round"] == "poller"), None)
    ok = all(result["duplicates"] == 0 and result["cluster_exit_code"] == 0 for result in results)
    if poller is not None:
        ok = ok and not poller["not_as_expected_count"]
        ok = ok and all(poller[kind]["n"] and poller[kind]["max_s"] <= TARGET_S for kind in ("delayed", "retried"))
    return {
        "bench": "lateness",
        "delayed_requests": DELAYED,
        "channel_delay_s": DELAY_S,
        "retried_requests": RETRIED,
        "target_max_s": TARGET_S,
        "rounds": results,
        "ok": ok,
    }


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--poller-only", action="store_true", help="Skip the round without the poller (about 2 minutes)."
    )
    arguments = parser.parse_args()
    result = main(("poller",) if arguments.poller_only else ("poller", "sweep only"))
    print(json.dumps(result))
    sys.exit(0 if result["ok"] else 1)
