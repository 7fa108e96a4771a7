"""Post hostile signed webhooks to a running portal, then check what became of them: no answer may be a 5xx,
none may hang, and no webhook answered 200 may end failed.

    make run                      # in one terminal (SQLite, the sandbox), then in another:
    .venv/bin/python bench/fuzz_webhooks.py --cases 3000

    # a deployed-style portal on PostgreSQL: give its URL, secret and database, and the workspace of an account
    DATABASE_URL=postgres://postgres@127.0.0.1:5432/portal_scaled .venv/bin/python bench/fuzz_webhooks.py \
        --url http://127.0.0.1:8000/webhooks/intercom/ --secret "$INTERCOM_CLIENT_SECRET" --cases 1000

Each case is one of the test fixtures, addressed to `--workspace` (an account's, so the cases reach processing),
with one to three fields replaced by something hostile (out-of-range times, lone surrogates, NULs, over-long ids,
wrong types, deep nesting), or raw bytes, signed with the given secret, posted by `--concurrency` senders at once.
Then it waits until the portal has acted on every case and reads their stored outcomes from the portal's database
(manage.py shell, with DEBUG=true and this environment's DATABASE_URL, as `make run` has them).
Loopback only; bounded by --cases and --timeout. Prints one JSON line; exits 1 if anything is wrong.
"""

import argparse
import collections
import hashlib
import hmac
import http.client
import json
import os
import random
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

ROOT = Path(__file__).resolve().parents[1]
FIXTURES = ROOT / "tests" / "fixtures" / "intercom"
# Intercom waits this long for an answer; a request slower than that is as good as lost to it.
INTERCOM_PATIENCE_SECONDS = 5
HOSTILE: list[Any] = [
    None, True, 0, -1, 10**30, 1000000000000, -1000000000000, 253402300800, 1.5, "", "\x00", "\ud800", "a\udfffb",
    "x" * 65, "n" * 101, "javascript:alert(document.cookie)", [], {}, [[[[]]]], {"type": "conversation"}, "0",
    "\ufeff", "é" * 300, "https://app.intercom.com/a/\x00", "https://app.intercom.com/\ud800", "=HYPERLINK(1)",
]  # fmt: skip
PATHS = [
    ("id",), ("topic",), ("app_id",), ("created_at",), ("data", "item", "id"), ("data", "item", "created_at"),
    ("data", "item", "source", "author", "name"), ("data", "item", "source", "author", "email"),
    ("data", "item", "source", "author", "type"), ("data", "item", "source", "type"),
    ("data", "item", "admin_assignee_id"), ("data", "item", "links"), ("data", "item", "links", "conversation_web"),
    ("data", "item", "channel", "initial"), ("data", "item", "state"), ("data", "item", "user", "type"),
    ("data", "item", "conversation_parts"), ("data", "item", "tags"), ("data", "item", "contacts"),
    ("data", "item", "user"), ("data", "item", "conversation_id"),
]  # fmt: skip
CHECK = """
import json
from django.db.models import Count
from integrations.models import InboundWebhook
ids = json.loads(open({path!r}).read())
rows = InboundWebhook.objects.filter(notification_id__in=ids)
statuses = dict(rows.values_list("status").annotate(n=Count("pk")).order_by())
failed = list(rows.filter(status="failed").values_list("notification_id", "error")[:5])
print(json.dumps({{"statuses": statuses, "failed": failed}}))
"""


def hostile_body(rng: random.Random, fixtures: list[dict[str, Any]], index: int, workspace: str) -> bytes:
    roll = rng.random()
    if roll < 0.05:
        return rng.randbytes(rng.randint(0, 200))
    if roll < 0.08:
        return b'{"a":' * 5000 + b"1" + b"}" * 5000
    payload = json.loads(json.dumps(rng.choice(fixtures)))
    payload["id"] = f"fuzz-{index}-{rng.getrandbits(32)}"
    payload["app_id"] = workspace
    payload["created_at"] = int(time.time())  # inside the replay window, so the cases reach processing
    for _ in range(rng.randint(1, 3)):
        path = rng.choice(PATHS)
        target = payload
        for key in path[:-1]:
            target = target.get(key) if isinstance(target, dict) else None
        if isinstance(target, dict):
            target[path[-1]] = rng.choice(HOSTILE)
    body = json.dumps(payload).encode()
    if roll > 0.97:
        body = b"\xef\xbb\xbf" + body
    return body


def notification_id(body: bytes) -> str | None:
    try:
        value = json.loads(body).get("id")
    except (ValueError, AttributeError):
        return None
    return value if isinstance(value, str) else None


