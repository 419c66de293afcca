"""Writes of API keys: the plain key exists only in the return value of api_key_create."""

import secrets

from django.contrib.auth.base_user import AbstractBaseUser
from django.db import transaction
from django.utils import timezone

from usage.models import ApiKey, ApiKeyScope
from usage.selectors import api_key_hash

KEY_PREFIX_LENGTH = 8


@transaction.atomic
def api_key_create(
    *, name: str, scope: str = ApiKeyScope.WRITE_USAGE, created_by: AbstractBaseUser | None = None
) -> tuple[ApiKey, str]:
    prefix = secrets.token_hex(KEY_PREFIX_LENGTH // 2)
    raw_key = f"aic_{prefix}_{secrets.token_urlsafe(32)}"
    api_key = ApiKey.objects.create(
        name=name, scope=scope, created_by=created_by, prefix=prefix, key_hash=api_key_hash(raw_key)
    )
    return api_key, raw_key


@transaction.atomic
def api_key_revoke(*, api_key: ApiKey) -> ApiKey:
    if api_key.revoked_at is None:
        api_key.revoked_at = timezone.now()
        api_key.save(update_fields=["revoked_at"])
    return api_key
