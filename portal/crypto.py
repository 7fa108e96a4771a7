"""Secrets at rest: what the portal stores of a secret is ciphertext (a Stella key, an Intercom token)
or a hash (an API token's key), never the secret itself.

Encryption is Fernet (AES-128-CBC with an HMAC-SHA256) under MultiFernet: the keys come from
FIELD_ENCRYPTION_KEYS, newest first. The newest encrypts; every one of them decrypts, so a new
key can be put in front, the stored secrets re-encrypted with it (`manage.py rotate_secrets`),
and the old key dropped after.
"""

import hashlib
from functools import cache

from cryptography.fernet import Fernet, InvalidToken, MultiFernet
from django.conf import settings
from django.core.exceptions import ImproperlyConfigured

GENERATE_KEY = "python3 -c 'from cryptography.fernet import Fernet; print(Fernet.generate_key().decode())'"


class SecretUndecryptable(Exception):
    """A stored secret that none of FIELD_ENCRYPTION_KEYS opens: the key that encrypted it was removed,
    or the value was written by something other than the portal."""


@cache
def _fernets(keys: tuple[str, ...]) -> tuple[MultiFernet, Fernet]:
    if not keys:
        raise ImproperlyConfigured(f"Set FIELD_ENCRYPTION_KEYS to a Fernet key, e.g. the output of {GENERATE_KEY}")
    try:
        fernets = [Fernet(key) for key in keys]
    except ValueError as exc:
        raise ImproperlyConfigured(f"FIELD_ENCRYPTION_KEYS holds a key that is not a Fernet key: {exc}") from None
    return MultiFernet(fernets), fernets[0]


def _keys() -> tuple[MultiFernet, Fernet]:
    """Every key (to decrypt) and the newest (to encrypt), as the settings say now."""
    return _fernets(tuple(settings.FIELD_ENCRYPTION_KEYS))


def secret_encrypt(plaintext: str) -> str:
    """The ciphertext of a secret, with the newest key."""
    return _keys()[0].encrypt(plaintext.encode()).decode()


def secret_decrypt(ciphertext: str) -> str:
    """The secret, with whichever key encrypted it. Raises SecretUndecryptable when none does."""
    try:
        return _keys()[0].decrypt(ciphertext.encode()).decode()
    except InvalidToken:
        raise SecretUndecryptable("none of FIELD_ENCRYPTION_KEYS decrypts it") from None


def secret_needs_rotation(ciphertext: str) -> bool:
    """True when the newest key did not encrypt this ciphertext."""
    try:
        _keys()[1].decrypt(ciphertext.encode())
    except InvalidToken:
        return True
    return False


def secret_rotate(ciphertext: str) -> str:
    """The same secret encrypted with the newest key (its timestamp kept). Raises SecretUndecryptable."""
    try:
        return _keys()[0].rotate(ciphertext.encode()).decode()
    except InvalidToken:
        raise SecretUndecryptable("none of FIELD_ENCRYPTION_KEYS decrypts it") from None


def token_hash(key: str) -> str:
    """What is stored of an API token: the SHA-256 of its key. The keys are random (160 bits), so a plain
    hash is enough to make a stolen table useless, and it lets a request's token be found by an index."""
    return hashlib.sha256(key.encode()).hexdigest()
