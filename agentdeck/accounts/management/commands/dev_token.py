"""``manage.py dev_token``: sign a token the way the Next.js server does, for curl sessions and
scripts on a development machine. Refused in production, where only Next.js holds the key."""

from __future__ import annotations

import time

import jwt
from django.conf import settings
from django.core.management.base import BaseCommand, CommandError


class Command(BaseCommand):
    help = "Print an HS256 JWT for a user id, signed with JWT_SIGNING_KEY (development only)."

    def add_arguments(self, parser) -> None:
        parser.add_argument("--sub", default="user_demo", help="users.id the token speaks for")
        parser.add_argument("--email", default=None)
        parser.add_argument("--name", default=None)
        parser.add_argument("--ttl", type=int, default=3600, help="lifetime in seconds")

    def handle(self, *args, sub: str, email: str | None, name: str | None, ttl: int, **options):
        if settings.IS_PRODUCTION:
            raise CommandError("dev_token is for development; Next.js signs tokens in production")
        if not settings.JWT_SIGNING_KEY or "HS256" not in settings.JWT_ALGORITHMS:
            raise CommandError("dev_token needs HS256 with JWT_SIGNING_KEY")
        now = int(time.time())
        claims = {"sub": sub, "iat": now, "exp": now + ttl}
        if email:
            claims["email"] = email
        if name:
            claims["name"] = name
        if settings.JWT_AUDIENCE:
            claims["aud"] = settings.JWT_AUDIENCE
        if settings.JWT_ISSUER:
            claims["iss"] = settings.JWT_ISSUER
        self.stdout.write(jwt.encode(claims, settings.JWT_SIGNING_KEY, algorithm="HS256"))
