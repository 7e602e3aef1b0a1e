"""HTTP layer of identity: the caller and their API keys."""

from __future__ import annotations

from typing import cast

from django.db.models import QuerySet
from drf_spectacular.utils import extend_schema
from rest_framework import mixins, status, viewsets
from rest_framework.decorators import action
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from agentdeck.accounts.api.serializers import (
    ApiKeyCreatedSerializer,
    ApiKeyCreateSerializer,
    ApiKeySerializer,
    MeSerializer,
)
from agentdeck.accounts.models import ApiKey, User
from agentdeck.accounts.selectors import api_key_list
from agentdeck.accounts.services import api_key_create, api_key_revoke
from agentdeck.core.permissions import IsOwnerOrStaff


class MeApi(APIView):
    @extend_schema(
        operation_id="me_retrieve", responses=MeSerializer, tags=["identity"], summary="The caller"
    )
    def get(self, request: Request) -> Response:
        return Response(MeSerializer(request.user, context={"request": request}).data)


@extend_schema(tags=["identity"])
class ApiKeyViewSet(mixins.ListModelMixin, mixins.RetrieveModelMixin, viewsets.GenericViewSet):
    """API keys for programs. The secret is returned once, by create."""

    serializer_class = ApiKeySerializer
    permission_classes = [*APIView.permission_classes, IsOwnerOrStaff]
    lookup_value_regex = "[0-9a-f-]{36}"

    def get_queryset(self) -> QuerySet[ApiKey]:
        return api_key_list(user=cast(User, self.request.user))

    @extend_schema(
        summary="Create an API key",
        request=ApiKeyCreateSerializer,
        responses={201: ApiKeyCreatedSerializer},
    )
    def create(self, request: Request) -> Response:
        serializer = ApiKeyCreateSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        api_key, secret = api_key_create(
            owner=cast(User, request.user),
            created_with=request.auth if isinstance(request.auth, ApiKey) else None,
            **serializer.validated_data,
        )
        api_key.secret = secret  # type: ignore[attr-defined]  # for ApiKeyCreatedSerializer, once
        return Response(ApiKeyCreatedSerializer(api_key).data, status=status.HTTP_201_CREATED)

    @extend_schema(summary="Revoke an API key", request=None, responses=ApiKeySerializer)
    @action(detail=True, methods=["post"])
    def revoke(self, request: Request, pk: str | None = None) -> Response:
        api_key = api_key_revoke(api_key=self.get_object())
        return Response(ApiKeySerializer(api_key).data)

    @extend_schema(summary="Revoke an API key (same as POST .../revoke/)", responses={204: None})
    def destroy(self, request: Request, pk: str | None = None) -> Response:
        api_key_revoke(api_key=self.get_object())
        return Response(status=status.HTTP_204_NO_CONTENT)
