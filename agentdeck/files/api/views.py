"""HTTP layer of files and vector indices: validate, call one service or selector, render."""

from __future__ import annotations

import uuid
from typing import Any, cast

from django.conf import settings
from django.db.models import QuerySet
from django.http import FileResponse
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import (
    OpenApiExample,
    OpenApiResponse,
    extend_schema,
    inline_serializer,
)
from rest_framework import serializers, viewsets
from rest_framework import status as http
from rest_framework.decorators import action
from rest_framework.generics import get_object_or_404
from rest_framework.parsers import FormParser, MultiPartParser
from rest_framework.request import Request
from rest_framework.response import Response

from agentdeck.accounts.models import User
from agentdeck.core.exceptions import NotFound
from agentdeck.core.parsers import StrictJSONParser
from agentdeck.files import selectors, services
from agentdeck.files.api.serializers import (
    AttachmentSerializer,
    AttachSerializer,
    FileSerializer,
    FileUploadSerializer,
    SearchHitSerializer,
    SearchSerializer,
    VectorIndexCreateSerializer,
    VectorIndexSerializer,
    VectorIndexUpdateSerializer,
)
from agentdeck.files.exceptions import FileTooLarge
from agentdeck.files.models import FileMetadata, VectorIndex
from agentdeck.files.parsing import ALLOWED_TYPES
from agentdeck.files.search import MODES


@extend_schema(tags=["files"])
class FileViewSet(viewsets.GenericViewSet[FileMetadata]):
    serializer_class = FileSerializer
    lookup_value_regex = "[0-9a-f-]{36}"
    parser_classes = [MultiPartParser, FormParser, StrictJSONParser]

    def get_queryset(self) -> QuerySet[FileMetadata]:
        return selectors.files_visible_to(cast(User, self.request.user))

    @extend_schema(summary="Your files, newest first")
    def list(self, request: Request) -> Response:
        page = self.paginate_queryset(self.get_queryset())
        return self.get_paginated_response(FileSerializer(page, many=True).data)

    @extend_schema(summary="A file: status, progress, counts, error")
    def retrieve(self, request: Request, pk: str | None = None) -> Response:
        return Response(FileSerializer(self.get_object()).data)

    @extend_schema(
        summary="Upload a file (multipart); identical bytes return the existing file",
        request={"multipart/form-data": FileUploadSerializer},
        responses={
            201: FileSerializer,
            200: OpenApiResponse(FileSerializer, description="Already uploaded (same sha256)."),
            400: OpenApiResponse(description="empty_file or invalid input (problem+json)."),
            404: OpenApiResponse(description="A vector index in vector_index_ids is not yours."),
            413: OpenApiResponse(description="file_too_large (problem+json)."),
            415: OpenApiResponse(description="unsupported_media_type (problem+json)."),
        },
    )
    def create(self, request: Request) -> Response:
        # Refuse an oversized body from its Content-Length, before reading it.
        length = int(request.META.get("CONTENT_LENGTH") or 0)
        if length > settings.FILE_UPLOAD_MAX_BYTES + 64 * 1024:
            raise FileTooLarge(
                f"The request has {length} bytes; files may have {settings.FILE_UPLOAD_MAX_BYTES}.",
                extra={"max_bytes": settings.FILE_UPLOAD_MAX_BYTES},
            )
        data = FileUploadSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        upload = data.validated_data["file"]
        if upload.size > settings.FILE_UPLOAD_MAX_BYTES:
            raise FileTooLarge(
                f"The file has {upload.size} bytes; the limit is {settings.FILE_UPLOAD_MAX_BYTES}.",
                extra={"max_bytes": settings.FILE_UPLOAD_MAX_BYTES},
            )
        indices = _indices(request, data.validated_data["vector_index_ids"])
        file, created = services.file_upload(
            owner=cast(User, request.user),
            name=upload.name or "file",
            data=upload.read(),
            declared_type=getattr(upload, "content_type", None),
            vector_indices=indices,
            attributes=data.validated_data["attributes"],
        )
        return Response(
            FileSerializer(file).data, status=http.HTTP_201_CREATED if created else http.HTTP_200_OK
        )

    @extend_schema(
        summary="Delete a file, its stored bytes and its chunks in every index",
        responses={204: None},
    )
    def destroy(self, request: Request, pk: str | None = None) -> Response:
        services.file_delete(file=self.get_object())
        return Response(status=http.HTTP_204_NO_CONTENT)

    @extend_schema(
        summary="The stored bytes, as uploaded",
        description="Served as an attachment with the file's `mime_type`.",
        # A stored JSON file is any JSON document, not a string of bytes.
        responses={
            (200, mime): OpenApiTypes.ANY if mime == "application/json" else OpenApiTypes.BINARY
            for mime in ALLOWED_TYPES
        },
    )
    @action(detail=True, methods=["get"])
    def content(self, request: Request, pk: str | None = None) -> FileResponse:
        file = self.get_object()
        response = FileResponse(
            file.content.open("rb"),
            as_attachment=True,
            filename=file.name,
            content_type=file.mime_type,
        )
        # Served as a download, never rendered: an uploaded HTML page must not run here.
        response["X-Content-Type-Options"] = "nosniff"
        response["Content-Security-Policy"] = "default-src 'none'; sandbox"
        return response

    @extend_schema(
        summary="Parse and embed again into every attached index",
        request=None,
        responses={202: FileSerializer, 409: OpenApiResponse(description="file_busy")},
    )
    @action(detail=True, methods=["post"])
    def reprocess(self, request: Request, pk: str | None = None) -> Response:
        file = services.file_reprocess(file=self.get_object())
        return Response(FileSerializer(file).data, status=http.HTTP_202_ACCEPTED)


