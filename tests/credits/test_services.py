"""The hold and the settlement, statement by statement: the rows they write, the first hold of a
user without a balance row, settling twice, the cost computed in SQL, and their races."""

from __future__ import annotations

import random
import threading
import uuid

import pytest
from django.db import connection, transaction

from agentdeck.agents.models import AgentRun
from agentdeck.agents.services.agents import agent_create
from agentdeck.agents.services.providers import provider_create
from agentdeck.credits.exceptions import InsufficientCredits
from agentdeck.credits.models import CreditHold, CreditTransaction, UserCredits
from agentdeck.credits.services import (
    HoldPlan,
    credits_grant,
    credits_hold,
    credits_reconcile,
    credits_settle,
    holds,
    usage_cost,
)
from tests.factories import AgentRunFactory, UserFactory
from tests.support.threads import in_threads

pytestmark = pytest.mark.django_db

CREDIT = 1_000_000
PRICES = {"m": {"input": 10 * CREDIT, "cached_input": 5 * CREDIT, "output": 30 * CREDIT}}
# 10 input tokens at 10 credits per million and 5 output at 30: 100 + 150 micro-credits.
USAGE = {"m": {"input_tokens": 10, "output_tokens": 5}}
COST = 250


@pytest.fixture
def new_run():
    """AgentRun rows to hold for (a hold's key is its run), without going through run start."""
    agents: dict = {}

    def make(owner) -> AgentRun:
        if owner.pk not in agents:
            provider = provider_create(actor=owner, name=f"p-{owner.pk}", kind="mock")
            agents[owner.pk] = agent_create(
                owner=owner, name="Priced", provider=provider, model="mock-echo"
            )
        return AgentRunFactory(agent=agents[owner.pk], input="x", status="running")

    return make


@pytest.fixture
def notified(monkeypatch):
    sent: list = []
    monkeypatch.setattr(
        "agentdeck.credits.services.ledger.notify_user_on_commit",
        lambda user_id, kind, data: sent.append((user_id, kind, data)),
    )
    return sent


def ledger(run) -> list[tuple]:
    return list(
        CreditTransaction.objects.filter(run=run)
        .order_by("id")
        .values_list(
            "user_id",
            "kind",
            "amount",
            "reserved_delta",
            "balance_after",
            "reserved_after",
            "idempotency_key",
            "actor",
            "actor_id",
            "reason",
        )
    )


def account(user) -> tuple[int, int, int, int]:
    row = UserCredits.objects.get(user=user)
    return (row.balance, row.reserved, row.lifetime_granted, row.lifetime_spent)


def test_hold_then_settle_write_the_ledger_lines_the_hold_and_the_balance(user, new_run, notified):
    credits_grant(user=user, amount=10_000, idempotency_key="g")
    notified.clear()
    run = new_run(user)

    hold = credits_hold(user_id=user.pk, run_id=run.id, plan=HoldPlan(1000, PRICES))
    stored = CreditHold.objects.get(run=run)
    assert (hold.pk, hold.amount, hold.created_at) == (run.id, 1000, stored.created_at)
    assert (stored.user_id, stored.amount, stored.captured, stored.refunded) == (
        user.pk,
        1000,
        0,
        0,
    )
    assert (stored.status, stored.prices, stored.settled_at) == ("open", PRICES, None)
    hold_line = (user.pk, "hold", 0, 1000, 10_000, 1000, None, "system", "", "")
    assert ledger(run) == [hold_line]
    assert account(user) == (10_000, 1000, 10_000, 0)
    held_at = UserCredits.objects.get(user=user).updated_at

    assert credits_settle(run_id=run.id, usage=USAGE) == COST
    stored.refresh_from_db()
    assert (stored.status, stored.captured, stored.amount) == ("settled", COST, 1000)
    assert stored.settled_at is not None
    # The balance after each step, as if capture and release had been two updates.
    assert ledger(run) == [
        hold_line,
        (user.pk, "capture", -COST, -COST, 10_000 - COST, 1000 - COST, None, "system", "", ""),
        (user.pk, "release", 0, -(1000 - COST), 10_000 - COST, 0, None, "system", "", ""),
    ]
    assert account(user) == (10_000 - COST, 0, 10_000, COST)
    assert UserCredits.objects.get(user=user).updated_at > held_at
    assert [(u, kind, data["balance"], data["reserved"]) for u, kind, data in notified] == [
        (user.pk, "credits.updated", 10_000, 1000),
        (user.pk, "credits.updated", 10_000 - COST, 0),
    ]
    assert notified[1][2]["available_credits"] == "0.00975"
    assert credits_reconcile() == []


