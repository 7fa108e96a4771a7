"""`make run-scaled`: the portal as deployed over several machines, on this one, against PostgreSQL.

Two web processes and three task clusters, started with the commands the systemd units in deploy/systemd/ run:
each web process is its own gunicorn (deploy/gunicorn.conf.py) on its own port, as two machines behind a load
balancer would be (one gunicorn with two workers would share one listening socket and never show that two
independent web processes work over one database); each cluster is `manage.py runcluster`. Migrations run first,
once, as portal-migrate.service does, then the demo accounts are made. Local mode (DEBUG=true, the sandbox plays
Stella and Intercom). Ctrl-C or SIGTERM stops every process and waits until each has exited.

    DATABASE_URL   default postgres://postgres@127.0.0.1:5432/portal_scaled (created if missing, with createdb)
    METRICS_TOKEN  what /metrics answers (default local-metrics-token)
    PORT           the first web process's port (default 8000; the others take the next ports)
"""

from __future__ import annotations

import argparse
import http.client
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from types import FrameType
from urllib.parse import unquote, urlsplit

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_DATABASE_URL = "postgres://postgres@127.0.0.1:5432/portal_scaled"
# runcluster waits for the tasks under way (Q_TIMEOUT, 60 s at most) and gunicorn for its requests (30 s).
STOP_SECONDS = 75
READY_SECONDS = 60


@dataclass
class Process:
    name: str
    popen: subprocess.Popen[bytes]
    url: str = ""

    def running(self) -> bool:
        return self.popen.poll() is None


def main() -> int:
    options = arguments()
    env = portal_env(options)
    database_ensure(env["DATABASE_URL"])
    manage(env, "migrate", "--noinput")
    manage(env, "portal_setup_demo")

    stop_requested: list[int] = []

    def request_stop(signum: int, frame: FrameType | None) -> None:
        stop_requested.append(signum)

    signal.signal(signal.SIGINT, request_stop)
    signal.signal(signal.SIGTERM, request_stop)
    metrics_root = tempfile.mkdtemp(prefix="portal-scaled-metrics-")
    processes = start(env, port=options.port, web=options.web, clusters=options.clusters, metrics_root=metrics_root)
    try:
        if wait_until_ready(processes, stop_requested):
            announce(processes, env)
        elif not stop_requested and all(process.running() for process in processes):
            print(f"The web processes did not answer /healthz within {READY_SECONDS} s; stopping.")
            return 1
        return supervise(processes, stop_requested)
    finally:
        stop(processes)
        shutil.rmtree(metrics_root, ignore_errors=True)


def arguments() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--port", type=int, default=int(os.environ.get("PORT", "8000")))
    parser.add_argument("--web", type=int, default=2, help="web processes (gunicorn), on consecutive ports")
    parser.add_argument("--clusters", type=int, default=3, help="task clusters (manage.py runcluster)")
    return parser.parse_args()


def portal_env(options: argparse.Namespace) -> dict[str, str]:
    env = {**os.environ, "DEBUG": "true", "SANDBOX": "true", "PORT": str(options.port)}
    env.setdefault("DATABASE_URL", DEFAULT_DATABASE_URL)
    # The sandbox (Stella and Intercom stand-ins) lives in the web processes: the clusters reach it on the first.
    env.setdefault("PORTAL_URL", f"http://127.0.0.1:{options.port}")
    env.setdefault("WEB_CONCURRENCY", "2")
    # /metrics answers only this token (a local one unless given).
    env.setdefault("METRICS_TOKEN", "local-metrics-token")
    if urlsplit(env["DATABASE_URL"]).scheme not in ("postgres", "postgresql", "pgsql"):
        sys.exit(f"run-scaled runs over PostgreSQL, as several machines would: DATABASE_URL is {env['DATABASE_URL']}")
    return env


def database_ensure(url: str) -> None:
    """Create the database with createdb unless it exists."""
    parts = urlsplit(url)
    name = unquote(parts.path.lstrip("/"))
    command = ["createdb", "--host", parts.hostname or "127.0.0.1", "--port", str(parts.port or 5432)]
    if parts.username:
        command += ["--username", unquote(parts.username)]
    env = {**os.environ, **({"PGPASSWORD": unquote(parts.password)} if parts.password else {})}
    try:
        result = subprocess.run([*command, name], env=env, capture_output=True, text=True)
    except FileNotFoundError:
        sys.exit("createdb was not found: install PostgreSQL's client tools, or create the database yourself.")
    if result.returncode == 0:
        print(f"Created the database {name}.")
    elif "already exists" not in result.stderr:
        sys.exit(f"Could not create the database {name}: {result.stderr.strip()}")


