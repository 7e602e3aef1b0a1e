from __future__ import annotations

import os

import pytest

from agentdeck.files import services
from agentdeck.files.models import Chunk, FileMetadata
from agentdeck.files.processing import file_process
from tests.files.conftest import TEXT

pytestmark = pytest.mark.django_db


@pytest.fixture
def staff_client(client, staff_user):
    client.force_login(staff_user)
    return client


@pytest.fixture
def ready_file(user, index):
    file, _ = services.file_upload(
        owner=user, name="facts.txt", data=TEXT.encode(), vector_indices=[index]
    )
    assert file_process(file_id=file.pk) == "ready"
    return file


def test_files_and_indices_pages_show_status_sizes_and_counts(staff_client, ready_file, index):
    page = staff_client.get("/admin/files/filemetadata/")
    assert page.status_code == 200
    assert b"facts.txt" in page.content
    assert b"220" in page.content
    detail = staff_client.get(f"/admin/files/filemetadata/{ready_file.pk}/change/")
    assert detail.status_code == 200
    assert b"Otters hold hands" not in detail.content  # the extracted text is never loaded
    page = staff_client.get("/admin/files/vectorindex/")
    assert page.status_code == 200
    assert b"docs" in page.content
    assert staff_client.get(f"/admin/files/vectorindex/{index.pk}/change/").status_code == 200


def test_reprocess_and_delete_actions_go_through_the_services(
    staff_client, ready_file, django_capture_on_commit_callbacks
):
    response = staff_client.post(
        "/admin/files/filemetadata/",
        {"action": "reprocess", "_selected_action": [str(ready_file.pk)]},
        follow=True,
    )
    assert b"Queued 1 file(s) for processing." in response.content
    assert FileMetadata.objects.get(pk=ready_file.pk).status == "processing"
    assert file_process(file_id=ready_file.pk) == "ready"

    path = ready_file.content.path
    with django_capture_on_commit_callbacks(execute=True):
        response = staff_client.post(
            "/admin/files/filemetadata/",
            {"action": "delete_files", "_selected_action": [str(ready_file.pk)]},
            follow=True,
        )
    assert b"Deleted 1 file(s)." in response.content
    assert not FileMetadata.objects.exists()
    assert not Chunk.objects.exists()
    assert not os.path.exists(path)


def test_model_names_read_right_in_the_admin(staff_client):
    """Django adds an "s" to verbose_name: "file metadatas", "vector indexs"."""
    from django.apps import apps

    index = staff_client.get("/admin/")
    assert index.status_code == 200
    assert b"Files" in index.content
    assert b"Vector indices" in index.content
    plurals = {
        model._meta.label: str(model._meta.verbose_name_plural)
        for model in apps.get_models()
        if model.__module__.startswith("agentdeck.")
    }
    assert {k: v for k, v in plurals.items() if v.endswith(("datas", "indexs"))} == {}
    for wrong in (b"metadatas", b"indexs", b"Api keys"):
        assert wrong not in index.content
    assert b"API keys" in index.content