def test_settling_twice_changes_nothing_the_second_time(user, new_run, notified):
    credits_grant(user=user, amount=10_000, idempotency_key="g")
    run = new_run(user)
    credits_hold(user_id=user.pk, run_id=run.id, plan=HoldPlan(1000, PRICES))
    assert credits_settle(run_id=run.id, usage=USAGE) == COST
    lines, balance, sent = ledger(run), account(user), len(notified)

    assert credits_settle(run_id=run.id, usage={"m": {"output_tokens": 10}}) == 0
    assert (ledger(run), account(user), len(notified)) == (lines, balance, sent)
    assert CreditHold.objects.get(run=run).captured == COST
    assert credits_settle(run_id=new_run(user).id, usage=USAGE) == 0  # no hold at all


def test_a_settlement_never_captures_more_than_the_hold(user, new_run):
    credits_grant(user=user, amount=10_000, idempotency_key="g")
    run = new_run(user)
    credits_hold(user_id=user.pk, run_id=run.id, plan=HoldPlan(200, PRICES))
    assert credits_settle(run_id=run.id, usage=USAGE) == 200  # cost 250, capped
    assert [line[1:6] for line in ledger(run)] == [
        ("hold", 0, 200, 10_000, 200),
        ("capture", -200, -200, 9_800, 0),  # nothing left to release: no release line
    ]
    assert credits_reconcile() == []


def test_a_run_that_used_nothing_releases_its_whole_hold(user, new_run):
    credits_grant(user=user, amount=10_000, idempotency_key="g")
    run = new_run(user)
    credits_hold(user_id=user.pk, run_id=run.id, plan=HoldPlan(1000, PRICES))
    assert credits_settle(run_id=run.id, usage={}) == 0
    assert [line[1:6] for line in ledger(run)] == [
        ("hold", 0, 1000, 10_000, 1000),
        ("release", 0, -1000, 10_000, 0),
    ]
    assert CreditHold.objects.get(run=run).status == "settled"
    assert account(user) == (10_000, 0, 10_000, 0)


def test_the_first_hold_of_a_user_without_a_balance_row_creates_it(user, new_run, notified):
    assert not UserCredits.objects.filter(user=user).exists()
    run = new_run(user)
    # A priced run with a cap of 0 needs nothing: it is held (and settled) for a new user.
    credits_hold(user_id=user.pk, run_id=run.id, plan=HoldPlan(0, PRICES))
    assert account(user) == (0, 0, 0, 0)
    assert CreditHold.objects.get(run=run).amount == 0
    assert [line[1:6] for line in ledger(run)] == [("hold", 0, 0, 0, 0)]
    updated_at = UserCredits.objects.get(user=user).updated_at

    assert credits_settle(run_id=run.id, usage=USAGE) == 0
    assert CreditHold.objects.get(run=run).status == "settled"
    assert len(ledger(run)) == 1  # a hold of 0 moves no credits: no line, no balance change
    assert UserCredits.objects.get(user=user).updated_at == updated_at
    assert len(notified) == 1  # the hold's; the settlement changed nothing
    assert credits_reconcile() == []


def test_a_hold_for_a_user_without_a_balance_row_is_refused_with_what_is_available(user, new_run):
    run = new_run(user)
    with pytest.raises(InsufficientCredits) as refused:
        credits_hold(user_id=user.pk, run_id=run.id, plan=HoldPlan(1000, PRICES))
    assert (refused.value.extra["available"], refused.value.extra["required"]) == (0, 1000)
    assert not CreditHold.objects.filter(run=run).exists()
    assert not CreditTransaction.objects.filter(run=run).exists()


