"""Portal settings: one file, every value from the environment (see .env.example).

The defaults are the deployed behaviour (DEBUG=false), which refuses to start without real
secrets. `make run`, `make test` and `make demo` set DEBUG=true: a local portal on SQLite,
django-q2's ORM broker and the built-in sandbox standing in for Stella Connect and Intercom.
"""

import ipaddress
import os
from datetime import timedelta
from pathlib import Path
from urllib.parse import urlsplit

import environ
from csp.constants import NONE, SELF
from django.core.exceptions import ImproperlyConfigured

BASE_DIR = Path(__file__).resolve().parent.parent

env = environ.Env()
environ.Env.read_env(BASE_DIR / ".env")

LOCAL_SECRET_KEY = "local-only-insecure-secret-key"
LOCAL_INTERCOM_CLIENT_SECRET = "sandbox-client-secret"
MIN_SECRET_KEY_LENGTH = 50

# Deployed behaviour unless local mode is asked for: make run, make test and make demo set DEBUG=true.
DEBUG = env.bool("DEBUG", default=False)
SECRET_KEY = env("SECRET_KEY", default=LOCAL_SECRET_KEY if DEBUG else "")
ALLOWED_HOSTS = env.list("ALLOWED_HOSTS", default=["127.0.0.1", "localhost"])
CSRF_TRUSTED_ORIGINS = env.list("CSRF_TRUSTED_ORIGINS", default=[])

# The built-in stand-ins for Stella Connect and Intercom (make run, tests, demos).
SANDBOX = env.bool("SANDBOX", default=DEBUG)
PORT = env.int("PORT", default=8000)
# Where this portal can reach itself: the sandbox lives under /sandbox/ on it.
PORTAL_URL = env("PORTAL_URL", default=f"http://127.0.0.1:{PORT}")

INTERCOM_CLIENT_SECRET = env("INTERCOM_CLIENT_SECRET", default=LOCAL_INTERCOM_CLIENT_SECRET if DEBUG else "")
# Links to conversations in the Intercom inbox (EU: https://app.eu.intercom.com).
INTERCOM_APP_URL = env("INTERCOM_APP_URL", default="https://app.intercom.com")
INTERCOM_WEBHOOK_MAX_BYTES = env.int("INTERCOM_WEBHOOK_MAX_BYTES", default=1024 * 1024)
# A signed notification older than this (or too far in the future: integrations/vocabulary.py) is stored and
# ignored, never acted on.
INTERCOM_WEBHOOK_MAX_AGE_DAYS = env.int("INTERCOM_WEBHOOK_MAX_AGE_DAYS", default=7)
# Intercom's REST API, for what a webhook leaves out, and its OAuth token exchange: US workspaces' (the default region).
INTERCOM_API_URL = env(
    "INTERCOM_API_URL", default=f"{PORTAL_URL}/sandbox/intercom" if SANDBOX else "https://api.intercom.io"
)
# Intercom hosts each workspace in one region and serves it only at that region's API host: an account's region
# picks one of these. Unset (and in the sandbox, for every region), a region's host is INTERCOM_API_URL.
INTERCOM_API_URL_US = env("INTERCOM_API_URL_US", default="")
INTERCOM_API_URL_EU = env("INTERCOM_API_URL_EU", default="" if SANDBOX else "https://api.eu.intercom.io")
INTERCOM_API_URL_AU = env("INTERCOM_API_URL_AU", default="" if SANDBOX else "https://api.au.intercom.io")
INTERCOM_API_VERSION = env("INTERCOM_API_VERSION", default="2.14")
# "Connect with Intercom" (OAuth): your Intercom app's client id, and where Intercom asks for consent.
INTERCOM_CLIENT_ID = env("INTERCOM_CLIENT_ID", default="sandbox-client-id")
INTERCOM_OAUTH_URL = env(
    "INTERCOM_OAUTH_URL",
    default=f"{PORTAL_URL}/sandbox/intercom/oauth" if SANDBOX else "https://app.intercom.com/oauth",
)
# How long a looked-up teammate is trusted before it is fetched again.
INTERCOM_TEAMMATE_TTL = env.int("INTERCOM_TEAMMATE_TTL", default=24 * 3600)

