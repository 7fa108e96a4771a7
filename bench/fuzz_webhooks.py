"""Post hostile signed webhooks to a running portal and count the answers: none may be a 5xx.

    python bench/fuzz_webhooks.py --url http://127.0.0.1:8000/webhooks/intercom/ --secret sandbox-client-secret

Each case is one of the test fixtures with one to three fields replaced by something hostile
(out-of-range times, lone surrogates, NULs, over-long ids, wrong types, deep nesting), or
raw bytes, signed with the given secret. Loopback only; bounded by --cases. Afterwards,
check in the portal's database that no webhook is left received or failed:

    InboundWebhook.objects.values("status").annotate(n=Count("pk"))
"""

import argparse
import collections
import hashlib
import hmac
import http.client
import json
import random
import sys
import time
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

FIXTURES = Path(__file__).resolve().parents[1] / "tests" / "fixtures" / "intercom"
HOSTILE: list[Any] = [
    None, True, 0, -1, 10**30, 1000000000000, -1000000000000, 253402300800, 1.5, "", "\x00", "\ud800", "a\udfffb",
    "x" * 65, "n" * 101, "javascript:alert(document.cookie)", [], {}, [[[[]]]], {"type": "conversation"}, "0",
    "\ufeff", "é" * 300,
]  # fmt: skip
PATHS = [
    ("id",), ("topic",), ("app_id",), ("created_at",), ("data", "item", "id"), ("data", "item", "created_at"),
    ("data", "item", "source", "author", "name"), ("data", "item", "source", "author", "email"),
    ("data", "item", "source", "type"), ("data", "item", "admin_assignee_id"), ("data", "item", "links"),
    ("data", "item", "conversation_parts"), ("data", "item", "tags"), ("data", "item", "contacts"),
    ("data", "item", "user"), ("data", "item", "conversation_id"),
]  # fmt: skip


def hostile_body(rng: random.Random, fixtures: list[dict[str, Any]], index: int) -> bytes:
    roll = rng.random()
    if roll < 0.05:
        return rng.randbytes(rng.randint(0, 200))
    if roll < 0.08:
        return b'{"a":' * 5000 + b"1" + b"}" * 5000
    payload = json.loads(json.dumps(rng.choice(fixtures)))
    payload["id"] = f"fuzz-{index}-{rng.getrandbits(32)}"
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


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--url", required=True, help="the portal's webhook URL, on 127.0.0.1")
    parser.add_argument("--secret", required=True, help="the portal's INTERCOM_CLIENT_SECRET")
    parser.add_argument("--cases", type=int, default=500)
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args()
    url = urlsplit(args.url)
    if url.hostname not in ("127.0.0.1", "localhost", "::1"):
        parser.error("fuzz only a portal on this machine")
    rng = random.Random(args.seed)
    fixtures = [json.loads(path.read_text()) for path in sorted(FIXTURES.glob("*.json"))]
    answers: collections.Counter[int] = collections.Counter()
    five_xx = []
    for index in range(args.cases):
        body = hostile_body(rng, fixtures, index)
        signature = "sha1=" + hmac.new(args.secret.encode(), body, hashlib.sha1).hexdigest()
        connection = http.client.HTTPConnection(url.hostname, url.port or 80, timeout=10)
        connection.request("POST", url.path, body, {"Content-Type": "application/json", "X-Hub-Signature": signature})
        response = connection.getresponse()
        response.read()
        connection.close()
        answers[response.status] += 1
        if response.status >= 500:
            five_xx.append(body[:200])
    print(json.dumps({"cases": args.cases, "answers": dict(sorted(answers.items())), "five_xx": len(five_xx)}))
    for sample in five_xx[:5]:
        print("5xx for:", sample, file=sys.stderr)
    return 1 if five_xx else 0


if __name__ == "__main__":
    sys.exit(main())
