import hashlib
import hmac
from collections.abc import Callable


def signature_for(body: bytes, secret: str) -> str:
    """The `X-Hub-Signature` value Intercom sends with a webhook: sha1= and the HMAC-SHA1 of the raw body."""
    return "sha1=" + hmac.new(secret.encode(), body, hashlib.sha1).hexdigest()


def body_signature_for(body: bytes, secret: str) -> str:
    """The `X-Body-Signature` value Intercom sends with a Canvas Kit request: the hex HMAC-SHA256 of the raw body."""
    return hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def signature_is_valid(body: bytes, header: str, secret: str) -> bool:
    """Never with an empty secret: anyone can compute that signature."""
    return _matches(signature_for, body, header, secret)


def body_signature_is_valid(body: bytes, header: str, secret: str) -> bool:
    """A Canvas Kit request's signature, checked as a webhook's is."""
    return _matches(body_signature_for, body, header, secret)


def _matches(expected: Callable[[bytes, str], str], body: bytes, header: str, secret: str) -> bool:
    """Constant-time: how much of a forged signature matches doesn't show in the time taken."""
    if not secret:
        return False
    return hmac.compare_digest(expected(body, secret).encode(), header.strip().lower().encode())
