"""The sandbox exists only while SANDBOX=true: deployed (DEBUG=false), or locally with SANDBOX=false, it is not
installed, `migrate` makes none of its tables, its URLs answer 404 and the admin shows none of its models. Each case
runs in a process of its own on a fresh database, as the portal would start."""

import json
import os
import subprocess
import sys

import pytest

from tests.portal.test_settings import DEPLOYED, ROOT

pytestmark = pytest.mark.slow

# One URL of each stand-in: Stella's Requests API, Intercom's REST API and its consent page.
URLS = [
    "/sandbox/stella/v1/requests",
    "/sandbox/intercom/me",
    "/sandbox/intercom/oauth?client_id=sandbox-client-id&redirect_uri=https://portal.example.com/back",
]
SCRIPT = f"""
import json
import django
django.setup()
from django.apps import apps
from django.contrib import admin
from django.core.management import call_command
from django.db import connection
from django.db.migrations.recorder import MigrationRecorder
from django.test import Client
from django.test.utils import setup_test_environment

call_command("migrate", verbosity=0)
setup_test_environment()
client = Client(headers={{"X-Forwarded-Proto": "https"}})
print(json.dumps({{
    "installed": apps.is_installed("sandbox"),
    "tables": sorted(name for name in connection.introspection.table_names() if name.startswith("sandbox_")),
    "migrations": sorted(MigrationRecorder.Migration.objects.filter(app="sandbox").values_list("name", flat=True)),
    "admin": sorted(model._meta.label for model in admin.site._registry if model._meta.app_label == "sandbox"),
    "answers": {{url: client.get(url, secure=True).status_code for url in {URLS!r}}},
}}))
"""
LOCAL = {"DEBUG": "true", "SECRET_KEY": "", "INTERCOM_CLIENT_SECRET": "", "FIELD_ENCRYPTION_KEYS": ""}


def portal_started(tmp_path, environment: dict[str, str]) -> dict:
    """What a portal started with `environment` on a fresh SQLite database has of the sandbox, once migrated."""
    env = {
        key: value
        for key, value in os.environ.items()
        if key not in ("DEBUG", "SANDBOX", "DJANGO_ALLOW_ASYNC_UNSAFE", *DEPLOYED, *LOCAL)
    }
    env.update(
        {key: value for key, value in environment.items() if value},
        DJANGO_SETTINGS_MODULE="portal.settings",
        DATABASE_URL=f"sqlite:///{tmp_path / 'db.sqlite3'}",
    )
    result = subprocess.run([sys.executable, "-c", SCRIPT], cwd=ROOT, env=env, capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout.strip().splitlines()[-1])


@pytest.mark.parametrize(
    "environment", [DEPLOYED, {**LOCAL, "SANDBOX": "false"}], ids=["deployed", "local with SANDBOX=false"]
)
def test_without_the_sandbox_nothing_of_it_is_installed_migrated_served_or_shown(tmp_path, environment):
    started = portal_started(tmp_path, environment)
    assert started == {
        "installed": False,
        "tables": [],
        "migrations": [],
        "admin": [],
        "answers": dict.fromkeys(URLS, 404),
    }


def test_with_the_sandbox_it_is_all_there(tmp_path):
    started = portal_started(tmp_path, LOCAL)  # SANDBOX follows DEBUG=true
    assert started["installed"]
    assert started["tables"] == [
        "sandbox_intercomrecord",
        "sandbox_intercomsandboxnote",
        "sandbox_sandboxreceived",
        "sandbox_stellasandboxcounter",
        "sandbox_stellasandboxemployee",
        "sandbox_stellasandboxfeedback",
        "sandbox_stellasandboxrequest",
    ]
    # Every sandbox migration ran, the newest last.
    assert started["migrations"][-1] == max(path.stem for path in (ROOT / "sandbox" / "migrations").glob("0*.py"))
    assert "sandbox.StellaSandboxEmployee" in started["admin"]
    # Stella refuses a GET to its Requests API; Intercom wants a token; the consent page shows.
    assert started["answers"] == {URLS[0]: 405, URLS[1]: 401, URLS[2]: 200}
