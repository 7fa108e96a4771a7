"""gunicorn's configuration for the web process: `gunicorn --config deploy/gunicorn.conf.py portal.wsgi`.

The systemd unit, the Procfile and `make run-scaled` all start the web process with this file. Every value
can be set from the environment, so one file serves every machine.
"""

import multiprocessing
import os
import shutil
import tempfile
from typing import Any

# WEB_BIND: where to listen (e.g. 127.0.0.1:8000 behind a proxy on the same machine, 0.0.0.0:8000 behind a load
# balancer, which TRUSTED_PROXIES then names). Else gunicorn's own rule: 0.0.0.0:$PORT when the host sets PORT
# (PaaS), otherwise 127.0.0.1:8000.
bind = os.environ.get("WEB_BIND") or (f"0.0.0.0:{os.environ['PORT']}" if "PORT" in os.environ else "127.0.0.1:8000")

# Sync workers, WEB_CONCURRENCY of them (the name PaaS hosts set), else gunicorn's advice of 2 × cores + 1:
# a webhook request mostly waits on the database, so a core serves more than one worker.
workers = int(os.environ.get("WEB_CONCURRENCY") or 2 * multiprocessing.cpu_count() + 1)

# A worker busy this long on one request is killed and replaced: webhooks answer in milliseconds and Intercom gives
# up at 5 s. Raise it if a very large CSV export is cut off.
timeout = int(os.environ.get("WEB_TIMEOUT", "30"))
# On SIGTERM (systemd stop, a deploy) workers finish the requests under way for up to this long, then are killed.
graceful_timeout = int(os.environ.get("WEB_GRACEFUL_TIMEOUT", "30"))
# Replace each worker after about this many requests (the jitter spreads restarts), so memory can't creep.
max_requests = int(os.environ.get("WEB_MAX_REQUESTS", "2000"))
max_requests_jitter = max_requests // 10

# Logs on stdout/stderr: journald or the host's log collector keeps them.
accesslog = "-"
errorlog = "-"
loglevel = os.environ.get("WEB_LOG_LEVEL", "info")
# Method and path only, never the query string (an OAuth callback's ?code=…, filters with customer ids) nor the
# referrer (another page's query string) or any header beyond the user agent (Authorization holds API tokens).
access_log_format = '%(h)s %(t)s "%(m)s %(U)s %(H)s" %(s)s %(B)s %(M)sms "%(a)s"'

# Whether a request came over HTTPS is Django's call alone (BEHIND_TLS_PROXY trusts X-Forwarded-Proto): gunicorn
# would otherwise trust that header from 127.0.0.1 whatever BEHIND_TLS_PROXY says.
secure_scheme_headers: dict[str, str] = {}

proc_name = "portal-web"
# gunicorn ≥ 25 opens a control socket at one fixed path per user: two web processes on one machine would share it.
# systemd (or the host) manages the process, so none is needed.
control_socket_disable = True

# /metrics (portal/metrics.py): the workers pool their counts in prometheus-client's multiprocess files, in a
# directory of this gunicorn's own, emptied as it starts. The systemd unit gives it /run/portal-web
# (PROMETHEUS_MULTIPROC_DIR); started any other way, it makes a temporary one, removed as it stops. Set here, before
# any worker is forked, so every worker counts into it. Never share it with a task cluster: each has its own.
if not os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
    os.environ["PROMETHEUS_MULTIPROC_DIR"] = tempfile.mkdtemp(prefix="portal-web-metrics-")
    _temporary_metrics_dir = os.environ["PROMETHEUS_MULTIPROC_DIR"]
else:
    _temporary_metrics_dir = ""


def on_starting(server: object) -> None:
    from portal.metrics import metrics_dir_prepare

    metrics_dir_prepare(os.environ["PROMETHEUS_MULTIPROC_DIR"])


def child_exit(server: object, worker: Any) -> None:
    # A dead worker's counts stay (a counter never goes back); only its live gauges, if any, must go.
    from prometheus_client import multiprocess

    multiprocess.mark_process_dead(worker.pid)


def on_exit(server: object) -> None:
    if _temporary_metrics_dir:
        shutil.rmtree(_temporary_metrics_dir, ignore_errors=True)
