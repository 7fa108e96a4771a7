"""Deployed settings (DEBUG=false) refuse the local defaults that would be unsafe there."""

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
DEPLOYED = {"DEBUG": "false", "SECRET_KEY": "a-real-secret", "INTERCOM_CLIENT_SECRET": "app-client-secret"}


def load_settings(**environment: str) -> subprocess.CompletedProcess:
    env = {
        key: value
        for key, value in os.environ.items()
        if key not in ("DEBUG", "SANDBOX", "SECRET_KEY", "INTERCOM_CLIENT_SECRET")
    }
    env.update(environment, DJANGO_SETTINGS_MODULE="portal.settings")
    return subprocess.run(
        [sys.executable, "-c", "import django; django.setup()"], cwd=ROOT, env=env, capture_output=True, text=True
    )


def test_deployed_settings_load():
    assert load_settings(**DEPLOYED).returncode == 0


@pytest.mark.parametrize(
    ("override", "message"),
    [
        ({"SANDBOX": "true"}, "SANDBOX=true is for local use only"),
        ({"SECRET_KEY": ""}, "Set SECRET_KEY"),
        ({"INTERCOM_CLIENT_SECRET": ""}, "Set INTERCOM_CLIENT_SECRET"),
    ],
)
def test_deployed_settings_refuse_local_defaults(override, message):
    environment = {**DEPLOYED, **override}
    environment = {key: value for key, value in environment.items() if value}
    result = load_settings(**environment)
    assert result.returncode != 0
    assert message in result.stderr


def test_env_example_lists_every_setting_the_portal_reads():
    used = set(re.findall(r'env(?:\.\w+)?\(\s*"([A-Z_]+)"', (ROOT / "portal" / "settings.py").read_text()))
    listed = set(re.findall(r"^(?:# )?([A-Z_]+)=", (ROOT / ".env.example").read_text(), re.MULTILINE))
    assert used == listed


def test_env_example_loads_as_a_working_local_configuration(tmp_path):
    environment = dict(
        line.split("=", 1) for line in (ROOT / ".env.example").read_text().splitlines() if re.match(r"^[A-Z_]+=", line)
    )
    environment["DATABASE_URL"] = f"sqlite:///{tmp_path / 'db.sqlite3'}"
    assert load_settings(**environment).returncode == 0