# Stella Connect's Requests API; an account may override it (e.g. https://acme.api.stellaconnect.net).
STELLA_API_URL = env(
    "STELLA_API_URL", default=f"{PORTAL_URL}/sandbox/stella" if SANDBOX else "https://api.stellaconnect.net"
)
STELLA_CONNECT_TIMEOUT = env.float("STELLA_CONNECT_TIMEOUT", default=3.05)
STELLA_READ_TIMEOUT = env.float("STELLA_READ_TIMEOUT", default=10.0)
# Attempts for retryable failures (429, 5xx, connection refused) before a request is failed.
STELLA_MAX_ATTEMPTS = env.int("STELLA_MAX_ATTEMPTS", default=5)
STELLA_RETRY_BASE_SECONDS = env.int("STELLA_RETRY_BASE_SECONDS", default=30)
# Pages of 1,000 feedback records read from Stella's Data Return API per account and run (every 15 minutes):
# Stella allows 100 calls a minute per key.
STELLA_FEEDBACK_MAX_PAGES = env.int("STELLA_FEEDBACK_MAX_PAGES", default=50)
# How often employees (at most hourly) and feedback are read back from Stella: every 15 minutes, as Stella advises
# batch systems; every minute with the sandbox, so the demo's ratings show soon after its customers answer.
STELLA_SYNC_MINUTES = env.int("STELLA_SYNC_MINUTES", default=1 if SANDBOX else 15)
# The sandbox's Stella answers after this many milliseconds (benchmarks).
SANDBOX_STELLA_LATENCY_MS = env.int("SANDBOX_STELLA_LATENCY_MS", default=0)
# The sandbox's Stella signs Data Return and User Management with this API secret (what the demo accounts use),
# and answers this share of the surveys it delivers, this many seconds later, so feedback flows back under make run.
SANDBOX_STELLA_API_SECRET = env.str("SANDBOX_STELLA_API_SECRET", default="sandbox-api-secret")
SANDBOX_FEEDBACK_SHARE = env.float("SANDBOX_FEEDBACK_SHARE", default=0.6)
SANDBOX_FEEDBACK_DELAY_SECONDS = env.int("SANDBOX_FEEDBACK_DELAY_SECONDS", default=20)

# ---- Secrets at rest (portal/crypto.py) ----
# Stella API keys and Intercom tokens are stored encrypted (Fernet) with these keys: comma-separated, newest
# first. The newest encrypts, any of them decrypts: to rotate, put a new key in front, run
# `manage.py rotate_secrets`, then drop the old one. Not SECRET_KEY, so either can change without the other.
LOCAL_FIELD_ENCRYPTION_KEY = "bG9jYWwtb25seS1pbnNlY3VyZS1maWVsZC1rZXktMDA="  # "local-only-insecure-field-key-00"
FIELD_ENCRYPTION_KEYS = env.list("FIELD_ENCRYPTION_KEYS", default=[LOCAL_FIELD_ENCRYPTION_KEY] if DEBUG else [])


def _is_fernet_key(key: str) -> bool:
    import base64
    import binascii

    try:
        return len(base64.urlsafe_b64decode(key.encode())) == 32
    except (binascii.Error, ValueError):
        return False


# ---- end of secrets at rest ----


def _deployed_problems() -> list[str]:
    """What makes a deployed portal unsafe: each names the variable to set."""
    problems = []
    if SANDBOX:
        problems.append("SANDBOX=true is for local use only; unset it when DEBUG=false.")
    if len(SECRET_KEY) < MIN_SECRET_KEY_LENGTH or SECRET_KEY == LOCAL_SECRET_KEY:
        problems.append(
            f"Set SECRET_KEY to a random string of at least {MIN_SECRET_KEY_LENGTH} characters, e.g. the output of "
            "python3 -c 'import secrets; print(secrets.token_urlsafe(64))'."
        )
    if INTERCOM_CLIENT_SECRET in ("", LOCAL_INTERCOM_CLIENT_SECRET):
        problems.append(
            "Set INTERCOM_CLIENT_SECRET to your Intercom app's client secret (Developer Hub, Basic information): "
            "without it anyone could sign webhooks for every workspace."
        )
    if not FIELD_ENCRYPTION_KEYS or LOCAL_FIELD_ENCRYPTION_KEY in FIELD_ENCRYPTION_KEYS:
        problems.append(
            "Set FIELD_ENCRYPTION_KEYS to a Fernet key (comma-separated, newest first, to rotate), e.g. the output of "
            "python3 -c 'from cryptography.fernet import Fernet; print(Fernet.generate_key().decode())': "
            "it encrypts the Stella and Intercom keys stored in the database."
        )
    elif not all(map(_is_fernet_key, FIELD_ENCRYPTION_KEYS)):
        problems.append("FIELD_ENCRYPTION_KEYS holds a value that is not a Fernet key (32 url-safe base64 bytes).")
    return problems


