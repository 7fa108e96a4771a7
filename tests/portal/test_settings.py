"""Deployed settings (DEBUG=false) refuse the local defaults that would be unsafe there."""

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
# The deployed environment the README documents.
DEPLOYED = {
    "SECRET_KEY": "k7Qv-" + "a-real-random-secret-of-sixty-characters-or-so-xyz0123456",
    "INTERCOM_CLIENT_SECRET": "app-client-secret",
    "FIELD_ENCRYPTION_KEYS": "PUpkMNN9Hl8PjQEDecZGXHZQ0Sq7fp1fe7qIkm-ZtfI=",
    "ALLOWED_HOSTS": "portal.example.com",
    "CSRF_TRUSTED_ORIGINS": "https://portal.example.com",
    "BEHIND_TLS_PROXY": "true",
}


def load_settings(**environment: str) -> subprocess.CompletedProcess:
    env = {
        key: value
        for key, value in os.environ.items()
        if key not in ("DEBUG", "SANDBOX", "SECRET_KEY", "INTERCOM_CLIENT_SECRET", "SECURE_SSL_REDIRECT")
    }
    env.update(environment, DJANGO_SETTINGS_MODULE="portal.settings")
    return subprocess.run(
        [sys.executable, "-c", "import django; django.setup()"], cwd=ROOT, env=env, capture_output=True, text=True
    )


@pytest.mark.slow
def test_deployed_settings_load():
    assert load_settings(**DEPLOYED).returncode == 0


@pytest.mark.slow
@pytest.mark.parametrize(
    ("override", "message"),
    [
        ({"SANDBOX": "true"}, "SANDBOX=true is for local use only"),
        ({"SECRET_KEY": ""}, "Set SECRET_KEY"),
        ({"SECRET_KEY": "short-but-not-empty"}, "Set SECRET_KEY to a random string of at least 50"),
        ({"SECRET_KEY": "local-only-insecure-secret-key"}, "Set SECRET_KEY"),
        ({"INTERCOM_CLIENT_SECRET": ""}, "Set INTERCOM_CLIENT_SECRET"),
        ({"INTERCOM_CLIENT_SECRET": "sandbox-client-secret"}, "Set INTERCOM_CLIENT_SECRET"),
    ],
)
def test_deployed_settings_refuse_local_defaults(override, message):
    environment = {**DEPLOYED, **override}
    environment = {key: value for key, value in environment.items() if value}
    result = load_settings(**environment)
    assert result.returncode != 0
    assert message in result.stderr


@pytest.mark.slow
def test_nothing_set_means_deployed_and_refuses_to_start():
    """Safe by default: without DEBUG=true the local secrets are not used, and the error names what to set."""
    result = load_settings()
    assert result.returncode != 0
    assert "Set SECRET_KEY" in result.stderr and "Set INTERCOM_CLIENT_SECRET" in result.stderr


@pytest.mark.slow
def test_check_deploy_is_clean_in_the_documented_deployed_environment():
    # Nothing of this test run's own environment (DEBUG, the browser tests' async switch) may leak in.
    leaking = ("DEBUG", "SANDBOX", "DJANGO_ALLOW_ASYNC_UNSAFE")
    env = {key: value for key, value in os.environ.items() if key not in leaking}
    result = subprocess.run(
        [sys.executable, "manage.py", "check", "--deploy", "--fail-level", "WARNING"],
        cwd=ROOT,
        env={**env, **DEPLOYED},
        capture_output=True,
        text=True,
    )
    assert result.returncode == 0, result.stderr
    assert "System check identified no issues" in result.stdout


def test_env_example_lists_every_setting_the_portal_reads():
    used = set(re.findall(r'env(?:\.\w+)?\(\s*"([A-Z_]+)"', (ROOT / "portal" / "settings.py").read_text()))
    listed = set(re.findall(r"^(?:# )?([A-Z_]+)=", (ROOT / ".env.example").read_text(), re.MULTILINE))
    assert used == listed


