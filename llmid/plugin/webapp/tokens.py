"""API tokens: random secrets shown once, kept in the store only as SHA-256 hashes, each with a role.

A token has 256 random bits, so a plain SHA-256 (no salt, no slow KDF) is enough: nobody can guess a preimage,
and lookups stay one indexed read per request. Roles are ordered: read < write < admin.
"""

from __future__ import annotations

import hashlib
import re
import secrets
import time
from typing import Any

from llmid.documents import iso
from llmid.errors import ConfigError
from llmid.store.base import Store

ROLES = ("read", "write", "admin")
RANK = {r: i for i, r in enumerate(ROLES)}
KIND = "api_token"
PREFIX = "llmid_"
_SHAPE = re.compile(r"llmid_[A-Za-z0-9_-]{20,100}")
NAME_PATTERN = "[A-Za-z0-9_ .@:-]{1,64}"
_NAME = re.compile(NAME_PATTERN)


def token_hash(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


def create_token(store: Store, role: str, name: str | None = None) -> tuple[str, dict[str, Any]]:
    """Make a token with `role`; returns (the secret, shown once; its stored document, without the secret)."""
    if role not in RANK:
        raise ConfigError(f"Unknown role {role!r}: expected one of {', '.join(ROLES)}.")
    name = f"{role} token" if name is None else name
    if not _NAME.fullmatch(name):
        raise ConfigError("A token name has 1-64 letters, digits, spaces or . @ : _ - characters.")
    token = PREFIX + secrets.token_urlsafe(32)
    digest = token_hash(token)
    doc = {"token_id": digest[:12], "name": name, "role": role, "created": iso(time.time())}
    store.put_object(KIND, digest, doc)
    return token, public(doc)


def public(doc: dict[str, Any]) -> dict[str, Any]:
    """What listings show: never the hash (the object id), only its first 12 characters as `token_id`."""
    return {k: doc.get(k) for k in ("token_id", "name", "role", "created")}


def lookup(store: Store, token: str) -> dict[str, Any] | None:
    """The token's document (with `_id` = hash) if the token is known, else None (malformed ones too)."""
    if not _SHAPE.fullmatch(token or ""):
        return None
    return store.get_object(KIND, token_hash(token))


def by_digest(store: Store, digest: str) -> dict[str, Any] | None:
    """The document of a token identified by its full hash (what a browser session remembers)."""
    return store.get_object(KIND, digest) if re.fullmatch(r"[0-9a-f]{64}", digest or "") else None


def list_tokens(store: Store) -> list[dict[str, Any]]:
    return [public(d) for d in store.list_objects(KIND)]


def revoke(store: Store, token_id: str) -> bool:
    """Delete the token whose `token_id` (first 12 hash characters) is given; False if none."""
    if not re.fullmatch(r"[0-9a-f]{12}", token_id or ""):
        return False
    for doc in store.list_objects(KIND, limit=10_000):
        if doc["_id"].startswith(token_id):
            return store.delete_object(KIND, doc["_id"])
    return False


def has_tokens(store: Store) -> bool:
    return bool(store.list_objects(KIND, limit=1))
