"""Credits: grants, holds at run start, settlement at run end, refunds, reconciliation, races."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.core.management import call_command
from django.utils import timezone
from django_q.models import OrmQ

from agentdeck.accounts.services import api_key_create
from agentdeck.agents.models import AgentRun, RunEvent
from agentdeck.agents.services.agents import agent_create, agent_update
from agentdeck.agents.services.providers import provider_create
from agentdeck.agents.services.runs import agent_run_reap_stale, agent_run_start
from agentdeck.agents.tasks import execute_run
from agentdeck.core.exceptions import PermissionDenied
from agentdeck.credits.exceptions import InsufficientCredits, InvalidAmount
from agentdeck.credits.models import CreditHold, CreditTransaction, ModelPrice, UserCredits
from agentdeck.credits.services import (
    credits_adjust,
    credits_grant,
    credits_reconcile,
    credits_refund,
    model_price_create,
    price_for,
    usage_cost,
)
from tests.factories import ModelPriceFactory
from tests.support.openai_server import FakeOpenAI
from tests.support.threads import in_threads

pytestmark = pytest.mark.django_db

CREDIT = 1_000_000
# 10 credits per million input tokens, 30 per million output: the fake's 10 in / 5 out cost 250.
PRICE = {
    "input_per_million": 10 * CREDIT,
    "cached_input_per_million": 5 * CREDIT,
    "output_per_million": 30 * CREDIT,
}


@pytest.fixture
def model():
    with FakeOpenAI() as server:
        yield server


@pytest.fixture
def priced_agent(user, model):
    ModelPriceFactory(**PRICE)
    provider = provider_create(
        actor=user, name="paid", kind="openai_compatible", base_url=model.base_url
    )
    return agent_create(owner=user, name="Paid", provider=provider, model="fake-model")


def balance(user) -> UserCredits:
    return UserCredits.objects.get(user=user)


def test_a_run_holds_then_captures_its_cost_and_releases_the_rest(
    user, user_client, model, priced_agent
):
    credits_grant(user=user, amount=10 * CREDIT, idempotency_key="pay-1")
    run, _ = agent_run_start(user=user, agent=priced_agent, input="hello")
    hold = CreditHold.objects.get(run=run)
    assert balance(user).reserved == hold.amount > 0

    model.add_text("hi", usage={"input_tokens": 1000, "output_tokens": 100})
    execute_run(str(run.id))

    expected = 1000 * 10 + 100 * 30  # micro-credits: 1000 tokens at 10 credits/M, 100 at 30/M
    account = balance(user)
    assert (account.balance, account.reserved) == (10 * CREDIT - expected, 0)
    assert account.lifetime_spent == expected
    kinds = list(
        CreditTransaction.objects.filter(run=run).order_by("id").values_list("kind", "amount")
    )
    assert kinds == [("hold", 0), ("capture", -expected), ("release", 0)]
    assert user_client.get(f"/api/v1/runs/{run.id}/").json()["cost"]["captured"] == expected
    assert credits_reconcile() == []


def test_cached_and_reasoning_tokens_are_priced(user):
    prices = {"m": {"input": 10 * CREDIT, "cached_input": 1 * CREDIT, "output": 30 * CREDIT}}
    usage = {
        "m": {
            "input_tokens": 1000,
            "cached_input_tokens": 400,
            "output_tokens": 200,
            "reasoning_tokens": 150,
        }
    }
    assert usage_cost(usage, prices) == 600 * 10 + 400 * 1 + 200 * 30
    assert usage_cost({"unpriced": {"input_tokens": 10**6}}, prices) == 0


def test_a_run_without_cover_is_refused_402_and_leaves_nothing(user, user_client, priced_agent):
    credits_grant(user=user, amount=10, idempotency_key="tiny")
    response = user_client.post(
        f"/api/v1/agents/{priced_agent.id}/runs/", {"input": "hi"}, format="json"
    )
    assert response.status_code == 402
    body = response.json()
    assert body["code"] == "insufficient_credits"
    assert body["available"] == 10
    assert body["required"] > 10
    assert AgentRun.objects.count() == 0
    assert RunEvent.objects.count() == 0
    assert OrmQ.objects.count() == 0
    assert balance(user).reserved == 0


def test_a_failed_run_captures_only_what_it_used(user, model, priced_agent, settings):
    settings.PROVIDER_MAX_RETRIES = 0
    credits_grant(user=user, amount=CREDIT, idempotency_key="g")
    run, _ = agent_run_start(user=user, agent=priced_agent, input="x")
    model.add_error(status=500)
    execute_run(str(run.id))
    run.refresh_from_db()
    assert run.status == "failed"
    assert balance(user).balance == CREDIT  # nothing used, nothing taken
    assert balance(user).reserved == 0
    assert credits_reconcile() == []


def test_a_reaped_runs_hold_is_released(user, priced_agent):
    credits_grant(user=user, amount=CREDIT, idempotency_key="g")
    run, _ = agent_run_start(user=user, agent=priced_agent, input="x")
    old = timezone.now() - timedelta(minutes=10)
    AgentRun.objects.filter(pk=run.pk).update(status="running", heartbeat_at=old)
    agent_run_reap_stale()
    assert (balance(user).balance, balance(user).reserved) == (CREDIT, 0)
    assert credits_reconcile() == []


def test_a_run_reaching_its_cap_stops_with_budget_exhausted(user, model, priced_agent):
    agent_update(agent=priced_agent, actor=user, credit_cap=400)
    priced_agent.refresh_from_db()
    from agentdeck.agents.models import AgentVersion

    version = AgentVersion.objects.get(agent=priced_agent, number=priced_agent.current_version)
    version.snapshot = {**version.snapshot, "tools": [{"kind": "builtin", "name": "calculator"}]}
    version.save()
    credits_grant(user=user, amount=CREDIT, idempotency_key="g")
    for _ in range(5):
        model.add_tool_call("calculator", {"expression": "1+1"})  # 250 micro-credits a turn
    run, _ = agent_run_start(user=user, agent=priced_agent, input="loop")
    assert CreditHold.objects.get(run=run).amount == 400
    execute_run(str(run.id))
    run.refresh_from_db()
    assert (run.status, run.error_code) == ("failed", "budget_exhausted")
    assert len(model.model_requests()) == 2  # stopped at the turn that crossed the cap
    assert balance(user).balance == CREDIT - 400  # never more than the hold
    assert credits_reconcile() == []


# --- grants ------------------------------------------------------------------------------------------


@pytest.fixture
def grant_client(staff_user):
    from rest_framework.test import APIClient

    _, secret = api_key_create(owner=staff_user, name="next.js", scopes=["credits:grant"])
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {secret}")
    return client


def test_grants_from_nextjs_are_idempotent_by_payment_id(user, grant_client, client_for):
    body = {"user_id": user.pk, "amount": 5 * CREDIT, "idempotency_key": "pi_123"}
    first = grant_client.post("/api/v1/credits/grants/", body, format="json")
    again = grant_client.post("/api/v1/credits/grants/", body, format="json")
    assert (first.status_code, again.status_code) == (201, 200)
    assert first.json()["id"] == again.json()["id"]
    assert balance(user).balance == 5 * CREDIT
    other = grant_client.post(
        "/api/v1/credits/grants/", {**body, "amount": 6 * CREDIT}, format="json"
    )
    assert (other.status_code, other.json()["code"]) == (409, "idempotency_conflict")
    mine = client_for(user).get("/api/v1/credits/").json()
    assert (mine["balance"], mine["available_credits"]) == (5 * CREDIT, "5")


@pytest.mark.parametrize("amount", [0, -5, 10**9 * CREDIT + 1, 2**63, 10**30])
def test_a_grant_must_be_positive_and_within_bigint_reach(user, grant_client, amount):
    response = grant_client.post(
        "/api/v1/credits/grants/",
        {"user_id": user.pk, "amount": amount, "idempotency_key": "k"},
        format="json",
    )
    assert (response.status_code, response.json()["code"]) == (400, "invalid_amount")


def test_a_grant_needs_the_scope(user, user_client, staff_user):
    from rest_framework.test import APIClient

    body = {"user_id": user.pk, "amount": 1, "idempotency_key": "k"}
    assert user_client.post("/api/v1/credits/grants/", body, format="json").status_code == 403
    _, secret = api_key_create(owner=staff_user, name="plain", scopes=["read", "write"])
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {secret}")
    response = client.post("/api/v1/credits/grants/", body, format="json")
    assert (response.status_code, response.json()["code"]) == (403, "insufficient_scope")
    with pytest.raises(Exception, match="staff"):
        api_key_create(owner=user, name="sneaky", scopes=["credits:grant"])


def test_a_user_without_a_credits_row_gets_one(user, user_client):
    assert not UserCredits.objects.filter(user=user).exists()
    assert user_client.get("/api/v1/credits/").json()["balance"] == 0
    assert user_client.get("/api/v1/credits/transactions/").json()["results"] == []


def test_transactions_filter_by_kind(user, user_client):
    credits_grant(user=user, amount=5, idempotency_key="a")
    credits_grant(user=user, amount=7, idempotency_key="b", kind="purchase")
    kinds = [
        t["kind"]
        for t in user_client.get("/api/v1/credits/transactions/?kind=purchase").json()["results"]
    ]
    assert kinds == ["purchase"]


# --- refunds, adjustments, prices --------------------------------------------------------------------


def test_refund_of_a_run_never_captured_is_409(user, staff_user, priced_agent):
    credits_grant(user=user, amount=CREDIT, idempotency_key="g")
    run, _ = agent_run_start(user=user, agent=priced_agent, input="x")
    from agentdeck.credits.exceptions import NothingToRefund

    with pytest.raises(NothingToRefund):
        credits_refund(run_id=run.id, staff=staff_user, reason="oops")


def test_refund_gives_back_the_capture(user, staff_user, model, priced_agent):
    credits_grant(user=user, amount=CREDIT, idempotency_key="g")
    run, _ = agent_run_start(user=user, agent=priced_agent, input="x")
    execute_run(str(run.id))
    spent = CREDIT - balance(user).balance
    assert spent > 0
    credits_refund(run_id=run.id, staff=staff_user, reason="bad answer")
    assert balance(user).balance == CREDIT
    assert credits_reconcile() == []


def test_adjustments_need_a_reason_and_cannot_go_below_zero(user, staff_user):
    from agentdeck.core.exceptions import ApplicationError

    credits_grant(user=user, amount=100, idempotency_key="g")
    with pytest.raises(ApplicationError, match="reason"):
        credits_adjust(user=user, amount=5, staff=staff_user, reason=" ")
    with pytest.raises(InsufficientCredits):
        credits_adjust(user=user, amount=-101, staff=staff_user, reason="too much")
    credits_adjust(user=user, amount=-40, staff=staff_user, reason="correction")
    assert balance(user).balance == 60


def test_prices_exact_beats_pattern_and_latest_effective_wins(staff_user, client_for):
    now = timezone.now()
    ModelPriceFactory(
        provider_kind="openai", model="gpt-4o*", effective_from=now - timedelta(days=3), **PRICE
    )
    for days, input_per_million in ((-3, 1), (-1, 2), (1, 3)):
        ModelPriceFactory(
            provider_kind="openai",
            model="gpt-4o-mini",
            effective_from=now + timedelta(days=days),
            **{**PRICE, "input_per_million": input_per_million},
        )
    assert price_for(provider_kind="openai", model="gpt-4o-mini").input_per_million == 2
    assert (
        price_for(provider_kind="openai", model="gpt-4o-2024").input_per_million
        == PRICE["input_per_million"]
    )
    assert price_for(provider_kind="openai", model="o3") is None
    staff = client_for(staff_user)
    bad = staff.post(
        "/api/v1/model-prices/",
        {
            "provider_kind": "openai",
            "model": "x",
            "input_per_million": -1,
            "cached_input_per_million": 0,
            "output_per_million": 0,
            "effective_from": now.isoformat(),
        },
        format="json",
    )
    assert (bad.status_code, bad.json()["code"]) == (400, "validation_error")


def test_only_staff_set_prices(user, user_client):
    price = {"provider_kind": "openai", "model": "x", **PRICE}
    # Refused before the body is read: a malformed one gets the same 403.
    for body in (price, {"model": 1}):
        response = user_client.post("/api/v1/model-prices/", body, format="json")
        assert (response.status_code, response.json()["code"]) == (403, "staff_only")
    with pytest.raises(PermissionDenied):
        model_price_create(actor=user, effective_from=timezone.now(), **price)
    assert not ModelPrice.objects.exists()


@pytest.mark.parametrize("field", ["input_per_million", "cached_input_per_million"])
def test_a_price_past_a_million_credits_per_million_tokens_is_refused(
    staff_user, client_for, field
):
    # 2**63 was a DataError (500); just under it, a run's capture overflowed at its end.
    body = {
        "provider_kind": "openai",
        "model": "x",
        "input_per_million": 0,
        "cached_input_per_million": 0,
        "output_per_million": 0,
        "effective_from": timezone.now().isoformat(),
    }
    for value in (2**63, 10**6 * CREDIT + 1):
        response = client_for(staff_user).post(
            "/api/v1/model-prices/", {**body, field: value}, format="json"
        )
        assert (response.status_code, response.json()["errors"][0]["field"]) == (400, field)
    with pytest.raises(InvalidAmount):
        model_price_create(
            actor=staff_user,
            provider_kind="openai",
            model="y",
            effective_from=timezone.now(),
            **{**{k: 0 for k in PRICE}, "output_per_million": 2**62},
        )


def test_a_grant_reason_and_an_adjustment_are_bounded(user, grant_client, staff_user):
    response = grant_client.post(
        "/api/v1/credits/grants/",
        {"user_id": user.pk, "amount": 1, "idempotency_key": "r", "reason": "x" * 1001},
        format="json",
    )
    assert (response.status_code, response.json()["errors"][0]["field"]) == (400, "reason")
    with pytest.raises(InvalidAmount):
        credits_adjust(user=user, amount=-(2**63), staff=staff_user, reason="typo")
    with pytest.raises(InvalidAmount):
        credits_adjust(user=user, amount=5, staff=staff_user, reason="x" * 1001)


def test_reconcile_command_reports_tampering(user, capsys):
    credits_grant(user=user, amount=100, idempotency_key="g")
    call_command("credits_reconcile")
    UserCredits.objects.filter(user=user).update(balance=150)
    with pytest.raises(SystemExit) as exit_info:
        call_command("credits_reconcile")
    assert exit_info.value.code == 1
    assert "balance is 150, expected 100" in capsys.readouterr().out


# --- races -------------------------------------------------------------------------------------------


@pytest.mark.django_db(transaction=True)
def test_a_balance_covering_k_of_n_simultaneous_runs_starts_exactly_k(user, model, priced_agent):
    agent_update(agent=priced_agent, actor=user, credit_cap=1000)
    priced_agent.refresh_from_db()
    credits_grant(user=user, amount=3000, idempotency_key="g")  # covers exactly 3 holds of 1000
    results = in_threads(
        8, lambda i: agent_run_start(user=user, agent=priced_agent, input=f"run {i}")
    )
    started = [r for r in results if isinstance(r, tuple)]
    refused = [r for r in results if isinstance(r, InsufficientCredits)]
    assert (len(started), len(refused)) == (3, 5)
    assert AgentRun.objects.count() == 3
    assert balance(user).reserved == 3000
    assert credits_reconcile() == []


@pytest.mark.django_db(transaction=True)
def test_concurrent_grants_holds_and_settlements_keep_the_ledger_exact(user, model, priced_agent):
    agent_update(agent=priced_agent, actor=user, credit_cap=500)
    priced_agent.refresh_from_db()
    credits_grant(user=user, amount=2000, idempotency_key="seed")

    def work(i: int):
        if i % 3 == 0:
            return credits_grant(
                user=user, amount=300, idempotency_key=f"g{i // 2}"
            )  # some keys repeat
        run, _ = agent_run_start(user=user, agent=priced_agent, input=f"w{i}")
        return execute_run(str(run.id))

    in_threads(12, work)
    assert credits_reconcile() == []
    account = balance(user)
    assert account.reserved == 0
    assert account.balance == sum(
        CreditTransaction.objects.filter(user=user).values_list("amount", flat=True)
    )


def test_granted_credits_run_out_then_402_and_the_ledger_explains_everything(
    user, user_client, grant_client, model, priced_agent
):
    agent_update(agent=priced_agent, actor=user, credit_cap=1000)
    priced_agent.refresh_from_db()
    grant = grant_client.post(
        "/api/v1/credits/grants/",
        {"user_id": user.pk, "amount": 2600, "idempotency_key": "pi_1"},
        format="json",
    )
    assert grant.status_code == 201
    outcomes = []
    for i in range(20):
        response = user_client.post(
            f"/api/v1/agents/{priced_agent.id}/runs/", {"input": f"q{i}"}, format="json"
        )
        outcomes.append(response.status_code)
        if response.status_code == 202:
            execute_run(response.json()["id"])  # each costs 250 (10 in, 5 out)
        else:
            assert response.json()["code"] == "insufficient_credits"
            break
    # Holds of 1000 pass while 1000 is available: 2600, 2350, ..., 1100 (seven runs), then 850.
    assert outcomes == [202] * 7 + [402]
    ledger = user_client.get("/api/v1/credits/transactions/?page_size=200").json()["results"]
    account = user_client.get("/api/v1/credits/").json()
    assert account["balance"] == sum(t["amount"] for t in ledger)
    assert account["reserved"] == 0
    assert credits_reconcile() == []
    call_command("credits_reconcile")


def test_staff_adjust_from_the_admin_goes_through_the_service(client, staff_user, user):
    credits_grant(user=user, amount=100, idempotency_key="g")
    client.force_login(staff_user)
    response = client.post(
        "/admin/credits/usercredits/",
        {
            "action": "grant_or_adjust",
            "_selected_action": [user.pk],
            "amount": "50",
            "reason": "goodwill",
        },
        follow=True,
    )
    assert b"Adjusted 1 balance(s) by 50." in response.content
    assert balance(user).balance == 150
    tx = CreditTransaction.objects.filter(user=user).latest("id")
    assert (tx.kind, tx.amount, tx.reason, tx.actor) == ("adjustment", 50, "goodwill", "staff")
    page = client.get(f"/admin/credits/usercredits/{user.pk}/change/")
    assert page.status_code == 200
    assert b"goodwill" in page.content


def test_a_priced_run_with_a_zero_cap_starts_for_a_user_without_a_credits_row(user, priced_agent):
    agent_update(agent=priced_agent, actor=user, credit_cap=0)
    priced_agent.refresh_from_db()
    assert not UserCredits.objects.filter(user=user).exists()
    run, created = agent_run_start(user=user, agent=priced_agent, input="free")
    assert created
    assert CreditHold.objects.get(run=run).amount == 0
