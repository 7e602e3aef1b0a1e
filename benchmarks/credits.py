"""Credit settlement throughput: agentdeck's hold + settle against bare conditional UPDATEs.

The issue: settlements per second (hold, then capture) from 16 concurrent workers, against a
baseline of bare single-row conditional UPDATEs measured in the same invocation; print both, the
ratio and the reconciliation result. Targets: at least 40% of the baseline, zero discrepancies.

* **agentdeck**: one settlement is what a run does to credits in production, as two
  transactions, each on its own as the run engine has them: ``credits_hold(user_id, run_id,
  plan)`` in a ``transaction.atomic()`` (run start; in production the same transaction inserts
  the run), then ``credits_settle(run_id, usage)`` in another (run end; in production it also
  writes the final status). The usage costs less than the hold, so every settle captures *and*
  releases (the common case). Per settlement that is 2 statements, one per transaction (since
  issue #6; 11 before): the hold is one data-modifying CTE (the conditional UPDATE of
  ``user_credits``, the ``credit_holds`` INSERT, the ledger INSERT), the settlement another (the
  hold UPDATE ``WHERE status = 'open'``, one UPDATE of ``user_credits``, the capture and release
  ledger INSERT). After each COMMIT ``credits.updated`` is published to the user's group on the channel layer
  (``--channel-layer``; ``auto`` is Redis, as in production, when it answers). The hold plan is
  computed once with ``run_hold_plan`` from a ``ModelPrice`` (production computes it before the
  transaction too).
* **baseline**: the same number of settlements as bare single-row conditional UPDATEs on the
  same ``user_credits`` rows, through the same Django connection (psycopg 3), each statement its
  own (autocommit) transaction, so it pays a durable COMMIT per transaction like the service:
  ``UPDATE user_credits SET reserved = reserved + h WHERE user_id = u AND balance - reserved >=
  h`` (the hold), then ``UPDATE user_credits SET balance = balance - c, reserved = reserved - h
  WHERE user_id = u AND reserved >= h`` (capture c and release the rest in one statement).
  No ledger, no hold row, no notification: the floor of any implementation that keeps the
  balance in one row under the same row-lock discipline. Its effect on every balance is checked
  exactly and then written to the ledger as one ``adjustment`` row per user (outside the timed
  section), so that reconciliation still covers every row.
* ``--breakdown`` adds three diagnostic sides under the same load: **no_publish** (agentdeck with
  ``credits.updated`` not published: the ledger's ``notify_user_on_commit`` replaced by a
  no-op in the worker processes),
  **own_statements** (agentdeck without the two ``transaction.atomic()`` blocks the run engine
  puts around them: each service's one statement is its own autocommit transaction, like the
  baseline's, so the run's BEGIN and COMMIT round trips and the lock held until that COMMIT
  are not counted: what the credit statements themselves cost) and **service_sql** (the 11 statements the services sent before issue #6, same columns, same
  ``RETURNING``s and the same two ``transaction.atomic()`` blocks, as hand-written SQL on a
  cursor: what that design cost without the ORM; kept as a reference point).

All sides run the same workers (``--workers``, default 16) the same way: ``--mode process``
(default; forked after Django is set up, like qcluster workers; a forked worker starts with no
channel layer, like a fresh process) or ``--mode thread``, each worker with its own database
connection (closed at its end), warmed up with ``--worker-warmup`` untimed settlements of its
side (5; a qcluster worker is long-lived: its publishing thread, channel-layer connection and
the server process's table caches are made once, not per run), all released together by a
barrier; settlements/s = N / (first
worker's start -> last worker's end). Two configurations: ``spread`` (one user per worker: no two
workers touch the same row) and ``contended`` (every worker settles for the same user, so each
``user_credits`` UPDATE waits for the row lock the other transactions hold until they commit).
Each measurement is repeated ``--repeat`` times, alternating the order of the sides, and the
medians are reported. Beside the rate, CPU time per settlement is reported (it is what bounds
throughput on a small machine, and it is much less disturbed by other load than wall time): the
workers' own (``time.process_time`` per process; per thread in thread mode, which misses the
threads ``async_to_sync`` starts) and the local PostgreSQL server's, all its processes, from
``/proc`` (not available for a remote ``DATABASE_URL``). ``credits.updated`` publishes that
fail (agentdeck logs them and goes on: delivery is best effort) are counted and shown.

The users, provider, agent and every ``AgentRun`` row a hold needs (``credit_holds.run_id`` is
a one-to-one key to ``agent_runs``) are created before anything is timed. After each
measurement every hold must be ``settled`` with exactly the expected capture, 3 ledger rows per
settlement, every balance moved by exactly the settlements' cost with nothing left reserved; at
the end ``credits_reconcile()`` (balance = sum of the ledger, reserved = ledger = open holds)
must find nothing, no account may have ``reserved != 0`` and no hold may be open.

Without ``DATABASE_URL`` the script starts the embedded PostgreSQL in a fresh temporary
``AGENTDECK_VAR_DIR`` (removed at exit, also on error and Ctrl-C); with it, it migrates and
writes into that database (users named ``credits-bench-*``). Exit status: 0 when every target is
met, 2 when one is missed, 1 when the benchmark itself failed.

    .venv/bin/python benchmarks/credits.py --settlements 4000 --workers 16 --repeat 3
    .venv/bin/python benchmarks/credits.py --settlements 800 --repeat 1 --breakdown
"""

