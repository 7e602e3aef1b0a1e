from __future__ import annotations

import pytest

from tests.factories import VectorIndexFactory


@pytest.fixture(autouse=True)
def _file_settings(settings, tmp_path):
    # Stored bytes go to a per-test directory; indices default to the model-free embedder.
    settings.MEDIA_ROOT = tmp_path / "media"
    settings.EMBEDDER_DEFAULT = "hash"


@pytest.fixture
def index(user):
    return VectorIndexFactory(owner=user, name="docs")


TEXT = (
    "Otters hold hands while they sleep so they do not drift apart.\n\n"
    "The Eiffel Tower grows about fifteen centimetres taller in summer heat.\n\n"
    "Honey found in ancient Egyptian tombs was still edible after three thousand years.\n"
)
