"""HTTP layer of credits: balance, ledger, grants and model prices."""

from __future__ import annotations

from typing import Any, cast

from django.db.models import QuerySet
from drf_spectacular.utils import OpenApiResponse, extend_schema
from rest_framework import status
from rest_framework.generics import ListAPIView
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from agentdeck.accounts.models import User
from agentdeck.accounts.selectors import user_get_by_pk
from agentdeck.core.exceptions import NotFound
from agentdeck.credits.api.serializers import (
    BalanceSerializer,
    GrantSerializer,
    ModelPriceSerializer,
    TransactionQuerySerializer,
    TransactionSerializer,
    credits_text,
)
from agentdeck.credits.models import CreditTransaction, ModelPrice
from agentdeck.credits.selectors import credit_transaction_list
from agentdeck.credits.services import (
    credits_account,
    credits_grant,
    model_price_check_can_create,
    model_price_create,
)
from agentdeck.credits.units import MICROS_PER_CREDIT


@extend_schema(tags=["credits"])
class BalanceApi(APIView):
    @extend_schema(summary="Your balance", responses=BalanceSerializer)
    def get(self, request: Request) -> Response:
        account = credits_account(user_id=request.user.pk)
        return Response(
            {
                "balance": account.balance,
                "reserved": account.reserved,
                "available": account.available,
                "balance_credits": credits_text(account.balance),
                "reserved_credits": credits_text(account.reserved),
                "available_credits": credits_text(account.available),
                "lifetime_granted": account.lifetime_granted,
                "lifetime_spent": account.lifetime_spent,
                "micros_per_credit": MICROS_PER_CREDIT,
            }
        )


@extend_schema(tags=["credits"])
class TransactionListApi(ListAPIView[CreditTransaction]):
    serializer_class = TransactionSerializer

    @extend_schema(summary="Your ledger, newest first", parameters=[TransactionQuerySerializer])
    def get(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        return super().get(request, *args, **kwargs)

    def get_queryset(self) -> QuerySet[CreditTransaction]:
        query = TransactionQuerySerializer(data=self.request.query_params)
        query.is_valid(raise_exception=True)
        return credit_transaction_list(user=cast(User, self.request.user), **query.validated_data)


@extend_schema(tags=["credits"])
class GrantApi(APIView):
    """For the Next.js server: credit a purchase. Needs an API key with scope ``credits:grant``."""

    required_scopes = ("credits:grant",)

    @extend_schema(
        summary="Grant credits (Next.js server, API key with credits:grant)",
        request=GrantSerializer,
        responses={
            201: TransactionSerializer,
            200: OpenApiResponse(TransactionSerializer, description="replayed"),
            409: OpenApiResponse(description="idempotency_conflict"),
        },
    )
    def post(self, request: Request) -> Response:
        # ApiKeyScopePermission has checked required_scopes: only a staff-owned API key with
        # credits:grant gets here (a JWT never holds that scope).
        data = GrantSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        user = user_get_by_pk(data.validated_data["user_id"])
        if user is None:
            raise NotFound("No such user.")
        tx, created = credits_grant(
            user=user,
            amount=data.validated_data["amount"],
            idempotency_key=data.validated_data["idempotency_key"],
            kind=data.validated_data["kind"],
            actor=CreditTransaction.Actor.SERVICE,
            actor_id=str(request.auth.pk),
            reason=data.validated_data["reason"],
        )
        return Response(
            TransactionSerializer(tx).data,
            status=status.HTTP_201_CREATED if created else status.HTTP_200_OK,
        )


@extend_schema(tags=["credits"])
class ModelPriceListApi(ListAPIView[ModelPrice]):
    serializer_class = ModelPriceSerializer
    queryset = ModelPrice.objects.all()

    @extend_schema(summary="Model prices (micro-credits per million tokens)")
    def get(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        return super().get(request, *args, **kwargs)

    @extend_schema(
        summary="Add a price (staff); a later effective_from supersedes, history stays",
        request=ModelPriceSerializer,
        responses={201: ModelPriceSerializer},
    )
    def post(self, request: Request) -> Response:
        actor = cast(User, request.user)
        model_price_check_can_create(actor=actor)
        data = ModelPriceSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        price = model_price_create(actor=actor, **data.validated_data)
        return Response(ModelPriceSerializer(price).data, status=status.HTTP_201_CREATED)