def _indices(request: Request, ids: list[uuid.UUID]) -> list[VectorIndex]:
    indices, missing = selectors.vector_indices_by_id(user=cast(User, request.user), ids=ids)
    if missing:
        raise NotFound(f"Vector index {missing[0]} not found.")
    return indices


# --- vector indices -------------------------------------------------------------------------------


@extend_schema(tags=["vector-indices"])
class VectorIndexViewSet(viewsets.GenericViewSet[VectorIndex]):
    serializer_class = VectorIndexSerializer
    lookup_value_regex = "[0-9a-f-]{36}"

    def get_queryset(self) -> QuerySet[VectorIndex]:
        return selectors.vector_indices_visible_to(cast(User, self.request.user))

    @extend_schema(summary="Your vector indices")
    def list(self, request: Request) -> Response:
        page = self.paginate_queryset(self.get_queryset())
        return self.get_paginated_response(VectorIndexSerializer(page, many=True).data)

    @extend_schema(summary="A vector index: counts, size, status")
    def retrieve(self, request: Request, pk: str | None = None) -> Response:
        return Response(VectorIndexSerializer(self.get_object()).data)

    @extend_schema(
        summary="Create a vector index",
        request=VectorIndexCreateSerializer,
        examples=[OpenApiExample("Defaults", value={"name": "Handbook"}, request_only=True)],
        responses={201: VectorIndexSerializer},
    )
    def create(self, request: Request) -> Response:
        data = VectorIndexCreateSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        values = dict(data.validated_data)
        provider = selectors.vector_index_provider(
            user=cast(User, request.user), provider_id=values.pop("provider_id", None)
        )
        index = services.vector_index_create(
            owner=cast(User, request.user), provider=provider, **values
        )
        return Response(VectorIndexSerializer(index).data, status=http.HTTP_201_CREATED)

    @extend_schema(
        summary="Rename, describe or change the expiry of an index",
        request=VectorIndexUpdateSerializer,
        responses=VectorIndexSerializer,
    )
    def partial_update(self, request: Request, pk: str | None = None) -> Response:
        data = VectorIndexUpdateSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        index = services.vector_index_update(index=self.get_object(), **data.validated_data)
        return Response(VectorIndexSerializer(index).data)

    @extend_schema(
        summary="Delete an index and its chunks (the files stay)",
        responses={204: None, 409: OpenApiResponse(description="vector_index_in_use")},
    )
    def destroy(self, request: Request, pk: str | None = None) -> Response:
        services.vector_index_delete(index=self.get_object())
        return Response(status=http.HTTP_204_NO_CONTENT)

    @extend_schema(
        methods=["get"],
        summary="Files in the index, with each one's processing status and counts",
        responses=AttachmentSerializer(many=True),
    )
    @extend_schema(
        methods=["post"],
        summary="Attach one of your files (queued for embedding)",
        request=AttachSerializer,
        responses={
            201: AttachmentSerializer,
            200: OpenApiResponse(AttachmentSerializer, description="Already attached."),
            404: OpenApiResponse(description="No such index, file or copy_from_index_id of yours."),
            409: OpenApiResponse(
                description="embedding_dimensions_mismatch, embedding_model_mismatch or "
                "chunking_mismatch (copy_from_index_id), vector_index_expired."
            ),
        },
    )
    @action(detail=True, methods=["get", "post"])
    def files(self, request: Request, pk: str | None = None) -> Response:
        if request.method == "GET":
            qs = selectors.vector_index_attachment_list(index=self.get_object())
            # A page of attachments, not of this viewset's model (which the stubs expect).
            page = self.paginate_queryset(cast("QuerySet[Any]", qs))
            return self.get_paginated_response(AttachmentSerializer(page, many=True).data)
        data = AttachSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        index = self.get_object()
        file = _own_file(request, data.validated_data["file_id"])
        source = None
        if data.validated_data.get("copy_from_index_id"):
            source = get_object_or_404(
                self.get_queryset(), pk=data.validated_data["copy_from_index_id"]
            )
        attachment, created = services.vector_index_attach(
            index=index, file=file, attributes=data.validated_data["attributes"], copy_from=source
        )
        # Read again: the file's status may have changed with the attach.
        attachment = selectors.vector_index_attachment_get(attachment_id=attachment.pk)
        return Response(
            AttachmentSerializer(attachment).data,
            status=http.HTTP_201_CREATED if created else http.HTTP_200_OK,
        )

    @extend_schema(
        summary="Detach a file: its chunks leave the index", request=None, responses={204: None}
    )
    @action(detail=True, methods=["delete"], url_path=r"files/(?P<file_id>[0-9a-f-]{36})")
    def detach(
        self, request: Request, pk: str | None = None, file_id: str | None = None
    ) -> Response:
        index = self.get_object()
        services.vector_index_detach(index=index, file=_own_file(request, file_id))
        return Response(status=http.HTTP_204_NO_CONTENT)

    @extend_schema(
        summary="Search the index (vector, keyword or hybrid)",
        request=SearchSerializer,
        examples=[
            OpenApiExample(
                "Hybrid, five passages",
                value={"query": "How fast are expenses reimbursed?", "top_k": 5, "mode": "hybrid"},
                request_only=True,
            )
        ],
        responses={
            200: inline_serializer(
                "SearchResults",
                {
                    "query": serializers.CharField(),
                    "mode": serializers.ChoiceField(choices=MODES),
                    "results": SearchHitSerializer(many=True),
                },
            ),
            409: OpenApiResponse(description="vector_index_expired"),
            502: OpenApiResponse(
                description="provider_error, provider_auth_failed, provider_timeout: the index's "
                "embedding provider could not embed the query."
            ),
        },
    )
    @action(detail=True, methods=["post"])
    def search(self, request: Request, pk: str | None = None) -> Response:
        # Validated before the index is read: a refused body costs no query.
        data = SearchSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        index = self.get_object()
        v = data.validated_data
        hits = services.vector_index_query(
            index=index,
            query=v["query"],
            top_k=v["top_k"],
            mode=v["mode"],
            file_ids=[str(f) for f in v.get("file_ids") or []],
            attributes=v.get("filters") or None,
            score_threshold=v["score_threshold"],
        )
        return Response(
            {
                "query": v["query"],
                "mode": v["mode"],
                # The hits as SearchHitSerializer documents them, built directly: DRF's
                # serializer cost ~0.6 ms per 10 hits here (field copies per instance, a
                # to_representation per field), a tenth of the request.
                "results": [hit.as_dict() for hit in hits],
            }
        )


def _own_file(request: Request, file_id: uuid.UUID | str | None) -> FileMetadata:
    # DRF's get_object_or_404: a file_id of the wrong shape (the route takes any 36 hex digits
    # and dashes) is 404 like an unknown one, not a validation error.
    return get_object_or_404(selectors.files_visible_to(cast(User, request.user)), pk=file_id)