from __future__ import annotations

import argparse
import atexit
import contextlib
import json
import logging
import multiprocessing
import os
import platform
import statistics
import sys
import threading
import time
import traceback
import uuid
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

BASE_DIR = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(BASE_DIR))
from _support import (  # noqa: E402 (the scripts' own directory)
    BenchError,
    cpu_by_group,
    local_postmaster,
    log,
    log_as,
    median_or_none,
    redis_answers,
    run_sync,
    setup_django,
    temporary_work_dir,
    wait_for_quiet,
)

log_as("credits")

RATIO_TARGET = 0.40
CREDIT = 1_000_000
MODEL = "mock-echo"
# 10 credits per million input tokens, 5 cached, 30 output (ModelPrice, per million tokens).
PRICE = {
    "input_per_million": 10 * CREDIT,
    "cached_input_per_million": 5 * CREDIT,
    "output_per_million": 30 * CREDIT,
}
# What every benchmark run used: 1,000 uncached + 200 cached input, 300 output tokens.
USAGE = {MODEL: {"input_tokens": 1200, "cached_input_tokens": 200, "output_tokens": 300}}
CONFIGS = ("spread", "contended")
SIDES = ("baseline", "agentdeck")
BREAKDOWN = ("no_publish", "own_statements", "service_sql")
HOLDING = ("agentdeck", *BREAKDOWN)  # the sides that hold for an AgentRun per settlement

HOLD_SQL = "UPDATE user_credits SET reserved = reserved + %s WHERE user_id = %s AND balance - reserved >= %s"
CAPTURE_SQL = (
    "UPDATE user_credits SET balance = balance - %s, reserved = reserved - %s"
    " WHERE user_id = %s AND reserved >= %s"
)


class _FailedPublishes(logging.Handler):
    """Counts ``realtime publish to ... failed`` warnings: publishing is best effort, so a failed
    ``credits.updated`` is logged by agentdeck, never raised."""

    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.count = 0

    def emit(self, record: logging.LogRecord) -> None:  # called under the handler's lock
        self.count += 1


FAILED_PUBLISHES = _FailedPublishes()


# --- environment and Django -------------------------------------------------------------------


