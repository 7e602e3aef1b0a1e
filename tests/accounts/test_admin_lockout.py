"""Admin sign-in locks out after repeated failures (django-axes), so passwords cannot be tried
at a script's speed. Attempts are counted in PostgreSQL, so the same holds whichever cache the
deployment has; staff lift a lock in the admin or with axes' commands."""

from __future__ import annotations

import pytest
from axes.models import AccessAttempt
from django.core.management import call_command
from django.test import Client, override_settings

from agentdeck.accounts.services import admin_user_ensure
from tests.support.redis import redis_available, redis_url

pytestmark = pytest.mark.django_db

LOGIN = "/admin/login/?next=/admin/"
EMAIL = "boss@example.com"
PASSWORD = "correct horse battery staple"
LOCAL_CACHE = {"default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"}}
REDIS_CACHE = {"default": {"BACKEND": "agentdeck.core.cache.RedisCache", "LOCATION": redis_url(13)}}


@pytest.fixture(autouse=True)
def _limit(settings):
    settings.AXES_FAILURE_LIMIT = 3
    # Every sign-in hashes a password; the real hasher's 1M iterations are not what is tested.
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]


@pytest.fixture
def admin_account(db):
    return admin_user_ensure(email=EMAIL, password=PASSWORD)[0]


def sign_in(password: str, address: str = "198.51.100.20", client: Client | None = None, **extra):
    client = client or Client()
    return client.post(
        LOGIN, {"username": EMAIL, "password": password}, REMOTE_ADDR=address, **extra
    )


def assert_locked(response) -> None:
    assert response.status_code == 429
    assert b"Sign-in locked" in response.content
    assert b"axes_reset_ip 198.51.100.20" in response.content
    assert 1 <= int(response["Retry-After"]) <= 15 * 60


@pytest.mark.parametrize(
    "caches",
    [
        pytest.param(LOCAL_CACHE, id="local-memory cache"),
        pytest.param(
            REDIS_CACHE,
            id="redis cache",
            marks=pytest.mark.skipif(not redis_available(13), reason="no Redis"),
        ),
    ],
)
def test_admin_sign_in_locks_after_the_failure_limit_even_for_the_right_password(
    admin_account, caches
):
    with override_settings(CACHES=caches):
        failures = [sign_in("wrong").status_code for _ in range(2)]
        assert failures == [200, 200]  # the form again, with its error
        assert_locked(sign_in("wrong"))  # the third failure locks
        assert_locked(sign_in(PASSWORD))  # and now even the right password is refused
        assert sign_in(PASSWORD, "198.51.100.21").status_code == 302  # another address is not


def test_a_lock_is_lifted_by_the_reset_command(admin_account):
    for _ in range(3):
        sign_in("wrong")
    assert_locked(sign_in(PASSWORD))

    call_command("axes_reset_ip", "198.51.100.20")

    assert sign_in(PASSWORD).status_code == 302


def test_staff_lift_a_lock_in_the_admin(admin_account, staff_user):
    for _ in range(3):
        sign_in("wrong")
    attempt = AccessAttempt.objects.get(ip_address="198.51.100.20")
    staff = Client()
    staff.force_login(staff_user)

    listing = staff.get("/admin/axes/accessattempt/")
    assert listing.status_code == 200
    assert b"198.51.100.20" in listing.content
    deleted = staff.post(
        f"/admin/axes/accessattempt/{attempt.pk}/delete/", {"post": "yes"}, follow=True
    )
    assert deleted.status_code == 200

    assert sign_in(PASSWORD).status_code == 302


def test_a_successful_sign_in_forgets_earlier_failures(admin_account):
    for _ in range(2):
        sign_in("wrong")
    assert sign_in(PASSWORD).status_code == 302
    for _ in range(2):
        assert sign_in("wrong").status_code == 200  # counting starts again


def test_forwarded_addresses_count_only_behind_trusted_proxies(admin_account, settings):
    for i in range(3):
        sign_in("wrong", HTTP_X_FORWARDED_FOR=f"192.0.2.{i}")
    assert_locked(sign_in(PASSWORD, HTTP_X_FORWARDED_FOR="192.0.2.99"))

    settings.TRUST_X_FORWARDED_FOR = True
    # Behind a trusted proxy, the address it saw is the client's: others behind it are not
    # locked out with 192.0.2.7.
    for _ in range(3):
        sign_in("wrong", "10.0.0.2", HTTP_X_FORWARDED_FOR="192.0.2.7")
    assert sign_in("wrong", "10.0.0.2", HTTP_X_FORWARDED_FOR="192.0.2.7").status_code == 429
    assert sign_in(PASSWORD, "10.0.0.2", HTTP_X_FORWARDED_FOR="192.0.2.8").status_code == 302
