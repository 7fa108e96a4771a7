"""Shared pieces of the benchmarks: a throwaway portal under gunicorn on 127.0.0.1, and a load generator.

Everything here talks to 127.0.0.1 only, is bounded in requests and seconds, and stops by itself.
"""

from __future__ import annotations

import http.client
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Sequence
from concurrent.futures import ProcessPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PYTHON = sys.executable
CLIENT_SECRET = "bench-client-secret"
BENCH_FIELD_KEY = "YmVuY2gtb25seS1maWVsZC1lbmNyeXB0aW9uLWtleTA="  # a Fernet key: base64 of 32 bytes

Call = tuple[str, str, bytes | None, dict[str, str]]  # method, path, body, headers


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@dataclass
class Portal:
    url: str
    port: int
    env: dict[str, str]

    def manage(self, *args: str, stdin: str | None = None) -> str:
        result = subprocess.run(
            [PYTHON, "manage.py", *args],
            cwd=ROOT,
            env=self.env,
            input=stdin,
            capture_output=True,
            text=True,
            check=True,
        )
        return result.stdout

    def query(self, code: str) -> object:
        """Run Python against the portal's database and return what it prints as JSON."""
        return json.loads(self.manage("shell", "-c", code).strip().splitlines()[-1])

    def query_numbers(self, code: str) -> list[float]:
        """Run Python that prints a JSON list of numbers, and return them."""
        numbers = self.query(code)
        if not isinstance(numbers, list) or not all(isinstance(n, int | float) for n in numbers):
            raise RuntimeError(f"expected a JSON list of numbers, got {numbers!r}")
        return numbers


def portal_env(workdir: Path, port: int, **overrides: str) -> dict[str, str]:
    """A deployed portal's settings (DEBUG=false) on a fresh SQLite file in `workdir`."""
    return {
        **os.environ,
        "DEBUG": "false",
        "SANDBOX": "false",
        "SECRET_KEY": "bench-secret-key-" + "x" * 50,
        # Plain HTTP on loopback, as behind a TLS proxy.
        "SECURE_SSL_REDIRECT": "false",
        "FIELD_ENCRYPTION_KEYS": BENCH_FIELD_KEY,
        "INTERCOM_CLIENT_SECRET": CLIENT_SECRET,
        "DATABASE_URL": f"sqlite:///{workdir / 'bench.sqlite3'}",
        "ALLOWED_HOSTS": "127.0.0.1",
        "LOG_LEVEL": "WARNING",
        "PORT": str(port),
        "PORTAL_URL": f"http://127.0.0.1:{port}",
        **overrides,
    }


@contextmanager
def workdir() -> Iterator[Path]:
    path = Path(tempfile.mkdtemp(prefix="portal-bench-"))
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)


@contextmanager
def serve(env: dict[str, str], *, workers: int = 2, gunicorn_args: tuple[str, ...] = ()) -> Iterator[Portal]:
    """The portal under gunicorn on 127.0.0.1 with `env` (migrated first), stopped afterwards."""
    port = int(env["PORT"])
    handle = Portal(url=f"http://127.0.0.1:{port}", port=port, env=env)
    handle.manage("migrate", "--noinput")
    handle.manage("collectstatic", "--noinput")
    server = subprocess.Popen(
        [
            PYTHON, "-m", "gunicorn", "portal.wsgi", "--workers", str(workers), "--bind", f"127.0.0.1:{port}",
            "--log-level", "warning", "--backlog", "2048", *gunicorn_args,
        ],
        cwd=ROOT,
        env=env,
    )  # fmt: skip
    try:
        wait_until_up(port)
        yield handle
    finally:
        server.terminate()
        try:
            server.wait(timeout=15)
        except subprocess.TimeoutExpired:
            server.kill()


@contextmanager
def portal(*, workers: int = 2, extra_env: dict[str, str] | None = None) -> Iterator[Portal]:
    """A deployed portal on a fresh SQLite file under gunicorn, torn down after."""
    with workdir() as path:
        port = free_port()
        with serve(portal_env(path, port, **(extra_env or {})), workers=workers) as running:
            yield running


def wait_until_up(port: int, *, seconds: float = 30) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        try:
            status, _ = request(port, "GET", "/healthz")
            if status == 200:
                return
        except OSError:
            time.sleep(0.1)
    raise RuntimeError(f"portal did not start on port {port} within {seconds}s")


def request(
    port: int, method: str, path: str, body: bytes | None = None, headers: dict[str, str] | None = None
) -> tuple[int, bytes]:
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    try:
        connection.request(method, path, body=body, headers=headers or {})
        response = connection.getresponse()
        return response.status, response.read()
    finally:
        connection.close()


def _fire(job: tuple[int, Sequence[Call]]) -> tuple[int, list[int]]:
    port, requests_ = job
    statuses = [request(port, method, path, body, headers)[0] for method, path, body, headers in requests_]
    return len(statuses), statuses


@dataclass
class LoadResult:
    requests: int
    seconds: float
    statuses: dict[int, int]

    @property
    def per_second(self) -> float:
        return self.requests / self.seconds

    @property
    def non_2xx(self) -> int:
        return sum(count for status, count in self.statuses.items() if not 200 <= status < 300)


def load(port: int, requests_: Sequence[Call], *, clients: int) -> LoadResult:
    """Send the requests from `clients` processes at once; time from the first to the last answer."""
    chunks = [requests_[index::clients] for index in range(clients)]
    with ProcessPoolExecutor(max_workers=clients) as pool:
        list(pool.map(_fire, [(port, [("GET", "/healthz", None, {})]) for _ in range(clients)]))  # warm the pool
        started = time.perf_counter()
        results = list(pool.map(_fire, [(port, chunk) for chunk in chunks]))
        seconds = time.perf_counter() - started
    statuses: dict[int, int] = {}
    for _, chunk_statuses in results:
        for status in chunk_statuses:
            statuses[status] = statuses.get(status, 0) + 1
    return LoadResult(requests=len(requests_), seconds=seconds, statuses=statuses)