def start_django(args: argparse.Namespace) -> str:
    """Point the settings at a fresh embedded PostgreSQL (or DATABASE_URL) and the chosen channel
    layer, set Django up and migrate. Returns where the database is."""
    env: dict[str, str | None] = {}
    if not os.environ.get("DATABASE_URL"):
        work_dir = temporary_work_dir("agentdeck-creditsbench-", keep=args.keep_var)
        env["AGENTDECK_VAR_DIR"] = str(work_dir / "var")
        where = f"embedded PostgreSQL in {work_dir}"
    else:
        where = "DATABASE_URL"
    layer = args.channel_layer
    if layer == "auto":
        layer = "redis" if redis_answers(args.redis_port) else "postgres"
    if layer == "redis":
        if not redis_answers(args.redis_port):
            raise BenchError(
                f"--channel-layer redis: nothing answers on 127.0.0.1:{args.redis_port}"
            )
        env["REDIS_URL"] = f"redis://127.0.0.1:{args.redis_port}/{args.redis_db}"
    else:
        env["REDIS_URL"] = None
    env["CHANNEL_LAYER"] = layer
    args.channel_layer = layer
    setup_django(env)
    logging.getLogger("agentdeck.core.realtime").addHandler(FAILED_PUBLISHES)
    return where


# --- fixtures -----------------------------------------------------------------------------------


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


# --- the workloads ------------------------------------------------------------------------------


def settle_once(
    user_id: str, run_id: str, plan: Any, cost: int, run_transactions: bool = True
) -> None:
    """agentdeck: the hold at run start and the settlement at run end, each its transaction
    (``run_transactions=False``, --breakdown own_statements: each statement on its own)."""
    from django.db import transaction

    from agentdeck.credits.services import credits_hold, credits_settle

    around = transaction.atomic if run_transactions else contextlib.nullcontext
    with around():  # run start
        credits_hold(user_id=user_id, run_id=run_id, plan=plan)
    with around():  # run end
        captured = credits_settle(run_id=run_id, usage=USAGE)
    if captured != cost:
        raise BenchError(f"run {run_id} captured {captured}, expected {cost}")


def bare_once(cursor: Any, user_id: str, hold: int, cost: int) -> None:
    """baseline: two conditional single-row UPDATEs, each its own (autocommit) transaction."""
    cursor.execute(HOLD_SQL, [hold, user_id, hold])
    if cursor.rowcount != 1:
        raise BenchError(f"baseline hold for {user_id} updated {cursor.rowcount} rows")
    cursor.execute(CAPTURE_SQL, [cost, hold, user_id, hold])
    if cursor.rowcount != 1:
        raise BenchError(f"baseline capture for {user_id} updated {cursor.rowcount} rows")


APPLY_SQL = """
    UPDATE user_credits
       SET balance = balance + %s, reserved = reserved + %s,
           lifetime_granted = lifetime_granted + %s, lifetime_spent = lifetime_spent + %s,
           updated_at = clock_timestamp()
     WHERE user_id = %s {condition}
 RETURNING balance, reserved
"""
LEDGER_SQL = """
    INSERT INTO credit_transactions (user_id, kind, amount, reserved_delta, balance_after,
           reserved_after, run_id, idempotency_key, actor, actor_id, reason, created_at)
    VALUES (%s, %s, %s, %s, %s, %s, %s, NULL, 'system', '', '', %s) RETURNING id
"""