class Sender:
    """Posts the cases from `concurrency` threads, noting each answer and how long it took."""

    def __init__(self, url: str, secret: str, bodies: list[bytes], *, timeout: float) -> None:
        self.url, self.secret, self.bodies, self.timeout = urlsplit(url), secret.encode(), bodies, timeout
        self.lock = threading.Lock()
        self.next = 0
        self.answers: collections.Counter[str] = collections.Counter()
        self.seconds: list[float] = []
        self.accepted: set[str] = set()  # notification ids answered 200 (a repeated id: a duplicate)
        self.five_xx: list[bytes] = []

    def run(self, concurrency: int) -> None:
        threads = [threading.Thread(target=self._send_all) for _ in range(concurrency)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()

    def _send_all(self) -> None:
        while True:
            with self.lock:
                if self.next >= len(self.bodies):
                    return
                body = self.bodies[self.next]
                self.next += 1
            self._send(body)

    def _send(self, body: bytes) -> None:
        signature = "sha1=" + hmac.new(self.secret, body, hashlib.sha1).hexdigest()
        started = time.monotonic()
        try:
            connection = http.client.HTTPConnection(
                self.url.hostname or "127.0.0.1", self.url.port or 80, timeout=self.timeout
            )
            connection.request(
                "POST", self.url.path, body, {"Content-Type": "application/json", "X-Hub-Signature": signature}
            )
            response = connection.getresponse()
            response.read()
            connection.close()
            answer = str(response.status)
        except TimeoutError:
            answer = "no answer"
        with self.lock:
            self.answers[answer] += 1
            self.seconds.append(time.monotonic() - started)
            if answer == "200" and (accepted := notification_id(body)):
                self.accepted.add(accepted)
            if answer.startswith("5"):
                self.five_xx.append(body[:200])


def outcomes(ids: list[str], *, wait: float) -> dict[str, Any]:
    """What the portal made of the accepted cases, once none is left waiting (or `wait` seconds pass)."""
    path = ROOT / "bench" / "out" / "fuzz-accepted.json"
    path.parent.mkdir(exist_ok=True)
    path.write_text(json.dumps(ids))
    env = {**os.environ, "DEBUG": os.environ.get("DEBUG", "true")}
    deadline = time.monotonic() + wait
    while True:
        result = subprocess.run(
            [sys.executable, "manage.py", "shell", "-c", CHECK.format(path=str(path))],
            cwd=ROOT,
            env=env,
            capture_output=True,
            text=True,
            check=True,
        )
        found = json.loads(result.stdout.strip().splitlines()[-1])
        if not found["statuses"].get("received") or time.monotonic() >= deadline:
            return found
        time.sleep(2)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--url", default="http://127.0.0.1:8000/webhooks/intercom/", help="on 127.0.0.1")
    parser.add_argument("--secret", default="sandbox-client-secret", help="the portal's INTERCOM_CLIENT_SECRET")
    parser.add_argument("--workspace", default="demo", help="an account's Intercom workspace id")
    parser.add_argument("--cases", type=int, default=500)
    parser.add_argument("--concurrency", type=int, default=8)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--timeout", type=float, default=30, help="seconds before a request counts as no answer")
    parser.add_argument("--wait", type=float, default=300, help="seconds to wait for the portal to act on them")
    args = parser.parse_args()
    if urlsplit(args.url).hostname not in ("127.0.0.1", "localhost", "::1"):
        parser.error("fuzz only a portal on this machine")
    rng = random.Random(args.seed)
    fixtures = [json.loads(path.read_text()) for path in sorted(FIXTURES.glob("*.json"))]
    bodies = [hostile_body(rng, fixtures, index, args.workspace) for index in range(args.cases)]
    sender = Sender(args.url, args.secret, bodies, timeout=args.timeout)
    started = time.monotonic()
    sender.run(args.concurrency)
    seconds = sorted(sender.seconds)
    stored = outcomes(sorted(sender.accepted), wait=args.wait)
    slow = sum(1 for taken in seconds if taken > INTERCOM_PATIENCE_SECONDS)
    accepted_failed = stored["statuses"].get("failed", 0)
    still_waiting = stored["statuses"].get("received", 0)
    report = {
        "cases": args.cases,
        "concurrency": args.concurrency,
        "seconds": round(time.monotonic() - started, 1),
        "answers": dict(sorted(sender.answers.items())),
        "five_xx": len(sender.five_xx),
        "no_answer": sender.answers["no answer"],
        f"slower_than_{INTERCOM_PATIENCE_SECONDS}s": slow,
        "p99_seconds": round(seconds[int(len(seconds) * 0.99)], 3) if seconds else None,
        "max_seconds": round(seconds[-1], 3) if seconds else None,
        "accepted": len(sender.accepted),
        "accepted_outcomes": stored["statuses"],
        "accepted_then_failed": accepted_failed,
    }
    print(json.dumps(report))
    for sample in sender.five_xx[:5]:
        print("5xx for:", sample, file=sys.stderr)
    for failed in stored["failed"]:
        print("answered 200, then failed:", failed, file=sys.stderr)
    bad = sender.five_xx or sender.answers["no answer"] or slow or accepted_failed or still_waiting
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
