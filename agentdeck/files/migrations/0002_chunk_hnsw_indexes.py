from django.db import migrations

from agentdeck.files.models import ALLOWED_DIMENSIONS

# One partial HNSW index per allowed dimension: ``chunks.embedding`` is an untyped vector
# (indices differ in dimensions) and pgvector indexes only a fixed-size expression, so each
# index covers ``embedding::vector(d)`` for the rows ``WHERE dimensions = d``. A query uses it
# when it orders by the same expression under the same condition (agentdeck.files.search).
#
# Build parameters: m = 16, ef_construction = 64 (pgvector's defaults, kept on purpose): on
# 384-d MiniLM vectors they reach recall@10 above 0.98 at ef_search 100, and a larger m mostly
# adds memory and insert time for the ingestion worker. ef_search is set per query.


def _sql(d: int) -> tuple[str, str]:
    return (
        f"CREATE INDEX IF NOT EXISTS chunks_embedding_hnsw_{d} ON chunks "
        f"USING hnsw ((embedding::vector({d})) vector_cosine_ops) "
        f"WITH (m = 16, ef_construction = 64) WHERE dimensions = {d}",
        f"DROP INDEX IF EXISTS chunks_embedding_hnsw_{d}",
    )


class Migration(migrations.Migration):
    dependencies = [("files", "0001_initial")]

    operations = [
        migrations.RunSQL(sql=_sql(d)[0], reverse_sql=_sql(d)[1]) for d in ALLOWED_DIMENSIONS
    ]
