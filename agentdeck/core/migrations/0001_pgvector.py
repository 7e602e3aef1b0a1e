from django.db import migrations
from pgvector.django import VectorExtension


class Migration(migrations.Migration):
    """pgvector backs file search (chunks) and agent memory; later apps depend on this."""

    initial = True
    dependencies = []
    operations = [VectorExtension()]
