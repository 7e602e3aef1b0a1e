"""What runs inside the deployment, imported by its dotted path ``benchmarks.run_floor`` (through
which ``run_floor.py`` re-exports it): the queue floor's no-op task, which the qcluster's workers
run, and the enqueuer and the SQL floor, run by ``manage.py shell -c`` with Django configured.
Nothing here needs the benchmark's ``sys.path``.
"""

from __future__ import annotations

import json
import time

_COUNTER = None  # the Redis client of floor_task, one per worker process


def floor_task(redis_url: str, key: str) -> None:
    """The queue floor's task: nothing but telling the benchmark it ran."""
    global _COUNTER
    if _COUNTER is None:
        import redis

        _COUNTER = redis.Redis.from_url(redis_url)
    _COUNTER.incr(key)


def enqueue_main(n: int, redis_url: str, key: str) -> None:
    """The queue floor's producer: N ``async_task`` calls on one broker; prints its CPU."""
    from django_q.brokers import get_broker
    from django_q.tasks import async_task

    broker = get_broker()
    cpu, wall = time.process_time(), time.perf_counter()
    for _ in range(n):
        async_task("benchmarks.run_floor.floor_task", redis_url, key, broker=broker, save=False)
    print(
        json.dumps(
            {"cpu_s": time.process_time() - cpu, "wall_s": time.perf_counter() - wall, "n": n}
        )
    )


def sql_main(n: int, threads: int, template_run_id: str) -> None:
    """The SQL floor: N runs' required writes, copied from a real run; prints this process's
    CPU and the wall time. Every statement commits on its own (autocommit)."""
    import threading
    import uuid

    from django.db import connection, connections

    def columns(table: str) -> list[str]:
        with connection.cursor() as cursor:
            cursor.execute(
                "SELECT column_name FROM information_schema.columns "
                "WHERE table_name = %s AND table_schema = current_schema() ORDER BY ordinal_position",
                [table],
            )
            return [row[0] for row in cursor.fetchall()]

    run_cols = columns("agent_runs")
    event_cols = [c for c in columns("run_events") if c != "id"]
    span_cols = [c for c in columns("run_spans") if c != "id"]

    def select_list(cols: list[str], overrides: dict[str, str]) -> str:
        return ", ".join(overrides.get(c, c) for c in cols)

    run_overrides = {
        "id": "%s",
        "status": "'queued'",
        "idempotency_key": "NULL",
        "output": "NULL",
        "started_at": "NULL",
        "first_token_at": "NULL",
        "finished_at": "NULL",
        "heartbeat_at": "NULL",
        "created_at": "clock_timestamp()",
        "updated_at": "clock_timestamp()",
        "next_seq": "0",
        "attempts": "0",
    }
    run_insert = (
        f"WITH r AS (INSERT INTO agent_runs ({', '.join(run_cols)}) "  # noqa: S608 (catalog names)
        f"SELECT {select_list(run_cols, run_overrides)} FROM agent_runs WHERE id = %s "
        "RETURNING agent_id) "
        "UPDATE agent_metadata SET run_count = run_count + 1, last_run_at = clock_timestamp() "
        "WHERE agent_id = (SELECT agent_id FROM r)"
    )
    claim = (
        "UPDATE agent_runs SET status = 'running', started_at = clock_timestamp(), "
        "heartbeat_at = clock_timestamp(), attempts = attempts + 1, next_seq = 9 "
        "WHERE id = %s AND status = 'queued'"
    )

    def copy_rows(table: str, cols: list[str], where: str) -> str:
        """INSERT the template run's rows of ``table`` again, for the new run (first %s)."""
        chosen = select_list(cols, {"run_id": "%s", "created_at": "clock_timestamp()"})
        return (
            f"INSERT INTO {table} ({', '.join(cols)}) SELECT {chosen} "  # noqa: S608
            f"FROM {table} WHERE {where}"
        )

    events = copy_rows("run_events", event_cols, "run_id = %s AND seq BETWEEN %s AND %s")
    finish = (
        f"WITH e AS ({events}) UPDATE agent_runs t SET status = 'succeeded', "  # noqa: S608
        "output = s.output, usage = s.usage, last_agent = s.last_agent, "
        "finished_at = clock_timestamp() FROM agent_runs s WHERE t.id = %s AND s.id = %s"
    )
    spans = copy_rows("run_spans", span_cols, "run_id = %s")
    template = template_run_id
    pending = iter(range(n))
    lock = threading.Lock()
    errors: list[BaseException] = []

    def one_run() -> None:
        run_id = str(uuid.uuid4())
        with connection.cursor() as cursor:
            cursor.execute(run_insert, [run_id, template])  # web: the run and its count
            cursor.execute(claim, [run_id])  # worker: claim
            cursor.execute(events, [run_id, template, 1, 3])  # turn 1
            cursor.execute(events, [run_id, template, 4, 6])  # turn 2
            cursor.execute(finish, [run_id, template, 7, 9, run_id, template])  # end + status
            cursor.execute(spans, [run_id, template])  # the trace

    def worker() -> None:
        try:
            while True:
                with lock:
                    if next(pending, None) is None:
                        return
                one_run()
        except BaseException as e:  # reported by the parent
            errors.append(e)
        finally:
            connections.close_all()

    for _ in range(5):  # warm the plans and caches of this connection
        one_run()
    cpu, wall = time.process_time(), time.perf_counter()
    pool = [threading.Thread(target=worker) for _ in range(threads)]
    for t in pool:
        t.start()
    for t in pool:
        t.join()
    if errors:
        raise errors[0]
    print(
        json.dumps(
            {"cpu_s": time.process_time() - cpu, "wall_s": time.perf_counter() - wall, "n": n}
        )
    )
