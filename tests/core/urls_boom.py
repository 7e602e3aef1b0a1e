"""URLs for error-handling tests: DRF views and plain Django views that crash or raise."""

from django.core.exceptions import ValidationError
from django.urls import include, path
from rest_framework.permissions import AllowAny
from rest_framework.views import APIView


class BoomApi(APIView):
    permission_classes = [AllowAny]

    def get(self, request):
        raise RuntimeError("kaboom")


def plain_boom(request):
    raise RuntimeError("plain kaboom")


# What model validation (full_clean, a field's to_python) raises when it escapes a view.
DJANGO_ERRORS = {
    "message": ValidationError("Enter a whole number.", code="invalid"),
    "list": ValidationError(
        [ValidationError("Too short.", code="min_length"), ValidationError("Bad.", code="bad")]
    ),
    "dict": ValidationError(
        {"slug": [ValidationError("Taken.", code="unique")], "name": ["Required."]}
    ),
}


class DjangoValidationApi(APIView):
    permission_classes = [AllowAny]

    def get(self, request, shape):
        raise DJANGO_ERRORS[shape]


def plain_django_validation(request, shape):
    raise DJANGO_ERRORS[shape]


urlpatterns = [
    path("api/v1/boom", BoomApi.as_view()),
    path("api/v1/plain-boom", plain_boom),
    path("api/v1/django-validation/<str:shape>", DjangoValidationApi.as_view()),
    path("api/v1/plain-django-validation/<str:shape>", plain_django_validation),
    path("", include("config.urls")),
]
