from __future__ import annotations

import base64
import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric import ec, rsa

from agentdeck.accounts.models import User
from config.settings import DEV_JWT_SIGNING_KEY

pytestmark = pytest.mark.django_db

ME = "/api/v1/me"


def get_me(api_client, token: str):
    return api_client.get(ME, HTTP_AUTHORIZATION=f"Bearer {token}")


def assert_401(response, code: str) -> None:
    assert response.status_code == 401, response.content
    assert response["Content-Type"] == "application/problem+json"
    body = response.json()
    assert body["code"] == code
    assert body["status"] == 401
    assert response["WWW-Authenticate"].startswith("Bearer")


def test_nextjs_token_without_simplejwt_claims_reaches_me(api_client, make_jwt, user):
    token = make_jwt(user.pk, email=user.email)
    assert "token_type" not in jwt.decode(token, options={"verify_signature": False})

    response = get_me(api_client, token)

    assert response.status_code == 200
    body = response.json()
    assert body["id"] == user.pk
    assert body["email"] == user.email
    assert body["auth_method"] == "jwt"


def test_first_seen_user_is_created_from_claims(api_client, make_jwt):
    token = make_jwt("clx0abc123", email="New.Person@Example.COM", name="New Person")

    response = get_me(api_client, token)

    assert response.status_code == 200
    user = User.objects.get(pk="clx0abc123")
    assert user.name == "New Person"
    assert user.email == "New.Person@example.com"
    assert user.role == User.Role.USER
    assert not user.has_usable_password()


def test_unknown_user_is_rejected_when_prisma_owns_the_table(api_client, make_jwt, settings):
    settings.USERS_TABLE_MANAGED = False
    assert_401(get_me(api_client, make_jwt("nobody", email="n@example.com")), "user_not_found")
    assert not User.objects.filter(pk="nobody").exists()


def test_token_whose_email_belongs_to_another_user_is_rejected(api_client, make_jwt, user):
    assert_401(get_me(api_client, make_jwt("someone-else", email=user.email)), "user_conflict")


def test_inactive_user_is_rejected(api_client, make_jwt, user):
    user.is_active = False
    user.save()
    assert_401(get_me(api_client, make_jwt(user.pk)), "user_inactive")


def test_missing_credentials_answer_401(api_client):
    assert_401(api_client.get(ME), "not_authenticated")


def _b64(data: dict) -> str:
    return base64.urlsafe_b64encode(json.dumps(data).encode()).rstrip(b"=").decode()


def test_alg_none_is_rejected(api_client, user):
    now = int(time.time())
    token = f"{_b64({'alg': 'none', 'typ': 'JWT'})}.{_b64({'sub': user.pk, 'exp': now + 300})}."
    assert_401(get_me(api_client, token), "token_invalid")


def test_wrong_key_is_rejected(api_client, make_jwt, user):
    assert_401(get_me(api_client, make_jwt(user.pk, key="x" * 64)), "token_invalid")


def test_algorithm_other_than_configured_is_rejected(api_client, make_jwt, user, settings):
    # Same secret, different HMAC: only the configured HS256 is accepted.
    response = get_me(api_client, make_jwt(user.pk, algorithm="HS512"))
    assert_401(response, "token_invalid")
    assert "algorithm" in response.json()["detail"]


def test_rs256_token_is_rejected_when_hs256_is_configured(api_client, make_jwt, user):
    private_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    assert_401(
        get_me(api_client, make_jwt(user.pk, key=private_key, algorithm="RS256")), "token_invalid"
    )


def test_expired_token_is_rejected(api_client, make_jwt, user):
    # Beyond the leeway (30 s by default).
    assert_401(get_me(api_client, make_jwt(user.pk, ttl=-120)), "token_expired")


def test_token_not_yet_valid_is_rejected(api_client, make_jwt, user):
    token = make_jwt(user.pk, nbf=int(time.time()) + 600)
    response = get_me(api_client, token)
    assert_401(response, "token_invalid")
    assert "not valid yet" in response.json()["detail"]


@pytest.mark.parametrize(
    "token",
    ["garbage", "a.b.c", "eyJhbGciOiJIUzI1NiJ9.bm90IGpzb24.c2ln", "", "Bearer x"],
    ids=["garbage", "three-junk-parts", "payload-not-json", "empty", "two-words"],
)
def test_malformed_token_is_rejected(api_client, token):
    response = api_client.get(ME, HTTP_AUTHORIZATION=f"Bearer {token}")
    assert response.status_code == 401
    assert response["Content-Type"] == "application/problem+json"
    assert response.json()["code"] in {
        "token_invalid",
        "authorization_malformed",
        "not_authenticated",
    }


def test_token_without_exp_is_rejected(api_client, make_jwt, user):
    token = make_jwt(user.pk, exp=None)
    assert "exp" not in jwt.decode(token, options={"verify_signature": False})
    response = get_me(api_client, token)
    assert_401(response, "token_invalid")
    assert "exp" in response.json()["detail"]


def test_token_without_sub_is_rejected(api_client, make_jwt):
    assert_401(get_me(api_client, make_jwt(None)), "token_invalid")


def test_audience_and_issuer_are_checked_when_configured(api_client, make_jwt, user, settings):
    settings.JWT_AUDIENCE = "agentdeck"
    settings.JWT_ISSUER = "https://app.example.com"

    assert_401(get_me(api_client, make_jwt(user.pk)), "token_invalid")
    assert_401(
        get_me(api_client, make_jwt(user.pk, aud="other", iss="https://app.example.com")),
        "token_invalid",
    )
    assert_401(
        get_me(api_client, make_jwt(user.pk, aud="agentdeck", iss="https://evil.example")),
        "token_invalid",
    )
    ok = get_me(api_client, make_jwt(user.pk, aud="agentdeck", iss="https://app.example.com"))
    assert ok.status_code == 200


