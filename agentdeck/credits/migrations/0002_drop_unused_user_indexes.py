"""Two fewer indexes for every ledger line, one fewer for every hold (issue #6, settlement
throughput).

A ``ForeignKey`` to the ``varchar`` primary key of ``users`` gets two indexes by default:
a btree on ``user_id`` and its ``varchar_pattern_ops`` twin, which serves only ``LIKE 'x%'``.

* ``credit_transactions``: both dropped. Every query by user is served by an index that leads
  with ``user_id``: the ledger API and the admin's ledger (``credit_tx_user_created``), the
  grant's idempotency lookup (``credit_transactions_user_key_unique``), deleting a user and the
  foreign key's own check (``credit_tx_user_created``); checked with EXPLAIN (sequential scans
  off) on PostgreSQL 18 for each of them. Nothing matches ``user_id`` with ``LIKE`` (the admin's
  search is ``UPPER(..) LIKE '%x%'``, which no btree serves).
* ``credit_holds``: the pattern twin dropped, the btree kept under a name of its own
  (``credit_holds_user``: deleting a user finds their holds).

Note: Django finds the indexes to drop by introspecting the database, so ``sqlmigrate`` prints
only the ones the database it connects to has (against one without these tables, the two
``AlterField`` show as no-ops); ``migrate`` dropped all four on a database at 0001.
"""

import django.db.models.deletion
from django.conf import settings
from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [
        ("agents", "0003_agent_credit_cap"),
        ("credits", "0001_initial"),
        migrations.swappable_dependency(settings.AUTH_USER_MODEL),
    ]

    operations = [
        migrations.AlterField(
            model_name="credithold",
            name="user",
            field=models.ForeignKey(
                db_index=False,
                on_delete=django.db.models.deletion.CASCADE,
                related_name="credit_holds",
                to=settings.AUTH_USER_MODEL,
            ),
        ),
        migrations.AlterField(
            model_name="credittransaction",
            name="user",
            field=models.ForeignKey(
                db_index=False,
                on_delete=django.db.models.deletion.CASCADE,
                related_name="credit_transactions",
                to=settings.AUTH_USER_MODEL,
            ),
        ),
        migrations.AddIndex(
            model_name="credithold",
            index=models.Index(fields=["user"], name="credit_holds_user"),
        ),
    ]