if not DEBUG and (_problems := _deployed_problems()):
    raise ImproperlyConfigured(
        " ".join(_problems) + " (For a local portal, set DEBUG=true: make run and make test do.)"
    )

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "axes",
    "rest_framework",
    "rest_framework.authtoken",
    "drf_spectacular",
    # Swagger UI's files for /api/docs/, served from here: the docs page loads nothing from outside.
    "drf_spectacular_sidecar",
    "django_q",
    # Configuration on record: every change to an account's settings (portal/history.py).
    "simple_history",
    "portal",
    "integrations",
    "surveys",
]
# The sandbox (its models, admin, URLs and demo commands) is installed only while it is on: a deployed portal
# (SANDBOX=false) has no sandbox tables, migrations or admin pages.
if SANDBOX:
    INSTALLED_APPS.append("sandbox")

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    # Deployed (DEBUG=false), whitenoise serves the collected static files; locally runserver does.
    *([] if DEBUG else ["whitenoise.middleware.WhiteNoiseMiddleware"]),
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    # Times in the signed-in user's zone (their preference, else TIME_ZONE), on every page, the admin's too.
    "portal.middleware.UserTimeZoneMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    # Last, as django-axes requires: it turns a locked-out sign-in into the lockout page.
    "axes.middleware.AxesMiddleware",
]

ROOT_URLCONF = "portal.urls"
WSGI_APPLICATION = "portal.wsgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
                "portal.context_processors.sandbox",
            ],
        },
    },
]

DATABASES = {"default": env.db("DATABASE_URL", default=f"sqlite:///{BASE_DIR / 'db.sqlite3'}")}
_SQLITE = DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3"
if _SQLITE:
    # Django's, but in the cluster writers take turns for the write lock (portal/write_gate.py).
    DATABASES["default"]["ENGINE"] = "portal.sqlite"
    DATABASES["default"]["OPTIONS"] = {
        # Concurrent writers (web workers, the cluster) queue for the write lock
        # instead of failing with "database is locked" half-way through a transaction.
        "transaction_mode": "IMMEDIATE",
        # A request waits at most this long for the lock, below the 5 s Intercom waits for an answer: a webhook
        # that can't be stored by then is answered 503 and delivered again. runcluster's processes wait longer
        # (portal/write_gate.py), and the drain lets a waiting webhook go first.
        "timeout": env.float("SQLITE_BUSY_TIMEOUT", default=4.0),
        "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;",
    }
    # Tests use a file too, so locking behaves as it does when the portal runs.
    # One file per test run, so runs side by side (two checkouts, an editor's and a terminal's) don't collide.
    DATABASES["default"]["TEST"] = {"NAME": str(BASE_DIR / f".test-db-{os.getpid()}.sqlite3")}
# Keep connections between requests: opening one (and, for SQLite, its PRAGMAs) costs more than a query.
DATABASES["default"]["CONN_MAX_AGE"] = env.int("CONN_MAX_AGE", default=600)
DATABASES["default"]["CONN_HEALTH_CHECKS"] = True

DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

# django-axes first: it refuses a locked-out sign-in before the password is checked.
AUTHENTICATION_BACKENDS = ["axes.backends.AxesStandaloneBackend", "django.contrib.auth.backends.ModelBackend"]

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
]

LANGUAGE_CODE = "en-us"
TIME_ZONE = env("TIME_ZONE", default="UTC")
# Dates as 2026-11-29 and times as 14:05 CET, the admin's included (portal/formats).
FORMAT_MODULE_PATH = ["portal.formats"]
USE_I18N = True
USE_TZ = True

STATIC_URL = "static/"
STATIC_ROOT = BASE_DIR / "staticfiles"
STATICFILES_DIRS = [BASE_DIR / "static"]
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {
        "BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"
        if DEBUG
        else "whitenoise.storage.CompressedManifestStaticFilesStorage"
    },
}

LOGIN_URL = "/login/"
LOGIN_REDIRECT_URL = "/status/"
LOGOUT_REDIRECT_URL = "/login/"