class _JwksServer:
    """A local JWKS endpoint, as the Next.js side (or an identity provider) would publish."""

    def __init__(self, jwks: dict) -> None:
        body = json.dumps(jwks).encode()

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self):
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_port}/.well-known/jwks.json"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def jwks_keys(settings):
    rsa_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    ec_key = ec.generate_private_key(ec.SECP256R1())
    jwks = {"keys": []}
    for kid, key, alg in (("rsa-1", rsa_key, "RS256"), ("ec-1", ec_key, "ES256")):
        algo = jwt.get_algorithm_by_name(alg)
        jwk = json.loads(algo.to_jwk(key.public_key()))
        jwk.update(kid=kid, alg=alg, use="sig")
        jwks["keys"].append(jwk)
    server = _JwksServer(jwks)
    settings.JWT_JWKS_URL = server.url
    settings.JWT_SIGNING_KEY = ""
    settings.JWT_ALGORITHMS = ["RS256", "ES256"]
    yield {"rsa": rsa_key, "ec": ec_key}
    server.close()


def test_rs256_and_es256_tokens_are_verified_against_the_jwks(
    api_client, make_jwt, user, jwks_keys
):
    rs = make_jwt(user.pk, key=jwks_keys["rsa"], algorithm="RS256", headers={"kid": "rsa-1"})
    es = make_jwt(user.pk, key=jwks_keys["ec"], algorithm="ES256", headers={"kid": "ec-1"})

    assert get_me(api_client, rs).status_code == 200
    assert get_me(api_client, es).status_code == 200


def test_jwks_rejects_unknown_kid_foreign_key_and_hmac(api_client, make_jwt, user, jwks_keys):
    stranger = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    forged = make_jwt(user.pk, key=stranger, algorithm="RS256", headers={"kid": "rsa-1"})
    unknown_kid = make_jwt(
        user.pk, key=jwks_keys["rsa"], algorithm="RS256", headers={"kid": "nope"}
    )
    hmac = make_jwt(user.pk, key=DEV_JWT_SIGNING_KEY, headers={"kid": "rsa-1"})

    for token in (forged, unknown_kid, hmac):
        assert_401(get_me(api_client, token), "token_invalid")


def test_dev_token_command_signs_a_token_the_api_accepts(api_client, capsys):
    from django.core.management import call_command

    call_command("dev_token", "--sub", "cli-user", "--email", "cli@example.com")
    token = capsys.readouterr().out.strip()

    response = get_me(api_client, token)
    assert response.status_code == 200
    assert response.json()["email"] == "cli@example.com"


def test_dev_token_command_is_refused_in_production(settings):
    from django.core.management import CommandError, call_command

    settings.IS_PRODUCTION = True
    with pytest.raises(CommandError, match="development"):
        call_command("dev_token")


def test_the_users_lookup_reads_what_the_orm_reads(user):
    """user_get_by_pk (the query built once per process) against User.objects: every field,
    a row that can be saved again, and None for an unknown id."""
    from django.utils import timezone

    from agentdeck.accounts.models import User
    from agentdeck.accounts.selectors import user_get_by_pk

    User.objects.filter(pk=user.pk).update(last_login=timezone.now(), name="Ada", image=None)
    orm = User.objects.get(pk=user.pk)
    fast = user_get_by_pk(user.pk)
    assert isinstance(fast, User)
    for field in User._meta.concrete_fields:
        assert getattr(fast, field.attname) == getattr(orm, field.attname), field.name
    assert not fast._state.adding
    assert fast._state.db == "default"
    fast.name = "Ada L."
    fast.save(update_fields=["name"])
    assert User.objects.get(pk=user.pk).name == "Ada L."
    assert user_get_by_pk("no-such-user") is None


@pytest.mark.parametrize(
    "claims",
    [
        {"sub": "u" * 65},
        {"sub": "nul\x00id"},
        {"sub": "lone\ud800surrogate"},
        {"sub": "ok-1", "name": "n" * 256},
        {"sub": "ok-2", "email": "e" * 310 + "@example.com"},
        {"sub": "ok-3", "name": "nul\x00name"},
        {"sub": "ok-4", "email": "nul\x00@example.com"},
        {"sub": "ok-5", "name": "lone \udfff"},
        {"sub": "ok-6", "picture": "https://x/\x00.png"},
        {"sub": "ok-7", "email": 42},
        {"sub": "ok-8", "name": ["list"]},
        {"sub": 12345},
    ],
    ids=lambda claims: ",".join(f"{k}={str(v)[:12]!r}" for k, v in claims.items()),
)
def test_a_signed_token_with_claims_the_users_table_cannot_hold_is_token_invalid(
    api_client, make_jwt, claims
):
    token = make_jwt(claims.pop("sub"), **claims)

    assert_401(get_me(api_client, token), "token_invalid")
    assert not User.objects.exists()


def test_claims_at_the_column_limits_are_accepted(api_client, make_jwt):
    email = "e" * (320 - len("@example.com")) + "@example.com"
    token = make_jwt("u" * 64, email=email, name="n" * 255)

    assert get_me(api_client, token).status_code == 200
    assert User.objects.get(pk="u" * 64).name == "n" * 255


def test_a_websocket_or_sse_token_with_a_nul_claim_is_token_invalid(make_jwt):
    from rest_framework.exceptions import AuthenticationFailed

    from agentdeck.accounts.ws_auth import authenticate_token

    with pytest.raises(AuthenticationFailed) as info:
        authenticate_token(make_jwt("nul\x00id"), address="127.0.0.1")
    assert info.value.problem_code == "token_invalid"
