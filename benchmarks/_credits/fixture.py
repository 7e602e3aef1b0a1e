"""What is created before anything is timed: the users, the price, the agent and every run a hold
needs; the parent's warm-up settlements.
"""

from __future__ import annotations

import argparse
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from _support import (
    BenchError,
    local_postmaster,
    log,
)

from .config import (
    HOLDING,
    MODEL,
    PRICE,
    USAGE,
)
from .sql import service_sql_once, settle_once


@dataclass
class Fixture:
    spread_users: list[str]
    contended_user: str
    plan: Any  # HoldPlan
    cost: int
    postmaster: int | None = None  # the local server's pid, for its CPU time
    # runs[(config, rep, side)] = one list of run ids per worker
    runs: dict[tuple[str, int, str], list[list[str]]] = field(default_factory=dict)


def per_worker(total: int, workers: int) -> list[int]:
    base, extra = divmod(total, workers)
    return [base + (1 if i < extra else 0) for i in range(workers)]


def worker_users(fixture: Fixture, config: str, workers: int) -> list[str]:
    if config == "spread":
        return fixture.spread_users
    return [fixture.contended_user] * workers


def create_fixture(args: argparse.Namespace) -> Fixture:
    from django.utils import timezone

    from agentdeck.accounts.models import User
    from agentdeck.agents.models import AgentRun, AgentVersion
    from agentdeck.agents.services.agents import agent_create
    from agentdeck.agents.services.providers import provider_create
    from agentdeck.credits.models import ModelPrice
    from agentdeck.credits.services import credits_grant, run_hold_plan, usage_cost

    tag = uuid.uuid4().hex[:8]

    def make_user(name: str) -> User:
        return User.objects.create_user(f"credits-bench-{tag}-{name}@example.com", name=name)

    owner = make_user("owner")
    spread = [make_user(f"w{i}") for i in range(args.workers)]
    contended = make_user("shared")
    warm = make_user("warmup")
    ModelPrice.objects.get_or_create(
        provider_kind="mock",
        model=MODEL,
        effective_from=datetime(2000, 1, 1, tzinfo=UTC),
        defaults=PRICE,
    )
    provider = provider_create(actor=owner, name=f"credits-bench-{tag}", kind="mock")
    agent = agent_create(owner=owner, name="credits bench", provider=provider, model=MODEL)
    version = AgentVersion.objects.get(agent=agent, number=agent.current_version)
    plan = run_hold_plan(agent=agent, input_chars=len("hello"), max_turns=10)
    cost = usage_cost(USAGE, plan.prices)
    if not 0 < cost < plan.amount:
        raise BenchError(f"want 0 < cost < hold, got cost {cost}, hold {plan.amount}")
    # Enough for every settlement of the benchmark, with a margin.
    total = (args.settlements + args.workers * args.worker_warmup) * args.repeat * len(
        args.sides
    ) + args.warmup
    for user in [*spread, contended, warm]:
        credits_grant(user=user, amount=total * plan.amount * 2, idempotency_key=f"bench-{tag}")

    fixture = Fixture([u.pk for u in spread], contended.pk, plan, cost, local_postmaster())
    now = timezone.now()
    rows = []
    for config in args.configs:
        users = worker_users(fixture, config, args.workers)
        for rep in range(args.repeat):
            for side in (s for s in args.sides if s in HOLDING):
                lists = []
                for w, count in enumerate(per_worker(args.settlements, args.workers)):
                    # The worker's untimed warm-up settlements first (run_job).
                    ids = [uuid.uuid4() for _ in range(args.worker_warmup + count)]
                    rows += [
                        AgentRun(
                            id=i,
                            owner_id=users[w],
                            agent=agent,
                            agent_version=version,
                            input="hello",
                            status="running",
                            started_at=now,
                        )
                        for i in ids
                    ]
                    lists.append([str(i) for i in ids])
                fixture.runs[(config, rep, side)] = lists
    warm_ids = [uuid.uuid4() for _ in range(2 * args.warmup)]
    rows += [
        AgentRun(id=i, owner=warm, agent=agent, agent_version=version, input="hello")
        for i in warm_ids
    ]
    AgentRun.objects.bulk_create(rows, batch_size=2000)
    log(
        f"created {len(rows)} runs for {len(spread) + 3} users; hold {plan.amount}, "
        f"capture {cost}, release {plan.amount - cost} micro-credits per settlement"
    )
    # Warm-up in this process before any worker forks: imports, SQL compilation, the first
    # connection. These settlements are in the ledger like the others.
    from django.db import connection

    for i, run_id in enumerate(warm_ids):
        if i < args.warmup:
            settle_once(warm.pk, str(run_id), plan, cost)
        else:
            with connection.cursor() as cursor:
                service_sql_once(cursor, warm.pk, str(run_id), plan, cost)
    return fixture
