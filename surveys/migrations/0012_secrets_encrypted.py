"""Stella API keys and Intercom tokens encrypted at rest (portal/crypto.py, FIELD_ENCRYPTION_KEYS).

The columns become text (ciphertext is longer than the key), the stored keys are encrypted in place while
the fields are plain text, and only then do they become EncryptedTextFields (no change to the columns).
"""

from cryptography.fernet import Fernet, InvalidToken, MultiFernet
from django.conf import settings
from django.db import migrations, models

import portal.fields

# A frozen copy of what the migration needs of portal/crypto.py: a migration never imports live code.
SECRETS = ("test_api_key", "production_api_key", "intercom_access_token")
LABELS = {"test_api_key": "test API key", "production_api_key": "production API key"}


def _fernet():
    return MultiFernet([Fernet(key) for key in settings.FIELD_ENCRYPTION_KEYS])


def _is_ciphertext(fernet, value):
    try:
        fernet.decrypt(value.encode())
    except InvalidToken:
        return False
    return True


def encrypt(apps, schema_editor):
    IntegrationSettings = apps.get_model("surveys", "IntegrationSettings")
    fernet = _fernet() if IntegrationSettings.objects.exists() else None
    for row in IntegrationSettings.objects.only("pk", *SECRETS).iterator():
        changes = {
            name: fernet.encrypt(value.encode()).decode()
            for name in SECRETS
            if (value := getattr(row, name)) and not _is_ciphertext(fernet, value)  # a second run changes nothing
        }
        if changes:
            IntegrationSettings.objects.filter(pk=row.pk).update(**changes)


def decrypt(apps, schema_editor):
    """Back to plain text. Every stored value is ciphertext by now: one the keys can't open stops the migration,
    or it would be left in place and sent to Stella as if it were the key."""
    IntegrationSettings = apps.get_model("surveys", "IntegrationSettings")
    fernet = _fernet() if IntegrationSettings.objects.exists() else None
    for row in IntegrationSettings.objects.only("pk", *SECRETS).iterator():
        changes = {}
        for name in SECRETS:
            if value := getattr(row, name):
                try:
                    changes[name] = fernet.decrypt(value.encode()).decode()
                except InvalidToken:
                    raise RuntimeError(
                        f"IntegrationSettings {row.pk}: the {name} can't be decrypted with FIELD_ENCRYPTION_KEYS; "
                        "set the keys that encrypted it before migrating back."
                    ) from None
        if changes:
            IntegrationSettings.objects.filter(pk=row.pk).update(**changes)


class Migration(migrations.Migration):

    dependencies = [
        ("surveys", "0011_personal_data_erased_at"),
    ]

    operations = [
        *(
            migrations.AlterField(
                model_name="integrationsettings",
                name=name,
                field=models.TextField(LABELS.get(name, "Intercom access token"), blank=True),
            )
            for name in SECRETS
        ),
        migrations.RunPython(encrypt, decrypt, elidable=False),
        migrations.AlterField(
            model_name="integrationsettings",
            name="intercom_access_token",
            field=portal.fields.EncryptedTextField(blank=True, verbose_name="Intercom access token"),
        ),
        migrations.AlterField(
            model_name="integrationsettings",
            name="production_api_key",
            field=portal.fields.EncryptedTextField(blank=True, verbose_name="production API key"),
        ),
        migrations.AlterField(
            model_name="integrationsettings",
            name="test_api_key",
            field=portal.fields.EncryptedTextField(blank=True, verbose_name="test API key"),
        ),
    ]