def service_sql_once(cursor: Any, user_id: str, run_id: str, plan: Any, cost: int) -> None:
    """--breakdown service_sql: the statements credits_hold and credits_settle sent before
    issue #6 (ORM, 11 per settlement), by hand."""
    from django.db import transaction
    from django.utils import timezone

    from agentdeck.credits.services import usage_cost

    hold = plan.amount
    with transaction.atomic():
        cursor.execute(
            "INSERT INTO user_credits (user_id, balance, reserved, lifetime_granted,"
            " lifetime_spent, updated_at) VALUES (%s, 0, 0, 0, 0, %s) ON CONFLICT DO NOTHING",
            [user_id, timezone.now()],
        )
        cursor.execute(
            "SELECT user_id, balance, reserved, lifetime_granted, lifetime_spent, updated_at"
            " FROM user_credits WHERE user_id = %s LIMIT 21",
            [user_id],
        )
        cursor.fetchall()
        cursor.execute(
            APPLY_SQL.format(condition="AND balance - reserved >= %s"),
            [0, hold, 0, 0, user_id, hold],
        )
        after = cursor.fetchone()
        if after is None:
            raise BenchError(f"service_sql: no cover for {user_id}")
        cursor.execute(
            "INSERT INTO credit_holds (run_id, user_id, amount, captured, refunded, status,"
            " prices, created_at, settled_at) VALUES (%s, %s, %s, 0, 0, 'open', %s::jsonb, %s,"
            " NULL)",
            [run_id, user_id, hold, json.dumps(plan.prices), timezone.now()],
        )
        cursor.execute(
            LEDGER_SQL, [user_id, "hold", 0, hold, after[0], after[1], run_id, timezone.now()]
        )
    with transaction.atomic():
        cursor.execute(
            "SELECT run_id, user_id, amount, captured, refunded, status, prices, created_at,"
            " settled_at FROM credit_holds WHERE run_id = %s AND status = 'open'"
            " ORDER BY run_id ASC LIMIT 1 FOR UPDATE",
            [run_id],
        )
        row = cursor.fetchone()
        prices = row[6] if isinstance(row[6], dict) else json.loads(row[6])
        captured = min(usage_cost(USAGE, prices), row[2])
        cursor.execute(APPLY_SQL.format(condition=""), [-captured, -captured, 0, captured, user_id])
        after = cursor.fetchone()
        cursor.execute(
            LEDGER_SQL,
            [user_id, "capture", -captured, -captured, *after, run_id, timezone.now()],
        )
        release = row[2] - captured
        cursor.execute(APPLY_SQL.format(condition=""), [0, -release, 0, 0, user_id])
        after = cursor.fetchone()
        cursor.execute(
            LEDGER_SQL, [user_id, "release", 0, -release, *after, run_id, timezone.now()]
        )
        cursor.execute(
            "UPDATE credit_holds SET captured = %s, status = 'settled', settled_at = %s"
            " WHERE run_id = %s",
            [captured, timezone.now(), run_id],
        )
    if captured != cost:
        raise BenchError(f"run {run_id} captured {captured}, expected {cost}")


@dataclass
class Job:
    side: str
    user_id: str
    run_ids: list[str]  # the holding sides: the warm-up ones first
    count: int  # timed settlements
    plan: Any
    cost: int
    warmup: int  # untimed settlements before the barrier


def server_cpu(postmaster: int | None) -> float | None:
    """CPU seconds the local PostgreSQL server has used (postmaster, its backends and their
    reaped CPU); None for a server on another machine."""
    return None if postmaster is None else cpu_by_group({"postgres": postmaster}).get("postgres")


@dataclass
class Outcome:
    start: float
    end: float
    done: int
    client_cpu: float  # this worker's CPU seconds (its process, or its thread in thread mode)
    failed_publishes: int  # in this process (process mode)


def settle_many(job: Job, run_ids: list[str], count: int) -> None:
    """``count`` settlements of the job's side (the holding sides: on ``run_ids``)."""
    from django.db import connection

    if job.side in ("agentdeck", "no_publish", "own_statements"):
        from agentdeck.core import realtime

        in_run_transactions = job.side != "own_statements"
        for run_id in run_ids:
            settle_once(job.user_id, run_id, job.plan, job.cost, in_run_transactions)
        # credits.updated leaves from the publishing thread: count the time it takes to send
        # what the settlements published, as a task's end does.
        realtime.flush(timeout=60)
    elif job.side == "service_sql":
        with connection.cursor() as cursor:
            for run_id in run_ids:
                service_sql_once(cursor, job.user_id, run_id, job.plan, job.cost)
    else:
        with connection.cursor() as cursor:
            for _ in range(count):
                bare_once(cursor, job.user_id, job.plan.amount, job.cost)


