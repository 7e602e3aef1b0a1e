"""A run's span records written as ``RunSpan`` rows, in one statement."""

from __future__ import annotations

import json
from dataclasses import fields
from datetime import datetime

from agentdeck.analytics.tracing.records import SpanRecord

# A run's spans in one statement, passed as one JSON document. bulk_create sent each column as
# an array for UNNEST, and psycopg quoting those arrays into the SQL text (client-side binding)
# was a large share of the worker's busy time per run (benchmarks/RESULTS.md, run_overhead).
# ON CONFLICT: a span is stored once per run (flush_run may run twice).
_INSERT_SPANS_SQL = """
    INSERT INTO run_spans (run_id, trace_id, span_id, parent_id, kind, name, model, started_at,
                           ended_at, duration_ms, input_tokens, output_tokens,
                           cached_input_tokens, reasoning_tokens, error, data, created_at)
    SELECT %s::uuid, s.trace_id, s.span_id, s.parent_id, s.kind, s.name, s.model, s.started_at,
           s.ended_at, s.duration_ms, s.input_tokens, s.output_tokens, s.cached_input_tokens,
           s.reasoning_tokens, s.error, s.data, %s
      FROM jsonb_to_recordset(%s::jsonb) AS s(
               trace_id text, span_id text, parent_id text, kind text, name text, model text,
               started_at timestamptz, ended_at timestamptz, duration_ms double precision,
               input_tokens integer, output_tokens integer, cached_input_tokens integer,
               reasoning_tokens integer, error jsonb, data jsonb)
        ON CONFLICT (run_id, span_id) DO NOTHING
"""


def insert_spans(run_id: str, records: list[SpanRecord]) -> None:
    from django.db import connection
    from django.utils import timezone

    # A record's fields are the columns of _INSERT_SPANS_SQL's recordset, by the same names.
    names = [f.name for f in fields(SpanRecord)]
    document = json.dumps(
        [{name: getattr(r, name) for name in names} for r in records],
        default=datetime.isoformat,  # started_at, ended_at
    )
    with connection.cursor() as cursor:
        cursor.execute(_INSERT_SPANS_SQL, [run_id, timezone.now(), document])
