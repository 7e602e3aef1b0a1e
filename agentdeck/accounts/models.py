from __future__ import annotations

import uuid
from typing import ClassVar

from django.conf import settings
from django.contrib.auth.base_user import AbstractBaseUser, BaseUserManager
from django.contrib.postgres.fields import ArrayField
from django.db import models
from django.utils import timezone

from agentdeck.core.models import TimestampedModel


def new_user_id() -> str:
    # Prisma ids are strings (cuid() or uuid()); users created here get a uuid4 string.
    return str(uuid.uuid4())


class UserManager(BaseUserManager["User"]):
    use_in_migrations = True

    def create_user(self, email: str | None, password: str | None = None, **extra) -> User:
        user = self.model(email=self.normalize_email(email) if email else None, **extra)
        user.set_password(password) if password else user.set_unusable_password()
        user.save(using=self._db)
        return user

    def create_superuser(self, email: str, password: str | None = None, **extra) -> User:
        extra.setdefault("role", User.Role.ADMIN)
        return self.create_user(email, password, **extra)


class User(AbstractBaseUser):
    """A person, mirrored from the Next.js ``users`` table (its Prisma schema owns it in
    production; ``USERS_TABLE_MANAGED=false`` makes Django map it without migrating it).

    Columns shared with Prisma: id, email, name, image, role, created_at, updated_at.
    Django-only columns, which the Prisma model must declare (nullable or defaulted) so the
    admin can log staff in: password, last_login, is_active.

    ``role`` decides staff access: ``staff`` and ``admin`` may use /admin/ and see every object
    through the API; only ``admin`` may manage users themselves.
    """

    class Role(models.TextChoices):
        USER = "user", "User"
        STAFF = "staff", "Staff"
        ADMIN = "admin", "Admin"

    id = models.CharField(primary_key=True, max_length=64, default=new_user_id, editable=False)
    email = models.EmailField(max_length=320, unique=True, null=True, blank=True)
    # Nullable like the Prisma columns they mirror (Auth.js leaves them NULL when unknown).
    name = models.CharField(max_length=255, null=True, blank=True)  # noqa: DJ001
    image = models.TextField(null=True, blank=True)  # noqa: DJ001
    role = models.CharField(max_length=16, choices=Role.choices, default=Role.USER)
    is_active = models.BooleanField(default=True)
    created_at = models.DateTimeField(default=timezone.now, editable=False)
    updated_at = models.DateTimeField(auto_now=True)

    objects = UserManager()

    USERNAME_FIELD = "email"
    EMAIL_FIELD = "email"
    REQUIRED_FIELDS: ClassVar[list[str]] = []

    class Meta:
        db_table = "users"
        managed = settings.USERS_TABLE_MANAGED
        constraints = [
            models.CheckConstraint(
                condition=models.Q(role__in=["user", "staff", "admin"]), name="users_role_valid"
            ),
        ]

    def __str__(self) -> str:
        return self.email or self.id

    @property
    def is_staff(self) -> bool:
        return self.role in (self.Role.STAFF, self.Role.ADMIN)

    @property
    def is_superuser(self) -> bool:
        return self.role == self.Role.ADMIN

    # The admin asks these; roles replace Django's per-user permission tables.
    def has_perm(self, perm: str, obj: object = None) -> bool:
        if not (self.is_active and self.is_staff):
            return False
        if perm.startswith("accounts.") and perm.endswith("_user"):
            return perm == "accounts.view_user" or self.is_superuser
        return True

    def has_perms(self, perm_list, obj: object = None) -> bool:
        return all(self.has_perm(p, obj) for p in perm_list)

    def has_module_perms(self, app_label: str) -> bool:
        return self.is_active and self.is_staff


class ApiKey(TimestampedModel):
    """A secret for programs: ``adk_`` + 40 random characters, shown once at creation.

    Only the SHA-256 of the secret is stored (the secret has 238 bits of entropy, so a fast hash
    is safe and lets authentication find the key with one indexed lookup). ``prefix`` (the first
    12 characters) is what lists and the admin show so people can tell keys apart.
    Lifecycle: active -> revoked (``revoked_at`` set, never undone) or expired (``expires_at``).
    """

    class Scope(models.TextChoices):
        READ = "read", "Read"
        WRITE = "write", "Write"
        # Staff service keys only: the Next.js server granting purchased credits.
        CREDITS_GRANT = "credits:grant", "Grant credits"

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    owner = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="api_keys"
    )
    name = models.CharField(max_length=100)
    prefix = models.CharField(max_length=16)
    key_hash = models.CharField(max_length=64, unique=True)
    scopes = ArrayField(models.CharField(max_length=16, choices=Scope.choices), default=list)
    last_used_at = models.DateTimeField(null=True, blank=True)
    expires_at = models.DateTimeField(null=True, blank=True)
    revoked_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        db_table = "api_keys"
        verbose_name = "API key"
        indexes = [
            # GET /api/v1/api-keys/: one owner's keys, newest first (cursor pagination).
            models.Index(fields=["owner", "-created_at"], name="api_keys_owner_created"),
        ]
        constraints = [
            models.CheckConstraint(
                condition=models.Q(scopes__contained_by=["read", "write", "credits:grant"]),
                name="api_keys_scopes_known",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.name} ({self.prefix}...)"

    @property
    def is_revoked(self) -> bool:
        return self.revoked_at is not None

    @property
    def is_expired(self) -> bool:
        return self.expires_at is not None and self.expires_at <= timezone.now()

    @property
    def is_active(self) -> bool:
        return not self.is_revoked and not self.is_expired