def run_job(job: Job, barrier: Any, mode: str) -> Outcome:
    """One worker: connect, warm up, wait for the others, do its settlements, close its
    connection."""
    from django.db import connection

    clock = time.process_time if mode == "process" else time.thread_time
    try:
        connection.ensure_connection()
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1")
        # Warm up like a long-lived worker process (a qcluster worker settles thousands of
        # runs): the side's own statements once, its publishing thread and channel-layer
        # connection started, the server process's caches of the tables it touches filled.
        # Each side does it the same way, before the barrier, untimed.
        settle_many(job, job.run_ids[: job.warmup], job.warmup)
        barrier.wait()
        failed0, cpu0, start = FAILED_PUBLISHES.count, clock(), time.monotonic()
        settle_many(job, job.run_ids[job.warmup :], job.count)
        end, cpu1 = time.monotonic(), clock()
    finally:
        connection.close()
    return Outcome(start, end, job.count, cpu1 - cpu0, FAILED_PUBLISHES.count - failed0)


@dataclass
class Sample:
    rate: float  # settlements/s
    client_ms: float  # worker CPU per settlement
    server_ms: float | None  # the whole PostgreSQL server's CPU per settlement
    failed_publishes: int = 0


def _fresh_process_state() -> None:
    """A forked worker starts like a fresh process: no channel layer instance (channels_redis
    keeps per-event-loop pools) and, for channels_postgres, no module-level connection pool whose
    sockets and background tasks belong to the parent."""
    from channels.layers import channel_layers

    channel_layers.backends.clear()
    pg_layer_db = sys.modules.get("channels_postgres.db")
    if pg_layer_db is not None:
        pg_layer_db.connection_pool = None


def _process_entry(job: Job, barrier: Any, results: Any, index: int) -> None:
    try:
        _fresh_process_state()
        results.put((index, run_job(job, barrier, "process"), None))
    except BaseException:  # reported to the parent, which fails the benchmark
        with contextlib.suppress(Exception):
            barrier.abort()
        results.put((index, None, traceback.format_exc()))


def run_workers(jobs: list[Job], mode: str, timeout: float, postmaster: int | None) -> Sample:
    """Run the jobs concurrently; settlements/s over first start -> last end, and CPU spent per
    settlement by the workers and by the PostgreSQL server (from before the workers start to
    after they have all disconnected, so it includes connecting, a few ms)."""
    from django.db import connections

    n = len(jobs)
    server0, failed0 = server_cpu(postmaster), FAILED_PUBLISHES.count
    outcomes: list[Outcome] = [None] * n  # type: ignore[list-item]
    errors: list[str] = []
    if mode == "thread":
        barrier: Any = threading.Barrier(n, timeout=timeout)

        def entry(i: int) -> None:
            try:
                outcomes[i] = run_job(jobs[i], barrier, "thread")
            except BaseException:
                barrier.abort()
                errors.append(traceback.format_exc())

        threads = [threading.Thread(target=entry, args=(i,), daemon=True) for i in range(n)]
        for t in threads:
            t.start()
        deadline = time.monotonic() + timeout
        for t in threads:
            t.join(max(0.0, deadline - time.monotonic()))
        if any(t.is_alive() for t in threads):
            raise BenchError(f"workers still running after {timeout:.0f}s")
    else:
        ctx = multiprocessing.get_context("fork")
        connections.close_all()  # no connection may be shared with a forked child
        barrier = ctx.Barrier(n, timeout=timeout)
        results = ctx.Queue()
        procs = [
            ctx.Process(target=_process_entry, args=(jobs[i], barrier, results, i), daemon=True)
            for i in range(n)
        ]
        for p in procs:
            p.start()
        deadline = time.monotonic() + timeout
        try:
            for _ in range(n):
                remaining = max(0.1, deadline - time.monotonic())
                try:
                    index, outcome, error = results.get(timeout=remaining)
                except Exception as e:
                    raise BenchError(f"workers still running after {timeout:.0f}s") from e
                if error:
                    errors.append(error)
                outcomes[index] = outcome
        finally:
            for p in procs:
                p.join(max(0.1, deadline - time.monotonic()))
                if p.is_alive():
                    p.terminate()
                    p.join(5)
    if errors:
        raise BenchError("a worker failed:\n" + errors[0])
    time.sleep(0.1)  # let the postmaster reap the closed backends (their CPU moves to it)
    server1 = server_cpu(postmaster)
    done = sum(o.done for o in outcomes)
    elapsed = max(o.end for o in outcomes) - min(o.start for o in outcomes)
    server = None if server0 is None or server1 is None else 1000 * (server1 - server0) / done
    if mode == "thread":
        failed = FAILED_PUBLISHES.count - failed0
    else:
        failed = sum(o.failed_publishes for o in outcomes)
    return Sample(
        rate=done / elapsed,
        client_ms=1000 * sum(o.client_cpu for o in outcomes) / done,
        server_ms=server,
        failed_publishes=failed,
    )