def test_a_refused_hold_says_what_is_available_and_what_is_required(user, new_run):
    credits_grant(user=user, amount=999, idempotency_key="g")
    run = new_run(user)
    with pytest.raises(InsufficientCredits) as refused:
        credits_hold(user_id=user.pk, run_id=run.id, plan=HoldPlan(1000, PRICES))
    assert refused.value.extra == {
        "available": 999,
        "required": 1000,
        "available_credits": "0.000999",
        "required_credits": "0.001",
    }
    assert account(user) == (999, 0, 999, 0)
    assert not CreditTransaction.objects.filter(run=run).exists()


# --- the cost in SQL against usage_cost -------------------------------------------------------------


def sql_cost(usage: dict, prices: dict) -> int:
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT " + holds._COST_SQL.format(prices="%(prices)s::jsonb"),
            {
                "usage": holds._usage_rows(usage),
                "prices": holds.json.dumps(prices),
                "per": holds.TOKENS_PER_PRICE_UNIT,
            },
        )
        return int(cursor.fetchone()[0])


def _random_case(rng: random.Random) -> tuple[dict, dict]:
    models = ["a", "b", "c"]
    prices = {
        m: {
            "input": rng.choice([0, 1, 7, 999_999, 1_000_000, 2_500_000, rng.randrange(10**10)]),
            "cached_input": rng.choice([0, 3, 1_000_001, rng.randrange(10**8)]),
            "output": rng.choice([1, 1_000_000, 15_000_000, rng.randrange(10**10)]),
        }
        for m in rng.sample(models, rng.randint(0, 3))
    }
    usage = {
        m: {
            "input_tokens": rng.choice([0, 1, 999, 10**6, rng.randrange(10**9)]),
            "cached_input_tokens": rng.choice([0, 1, rng.randrange(10**6)]),
            "output_tokens": rng.choice([0, 1, 333_333, rng.randrange(10**9)]),
            "reasoning_tokens": rng.randrange(100),
        }
        for m in rng.sample([*models, "unpriced"], rng.randint(0, 4))
    }
    return usage, prices


@pytest.mark.parametrize(
    ("usage", "prices"),
    [
        (USAGE, PRICES),
        ({}, PRICES),
        ({"m": {}}, PRICES),
        ({"other": {"input_tokens": 10**6}}, PRICES),
        ({"m": {"input_tokens": 10**6}}, {"m": {}}),  # an empty price prices nothing
        # Each part rounds up on its own: 1 token at 1 micro-credit per million costs 1.
        (
            {"m": {"input_tokens": 1, "cached_input_tokens": 0, "output_tokens": 1}},
            {"m": {"input": 1, "cached_input": 1, "output": 1}},
        ),
        (
            {"m": {"input_tokens": 3, "cached_input_tokens": 5, "output_tokens": 0}},
            {"m": {"input": 10**6, "cached_input": 999_999, "output": 1}},
        ),
        (
            {"m": {"input_tokens": 10**15, "output_tokens": 10**15}},
            {"m": {"input": 10**12 + 1, "cached_input": 0, "output": 10**12 - 1}},
        ),
    ],
)
def test_the_settlement_prices_usage_as_usage_cost_does(usage, prices):
    assert sql_cost(usage, prices) == usage_cost(usage, prices)


def test_the_settlement_prices_random_usage_as_usage_cost_does():
    rng = random.Random(6)
    for _ in range(300):
        usage, prices = _random_case(rng)
        assert sql_cost(usage, prices) == usage_cost(usage, prices), (usage, prices)


# --- races -------------------------------------------------------------------------------------------


