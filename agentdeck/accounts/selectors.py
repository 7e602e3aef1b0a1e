from __future__ import annotations

from typing import Any

from django.db import connections
from django.db.models import QuerySet

from agentdeck.accounts.models import ApiKey, User
from agentdeck.accounts.services import api_key_hash
from agentdeck.core.permissions import scope_to_owner


def api_key_get_by_secret(*, secret: str) -> ApiKey | None:
    return ApiKey.objects.select_related("owner").filter(key_hash=api_key_hash(secret)).first()


def api_key_list(*, user: User) -> QuerySet[ApiKey]:
    return scope_to_owner(ApiKey.objects.select_related("owner"), user)


_USER_LOOKUPS: dict[str, tuple[str, list[str], list[tuple[int, list[Any], Any]]]] = {}


def _user_lookup(alias: str) -> tuple[str, list[str], list[tuple[int, list[Any], Any]]]:
    """The SQL of ``User.objects.filter(pk=...)``, its columns, and the converters Django's
    compiler would apply to each (none for the current fields; kept generic so that a field
    added later is read as the ORM reads it)."""
    lookup = _USER_LOOKUPS.get(alias)
    if lookup is None:
        connection = connections[alias]
        quote = connection.ops.quote_name
        meta = User._meta
        fields = meta.concrete_fields
        sql = "SELECT {} FROM {} WHERE {} = %s".format(  # noqa: S608 (model metadata only)
            ", ".join(quote(f.column) for f in fields),
            quote(meta.db_table),
            quote(meta.pk.column),
        )
        converters = []
        for i, f in enumerate(fields):
            col = f.get_col(meta.db_table)
            found = connection.ops.get_db_converters(col) + col.get_db_converters(connection)
            if found:
                converters.append((i, found, col))
        lookup = _USER_LOOKUPS[alias] = (sql, [f.attname for f in fields], converters)
    return lookup


def user_get_by_pk(pk: str, *, using: str = "default") -> User | None:
    """``User.objects.filter(pk=pk).first()`` with the query built once per process. Every API
    request authenticates its user; Django compiling the same one-row query each time cost
    ~0.3 ms of the request here (benchmarks/RESULTS.md, vector_search)."""
    sql, attnames, converters = _user_lookup(using)
    connection = connections[using]
    with connection.cursor() as cursor:
        cursor.execute(sql, [pk])
        row = cursor.fetchone()
    if row is None:
        return None
    values = list(row)
    for i, found, col in converters:
        for convert in found:
            values[i] = convert(values[i], col, connection)
    return User.from_db(using, attnames, values)