# --- measurements -------------------------------------------------------------------------------


def balances(user_ids: list[str]) -> dict[str, tuple[int, int]]:
    from agentdeck.credits.models import UserCredits

    return {
        u.user_id: (u.balance, u.reserved)
        for u in UserCredits.objects.filter(user_id__in=set(user_ids))
    }


@contextlib.contextmanager
def publishing(enabled: bool):
    """--breakdown no_publish: credits_hold/credits_settle without their credits.updated."""
    from agentdeck.credits.services import ledger

    # balance_notify's one way out: every service module calls it, and it calls this.
    original = ledger.notify_user_on_commit
    if not enabled:
        ledger.notify_user_on_commit = lambda *args, **kwargs: None
    try:
        yield
    finally:
        ledger.notify_user_on_commit = original


def measure(args: argparse.Namespace, fixture: Fixture, config: str, rep: int, side: str) -> Sample:
    from agentdeck.credits.models import CreditHold, CreditTransaction

    users = worker_users(fixture, config, args.workers)
    counts = per_worker(args.settlements, args.workers)
    run_lists = fixture.runs.get((config, rep, side))
    jobs = [
        Job(
            side,
            users[w],
            run_lists[w] if run_lists else [],
            counts[w],
            fixture.plan,
            fixture.cost,
            args.worker_warmup,
        )
        for w in range(args.workers)
    ]
    before = balances(users)
    with publishing(side != "no_publish"):
        sample = run_workers(jobs, args.mode, args.timeout, fixture.postmaster)
    after = balances(users)
    # The exact effect on every row: `cost` spent per settlement, nothing left reserved.
    spent: dict[str, int] = {}
    for w, user_id in enumerate(users):
        spent[user_id] = spent.get(user_id, 0) + (counts[w] + args.worker_warmup) * fixture.cost
    for user_id, amount in spent.items():
        expected = (before[user_id][0] - amount, before[user_id][1])
        if after[user_id] != expected:
            raise BenchError(f"{side}/{config}: {user_id} is {after[user_id]}, want {expected}")
    if side == "baseline":
        # The bare UPDATEs wrote no ledger: account for them so reconciliation covers every row.
        CreditTransaction.objects.bulk_create(
            CreditTransaction(
                user_id=user_id,
                kind=CreditTransaction.Kind.ADJUSTMENT,
                amount=-amount,
                balance_after=after[user_id][0],
                reserved_after=after[user_id][1],
                actor=CreditTransaction.Actor.SYSTEM,
                reason=f"credits benchmark baseline ({config}, repetition {rep + 1})",
            )
            for user_id, amount in spent.items()
        )
    else:
        run_ids = [r for lst in run_lists for r in lst]
        settled = CreditHold.objects.filter(
            run_id__in=run_ids, status=CreditHold.Status.SETTLED, captured=fixture.cost
        ).count()
        if settled != len(run_ids):
            raise BenchError(f"{side}/{config}: {settled} of {len(run_ids)} holds settled")
        ledger = CreditTransaction.objects.filter(run_id__in=run_ids).count()
        if ledger != 3 * len(run_ids):
            raise BenchError(f"{side}/{config}: {ledger} ledger rows for {len(run_ids)} runs")
    return sample


