"""Reads of usage data and API keys."""

import hashlib

from usage.models import ApiKey


def api_key_hash(raw_key: str) -> str:
    # Keys are 256 random bits, so a fast hash is safe here (no dictionary to guess from).
    return hashlib.sha256(raw_key.encode()).hexdigest()


def api_key_get_active(*, raw_key: str) -> ApiKey | None:
    if not raw_key:
        return None
    return ApiKey.objects.filter(key_hash=api_key_hash(raw_key), revoked_at__isnull=True).first()
