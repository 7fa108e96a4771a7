"""Shared pieces of the benchmarks: a throwaway portal under gunicorn on 127.0.0.1, and a load generator.

Everything here talks to 127.0.0.1 only, is bounded in requests and seconds, and stops by itself.
"""

from __future__ import annotations

import http.client
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ProcessPoolExecutor
from contextlib import contextmanager, suppress
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


# What the scaling benchmarks (bench/scale.py) add: PostgreSQL databases of their own, the real task cluster
# beside gunicorn, the machine's CPU use and the cluster's memory, and an open-loop load generator.

POSTGRES_URL = os.environ.get("BENCH_POSTGRES_URL", "postgres://postgres@127.0.0.1:5432")
# The benchmarks' databases are named <prefix>_<what>: set it apart when several people share one server.
DATABASE_PREFIX = os.environ.get("BENCH_DATABASE_PREFIX", "portal_bench")


@contextmanager
def postgres_database(name: str) -> Iterator[str]:
    """A fresh, empty PostgreSQL database `name` (dropped first if a killed run left it), dropped afterwards."""
    import psycopg

    def run(statement: str) -> None:
        with psycopg.connect(f"{POSTGRES_URL}/postgres", autocommit=True) as connection:
            connection.execute(statement)

    run(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    run(f'CREATE DATABASE "{name}"')
    try:
        yield f"{POSTGRES_URL}/{name}"
    finally:
        run(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@contextmanager
def clusters(env: dict[str, str], count: int) -> Iterator[list[subprocess.Popen]]:
    """`count` task clusters (`manage.py runcluster`) with `env`, each in a session of its own, stopped after:
    SIGTERM to each (it finishes its tasks), then SIGKILL to whatever of its session is left."""
    processes = [
        subprocess.Popen(
            [PYTHON, "manage.py", "runcluster"],
            cwd=ROOT,
            env=env,
            start_new_session=True,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        for _ in range(count)
    ]
    try:
        yield processes
    finally:
        for process in processes:
            if process.poll() is None:
                process.send_signal(signal.SIGTERM)
        for process in processes:
            try:
                process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
            for pid in session_pids(process.pid):
                with suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)


def session_pids(session: int) -> list[int]:
    """The live processes of a session (a cluster started with start_new_session: its main process and children)."""
    pids = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
        except (OSError, IndexError):
            continue
        if int(fields[3]) == session and fields[0] != "Z":  # after the name: state, ppid, pgrp, session
            pids.append(int(entry.name))
    return pids


def rss_kib(pids: Sequence[int]) -> int:
    """The resident memory of these processes together, in KiB (VmRSS from /proc/<pid>/status)."""
    total = 0
    for pid in pids:
        with suppress(OSError):
            for line in Path(f"/proc/{pid}/status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    total += int(line.split()[1])
    return total


def cpu_sample() -> tuple[int, int]:
    """The machine's (busy, total) CPU time so far, in clock ticks over all cores, from /proc/stat."""
    user, nice, system, idle, iowait, irq, softirq, steal = map(int, Path("/proc/stat").read_text().split()[1:9])
    total = user + nice + system + idle + iowait + irq + softirq + steal
    return total - idle - iowait, total


def cpu_busy(before: tuple[int, int], after: tuple[int, int]) -> float:
    """The share of the machine's CPU (all cores) busy between two samples, 0 to 1."""
    busy, total = after[0] - before[0], after[1] - before[1]
    return busy / total if total else 0.0


@dataclass
class OpenLoopResult:
    rate: float
    seconds: float
    latencies_ms: list[float]  # from each request's scheduled time to its answer, so a late send counts
    errors: int  # non-2xx answers, requests that failed or timed out, and requests dropped (below)
    sent_late: int  # requests sent more than 20 ms after their time: the generator itself fell behind
    dropped: int  # requests not sent at all: their time was more than `grace` seconds past when a sender got to them

    def percentile(self, share: float) -> float:
        ordered = sorted(self.latencies_ms)
        return ordered[min(len(ordered) - 1, int(share * len(ordered)))] if ordered else float("nan")


def _open_loop_sender(
    job: tuple[int, Callable[[int], Call], list[int], float, float, int, float],
) -> list[tuple[float | None, bool, bool]]:
    port, make_call, indices, start_at, rate, threads, grace = job
    outcomes: list[tuple[float | None, bool, bool]] = []
    lock = threading.Lock()

    def send(mine: list[int]) -> None:
        calls = [(index, make_call(index)) for index in mine]  # built before the clock starts
        for index, (method, path, body, headers) in calls:
            due = start_at + index / rate
            if (wait := due - time.time()) > 0:
                time.sleep(wait)
            if time.time() - due > grace:  # so a server that can't keep up doesn't keep the run going for ever
                with lock:
                    outcomes.append((None, False, True))
                continue
            late = time.time() - due > 0.02
            try:
                status, _ = request(port, method, path, body, headers)
                ok = 200 <= status < 300
            except OSError:
                ok = False
            with lock:
                outcomes.append(((time.time() - due) * 1000, ok, late))

    workers = [threading.Thread(target=send, args=(indices[n::threads],)) for n in range(threads)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()
    return outcomes


def open_loop(
    port: int,
    make_call: Callable[[int], Call],
    *,
    rate: float,
    seconds: float,
    processes: int = 4,
    threads: int = 16,
    grace: float = 30,
) -> OpenLoopResult:
    """Send make_call(0), make_call(1), … at `rate` a second for `seconds`, each at its time whatever the answers
    before it (open loop), from `processes` × `threads` senders. A request more than `grace` seconds overdue when
    its sender gets to it is dropped (an error), so the run ends by seconds + grace + a timeout.
    `make_call` must be picklable (module level)."""
    count = int(rate * seconds)
    start_at = time.time() + 3  # the senders build their requests first
    jobs = [
        (port, make_call, list(range(n, count, processes)), start_at, rate, threads, grace) for n in range(processes)
    ]
    with ProcessPoolExecutor(max_workers=processes) as pool:
        outcomes = [outcome for chunk in pool.map(_open_loop_sender, jobs) for outcome in chunk]
    return OpenLoopResult(
        rate=rate,
        seconds=seconds,
        latencies_ms=[latency for latency, _, _ in outcomes if latency is not None],
        errors=sum(not ok for _, ok, _ in outcomes),
        sent_late=sum(late for latency, _, late in outcomes if latency is not None),
        dropped=sum(latency is None for latency, _, _ in outcomes),
    )