def reconcile() -> dict[str, Any]:
    from agentdeck.credits.models import CreditHold, UserCredits
    from agentdeck.credits.services import credits_reconcile

    found = credits_reconcile()
    return {
        "discrepancies": [asdict(d) for d in found],
        "accounts": UserCredits.objects.count(),
        "reserved_nonzero": UserCredits.objects.exclude(reserved=0).count(),
        "open_holds": CreditHold.objects.filter(status=CreditHold.Status.OPEN).count(),
    }


def report(
    args: argparse.Namespace, samples: dict[str, dict[str, list[Sample]]], rec: dict
) -> bool:
    ok = True
    print(
        f"credit settlements (hold + settle): {args.settlements} per measurement, "
        f"{args.workers} workers ({args.mode} mode), median of {args.repeat}, "
        f"channel layer {args.channel_layer}"
    )
    header = (
        f"{'config':<10} {'side':<14} {'settlements/s':>13} {'vs baseline':>11} "
        f"{'worker CPU':>10} {'PG CPU':>7}  each repetition"
    )
    print(header)
    print(f"{'':<52}{'(ms per settlement)':>20}")
    print("-" * len(header))
    for config, by_side in samples.items():
        base = statistics.median(s.rate for s in by_side["baseline"])
        for side in args.sides:
            values = by_side[side]
            median = statistics.median(s.rate for s in values)
            ratio = median / base
            verdict = ""
            if side == "agentdeck":
                passed = ratio >= RATIO_TARGET
                ok &= passed
                verdict = f"  [{'PASS' if passed else 'FAIL'}: target >= {RATIO_TARGET:.0%}]"
            runs = " ".join(f"{s.rate:.0f}" for s in values)
            failed = sum(s.failed_publishes for s in values)
            if failed:
                runs += f" ({failed} credits.updated publishes failed)"
            shown = "" if side == "baseline" else f"{ratio:.1%}"
            client = statistics.median(s.client_ms for s in values)
            server = median_or_none([s.server_ms for s in values])
            server_text = "-" if server is None else f"{server:.2f}"
            print(
                f"{config:<10} {side:<14} {median:>13.0f} {shown:>11} {client:>10.2f} "
                f"{server_text:>7}  {runs}{verdict}"
            )
    clean = not rec["discrepancies"] and not rec["reserved_nonzero"] and not rec["open_holds"]
    ok &= clean
    print(
        f"reconciliation: {len(rec['discrepancies'])} discrepancies over {rec['accounts']} "
        f"accounts; {rec['reserved_nonzero']} accounts with reserved != 0; "
        f"{rec['open_holds']} open holds  [{'PASS' if clean else 'FAIL'}]"
    )
    for d in rec["discrepancies"][:10]:
        print(f"  {d}")
    return ok


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--settlements", type=int, default=1000, help="per measurement and side (default 1000)"
    )
    parser.add_argument("--workers", type=int, default=16, help="concurrent workers (default 16)")
    parser.add_argument("--repeat", type=int, default=3, help="repetitions; medians reported")
    parser.add_argument(
        "--config",
        choices=[*CONFIGS, "both"],
        default="both",
        help="spread: a user per worker; contended: every worker on one user (default both)",
    )
    parser.add_argument("--mode", choices=["process", "thread"], default="process")
    parser.add_argument(
        "--channel-layer",
        choices=["auto", "redis", "postgres", "memory"],
        default="auto",
        help="where credits.updated is published; auto: redis when it answers, else postgres",
    )
    parser.add_argument(
        "--breakdown",
        action="store_true",
        help="also measure the no_publish, own_statements and service_sql sides",
    )
    parser.add_argument("--redis-port", type=int, default=6379)
    parser.add_argument("--redis-db", type=int, default=12, help="only published to, never flushed")
    parser.add_argument(
        "--warmup", type=int, default=20, help="settlements in the parent before any fork"
    )
    parser.add_argument(
        "--worker-warmup",
        type=int,
        default=5,
        help="untimed settlements each worker makes before the barrier (0: none, as before)",
    )
    parser.add_argument(
        "--quiet-wait",
        type=float,
        default=0,
        help="wait up to S seconds before each measurement for the CPU to be < 25%% busy",
    )
    parser.add_argument("--timeout", type=float, default=300, help="per measurement, seconds")
    parser.add_argument("--json", type=Path, help="also write all figures to this file")
    parser.add_argument("--keep-var", action="store_true", help="keep the temporary var dir")
    args = parser.parse_args(argv)
    args.configs = list(CONFIGS) if args.config == "both" else [args.config]
    args.sides = [*SIDES, *BREAKDOWN] if args.breakdown else list(SIDES)
    if args.settlements < args.workers or args.workers < 1 or args.repeat < 1:
        parser.error("need --settlements >= --workers >= 1 and --repeat >= 1")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    started = datetime.now(UTC)
    loadavg = os.getloadavg()
    samples: dict[str, dict[str, list[Sample]]] = {}

    def measure_all() -> dict[str, Any]:
        where = start_django(args)
        log(f"database: {where}; channel layer: {args.channel_layer}; {args.mode} workers")
        fixture = create_fixture(args)
        for config in args.configs:
            samples[config] = {side: [] for side in args.sides}
            for rep in range(args.repeat):
                order = args.sides if rep % 2 == 0 else args.sides[::-1]
                for side in order:
                    if args.quiet_wait:
                        wait_for_quiet(args.quiet_wait)
                    sample = measure(args, fixture, config, rep, side)
                    samples[config][side].append(sample)
                    log(
                        f"{config} rep {rep + 1} {side}: {sample.rate:.0f} settlements/s "
                        f"(CPU per settlement: worker {sample.client_ms:.2f} ms, "
                        f"PostgreSQL {sample.server_ms or 0:.2f} ms)"
                    )
        return reconcile()

    status, rec = run_sync(measure_all)
    if status:
        return status
    print()
    print(
        f"credits, {started:%Y-%m-%d %H:%M} UTC, nproc {os.cpu_count()}, "
        f"Python {platform.python_version()}, load average at start "
        f"{' '.join(f'{x:.2f}' for x in loadavg)}"
    )
    ok = report(args, samples, rec)
    if args.json:
        payload = {
            "date": started.isoformat(),
            "nproc": os.cpu_count(),
            "argv": sys.argv,
            "channel_layer": args.channel_layer,
            "mode": args.mode,
            "settlements": args.settlements,
            "workers": args.workers,
            "samples": {
                config: {side: [asdict(s) for s in v] for side, v in by_side.items()}
                for config, by_side in samples.items()
            },
            "ratio_of_medians": {
                config: {
                    side: statistics.median(s.rate for s in v)
                    / statistics.median(s.rate for s in by_side["baseline"])
                    for side, v in by_side.items()
                }
                for config, by_side in samples.items()
            },
            "reconciliation": rec,
        }
        args.json.write_text(json.dumps(payload, indent=2))
    return 0 if ok else 2


def exit_now_if_stuck(code: int) -> None:
    """Thread mode after a timeout: a worker stuck in a publish would block the interpreter's
    exit (it joins ``async_to_sync``'s executor threads, daemon or not, before atexit runs),
    leaving the embedded server running. Run the atexit handlers (stop the server, remove its
    directory) and leave."""
    stuck = [
        t
        for t in threading.enumerate()
        if t is not threading.main_thread()
        and t.is_alive()
        # The realtime publisher's thread lives as long as the process, by design.
        and t.name != "agentdeck-realtime-publisher"
    ]
    if stuck:
        log(f"{len(stuck)} threads still running (stuck publishes?); leaving them")
        sys.stdout.flush()
        sys.stderr.flush()
        atexit._run_exitfuncs()
        os._exit(code)


if __name__ == "__main__":
    exit_code = main()
    exit_now_if_stuck(exit_code)
    sys.exit(exit_code)
