"""API tokens are stored hashed: the key works in `Authorization: Token <key>`, and is shown only once."""

from io import StringIO

import pytest
from django.contrib.auth.models import User
from django.core.cache import cache
from django.core.management import call_command
from django.core.management.base import CommandError
from django.db import connection
from django.db.migrations.executor import MigrationExecutor
from rest_framework.test import APIClient

from portal.crypto import token_hash
from portal.models import ApiToken


@pytest.fixture(autouse=True)
def forget_wrong_tokens():
    """Wrong tokens are counted per address (portal/authentication.py): these tests' don't count for others."""
    yield
    cache.clear()


def api_status(key: str) -> int:
    return APIClient().get("/api/survey-requests/", HTTP_AUTHORIZATION=f"Token {key}").status_code


@pytest.mark.django_db
def test_only_the_hash_of_a_key_is_stored_and_the_key_authenticates():
    user = User.objects.create_user("helpdesk")
    token = ApiToken.objects.create(user=user)
    key = token.key
    with connection.cursor() as cursor:
        key_column, table = connection.ops.quote_name("key"), connection.ops.quote_name(ApiToken._meta.db_table)
        cursor.execute(f"SELECT {key_column}, key_end FROM {table}")
        assert cursor.fetchall() == [(token_hash(key), key[-4:])]
    assert ApiToken.objects.get().key == token_hash(key)
    assert str(ApiToken.objects.get()) == f"helpdesk (••••{key[-4:]})"
    assert api_status(key) == 200
    assert api_status(token_hash(key)) == 401  # a stolen hash is no key
    assert api_status(key[:-1] + "x") == 401
    user.is_active = False
    user.save()
    assert api_status(key) == 401


@pytest.mark.django_db
def test_the_command_prints_a_working_key_once_and_can_replace_the_old_ones():
    User.objects.create_user("support")
    out, err = StringIO(), StringIO()
    call_command("api_token_create", "support", stdout=out, stderr=err)
    first = out.getvalue().strip()
    assert api_status(first) == 200 and "never shown again" in err.getvalue()
    out = StringIO()
    call_command("api_token_create", "support", "--replace", stdout=out, stderr=StringIO())
    assert (api_status(first), api_status(out.getvalue().strip())) == (401, 200)
    with pytest.raises(CommandError, match="No user 'nobody'"):
        call_command("api_token_create", "nobody", stdout=StringIO(), stderr=StringIO())


def migrate(*targets: tuple[str, str]):
    executor = MigrationExecutor(connection)
    executor.migrate(list(targets) or executor.loader.graph.leaf_nodes())
    return executor.loader.project_state(list(targets) or None).apps


@pytest.mark.django_db(transaction=True)
def test_drf_tokens_made_before_hashing_keep_working_and_leave_no_plain_key():
    old_apps = migrate(("portal", "0001_api_token"))
    try:
        user = old_apps.get_model("auth", "User").objects.create(username="legacy")
        key = "9944b09199c62bcf9418ad846dd0e4bbdfc6ee4b"  # as DRF made them: 40 hex characters
        old_apps.get_model("authtoken", "Token").objects.create(key=key, user=user)
    finally:
        migrate()
    assert api_status(key) == 200
    with connection.cursor() as cursor:
        cursor.execute("SELECT COUNT(*) FROM authtoken_token")
        assert cursor.fetchone() == (0,)
    assert ApiToken.objects.get().key_end == "ee4b"
