"""HTTP layer of providers: list, read, add, change, delete, and the models they offer. Thin:
validate, call one service or selector, render."""

from __future__ import annotations

from typing import cast

from drf_spectacular.utils import (
    OpenApiExample,
    OpenApiResponse,
    extend_schema,
    extend_schema_view,
)
from rest_framework import status as http
from rest_framework import viewsets
from rest_framework.decorators import action
from rest_framework.request import Request
from rest_framework.response import Response

from agentdeck.accounts.models import User
from agentdeck.agents import selectors
from agentdeck.agents.api.serializers.providers import (
    ProviderModelsSerializer,
    ProviderSerializer,
    ProviderWriteSerializer,
)
from agentdeck.agents.services import providers as provider_services

# --- providers -----------------------------------------------------------------------------------


@extend_schema_view(
    list=extend_schema(summary="Providers you can use (shared ones and your own)"),
    retrieve=extend_schema(summary="A provider"),
)
@extend_schema(tags=["providers"])
class ProviderViewSet(viewsets.ReadOnlyModelViewSet):
    serializer_class = ProviderSerializer
    lookup_value_regex = "[0-9a-f-]{36}"

    def get_queryset(self):
        return selectors.providers_visible_to(cast(User, self.request.user))

    @extend_schema(
        summary="Add a provider",
        request=ProviderWriteSerializer,
        examples=[
            OpenApiExample(
                "Ollama on this machine",
                value={
                    "name": "ollama",
                    "kind": "openai_compatible",
                    "base_url": "http://localhost:11434/v1",
                },
                request_only=True,
            ),
            OpenApiExample(
                "The offline mock", value={"name": "mock", "kind": "mock"}, request_only=True
            ),
        ],
        responses={
            201: ProviderSerializer,
            403: OpenApiResponse(description="staff_only: a shared provider"),
            409: OpenApiResponse(description="provider_name_taken"),
        },
    )
    def create(self, request: Request) -> Response:
        data = ProviderWriteSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        provider = provider_services.provider_create(
            actor=cast(User, request.user), **data.validated_data
        )
        return Response(ProviderSerializer(provider).data, status=http.HTTP_201_CREATED)

    @extend_schema(
        summary="Change a provider",
        request=ProviderWriteSerializer(partial=True),
        responses={
            200: ProviderSerializer,
            403: OpenApiResponse(description="staff_only: a shared provider"),
            409: OpenApiResponse(description="provider_name_taken"),
        },
    )
    def partial_update(self, request: Request, pk: str | None = None) -> Response:
        provider = self.get_object()
        data = ProviderWriteSerializer(instance=provider, data=request.data, partial=True)
        data.is_valid(raise_exception=True)
        fields = dict(data.validated_data)
        fields.pop("shared", None)
        provider = provider_services.provider_update(
            provider=provider, actor=cast(User, request.user), **fields
        )
        return Response(ProviderSerializer(provider).data)

    @extend_schema(
        summary="Delete a provider (refused while agents use it)",
        responses={
            204: None,
            403: OpenApiResponse(description="staff_only: a shared provider"),
            409: OpenApiResponse(description="provider_in_use"),
        },
    )
    def destroy(self, request: Request, pk: str | None = None) -> Response:
        provider_services.provider_delete(
            provider=self.get_object(), actor=cast(User, request.user)
        )
        return Response(status=http.HTTP_204_NO_CONTENT)

    @extend_schema(
        summary="Models the provider offers",
        responses={
            200: ProviderModelsSerializer,
            502: OpenApiResponse(
                description="provider_error, provider_auth_failed: the provider did not answer, "
                "or refused the key."
            ),
        },
    )
    @action(detail=True, methods=["get"])
    def models(self, request: Request, pk: str | None = None) -> Response:
        models, listable = provider_services.provider_list_models(provider=self.get_object())
        return Response({"models": models, "listable": listable})
