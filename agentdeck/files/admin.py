"""Staff oversight of files and vector indices. Files are read-only except through the
reprocess and delete actions (both go through the services); chunks are never edited here."""

from __future__ import annotations

from django.contrib import admin, messages
from django.db.models import QuerySet
from django.http import HttpRequest
from django.template.defaultfilters import filesizeformat

from agentdeck.core.exceptions import ApplicationError
from agentdeck.files.models import FileMetadata, VectorIndex, VectorIndexFile
from agentdeck.files.services import file_delete, file_reprocess


class AttachmentInline(admin.TabularInline[VectorIndexFile, FileMetadata | VectorIndex]):
    # On both admins below: a file's attachments, an index's files.
    model = VectorIndexFile
    extra = 0
    can_delete = False
    fields = ("index", "file", "status", "chunk_count", "token_count", "bytes", "error_code")
    readonly_fields = fields
    show_change_link = False

    def has_add_permission(
        self, request: HttpRequest, obj: FileMetadata | VectorIndex | None = None
    ) -> bool:
        return False


@admin.register(FileMetadata)
class FileMetadataAdmin(admin.ModelAdmin[FileMetadata]):
    list_display = (
        "name",
        "owner",
        "status",
        "progress",
        "size_display",
        "mime_type",
        "chunk_count",
        "error_code",
        "created_at",
    )
    list_filter = ("status", "mime_type", "error_code")
    search_fields = ("name", "sha256", "owner__email", "owner__id")
    list_select_related = ("owner",)
    # The extracted text can be megabytes: never load it for the list or the form.
    exclude = ("text",)
    readonly_fields = [
        f.name for f in FileMetadata._meta.fields if f.name not in ("text", "content")
    ] + ["content"]
    inlines = (AttachmentInline,)
    actions = ("reprocess", "delete_files")
    show_full_result_count = False

    def get_queryset(self, request: HttpRequest) -> QuerySet[FileMetadata]:
        return super().get_queryset(request).defer("text")

    @admin.display(description="Size", ordering="size")
    def size_display(self, obj: FileMetadata) -> str:
        return filesizeformat(obj.size)

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: FileMetadata | None = None) -> bool:
        # Deleting goes through the action (the service also removes bytes and chunks).
        return False

    @admin.action(description="Reprocess (parse and embed again)")
    def reprocess(self, request: HttpRequest, queryset: QuerySet[FileMetadata]) -> None:
        done, busy = 0, 0
        for file in queryset:
            try:
                file_reprocess(file=file)
                done += 1
            except ApplicationError:
                busy += 1
        self.message_user(request, f"Queued {done} file(s) for processing.", messages.SUCCESS)
        if busy:
            self.message_user(
                request, f"{busy} file(s) are being processed right now.", messages.WARNING
            )

    @admin.action(description="Delete files, their stored bytes and chunks")
    def delete_files(self, request: HttpRequest, queryset: QuerySet[FileMetadata]) -> None:
        count = 0
        for file in queryset:
            file_delete(file=file)
            count += 1
        self.message_user(request, f"Deleted {count} file(s).", messages.SUCCESS)


@admin.register(VectorIndex)
class VectorIndexAdmin(admin.ModelAdmin[VectorIndex]):
    list_display = (
        "name",
        "owner",
        "status",
        "embedder",
        "embedding_model",
        "dimensions",
        "file_count",
        "chunk_count",
        "bytes_display",
        "expires_at",
        "created_at",
    )
    list_filter = ("status", "embedder", "dimensions")
    search_fields = ("name", "owner__email", "owner__id")
    list_select_related = ("owner",)
    readonly_fields = [f.name for f in VectorIndex._meta.fields]
    inlines = (AttachmentInline,)
    show_full_result_count = False

    @admin.display(description="Size", ordering="bytes")
    def bytes_display(self, obj: VectorIndex) -> str:
        return filesizeformat(obj.bytes)

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False