# ---- Brute force (portal/authentication.py) ----
# Sign-in (/login/ and /admin/login/, django-axes): this many wrong passwords for one username from one address
# lock that pair out for LOGIN_COOLOFF_MINUTES, counted from the failure that locked it; a successful sign-in
# clears the count. A CSM unlocks sooner by deleting the row in the admin's "Access attempts".
AXES_FAILURE_LIMIT = env.int("LOGIN_FAILURE_LIMIT", default=5)
AXES_COOLOFF_TIME = timedelta(minutes=env.int("LOGIN_COOLOFF_MINUTES", default=15))
AXES_LOCKOUT_PARAMETERS = [["username", "ip_address"]]
AXES_RESET_ON_SUCCESS = True
AXES_RESET_COOL_OFF_ON_FAILURE_DURING_LOCKOUT = False
# Every failure is also kept in "Access failures" (the last 1,000 per username): attempts go after the cool-off.
AXES_ENABLE_ACCESS_FAILURE_LOG = True
AXES_CLIENT_IP_CALLABLE = "portal.authentication.client_ip"
AXES_LOCKOUT_CALLABLE = "portal.authentication.login_lockout_response"
# Failures and lockouts are still logged (as warnings); verbose adds a banner to every manage.py command.
AXES_VERBOSE = False
# The JSON API: this many wrong tokens from one address within the window refuse every token from it (429 with
# Retry-After) until the window ends. Counted in the cache below: with the default (memory of one process), each
# web worker counts apart; set CACHE_URL to a Redis URL to count once for all of them.
API_TOKEN_FAILURE_LIMIT = env.int("API_TOKEN_FAILURE_LIMIT", default=20)
API_TOKEN_FAILURE_WINDOW = timedelta(minutes=env.int("API_TOKEN_FAILURE_WINDOW_MINUTES", default=15))
CACHES = {"default": env.cache("CACHE_URL", default="locmemcache://")}
_shortest_wait = min(AXES_COOLOFF_TIME, API_TOKEN_FAILURE_WINDOW)
if min(AXES_FAILURE_LIMIT, API_TOKEN_FAILURE_LIMIT) < 1 or _shortest_wait < timedelta(minutes=1):
    raise ImproperlyConfigured(
        "Set LOGIN_FAILURE_LIMIT, LOGIN_COOLOFF_MINUTES, API_TOKEN_FAILURE_LIMIT and API_TOKEN_FAILURE_WINDOW_MINUTES "
        "to at least 1 (defaults 5, 15, 20, 15)."
    )
# ---- end of brute force ----

SESSION_COOKIE_SECURE = not DEBUG
CSRF_COOKIE_SECURE = not DEBUG
# Behind the proxy, X-Forwarded-Proto is trusted, and X-Forwarded-For from the proxies below (TRUSTED_PROXIES).
BEHIND_TLS_PROXY = env.bool("BEHIND_TLS_PROXY", default=False)
SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https") if BEHIND_TLS_PROXY else None
# Deployed, every page is HTTPS only: plain HTTP is redirected, and browsers are told to remember it (HSTS).
# Load balancers' health checks may stay on plain HTTP.
SECURE_SSL_REDIRECT = env.bool("SECURE_SSL_REDIRECT", default=not DEBUG)
SECURE_REDIRECT_EXEMPT = [r"^healthz$"]
SECURE_HSTS_SECONDS = env.int("SECURE_HSTS_SECONDS", default=0 if DEBUG else 365 * 24 * 3600)
SECURE_HSTS_INCLUDE_SUBDOMAINS = env.bool("SECURE_HSTS_INCLUDE_SUBDOMAINS", default=not DEBUG)
# Preloading binds the whole domain to HTTPS in browsers for months: its owner's decision, so opt-in.
SECURE_HSTS_PRELOAD = env.bool("SECURE_HSTS_PRELOAD", default=False)
SILENCED_SYSTEM_CHECKS = [] if SECURE_HSTS_PRELOAD else ["security.W021"]

