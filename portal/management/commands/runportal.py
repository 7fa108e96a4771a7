import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from typing import Any

from django.conf import settings
from django.core.management.base import BaseCommand

from portal.schedules import schedules_ensure


class Command(BaseCommand):
    help = "Run the web server and the django-q2 cluster together; Ctrl-C stops both."

    def add_arguments(self, parser: Any) -> None:
        parser.add_argument("--port", type=int, default=settings.PORT)

    def handle(self, *args: Any, **options: Any) -> None:
        schedules_ensure()  # the cluster's schedules, as portal/schedules.py declares them
        manage = [sys.executable, "manage.py"]
        # The cluster's workers pool their counts for /metrics in a directory of its own (portal/metrics.py); the
        # web server is one process here, which counts alone.
        metrics_dir = tempfile.mkdtemp(prefix="portal-cluster-metrics-")
        cluster_env = {**os.environ, "PROMETHEUS_MULTIPROC_DIR": metrics_dir}
        web_env = {name: value for name, value in os.environ.items() if name != "PROMETHEUS_MULTIPROC_DIR"}
        # Each in its own process group: Ctrl-C reaches only us, we stop them in order, and a
        # last-resort kill takes everything a child started.
        children = [
            # The task cluster as deployed: django-q2's, with the poller that sends delayed requests on time.
            subprocess.Popen([*manage, "runcluster"], start_new_session=True, env=cluster_env),
            subprocess.Popen(
                [*manage, "runserver", "--noreload", f"127.0.0.1:{options['port']}"],
                start_new_session=True,
                env=web_env,
            ),
        ]
        self.stdout.write(
            f"Portal on http://127.0.0.1:{options['port']}/admin/ with the task cluster. Ctrl-C stops both.",
            self.style.SUCCESS,
        )

        def stop(*_: Any) -> None:
            for child in children:
                if child.poll() is None:
                    child.terminate()  # both shut down cleanly on SIGTERM; the cluster stops its own workers
            deadline = time.monotonic() + 20
            for child in children:
                try:
                    child.wait(timeout=max(0.1, deadline - time.monotonic()))
                except subprocess.TimeoutExpired:
                    os.killpg(child.pid, signal.SIGKILL)
            shutil.rmtree(metrics_dir, ignore_errors=True)
            sys.exit(0)

        signal.signal(signal.SIGINT, stop)
        signal.signal(signal.SIGTERM, stop)
        while all(child.poll() is None for child in children):
            time.sleep(0.5)
        self.stderr.write("One of the two processes stopped; stopping the other.")
        stop()
