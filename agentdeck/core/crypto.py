"""Secrets at rest (provider API keys, tool headers): Fernet (AES-128-CBC + HMAC-SHA256).

``SECRETS_ENCRYPTION_KEYS`` is a comma-separated list of Fernet keys; the first encrypts, all
decrypt, so a key can be rotated by putting the new one first and re-saving. Without it (not
allowed in production) a key is derived from SECRET_KEY so development needs no setup.
"""

from __future__ import annotations

import base64
import hashlib
from functools import lru_cache

from cryptography.fernet import Fernet, InvalidToken, MultiFernet
from django.conf import settings


class SecretDecryptionError(Exception):
    pass


@lru_cache(maxsize=1)
def _fernet() -> MultiFernet:
    keys = list(settings.SECRETS_ENCRYPTION_KEYS)
    if not keys:
        derived = hashlib.sha256(b"agentdeck-secrets:" + settings.SECRET_KEY.encode()).digest()
        keys = [base64.urlsafe_b64encode(derived).decode()]
    return MultiFernet([Fernet(k) for k in keys])


def encrypt_secret(plaintext: str) -> str:
    return _fernet().encrypt(plaintext.encode()).decode()


def decrypt_secret(token: str) -> str:
    try:
        return _fernet().decrypt(token.encode()).decode()
    except InvalidToken as e:
        raise SecretDecryptionError(
            "secret cannot be decrypted with SECRETS_ENCRYPTION_KEYS"
        ) from e


def mask_secret(plaintext: str) -> str:
    """What the admin and API may show: enough to recognise a key, never to use it."""
    if len(plaintext) <= 8:
        return "••••"
    return f"{plaintext[:3]}…{plaintext[-4:]}"
