"""Creating, checking and revoking API tokens."""

from __future__ import annotations

import hashlib
import secrets
from datetime import datetime, timedelta

from django.contrib.auth.models import User
from django.utils import timezone

from accounts.models import ApiToken

TOKEN_PREFIX = "rag_"
# Writing `last_used` on every request would turn each read into a write; once a minute
# is enough to tell a live token from a forgotten one.
LAST_USED_RESOLUTION = timedelta(minutes=1)


def _digest(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


def token_create(
    *,
    user: User,
    name: str,
    expires: datetime | None = None,
    parent: ApiToken | None = None,
) -> tuple[ApiToken, str]:
    """Create a token and return it with its secret, which is not stored anywhere.

    `parent` is the token the request that asks for this one was authenticated with: the
    new token expires no later than it (a token that expires in a minute must not mint
    one that never does). Created with a password or a session, no cap applies.
    """
    if parent is not None and parent.expires is not None:
        expires = parent.expires if expires is None else min(expires, parent.expires)
    secret = TOKEN_PREFIX + secrets.token_urlsafe(32)
    token = ApiToken.objects.create(
        user=user, name=name, prefix=secret[:12], digest=_digest(secret), expires=expires
    )
    return token, secret


def token_authenticate(*, secret: str) -> ApiToken | None:
    """The active token for this secret, or None (unknown, revoked or expired)."""
    token = ApiToken.objects.select_related("user").filter(digest=_digest(secret)).first()
    if token is None or not token.is_active or not token.user.is_active:
        return None
    now = timezone.now()
    if token.last_used is None or now - token.last_used > LAST_USED_RESOLUTION:
        ApiToken.objects.filter(pk=token.pk).update(last_used=now)
    return token


def token_revoke(*, token: ApiToken) -> None:
    if token.revoked is None:
        token.revoked = timezone.now()
        token.save(update_fields=["revoked"])
