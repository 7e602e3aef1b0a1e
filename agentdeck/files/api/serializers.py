"""Input and output serializers of the files and vector-indices API."""

from __future__ import annotations

from typing import Any

from rest_framework import serializers

from agentdeck.core.jsonshape import JSONShapeField
from agentdeck.files.attributes import (
    ATTRIBUTES_SCHEMA,
    ATTRIBUTES_SHAPE,
    FILTERS_SCHEMA,
    FILTERS_SHAPE,
    check_attributes,
    check_filters,
)
from agentdeck.files.models import FileMetadata, VectorIndex, VectorIndexFile
from agentdeck.files.search import MAX_TOP_K, MODES

# Lists of ids in a request: an index a file goes into, files a search is limited to.
MAX_VECTOR_INDEX_IDS = 20
MAX_FILE_IDS = 100
DESCRIPTION_MAX_LENGTH = 2000


def _attributes_field(**kwargs: Any) -> JSONShapeField:
    return JSONShapeField(
        shape=ATTRIBUTES_SHAPE,
        check=check_attributes,
        schema=ATTRIBUTES_SCHEMA,
        required=False,
        default=None,
        help_text="Search-filter labels for the attachments: {name: string|number|boolean}.",
        **kwargs,
    )


class FileSerializer(serializers.ModelSerializer[FileMetadata]):
    class Meta:
        model = FileMetadata
        fields = [
            "id",
            "name",
            "size",
            "mime_type",
            "sha256",
            "status",
            "progress",
            "error_code",
            "error_message",
            "page_count",
            "char_count",
            "chunk_count",
            "attempts",
            "created_at",
            "updated_at",
            "processing_started_at",
            "processed_at",
        ]
        read_only_fields = fields


class FileUploadSerializer(serializers.Serializer[Any]):
    # Empty files reach the service, which answers with the stable code empty_file.
    file = serializers.FileField(
        allow_empty_file=True, help_text="The document (multipart/form-data)."
    )
    vector_index_ids = serializers.ListField(
        child=serializers.UUIDField(),
        required=False,
        default=list,
        max_length=MAX_VECTOR_INDEX_IDS,
        help_text="Attach to these indices of yours as soon as it is processed.",
    )
    # Multipart sends an object as JSON text (binary: the field reads it with jsoninput).
    attributes = _attributes_field(binary=True)

    def to_internal_value(self, data: Any) -> Any:
        # Multipart sends lists as repeated fields.
        if hasattr(data, "getlist"):
            flat = {k: data.get(k) for k in data}
            flat["vector_index_ids"] = [
                v for item in data.getlist("vector_index_ids") for v in str(item).split(",") if v
            ]
            data = flat
        return super().to_internal_value(data)


class VectorIndexSerializer(serializers.ModelSerializer[VectorIndex]):
    provider_id = serializers.UUIDField(read_only=True, allow_null=True)

    class Meta:
        model = VectorIndex
        fields = [
            "id",
            "name",
            "description",
            "embedder",
            "embedding_model",
            "dimensions",
            "provider_id",
            "chunk_size_tokens",
            "chunk_overlap_tokens",
            "status",
            "file_count",
            "chunk_count",
            "bytes",
            "expires_after_days",
            "last_active_at",
            "expires_at",
            "created_at",
            "updated_at",
        ]
        read_only_fields = fields


class VectorIndexCreateSerializer(serializers.Serializer[Any]):
    name = serializers.CharField(max_length=200)
    description = serializers.CharField(
        required=False, allow_blank=True, default="", max_length=DESCRIPTION_MAX_LENGTH
    )
    embedder = serializers.ChoiceField(
        choices=VectorIndex.Embedder.choices,
        required=False,
        help_text="Default: the server's EMBEDDER_DEFAULT (local all-MiniLM-L6-v2).",
    )
    embedding_model = serializers.CharField(max_length=200, required=False)
    dimensions = serializers.IntegerField(required=False)
    provider_id = serializers.UUIDField(required=False, help_text="For openai embedders.")
    chunk_size_tokens = serializers.IntegerField(required=False, default=800)
    chunk_overlap_tokens = serializers.IntegerField(required=False, default=400)
    expires_after_days = serializers.IntegerField(required=False, allow_null=True, default=None)


class VectorIndexUpdateSerializer(serializers.Serializer[Any]):
    name = serializers.CharField(max_length=200, required=False)
    description = serializers.CharField(
        required=False, allow_blank=True, max_length=DESCRIPTION_MAX_LENGTH
    )
    expires_after_days = serializers.IntegerField(required=False, allow_null=True)


class AttachmentSerializer(serializers.ModelSerializer[VectorIndexFile]):
    file_id = serializers.UUIDField(read_only=True)
    file_name = serializers.CharField(source="file.name", read_only=True)
    file_status = serializers.CharField(source="file.status", read_only=True)
    progress = serializers.IntegerField(source="file.progress", read_only=True)

    class Meta:
        model = VectorIndexFile
        fields = [
            "file_id",
            "file_name",
            "file_status",
            "status",
            "progress",
            "attributes",
            "chunk_count",
            "token_count",
            "bytes",
            "error_code",
            "error_message",
            "created_at",
            "processed_at",
        ]
        read_only_fields = fields


class AttachSerializer(serializers.Serializer[Any]):
    file_id = serializers.UUIDField()
    attributes = _attributes_field()
    copy_from_index_id = serializers.UUIDField(
        required=False,
        help_text="Copy the file's chunks and vectors from another of your indices with the same "
        "embedding model, dimensions and chunking, instead of embedding it again.",
    )


class SearchSerializer(serializers.Serializer[Any]):
    query = serializers.CharField(max_length=4000, trim_whitespace=True)
    top_k = serializers.IntegerField(min_value=1, max_value=MAX_TOP_K, default=10)
    mode = serializers.ChoiceField(choices=MODES, default="vector")
    file_ids = serializers.ListField(
        child=serializers.UUIDField(), required=False, max_length=MAX_FILE_IDS
    )
    filters = JSONShapeField(
        shape=FILTERS_SHAPE,
        check=check_filters,
        schema=FILTERS_SCHEMA,
        required=False,
        help_text="Attachment attributes to match: {name: value or [any of values]}; every "
        "name must match.",
    )
    score_threshold = serializers.FloatField(required=False, allow_null=True, default=None)


class SearchHitSerializer(serializers.Serializer[Any]):
    chunk_id = serializers.IntegerField()
    score = serializers.FloatField()
    text = serializers.CharField()
    file_id = serializers.UUIDField()
    file_name = serializers.CharField()
    position = serializers.IntegerField(help_text="The chunk's ordinal within its file.")
    page = serializers.IntegerField(allow_null=True, help_text="PDF page the chunk starts on.")
    char_start = serializers.IntegerField()
    char_end = serializers.IntegerField()
    attributes = serializers.DictField()
