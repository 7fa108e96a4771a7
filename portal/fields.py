"""Model fields for secrets: what the database holds is ciphertext (EncryptedTextField), a hash (SHA256Field), or
for history, a mask and a fingerprint (SecretFingerprintField)."""

from dataclasses import dataclass, field
from typing import Any

from django.apps import apps
from django.db import models
from django.db.backends.base.base import BaseDatabaseWrapper
from django.db.models.expressions import Expression
from django.db.models.functions import Cast
from django.utils.crypto import salted_hmac

from portal.crypto import (
    SecretUndecryptable,
    secret_decrypt,
    secret_encrypt,
    secret_needs_rotation,
    secret_rotate,
    token_hash,
)
from portal.redaction import mask_secret

# How the reason of a pause an undecryptable secret caused reads, and is recognised once the secret reads again.
UNDECRYPTABLE = "can't be decrypted with FIELD_ENCRYPTION_KEYS"


class Ciphertext(str):
    """A stored value as it is in the database, saved back unchanged: what a field holds when the keys can't
    open it (so a row can still be loaded, shown masked and saved), and how rotation writes new ciphertext."""


class EncryptedTextField(models.TextField):
    """Text encrypted on save and decrypted on load, with FIELD_ENCRYPTION_KEYS (portal.crypto).

    Empty stays empty (not set is no secret). A value no key opens loads as a `Ciphertext`, so pages
    that list or mask the row still work; read the secret through `secret_plaintext`, which raises.
    Lookups other than `=""` can't match: each encryption of a value differs.
    """

    def from_db_value(self, value: str | None, expression: Expression, connection: BaseDatabaseWrapper) -> str | None:
        if not value:
            return value
        try:
            return secret_decrypt(value)
        except SecretUndecryptable:
            return Ciphertext(value)

    def get_prep_value(self, value: Any) -> Any:
        value = super().get_prep_value(value)
        if not value or isinstance(value, Ciphertext):
            return value
        return secret_encrypt(value)


def secret_plaintext(instance: models.Model, name: str) -> str:
    """The secret an EncryptedTextField holds, to hand to a vendor's client: never its ciphertext.
    Raises SecretUndecryptable, naming the secret, when the keys can't open it."""
    value: str = getattr(instance, name)
    if isinstance(value, Ciphertext):
        label = getattr(instance._meta.get_field(name), "verbose_name", name)
        raise SecretUndecryptable(f"The {label} {UNDECRYPTABLE} (was its key removed?)")
    return value


class Digest(str):
    """A SHA256Field's value as stored (the hash, loaded from the database): saved and compared unchanged."""


class SHA256Field(models.CharField):
    """Stores the SHA-256 of the text it is given, never the text: a new value and a lookup take the secret
    itself (`ApiToken.objects.get(key=key)`, as DRF's TokenAuthentication asks), a loaded row holds its hash."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        kwargs.setdefault("max_length", 64)
        super().__init__(*args, **kwargs)

    def from_db_value(self, value: str | None, expression: Expression, connection: BaseDatabaseWrapper) -> str | None:
        return Digest(value) if value else value

    def get_prep_value(self, value: Any) -> Any:
        value = super().get_prep_value(value)
        if not value or isinstance(value, Digest):
            return value
        return token_hash(value)


class SecretFingerprint(str):
    """A SecretFingerprintField's value as stored: kept and compared unchanged."""


def secret_fingerprint(value: str) -> str:
    """What a record may keep of a secret: its mask and 8 hex digits of an HMAC keyed with SECRET_KEY, so two
    different keys with the same last 4 characters still read as different, and nothing leads back to either."""
    if not value:
        return ""
    digest = salted_hmac("portal.fields.secret_fingerprint", value).hexdigest()[:8]
    shown = "undecryptable" if isinstance(value, Ciphertext) else mask_secret(value)
    return SecretFingerprint(f"{shown} #{digest}")


class SecretFingerprintField(models.TextField):
    """Keeps only `secret_fingerprint` of the text it is given, never the text (history's copy of a secret): the
    instance holds the fingerprint from its save on, so even a record in memory shows no secret."""

    def from_db_value(self, value: str | None, expression: Expression, connection: BaseDatabaseWrapper) -> str | None:
        return SecretFingerprint(value) if value else value

    def pre_save(self, model_instance: models.Model, add: bool) -> Any:
        value = getattr(model_instance, self.attname)
        if value and not isinstance(value, SecretFingerprint):
            value = secret_fingerprint(value)
            setattr(model_instance, self.attname, value)
        return value

    def get_prep_value(self, value: Any) -> Any:
        value = super().get_prep_value(value)
        if not value or isinstance(value, SecretFingerprint):
            return value
        return secret_fingerprint(value)


@dataclass
class Rotation:
    """What `encrypted_fields_rotate` did: values re-encrypted, values the newest key encrypted already,
    and the ones no key decrypts (model label, primary key, field)."""

    rotated: int = 0
    current: int = 0
    undecryptable: list[tuple[str, Any, str]] = field(default_factory=list)


def encrypted_fields_rotate() -> Rotation:
    """Re-encrypt with the newest of FIELD_ENCRYPTION_KEYS every stored value of every EncryptedTextField
    that an older key encrypted (MultiFernet.rotate). Idempotent: a second run rotates nothing."""
    rotation = Rotation()
    for model in apps.get_models():
        for model_field in model._meta.concrete_fields:
            if isinstance(model_field, EncryptedTextField):
                _rotate_column(model, model_field.name, rotation)
    return rotation


def _rotate_column(model: type[models.Model], name: str, rotation: Rotation) -> None:
    # The ciphertext as stored: a cast to plain text skips the field's decryption on load.
    stored = (
        model._base_manager.exclude(**{name: ""})
        .exclude(**{f"{name}__isnull": True})
        .annotate(stored_ciphertext=Cast(name, models.TextField()))
        .values_list("pk", "stored_ciphertext")
    )
    for pk, ciphertext in stored.iterator():
        if not secret_needs_rotation(ciphertext):
            rotation.current += 1
            continue
        try:
            rotated = secret_rotate(ciphertext)
        except SecretUndecryptable:
            rotation.undecryptable.append((model._meta.label, pk, name))
            continue
        # Only if nobody saved a new value meanwhile (a new value is encrypted with the newest key anyway).
        rotation.rotated += model._base_manager.filter(pk=pk, **{name: Ciphertext(ciphertext)}).update(
            **{name: Ciphertext(rotated)}
        )