# django-q2. The ORM broker keeps tasks in the database; Q_REDIS_URL switches to Redis.
Q_CLUSTER = {
    # Processes that share a broker and this name share one queue (it also salts the signed tasks).
    "name": env("Q_CLUSTER_NAME", default="portal"),
    "workers": env.int("Q_WORKERS", default=4),
    # A task that runs longer is killed; a task not acknowledged within `retry`
    # seconds is delivered again, so timeout must stay below retry.
    "timeout": env.int("Q_TIMEOUT", default=60),
    "retry": env.int("Q_RETRY", default=90),
    "max_attempts": env.int("Q_MAX_ATTEMPTS", default=3),
    "ack_failures": True,
    "catch_up": False,
    # Keep failed tasks only: the API request log is the record of what was sent, and with a
    # positive limit django-q2 locks and reads up to that many success rows after every task.
    "save_limit": -1,
    "poll": 0.5,
    "label": "Task queue",
}
# `manage.py runcluster` queues delayed sends and retries this often as they come due (surveys/delivery/on_time.py);
# 0 turns that off, leaving them to the minute sweep.
SEND_POLL_SECONDS = env.float("SEND_POLL_SECONDS", default=1.0)
# A fair share of the task workers for each account (surveys/delivery/dispatch.py): while another account has sends
# queued or under way, at most SEND_ACCOUNT_IN_FLIGHT of an account's survey requests are queued or sending at once,
# across every cluster (default: one cluster's workers less one, so one account's slow or refused calls never hold
# them all); an account alone may use every live cluster's workers but one. The poller queues at most
# SEND_ACCOUNT_PER_TICK of an account each time it looks. The rest wait in the database, oldest first.
SEND_ACCOUNT_IN_FLIGHT = env.int("SEND_ACCOUNT_IN_FLIGHT", default=max(1, Q_CLUSTER["workers"] - 1))
SEND_ACCOUNT_PER_TICK = env.int("SEND_ACCOUNT_PER_TICK", default=20)
# A sender whose request is done sends its account's next due one itself, for up to this many seconds (at most a
# quarter of Q_TIMEOUT), then hands it on through the queue: an account's share of the workers stays busy without
# waiting on the queue's poll.
SEND_CHAIN_SECONDS = env.float("SEND_CHAIN_SECONDS", default=5.0)
# `manage.py runcluster` lowers its CPU priority by this much (its nice, and its session's when it leads one:
# portal/priority.py), so on a machine it shares with the web process, webhooks are answered first and the backlog
# takes what is left; 0 leaves it as started.
CLUSTER_NICE = env.int("CLUSTER_NICE", default=10)
# One run of the intake task works this long, then hands over to a fresh one: far inside the timeout.
INTAKE_BATCH_SECONDS = env.float("INTAKE_BATCH_SECONDS", default=10)
# Each transaction of the intake claims up to INTAKE_BATCH_SIZE waiting webhooks and commits them together, after at
# most INTAKE_BATCH_TRANSACTION_SECONDS. On SQLite that transaction holds the only write lock, so it stays short:
# a webhook request waits behind it. On PostgreSQL up to INTAKE_DRAINS tasks drain at once (surveys/intake/process.py).
INTAKE_BATCH_SIZE = env.int("INTAKE_BATCH_SIZE", default=100 if _SQLITE else 200)
INTAKE_BATCH_TRANSACTION_SECONDS = env.float("INTAKE_BATCH_TRANSACTION_SECONDS", default=0.05 if _SQLITE else 2.0)
INTAKE_DRAINS = env.int("INTAKE_DRAINS", default=Q_CLUSTER["workers"])
# On SQLite, verified webhooks are stored in an inbox file of their own beside the database (integrations/inbox.py),
# so a webhook request never waits for the write lock the intake's batches hold; false stores them in the database.
WEBHOOK_INBOX = env.bool("WEBHOOK_INBOX", default=_SQLITE)
# Each batch moves up to this many from the inbox (oldest first), more than it claims: the claim takes turns across
# workspaces only among what was moved, so with the batch's size an account's webhook waited behind every one of a
# burst that arrived before it (B's median 1.3-2.0 s from stored to processed during A's 10,000 burst).
INTAKE_INBOX_MOVE = env.int("INTAKE_INBOX_MOVE", default=10 * INTAKE_BATCH_SIZE)
if Q_REDIS_URL := env("Q_REDIS_URL", default=""):
    Q_CLUSTER["redis"] = Q_REDIS_URL
else:
    Q_CLUSTER["orm"] = "default"

REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": [
        "portal.authentication.ThrottledTokenAuthentication",
        "rest_framework.authentication.SessionAuthentication",
    ],
    # REMOTE_ADDR is the client's address already (TRUSTED_PROXIES below): DRF's throttles take it as it is.
    "NUM_PROXIES": 0,
    "DEFAULT_PERMISSION_CLASSES": ["rest_framework.permissions.IsAuthenticated"],
    "DEFAULT_SCHEMA_CLASS": "drf_spectacular.openapi.AutoSchema",
}
SPECTACULAR_SETTINGS = {
    "TITLE": "Stella Connect for Intercom: API Request Status",
    "DESCRIPTION": "Read-only. Token authentication (`Authorization: Token <key>`); you see your own accounts only.",
    "VERSION": "1",
    "SERVE_INCLUDE_SCHEMA": False,
    # The schema and its docs page (/api/docs/) are for signed-in users, like the API.
    "SERVE_PERMISSIONS": ["rest_framework.permissions.IsAuthenticated"],
    # Swagger UI from drf-spectacular-sidecar's files, and no call to an outside validator: nothing leaves the portal.
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "REDOC_DIST": "SIDECAR",
    "SWAGGER_UI_SETTINGS": {"deepLinking": True, "validatorUrl": None, "displayOperationId": False},
}

# ---- Personal data (surveys/accounts/privacy.py) ----
# Customers' names, emails and contact ids, and raw webhook bodies and headers, are erased from stored
# rows this many days after they were stored, by a daily job; statuses, reasons and counts stay.
PERSONAL_DATA_RETENTION_DAYS = env.int("PERSONAL_DATA_RETENTION_DAYS", default=90)
if PERSONAL_DATA_RETENTION_DAYS < 1:
    raise ImproperlyConfigured("Set PERSONAL_DATA_RETENTION_DAYS to a number of days, at least 1 (default 90).")
# ---- end of personal data ----

# ---- Pages and client addresses: Content-Security-Policy; who a request comes from behind the proxy ----
# Every response says what its page may load and do (django-csp): scripts, styles, fonts and frames from the portal
# itself only, with no inline script or style (the templates keep theirs under static/, and the API docs load
# drf-spectacular's split Swagger UI), images also as data: URIs (Swagger UI's icons), no plugins, no <base>, never
# framed, and forms sent only to the portal or to Intercom's consent page (connecting an account with Intercom
# posts to the portal, which redirects there).
CONTENT_SECURITY_POLICY = {
    "DIRECTIVES": {
        "default-src": [SELF],
        "script-src": [SELF],
        "style-src": [SELF],
        "img-src": [SELF, "data:"],
        "object-src": [NONE],
        "base-uri": [SELF],
        "frame-ancestors": [NONE],
        "form-action": [SELF, "{0.scheme}://{0.netloc}".format(urlsplit(INTERCOM_OAUTH_URL))],
    }
}
MIDDLEWARE.insert(MIDDLEWARE.index("django.middleware.security.SecurityMiddleware") + 1, "csp.middleware.CSPMiddleware")

# The client's address, which the login lockout and the API token throttle count by: the peer's, unless the peer is
# one of TRUSTED_PROXIES (addresses or networks, comma-separated); then X-Forwarded-For is read from its end, one
# entry per proxy, through at most TRUSTED_PROXY_COUNT proxies, each entry read only while the one who added it is
# trusted. Whoever reaches gunicorn directly is counted by their own address, whatever header they send. Behind a
# TLS proxy on the same machine the defaults fit (one proxy, on 127.0.0.1 or ::1); set both to match the deployment
# (e.g. a load balancer's network, or 2 behind a CDN and a proxy). portal.authentication.ClientAddressMiddleware,
# first of all, puts the answer in REMOTE_ADDR: django-axes, the API token count and DRF's throttles (NUM_PROXIES
# 0: REMOTE_ADDR as it is) all read that one answer.
TRUSTED_PROXIES = env.list("TRUSTED_PROXIES", default=["127.0.0.1", "::1"] if BEHIND_TLS_PROXY else [])
TRUSTED_PROXY_COUNT = env.int("TRUSTED_PROXY_COUNT", default=1 if BEHIND_TLS_PROXY else 0)
for _proxy in TRUSTED_PROXIES:
    try:
        ipaddress.ip_network(_proxy, strict=False)
    except ValueError:
        raise ImproperlyConfigured(
            f"TRUSTED_PROXIES holds {_proxy!r}: give addresses or networks, comma-separated (e.g. 127.0.0.1,10.0.0.0/8)."
        ) from None
