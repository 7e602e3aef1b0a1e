from __future__ import annotations

from django.db import models


class TimestampedModel(models.Model):
    """Base for agentdeck's own tables: creation and last-change times, set by the database row's
    writer (never by clients)."""

    created_at = models.DateTimeField(auto_now_add=True, db_index=False)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        abstract = True