@pytest.mark.slow
def test_env_example_loads_as_a_working_local_configuration(tmp_path):
    environment = dict(
        line.split("=", 1) for line in (ROOT / ".env.example").read_text().splitlines() if re.match(r"^[A-Z_]+=", line)
    )
    environment["DATABASE_URL"] = f"sqlite:///{tmp_path / 'db.sqlite3'}"
    assert load_settings(**environment).returncode == 0


def test_behind_a_tls_proxy_pages_send_hsts_and_plain_http_is_redirected(client, settings):
    settings.SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
    settings.SECURE_SSL_REDIRECT = True
    settings.SECURE_HSTS_SECONDS = 31536000
    settings.SECURE_HSTS_INCLUDE_SUBDOMAINS = True
    secure = client.get("/login/", headers={"X-Forwarded-Proto": "https"})
    assert secure.headers["Strict-Transport-Security"] == "max-age=31536000; includeSubDomains"
    plain = client.get("/login/")
    assert (plain.status_code, plain["Location"]) == (301, "https://testserver/login/")
    assert client.get("/healthz").status_code == 200  # load balancers may check over plain HTTP


def settings_values(*names: str, **environment: str) -> list[str]:
    env = {**{k: v for k, v in os.environ.items() if k not in ("DEBUG", "SANDBOX")}, **environment}
    code = f"import django; django.setup(); from django.conf import settings; [print(repr(getattr(settings, n))) for n in {names!r}]"
    result = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, env={**env, "DJANGO_SETTINGS_MODULE": "portal.settings"},
        capture_output=True, text=True,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    return result.stdout.splitlines()


@pytest.mark.slow
def test_behind_a_tls_proxy_one_proxy_on_this_machine_is_trusted_unless_told_otherwise():
    assert settings_values("TRUSTED_PROXIES", "TRUSTED_PROXY_COUNT", **DEPLOYED) == ["['127.0.0.1', '::1']", "1"]
    assert settings_values("TRUSTED_PROXIES", "TRUSTED_PROXY_COUNT", **{**DEPLOYED, "BEHIND_TLS_PROXY": "false"}) == [
        "[]", "0"
    ]  # fmt: skip
    behind_a_load_balancer = {**DEPLOYED, "TRUSTED_PROXIES": "10.0.0.0/8,fd00::/8", "TRUSTED_PROXY_COUNT": "2"}
    assert settings_values("TRUSTED_PROXIES", "TRUSTED_PROXY_COUNT", **behind_a_load_balancer) == [
        "['10.0.0.0/8', 'fd00::/8']", "2"
    ]  # fmt: skip


@pytest.mark.slow
@pytest.mark.parametrize(
    ("override", "message"),
    [
        ({"TRUSTED_PROXIES": "proxy.internal"}, "TRUSTED_PROXIES holds 'proxy.internal'"),
        ({"TRUSTED_PROXY_COUNT": "-1"}, "Set TRUSTED_PROXY_COUNT"),
        ({"BEHIND_TLS_PROXY": "false", "TRUSTED_PROXY_COUNT": "1"}, "Set TRUSTED_PROXY_COUNT"),
    ],
)
def test_proxy_settings_that_cant_be_right_are_refused(override, message):
    result = load_settings(**{**DEPLOYED, **override})
    assert result.returncode != 0
    assert message in result.stderr


def test_the_deployment_example_lets_only_the_proxy_reach_gunicorn():
    """Behind a proxy on the same machine, gunicorn listens on 127.0.0.1: reached from elsewhere, it would meet
    clients that are no proxy (counted by their own address, but better not met at all)."""
    example = dict(
        line.split("=", 1) for line in (ROOT / "deploy" / "portal.env.example").read_text().splitlines() if "=" in line
        if re.match(r"^[A-Z_]+=", line)
    )  # fmt: skip
    assert example["BEHIND_TLS_PROXY"] == "true"
    assert example["WEB_BIND"].startswith("127.0.0.1:")