if TRUSTED_PROXY_COUNT < 0 or (TRUSTED_PROXY_COUNT and not TRUSTED_PROXIES):
    raise ImproperlyConfigured(
        "Set TRUSTED_PROXY_COUNT to the number of proxies in front of the portal (0 or more), and TRUSTED_PROXIES to "
        "their addresses or networks."
    )
MIDDLEWARE.insert(0, "portal.authentication.ClientAddressMiddleware")
# ---- end of pages and client addresses ----

EMAIL_BACKEND = env("EMAIL_BACKEND", default="django.core.mail.backends.console.EmailBackend")
DEFAULT_FROM_EMAIL = env("DEFAULT_FROM_EMAIL", default="portal@localhost")

# ---- Operating the portal: metrics, readiness, logs, error reports (README, "Operating the portal") ----
# First of all middleware: every request gets an id (X-Request-ID, kept from the proxy when well formed), which its
# log lines carry and its answer returns.
MIDDLEWARE.insert(0, "portal.middleware.RequestIdMiddleware")
# Monitoring may ask over plain HTTP too: a redirect would not protect the metrics token anyway (it is already sent).
SECURE_REDIRECT_EXEMPT += [r"^readyz$", r"^metrics$"]
# GET /metrics answers only `Authorization: Bearer <METRICS_TOKEN>`; unset, it answers 404 to everyone.
METRICS_TOKEN = env("METRICS_TOKEN", default="")
# prometheus-client's multiprocess mode: the directory where this process group's processes pool their counts
# (one for the web process, one for each task cluster; never shared between them), emptied as the group starts.
# Unset, each process counts alone: right for `make run`, wrong for several gunicorn workers or cluster workers.
PROMETHEUS_MULTIPROC_DIR = env("PROMETHEUS_MULTIPROC_DIR", default="")
# Each task cluster reports in this often (portal/heartbeat.py); /readyz fails when none did within the bound.
CLUSTER_HEARTBEAT_SECONDS = env.int("CLUSTER_HEARTBEAT_SECONDS", default=15)
CLUSTER_HEARTBEAT_MAX_AGE_SECONDS = env.int("CLUSTER_HEARTBEAT_MAX_AGE_SECONDS", default=120)
if not 0 < 2 * CLUSTER_HEARTBEAT_SECONDS <= CLUSTER_HEARTBEAT_MAX_AGE_SECONDS:
    raise ImproperlyConfigured(
        "Set CLUSTER_HEARTBEAT_SECONDS to at least 1 and CLUSTER_HEARTBEAT_MAX_AGE_SECONDS to at least twice it "
        "(defaults 15 and 120), or one late beat would fail /readyz."
    )
# Error reports to Sentry (sentry-sdk, portal/sentry.py): off unless set. No personal data, keys or tokens are sent.
SENTRY_DSN = env("SENTRY_DSN", default="")
SENTRY_ENVIRONMENT = env("SENTRY_ENVIRONMENT", default="production")
# Logs on stderr: plain text lines, or JSON lines (LOG_FORMAT=json) for a log collector. Either way each line
# carries its context (request id, account, task) and secrets leave masked (portal/logging.py).
LOG_FORMAT = env("LOG_FORMAT", default="plain")
if LOG_FORMAT not in ("plain", "json"):
    raise ImproperlyConfigured(f"Set LOG_FORMAT to plain or json, not {LOG_FORMAT!r}.")
LOG_LEVEL = env("LOG_LEVEL", default="INFO")
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "filters": {
        "context": {"()": "portal.logging.ContextFilter"},
        "redact": {"()": "portal.logging.RedactSecrets"},
    },
    "formatters": {
        "plain": {"()": "portal.logging.ContextFormatter", "format": "%(asctime)s %(levelname)s %(name)s %(message)s"},
        "json": {"()": "portal.logging.JsonFormatter"},
    },
    "handlers": {
        "console": {"class": "logging.StreamHandler", "formatter": LOG_FORMAT, "filters": ["context", "redact"]}
    },
    "root": {"handlers": ["console"], "level": LOG_LEVEL},
    "loggers": {
        # django-q2 logs as "django-q" (not its module's name).
        "django-q": {"level": env("Q_LOG_LEVEL", default="WARNING")},
        # django-axes logs every login at INFO; lockouts come as warnings.
        "axes": {"level": "WARNING"},
    },
}
# ---- end of operating the portal ----