def manage(env: dict[str, str], *args: str) -> None:
    subprocess.run([sys.executable, "manage.py", *args], cwd=ROOT, env=env, check=True)


def start(env: dict[str, str], *, port: int, web: int, clusters: int, metrics_root: str) -> list[Process]:
    """Each in its own process group, so a terminal's Ctrl-C reaches only this script, which stops them in order.
    Each has its own directory under `metrics_root` where its processes pool their counts for /metrics, as each
    systemd unit has its own under /run."""
    processes = []
    for n in range(web):
        bind = f"127.0.0.1:{port + n}"
        command = [sys.executable, "-m", "gunicorn", "--config", "deploy/gunicorn.conf.py", "portal.wsgi"]
        web_env = {**env, "WEB_BIND": bind, "PROMETHEUS_MULTIPROC_DIR": os.path.join(metrics_root, f"web-{n + 1}")}
        popen = subprocess.Popen(command, cwd=ROOT, env=web_env, start_new_session=True)
        processes.append(Process(f"web {n + 1}", popen, url=f"http://{bind}"))
    for n in range(clusters):
        cluster_env = {**env, "PROMETHEUS_MULTIPROC_DIR": os.path.join(metrics_root, f"cluster-{n + 1}")}
        command = [sys.executable, "manage.py", "runcluster"]
        popen = subprocess.Popen(command, cwd=ROOT, env=cluster_env, start_new_session=True)
        processes.append(Process(f"cluster {n + 1}", popen))
    return processes


def wait_until_ready(processes: list[Process], stop_requested: list[int]) -> bool:
    """Until every web process answers /healthz; False if one stopped or a stop was asked for first."""
    deadline = time.monotonic() + READY_SECONDS
    waiting = [process for process in processes if process.url]
    while waiting and time.monotonic() < deadline:
        if stop_requested or not all(process.running() for process in processes):
            return False
        waiting = [process for process in waiting if not healthy(process.url)]
        time.sleep(0.2)
    return not waiting


def healthy(url: str) -> bool:
    host, port = urlsplit(url).hostname or "127.0.0.1", urlsplit(url).port
    connection = http.client.HTTPConnection(host, port, timeout=2)
    try:
        connection.request("GET", "/healthz")
        return connection.getresponse().status == 200
    except OSError:
        return False
    finally:
        connection.close()


def announce(processes: list[Process], env: dict[str, str]) -> None:
    web = [process for process in processes if process.url]
    lines = [
        f"Portal running over {env['DATABASE_URL']} with the sandbox (local mode):",
        *(f"  {p.name:<10} pid {p.popen.pid:<8} {p.url or 'manage.py runcluster'}" for p in processes),
        f"Admin {web[0].url}/admin/ (admin / admin), status page {web[0].url}/status/ (support / support).",
        f"Any web process takes webhooks: make demo PORT={urlsplit(web[0].url).port} posts the demo's to the first.",
        f"Readiness {web[0].url}/readyz; metrics: curl -H 'Authorization: Bearer {env['METRICS_TOKEN']}' "
        f"{web[0].url}/metrics",
        f"Ctrl-C (or kill {os.getpid()}) stops them all.",
    ]
    print("\n".join(lines), flush=True)


def supervise(processes: list[Process], stop_requested: list[int]) -> int:
    """Until a stop is asked for (0), or a process stops by itself (1: the others are stopped too)."""
    while not stop_requested:
        stopped = [process for process in processes if not process.running()]
        if stopped:
            for process in stopped:
                print(f"{process.name} stopped (exit code {process.popen.returncode}); stopping the others.")
            return 1
        time.sleep(0.5)
    return 0


def stop(processes: list[Process]) -> None:
    """SIGTERM to each main process (gunicorn and runcluster stop their own workers gracefully), then, after
    STOP_SECONDS, SIGKILL to whatever is left in any of their process groups."""
    for process in processes:
        if process.running():
            process.popen.terminate()
    deadline = time.monotonic() + STOP_SECONDS
    for process in processes:
        try:
            process.popen.wait(timeout=max(0.1, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            pass
        if group_alive(process.popen.pid):
            print(f"{process.name} left processes running after {STOP_SECONDS} s: killed them.")
            os.killpg(process.popen.pid, signal.SIGKILL)
    print(f"Stopped: {', '.join(process.name for process in processes)}.", flush=True)


def group_alive(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False  # every process of the group has exited
    return True


if __name__ == "__main__":
    sys.exit(main())
