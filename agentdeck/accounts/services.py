from __future__ import annotations

import hashlib
import secrets
from datetime import datetime, timedelta

from django.conf import settings
from django.db import IntegrityError, transaction
from django.utils import timezone

from agentdeck.accounts.models import ApiKey, User
from agentdeck.core.exceptions import ApplicationError, PermissionDenied

API_KEY_PREFIX = "adk_"
API_KEY_RANDOM_CHARS = 40  # base62 -> ~238 bits
API_KEY_DISPLAY_PREFIX_LEN = len(API_KEY_PREFIX) + 8
_ALPHABET = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"


def api_key_hash(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


def _new_api_key_secret() -> str:
    return API_KEY_PREFIX + "".join(secrets.choice(_ALPHABET) for _ in range(API_KEY_RANDOM_CHARS))


@transaction.atomic
def api_key_create(
    *,
    owner: User,
    name: str,
    scopes: list[str] | None = None,
    expires_at: datetime | None = None,
    created_with: ApiKey | None = None,
) -> tuple[ApiKey, str]:
    """Create a key and return it with its secret, which is never available again.

    A key made by a caller who authenticated with another API key can hold no scope that key
    lacks: a leaked read-only key must not mint a writing one.
    """
    scopes = sorted(set(scopes if scopes is not None else [ApiKey.Scope.READ, ApiKey.Scope.WRITE]))
    if created_with is not None and not set(scopes) <= set(created_with.scopes):
        raise PermissionDenied(
            "An API key can only create keys with a subset of its own scopes.",
            code="scope_escalation",
        )
    if ApiKey.Scope.CREDITS_GRANT in scopes and not owner.is_staff:
        raise PermissionDenied(
            "Only staff service accounts may hold credits:grant keys.", code="staff_only"
        )
    if expires_at is not None and expires_at <= timezone.now():
        raise ApplicationError("expires_at must be in the future.", code="invalid_expiry")
    secret = _new_api_key_secret()
    api_key = ApiKey.objects.create(
        owner=owner,
        name=name,
        prefix=secret[:API_KEY_DISPLAY_PREFIX_LEN],
        key_hash=api_key_hash(secret),
        scopes=scopes,
        expires_at=expires_at,
    )
    return api_key, secret


def api_key_revoke(*, api_key: ApiKey) -> ApiKey:
    """Revoke a key; revoking a revoked key is a no-op that keeps the first revocation time."""
    ApiKey.objects.filter(pk=api_key.pk, revoked_at__isnull=True).update(revoked_at=timezone.now())
    api_key.refresh_from_db(fields=["revoked_at", "updated_at"])
    return api_key


def api_key_touch(*, api_key: ApiKey) -> None:
    """Record use at most once per API_KEY_LAST_USED_RESOLUTION_SECONDS, so a busy key does not
    turn every request into a row write. The conditional UPDATE makes concurrent requests
    write at most once per window."""
    now = timezone.now()
    window = timedelta(seconds=settings.API_KEY_LAST_USED_RESOLUTION_SECONDS)
    if api_key.last_used_at is not None and now - api_key.last_used_at < window:
        return
    from django.db.models import Q

    ApiKey.objects.filter(
        Q(last_used_at__isnull=True) | Q(last_used_at__lt=now - window), pk=api_key.pk
    ).update(last_used_at=now)
    api_key.last_used_at = now


def user_get_or_create_from_claims(
    *, user_id: str, email: str | None, name: str | None, image: str | None = None
) -> User:
    """The user a verified token speaks for, created from its claims on first sight.

    Two first requests of the same new user can race; the loser's INSERT fails on the primary
    key and it reads the winner's row instead.
    """
    user = User.objects.filter(pk=user_id).first()
    if user is not None:
        return user
    try:
        with transaction.atomic():
            # No usable password: these users sign in through Next.js, never /admin/.
            return User.objects.create_user(email, None, id=user_id, name=name, image=image)
    except IntegrityError:
        user = User.objects.filter(pk=user_id).first()
        if user is not None:
            return user
        # Not a race on the id: the email belongs to another user id.
        raise ApplicationError(
            "The token's email belongs to another user.", code="user_conflict", status=401
        ) from None


@transaction.atomic
def admin_user_ensure(*, email: str, password: str | None) -> tuple[User, str | None]:
    """Make sure a staff user with ``email`` exists; return it and the password if one had to be
    generated (printed once by ``manage.py serve``, never stored in clear)."""
    user = User.objects.select_for_update().filter(email=email).first()
    generated: str | None = None
    if user is None:
        generated = None if password else secrets.token_urlsafe(18)
        user = User.objects.create_superuser(email, password or generated, name="Administrator")
        return user, generated
    changed = []
    if not user.is_staff:
        user.role = User.Role.ADMIN
        changed.append("role")
    if password and not user.check_password(password):
        user.set_password(password)
        changed.append("password")
    if changed:
        user.save(update_fields=[*changed, "updated_at"])
    return user, None
