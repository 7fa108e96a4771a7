"""Secrets at rest: Fernet under rotating keys (portal/crypto.py), the fields that use it (portal/fields.py),
and the deployed settings that refuse to run without a real key."""

import pytest
from cryptography.fernet import Fernet
from django.core.exceptions import ImproperlyConfigured
from django.db import connection

from portal.crypto import (
    SecretUndecryptable,
    secret_decrypt,
    secret_encrypt,
    secret_needs_rotation,
    secret_rotate,
    token_hash,
)
from portal.fields import Ciphertext, Digest, secret_plaintext
from surveys.models import IntegrationSettings
from tests.factories import AccountFactory
from tests.portal.test_settings import DEPLOYED, load_settings

OLD, NEW = Fernet.generate_key().decode(), Fernet.generate_key().decode()
KEY = "stella-live-key-7f3a9c2e-0001"


def stored(integration: IntegrationSettings, name: str) -> str:
    """The column as the database holds it."""
    table, column = IntegrationSettings._meta.db_table, IntegrationSettings._meta.get_field(name).column
    with connection.cursor() as cursor:
        cursor.execute(f"SELECT {column} FROM {table} WHERE id = %s", [integration.pk])
        return cursor.fetchone()[0]


def test_a_secret_round_trips_and_each_encryption_differs(settings):
    settings.FIELD_ENCRYPTION_KEYS = [NEW]
    first, second = secret_encrypt(KEY), secret_encrypt(KEY)
    assert KEY not in first and first != second
    assert secret_decrypt(first) == secret_decrypt(second) == KEY


def test_an_older_key_still_decrypts_and_rotation_moves_to_the_newest(settings):
    settings.FIELD_ENCRYPTION_KEYS = [OLD]
    ciphertext = secret_encrypt(KEY)
    settings.FIELD_ENCRYPTION_KEYS = [NEW, OLD]
    assert secret_decrypt(ciphertext) == KEY
    assert secret_needs_rotation(ciphertext)
    rotated = secret_rotate(ciphertext)
    assert not secret_needs_rotation(rotated)
    settings.FIELD_ENCRYPTION_KEYS = [NEW]
    assert secret_decrypt(rotated) == KEY


def test_a_removed_key_makes_its_secrets_undecryptable(settings):
    settings.FIELD_ENCRYPTION_KEYS = [OLD]
    ciphertext = secret_encrypt(KEY)
    settings.FIELD_ENCRYPTION_KEYS = [NEW]
    with pytest.raises(SecretUndecryptable):
        secret_decrypt(ciphertext)
    with pytest.raises(SecretUndecryptable):
        secret_rotate(ciphertext)


def test_no_keys_or_a_malformed_key_name_the_setting(settings):
    settings.FIELD_ENCRYPTION_KEYS = []
    with pytest.raises(ImproperlyConfigured, match="FIELD_ENCRYPTION_KEYS"):
        secret_encrypt(KEY)
    settings.FIELD_ENCRYPTION_KEYS = ["not-a-fernet-key"]
    with pytest.raises(ImproperlyConfigured, match="FIELD_ENCRYPTION_KEYS"):
        secret_encrypt(KEY)


@pytest.mark.django_db
def test_the_database_holds_ciphertext_and_the_model_the_key(settings):
    settings.FIELD_ENCRYPTION_KEYS = [NEW]
    integration = AccountFactory(integration__production_api_key=KEY, integration__test_api_key="").integration
    assert KEY not in stored(integration, "production_api_key")
    assert secret_decrypt(stored(integration, "production_api_key")) == KEY
    assert stored(integration, "test_api_key") == ""  # not set is no secret
    loaded = IntegrationSettings.objects.get(pk=integration.pk)
    assert (loaded.production_api_key, loaded.api_key_for("live"), loaded.test_api_key) == (KEY, KEY, "")
    assert IntegrationSettings.objects.values_list("production_api_key", flat=True).get(pk=integration.pk) == KEY


@pytest.mark.django_db
def test_an_undecryptable_secret_loads_masked_raises_when_read_and_is_saved_back_unchanged(settings):
    settings.FIELD_ENCRYPTION_KEYS = [OLD]
    integration = AccountFactory(integration__production_api_key=KEY).integration
    ciphertext = stored(integration, "production_api_key")
    settings.FIELD_ENCRYPTION_KEYS = [NEW]
    loaded = IntegrationSettings.objects.get(pk=integration.pk)  # pages that list or mask the row still work
    assert isinstance(loaded.production_api_key, Ciphertext)
    with pytest.raises(SecretUndecryptable, match="The production API key can't be decrypted"):
        loaded.api_key_for("live")
    with pytest.raises(SecretUndecryptable, match="The Intercom access token can't be decrypted"):
        secret_plaintext(loaded, "intercom_access_token")
    loaded.brand = "acme"
    loaded.save()
    assert stored(integration, "production_api_key") == ciphertext
    settings.FIELD_ENCRYPTION_KEYS = [NEW, OLD]  # the key is put back: nothing was lost
    assert IntegrationSettings.objects.get(pk=integration.pk).api_key_for("live") == KEY


def test_a_hashed_field_stores_and_looks_up_by_the_sha256_of_the_key():
    from portal.models import ApiToken

    field = ApiToken._meta.get_field("key")
    assert field.get_prep_value("abc") == token_hash("abc") == Digest(token_hash("abc"))
    assert field.get_prep_value(Digest(token_hash("abc"))) == token_hash("abc")  # a loaded hash is not hashed again


@pytest.mark.slow
def test_deployed_settings_refuse_to_start_without_a_real_encryption_key():
    without = {key: value for key, value in DEPLOYED.items() if key != "FIELD_ENCRYPTION_KEYS"}
    for environment in (
        without,
        {**without, "FIELD_ENCRYPTION_KEYS": "bG9jYWwtb25seS1pbnNlY3VyZS1maWVsZC1rZXktMDA="},  # the local key
    ):
        result = load_settings(**environment)
        assert result.returncode != 0
        assert "Set FIELD_ENCRYPTION_KEYS" in result.stderr
        assert "from cryptography.fernet import Fernet; print(Fernet.generate_key().decode())" in result.stderr
    result = load_settings(**{**without, "FIELD_ENCRYPTION_KEYS": "too-short"})
    assert result.returncode != 0 and "not a Fernet key" in result.stderr
    assert load_settings(**{**without, "FIELD_ENCRYPTION_KEYS": f"{NEW},{OLD}"}).returncode == 0
