"""URLs for error-handling tests: one DRF view and one plain Django view that crash."""

from django.urls import include, path
from rest_framework.permissions import AllowAny
from rest_framework.views import APIView


class BoomApi(APIView):
    permission_classes = [AllowAny]

    def get(self, request):
        raise RuntimeError("kaboom")


def plain_boom(request):
    raise RuntimeError("plain kaboom")


urlpatterns = [
    path("api/v1/boom", BoomApi.as_view()),
    path("api/v1/plain-boom", plain_boom),
    path("", include("config.urls")),
]
