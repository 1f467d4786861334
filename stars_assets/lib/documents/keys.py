"""API keys: `stars_<key id>_<secret>`. The store keeps the key id, a random salt and sha256(salt + secret),
never the secret; a key is shown once, when it is created. Secrets are 256 random bits, so one salted
sha256 is enough (a slow password hash would only cost every request time). No Dagster here.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
from dataclasses import dataclass

SCOPES = {
    "members:read": "GET /v1/members/{id}: a member's full document (PHI)",
    "audiences:read": "GET /v1/audiences: members to contact next (member ids, PHI)",
    "changes:read": "GET /v1/changes: documents changed since a cursor (PHI)",
}
PREFIX = "stars"
_KEY = re.compile(rf"^{PREFIX}_([0-9a-f]{{16}})_([A-Za-z0-9_-]{{43}})$")


@dataclass(frozen=True)
class NewKey:
    key_id: str
    salt: str
    secret_hash: str
    api_key: str  # shown once; not stored


def hash_secret(salt: str, secret: str) -> str:
    return hashlib.sha256(bytes.fromhex(salt) + secret.encode()).hexdigest()


def new_key() -> NewKey:
    key_id, secret, salt = secrets.token_hex(8), secrets.token_urlsafe(32), secrets.token_hex(16)
    return NewKey(key_id, salt, hash_secret(salt, secret), f"{PREFIX}_{key_id}_{secret}")


def parse_key(api_key: str) -> tuple[str, str] | None:
    """(key id, secret), or None when the text is not shaped like a key."""
    match = _KEY.match(api_key or "")
    return (match.group(1), match.group(2)) if match else None


def secret_matches(salt: str, secret_hash: str, secret: str) -> bool:
    return hmac.compare_digest(hash_secret(salt, secret), secret_hash)


def unknown_scopes(scopes: list[str]) -> list[str]:
    return [s for s in scopes if s not in SCOPES]
