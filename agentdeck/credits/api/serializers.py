"""Input and output serializers of the credits API."""

from __future__ import annotations

from typing import Any

from rest_framework import serializers

from agentdeck.credits.models import CreditTransaction, ModelPrice
from agentdeck.credits.units import (
    MAX_GRANT_MICROS,
    MAX_PRICE_PER_MILLION,
    MAX_REASON_CHARS,
    to_credits,
)


def credits_text(micros: int) -> str:
    """Micro-credits as the decimal string of credits the API shows beside each amount."""
    return str(to_credits(micros))


class BalanceSerializer(serializers.Serializer[Any]):
    balance = serializers.IntegerField(help_text="Micro-credits (1 credit = 1,000,000).")
    reserved = serializers.IntegerField(help_text="Held by runs in flight.")
    available = serializers.IntegerField()
    balance_credits = serializers.CharField()
    reserved_credits = serializers.CharField()
    available_credits = serializers.CharField()
    lifetime_granted = serializers.IntegerField()
    lifetime_spent = serializers.IntegerField()
    micros_per_credit = serializers.IntegerField()


class TransactionSerializer(serializers.ModelSerializer[CreditTransaction]):
    run = serializers.UUIDField(source="run_id", read_only=True, allow_null=True)
    amount_credits = serializers.SerializerMethodField()

    class Meta:
        model = CreditTransaction
        fields = [
            "id",
            "kind",
            "amount",
            "amount_credits",
            "reserved_delta",
            "balance_after",
            "reserved_after",
            "run",
            "idempotency_key",
            "actor",
            "reason",
            "created_at",
        ]
        read_only_fields = fields

    def get_amount_credits(self, obj: CreditTransaction) -> str:
        return credits_text(obj.amount)


class TransactionQuerySerializer(serializers.Serializer[Any]):
    # allow_blank documents what DRF does with `?kind=`: an empty value is no filter.
    kind = serializers.ChoiceField(
        choices=CreditTransaction.Kind.choices, required=False, allow_blank=True
    )
    created_after = serializers.DateTimeField(required=False)
    created_before = serializers.DateTimeField(required=False)


class GrantSerializer(serializers.Serializer[Any]):
    user_id = serializers.CharField(max_length=64, help_text="users.id of the recipient.")
    amount = serializers.IntegerField(
        help_text=f"Micro-credits, positive, at most {MAX_GRANT_MICROS} (`invalid_amount` else)."
    )
    idempotency_key = serializers.CharField(
        max_length=200, help_text="The payment id: retries are safe."
    )
    kind = serializers.ChoiceField(
        choices=["grant", "purchase"], required=False, default="purchase"
    )
    reason = serializers.CharField(
        required=False, allow_blank=True, default="", max_length=MAX_REASON_CHARS
    )


class ModelPriceSerializer(serializers.ModelSerializer[ModelPrice]):
    input_per_million = serializers.IntegerField(
        min_value=0, max_value=MAX_PRICE_PER_MILLION, help_text="Micro-credits per million tokens."
    )
    cached_input_per_million = serializers.IntegerField(
        min_value=0, max_value=MAX_PRICE_PER_MILLION
    )
    output_per_million = serializers.IntegerField(min_value=0, max_value=MAX_PRICE_PER_MILLION)

    class Meta:
        model = ModelPrice
        fields = [
            "id",
            "provider_kind",
            "model",
            "input_per_million",
            "cached_input_per_million",
            "output_per_million",
            "effective_from",
        ]
        read_only_fields = ["id"]
