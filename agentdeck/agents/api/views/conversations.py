"""HTTP layer of conversations: list, read, start, rename, delete, and their history. Thin:
validate, call one service or selector, render."""

from __future__ import annotations

from typing import cast

from django.shortcuts import get_object_or_404
from drf_spectacular.utils import (
    OpenApiResponse,
    extend_schema,
)
from rest_framework import status as http
from rest_framework import viewsets
from rest_framework.generics import ListAPIView
from rest_framework.request import Request
from rest_framework.response import Response

from agentdeck.accounts.models import User
from agentdeck.agents import selectors
from agentdeck.agents.api.serializers.conversations import (
    ConversationCreateSerializer,
    ConversationItemSerializer,
    ConversationSerializer,
    ConversationUpdateSerializer,
)
from agentdeck.agents.models import ConversationItem
from agentdeck.agents.services import conversations as conversation_services
from agentdeck.core.pagination import CreatedAtCursorPagination

# --- conversations -------------------------------------------------------------------------------


@extend_schema(tags=["conversations"])
class ConversationViewSet(viewsets.GenericViewSet):
    serializer_class = ConversationSerializer
    lookup_value_regex = "[0-9a-f-]{36}"

    def get_queryset(self):
        return selectors.conversations_visible_to(cast(User, self.request.user))

    @extend_schema(summary="Your conversations")
    def list(self, request: Request) -> Response:
        page = self.paginate_queryset(self.get_queryset())
        return self.get_paginated_response(ConversationSerializer(page, many=True).data)

    @extend_schema(summary="A conversation")
    def retrieve(self, request: Request, pk: str | None = None) -> Response:
        return Response(ConversationSerializer(self.get_object()).data)

    @extend_schema(
        summary="Start a conversation with an agent",
        request=ConversationCreateSerializer,
        responses={201: ConversationSerializer},
    )
    def create(self, request: Request) -> Response:
        data = ConversationCreateSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        agent = selectors.agent_resolve(
            user=cast(User, request.user), agent_id=data.validated_data["agent"]
        )
        conversation = conversation_services.conversation_create(
            owner=cast(User, request.user), agent=agent, title=data.validated_data["title"]
        )
        return Response(ConversationSerializer(conversation).data, status=http.HTTP_201_CREATED)

    @extend_schema(
        summary="Rename a conversation",
        # Spelled out: drf-spectacular documents every PATCH body as all-optional, but this one
        # validates ConversationUpdateSerializer whole, so `title` is required.
        request={
            "application/json": {
                "type": "object",
                "properties": {"title": {"type": "string", "maxLength": 200}},
                "required": ["title"],
            }
        },
        responses=ConversationSerializer,
    )
    def partial_update(self, request: Request, pk: str | None = None) -> Response:
        data = ConversationUpdateSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        conversation = conversation_services.conversation_update(
            conversation=self.get_object(), title=data.validated_data["title"]
        )
        return Response(ConversationSerializer(conversation).data)

    @extend_schema(
        summary="Delete a conversation and its history",
        responses={204: None, 409: OpenApiResponse(description="conversation_busy")},
    )
    def destroy(self, request: Request, pk: str | None = None) -> Response:
        conversation_services.conversation_delete(conversation=self.get_object())
        return Response(status=http.HTTP_204_NO_CONTENT)


@extend_schema(tags=["conversations"])
class ConversationItemsApi(ListAPIView):
    serializer_class = ConversationItemSerializer
    pagination_class = type("ItemCursor", (CreatedAtCursorPagination,), {"ordering": ("position",)})

    @extend_schema(summary="The conversation's history (SDK input items), oldest first")
    def get(self, request: Request, *args, **kwargs) -> Response:
        return super().get(request, *args, **kwargs)

    def get_queryset(self):
        if getattr(self, "swagger_fake_view", False):  # drf-spectacular introspects without a pk
            return ConversationItem.objects.none()
        conversation = get_object_or_404(
            selectors.conversations_visible_to(cast(User, self.request.user)), pk=self.kwargs["pk"]
        )
        return selectors.conversation_items(conversation=conversation)