@pytest.mark.django_db(transaction=True)
def test_a_settlement_racing_another_for_the_same_run_waits_and_does_nothing(new_run):
    """The reaper settling a run while its worker does: the second waits for the first's lock,
    then finds the hold settled."""
    user = UserFactory()
    credits_grant(user=user, amount=10_000, idempotency_key="g")
    run = new_run(user)
    with transaction.atomic():
        credits_hold(user_id=user.pk, run_id=run.id, plan=HoldPlan(1000, PRICES))
    first_settled, second_started = threading.Event(), threading.Event()
    results: dict[str, object] = {}

    def first() -> None:
        try:
            with transaction.atomic():
                results["first"] = credits_settle(run_id=run.id, usage=USAGE)
                first_settled.set()
                second_started.wait(5)
                with connection.cursor() as cursor:  # let the second block on our lock
                    cursor.execute("SELECT pg_sleep(0.3)")
        finally:
            connection.close()

    def second() -> None:
        try:
            first_settled.wait(5)
            second_started.set()
            with transaction.atomic():
                results["second"] = credits_settle(run_id=run.id, usage={"m": {"input_tokens": 1}})
        finally:
            connection.close()

    threads = [threading.Thread(target=first), threading.Thread(target=second)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(20)
    assert results == {"first": COST, "second": 0}
    assert [line[1] for line in ledger(run)] == ["hold", "capture", "release"]
    assert account(user) == (10_000 - COST, 0, 10_000, COST)
    assert credits_reconcile() == []


@pytest.mark.django_db(transaction=True)
def test_simultaneous_first_holds_of_a_new_user_create_one_row_and_all_pass(new_run):
    user = UserFactory()
    runs = [new_run(user) for _ in range(6)]

    def hold(i: int) -> CreditHold | None:
        with transaction.atomic():
            return credits_hold(user_id=user.pk, run_id=runs[i].id, plan=HoldPlan(0, PRICES))

    results = in_threads(len(runs), hold)
    assert all(isinstance(r, CreditHold) for r in results), results
    assert UserCredits.objects.filter(user=user).count() == 1
    assert CreditHold.objects.filter(user=user, status="open").count() == len(runs)
    assert credits_reconcile() == []


@pytest.mark.django_db(transaction=True)
def test_concurrent_holds_and_settlements_on_one_balance_keep_it_exact(new_run):
    """Holds of 1000 against 5000 while settlements free credit: never more held than owned, and
    every line of the ledger carries the balance it left."""
    user = UserFactory()
    credits_grant(user=user, amount=5000, idempotency_key="g")
    runs = [new_run(user) for _ in range(12)]

    def work(i: int) -> int:
        with transaction.atomic():
            credits_hold(user_id=user.pk, run_id=runs[i].id, plan=HoldPlan(1000, PRICES))
        with transaction.atomic():
            return credits_settle(run_id=runs[i].id, usage=USAGE)

    outcomes = in_threads(len(runs), work)
    settled = [o for o in outcomes if o == COST]
    assert len(outcomes) == len(runs)
    assert len(settled) >= 5  # the first five always fit
    assert all(o == COST or isinstance(o, InsufficientCredits) for o in outcomes)
    assert account(user) == (5000 - COST * len(settled), 0, 5000, COST * len(settled))
    # Replaying the ledger in id order gives each line's balance_after and reserved_after.
    balance = reserved = 0
    for amount, delta, balance_after, reserved_after in (
        CreditTransaction.objects.filter(user=user)
        .order_by("id")
        .values_list("amount", "reserved_delta", "balance_after", "reserved_after")
    ):
        balance, reserved = balance + amount, reserved + delta
        assert (balance, reserved) == (balance_after, reserved_after)
        assert 0 <= reserved <= balance
    assert credits_reconcile() == []


def test_run_ids_may_be_given_as_strings_or_uuids(user, new_run):
    credits_grant(user=user, amount=10_000, idempotency_key="g")
    run = new_run(user)
    credits_hold(user_id=user.pk, run_id=str(run.id), plan=HoldPlan(1000, PRICES))
    assert credits_settle(run_id=uuid.UUID(str(run.id)), usage=USAGE) == COST
