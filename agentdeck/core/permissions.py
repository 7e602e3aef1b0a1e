"""Ownership rules every app reuses: users see their own objects, staff see all, and another
user's object is invisible (404, never 403, so ids cannot be probed)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, TypeVar

from django.db.models import Model, QuerySet
from rest_framework.permissions import BasePermission

if TYPE_CHECKING:
    from rest_framework.generics import GenericAPIView
    from rest_framework.permissions import _SupportsHasPermission
    from rest_framework.request import Request
    from rest_framework.views import APIView

    # What OwnerScopedMixin is mixed into, for the type checker only.
    _ViewBase = GenericAPIView[Any]
else:
    _ViewBase = object

_M = TypeVar("_M", bound=Model)


def is_staff(user: Any) -> bool:
    return bool(user and user.is_authenticated and user.is_staff)


def scope_to_owner(
    queryset: QuerySet[_M], user: Any, *, owner_field: str = "owner"
) -> QuerySet[_M]:
    """The rows ``user`` may see through the API. Staff see everything."""
    if is_staff(user):
        return queryset
    if not (user and user.is_authenticated):
        return queryset.none()
    return queryset.filter(**{owner_field: user})


class IsOwnerOrStaff(BasePermission):
    """Object permission: the object's owner or a staff member. Views should also scope their
    queryset with :func:`scope_to_owner`, so a foreign id answers 404 before this ever runs;
    this is the second lock on the door for views that fetch objects another way."""

    owner_field = "owner"

    def has_object_permission(self, request: Request, view: APIView, obj: Model) -> bool:
        if is_staff(request.user):
            return True
        owner_field = getattr(view, "owner_field", self.owner_field)
        owner_id = getattr(obj, f"{owner_field}_id", None)
        return owner_id is not None and owner_id == request.user.pk


class OwnerScopedMixin(_ViewBase):
    """For generic views and viewsets: ``get_queryset`` returns only what the caller may see."""

    owner_field = "owner"
    permission_classes_extra = (IsOwnerOrStaff,)

    def get_queryset(self) -> QuerySet[Any]:
        return scope_to_owner(
            super().get_queryset(), self.request.user, owner_field=self.owner_field
        )

    def get_permissions(self) -> Sequence[_SupportsHasPermission]:
        return [*super().get_permissions(), *(p() for p in self.permission_classes_extra)]
