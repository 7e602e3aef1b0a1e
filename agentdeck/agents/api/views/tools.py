"""HTTP layer of tools: list, read, create, change, delete, MCP refresh, OpenAPI import. Thin:
validate, call one service or selector, render."""

from __future__ import annotations

from typing import cast

from drf_spectacular.utils import (
    OpenApiExample,
    OpenApiResponse,
    extend_schema,
)
from rest_framework import status as http
from rest_framework import viewsets
from rest_framework.decorators import action
from rest_framework.request import Request
from rest_framework.response import Response

from agentdeck.accounts.models import User
from agentdeck.agents import selectors
from agentdeck.agents.api.serializers.tools import (
    OpenApiImportSerializer,
    ToolSerializer,
    ToolWriteSerializer,
)
from agentdeck.agents.services import tools as tool_services

# --- tools ---------------------------------------------------------------------------------------


@extend_schema(tags=["tools"])
class ToolViewSet(viewsets.GenericViewSet):
    serializer_class = ToolSerializer
    lookup_value_regex = "[0-9a-f-]{36}"

    def get_queryset(self):
        return selectors.tools_visible_to(cast(User, self.request.user))

    @extend_schema(summary="Your tools")
    def list(self, request: Request) -> Response:
        page = self.paginate_queryset(self.get_queryset())
        return self.get_paginated_response(ToolSerializer(page, many=True).data)

    @extend_schema(summary="A tool")
    def retrieve(self, request: Request, pk: str | None = None) -> Response:
        return Response(ToolSerializer(self.get_object()).data)

    @extend_schema(
        summary="Create a tool",
        request=ToolWriteSerializer,
        examples=[
            OpenApiExample(
                "A built-in",
                value={
                    "name": "calculator",
                    "kind": "builtin",
                    "config": {"builtin": "calculator"},
                },
                request_only=True,
            )
        ],
        responses={201: ToolSerializer, 409: OpenApiResponse(description="tool_name_taken")},
    )
    def create(self, request: Request) -> Response:
        data = ToolWriteSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        tool = tool_services.tool_create(owner=cast(User, request.user), **data.validated_data)
        return Response(ToolSerializer(tool).data, status=http.HTTP_201_CREATED)

    @extend_schema(
        summary="Change a tool",
        request=ToolWriteSerializer(partial=True),
        responses={200: ToolSerializer, 409: OpenApiResponse(description="tool_name_taken")},
    )
    def partial_update(self, request: Request, pk: str | None = None) -> Response:
        tool = self.get_object()
        data = ToolWriteSerializer(data=request.data, partial=True)
        data.is_valid(raise_exception=True)
        tool = tool_services.tool_update(tool=tool, **data.validated_data)
        return Response(ToolSerializer(tool).data)

    @extend_schema(
        summary="Delete a tool (refused while agents use it)",
        responses={204: None, 409: OpenApiResponse(description="tool_in_use")},
    )
    def destroy(self, request: Request, pk: str | None = None) -> Response:
        tool_services.tool_delete(tool=self.get_object())
        return Response(status=http.HTTP_204_NO_CONTENT)

    @extend_schema(
        summary="MCP: discover and store the server's tools",
        request=None,
        responses={
            200: ToolSerializer,
            400: OpenApiResponse(description="not_mcp: only MCP tools can be refreshed"),
            502: OpenApiResponse(
                description="mcp_unreachable: the server's URL is not allowed, it did not answer "
                "in time, or it failed to list its tools."
            ),
        },
    )
    @action(detail=True, methods=["post"])
    def refresh(self, request: Request, pk: str | None = None) -> Response:
        return Response(ToolSerializer(tool_services.tool_refresh_mcp(tool=self.get_object())).data)

    @extend_schema(
        summary="Import the operations of an OpenAPI 3 document as http tools",
        request=OpenApiImportSerializer,
        responses={201: ToolSerializer(many=True)},
    )
    @action(detail=False, methods=["post"], url_path="import-openapi", pagination_class=None)
    def import_openapi(self, request: Request) -> Response:
        data = OpenApiImportSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        tools = tool_services.tool_import_openapi(
            owner=cast(User, request.user), **data.validated_data
        )
        return Response(ToolSerializer(tools, many=True).data, status=http.HTTP_201_CREATED)
