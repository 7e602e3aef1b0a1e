from django.urls import path

from agentdeck.credits.api.views import BalanceApi, GrantApi, ModelPriceListApi, TransactionListApi

urlpatterns = [
    path("credits/", BalanceApi.as_view(), name="credits"),
    path("credits/transactions/", TransactionListApi.as_view(), name="credit-transactions"),
    path("credits/grants/", GrantApi.as_view(), name="credit-grants"),
    path("model-prices/", ModelPriceListApi.as_view(), name="model-prices"),
]
