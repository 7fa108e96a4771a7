import hashlib
import hmac


def signature_for(body: bytes, secret: str) -> str:
    """The `X-Hub-Signature` value Intercom sends: sha1= and the HMAC-SHA1 of the raw body."""
    return "sha1=" + hmac.new(secret.encode(), body, hashlib.sha1).hexdigest()


def signature_is_valid(body: bytes, header: str, secret: str) -> bool:
    """Never with an empty secret: anyone can compute that signature."""
    if not secret:
        return False
    return hmac.compare_digest(signature_for(body, secret).encode(), header.strip().lower().encode())
