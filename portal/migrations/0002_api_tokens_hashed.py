"""API tokens stored hashed: DRF's tokens (their keys in plain text) become ApiTokens that keep a SHA-256 of
the key, and are deleted. Their holders keep using the same keys.

The key column is plain text while the hashes are written, then becomes the SHA256Field (no change to it).
"""

import hashlib

import django.db.models.deletion
from django.conf import settings
from django.db import migrations, models

import portal.fields


def hash_drf_tokens(apps, schema_editor):
    Token = apps.get_model("authtoken", "Token")
    ApiToken = apps.get_model("portal", "ApiToken")
    for token in Token.objects.all():
        hashed = ApiToken.objects.create(
            key=hashlib.sha256(token.key.encode()).hexdigest(),  # a frozen copy of portal.crypto.token_hash
            key_end=token.key[-4:],
            user_id=token.user_id,
        )
        ApiToken.objects.filter(pk=hashed.pk).update(created=token.created)  # auto_now_add set it to now
    Token.objects.all().delete()


class Migration(migrations.Migration):

    dependencies = [
        ("portal", "0001_api_token"),
        migrations.swappable_dependency(settings.AUTH_USER_MODEL),
    ]

    operations = [
        migrations.DeleteModel(
            name="ApiToken",
        ),
        migrations.CreateModel(
            name="ApiToken",
            fields=[
                ("id", models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name="ID")),
                ("key", models.CharField(editable=False, max_length=64, unique=True)),
                ("key_end", models.CharField(editable=False, max_length=4)),
                ("created", models.DateTimeField(auto_now_add=True)),
                (
                    "user",
                    models.ForeignKey(
                        on_delete=django.db.models.deletion.CASCADE,
                        related_name="api_tokens",
                        to=settings.AUTH_USER_MODEL,
                    ),
                ),
            ],
            options={
                "verbose_name": "API token",
                "verbose_name_plural": "API tokens",
                "ordering": ["-created"],
            },
        ),
        # Irreversible in effect: going back leaves DRF's table empty (the keys are not kept), so tokens are remade.
        migrations.RunPython(hash_drf_tokens, migrations.RunPython.noop),
        migrations.AlterField(
            model_name="apitoken",
            name="key",
            field=portal.fields.SHA256Field(editable=False, max_length=64, unique=True),
        ),
    ]
