"""HTTP layer of agents: list, read, create, change (a new version when behaviour changes),
delete, versions, restore, and starting a run. Thin: validate, call one service or selector,
render."""

from __future__ import annotations

import functools
from typing import Any, cast

from django.shortcuts import get_object_or_404
from drf_spectacular.utils import (
    OpenApiExample,
    OpenApiParameter,
    OpenApiResponse,
    extend_schema,
)
from rest_framework import status as http
from rest_framework import viewsets
from rest_framework.decorators import action
from rest_framework.exceptions import ErrorDetail, ValidationError
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from agentdeck.accounts.models import User
from agentdeck.agents import selectors
from agentdeck.agents.api import run_wait
from agentdeck.agents.api.serializers.agents import (
    AgentListQuerySerializer,
    AgentSerializer,
    AgentVersionSerializer,
    AgentWriteSerializer,
)
from agentdeck.agents.api.serializers.runs import RunCreateSerializer, RunSerializer
from agentdeck.agents.models import AgentRun
from agentdeck.agents.models.run import TERMINAL_STATUSES
from agentdeck.agents.services import agents as agent_services
from agentdeck.agents.services.runs import agent_run_start
from agentdeck.core.asgi import FINISH_ON_LOOP

# A CharField's: never None.
IDEMPOTENCY_KEY_MAX_LENGTH = cast(int, AgentRun._meta.get_field("idempotency_key").max_length)
IDEMPOTENCY_HEADER = OpenApiParameter(
    "Idempotency-Key",
    {"type": "string", "maxLength": IDEMPOTENCY_KEY_MAX_LENGTH},
    OpenApiParameter.HEADER,
    required=False,
    description="Retry-safe creation: the same key with the same body returns the same run; "
    "with a different body, 409 idempotency_conflict.",
)


def _idempotency_key(request: Request) -> str | None:
    """The Idempotency-Key header, refused (400 naming it) when longer than its column."""
    key = request.headers.get("Idempotency-Key") or None
    if key is not None and len(key) > IDEMPOTENCY_KEY_MAX_LENGTH:
        message = f"At most {IDEMPOTENCY_KEY_MAX_LENGTH} characters."
        raise ValidationError({"Idempotency-Key": [ErrorDetail(message, code="max_length")]})
    return key


@extend_schema(tags=["agents"])
class AgentViewSet(viewsets.GenericViewSet):
    serializer_class = AgentSerializer
    lookup_value_regex = "[0-9a-f-]{36}"

    def get_queryset(self):
        if self.action == "runs":
            return selectors.agents_runnable_by(cast(User, self.request.user))
        return selectors.agents_visible_to(cast(User, self.request.user))

    @extend_schema(summary="Your agents and public ones", parameters=[AgentListQuerySerializer])
    def list(self, request: Request) -> Response:
        query = AgentListQuerySerializer(data=request.query_params)
        query.is_valid(raise_exception=True)
        qs = selectors.agent_list(user=cast(User, request.user), **query.validated_data)
        page = self.paginate_queryset(qs)
        return self.get_paginated_response(AgentSerializer(page, many=True).data)

    @extend_schema(summary="An agent")
    def retrieve(self, request: Request, pk: str | None = None) -> Response:
        return Response(AgentSerializer(self.get_object()).data)

    @extend_schema(
        summary="Create an agent (version 1)",
        request=AgentWriteSerializer,
        responses={201: AgentSerializer},
    )
    def create(self, request: Request) -> Response:
        user = cast(User, request.user)
        data = AgentWriteSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        values = selectors.agent_references_resolve(user=user, values=data.validated_data)
        values.pop("status", None)  # set by staff on an existing agent (agent_update), not here
        agent = agent_services.agent_create(owner=user, actor=user, **values)
        return Response(
            AgentSerializer(selectors.agent_get(user=user, agent_id=agent.pk)).data,
            status=http.HTTP_201_CREATED,
        )

    @extend_schema(
        summary="Change an agent; behaviour changes make a new version",
        request=AgentWriteSerializer(partial=True),
        responses=AgentSerializer,
    )
    def partial_update(self, request: Request, pk: str | None = None) -> Response:
        agent = self.get_object()
        agent_services.agent_check_can_change(agent=agent, actor=cast(User, request.user))
        data = AgentWriteSerializer(data=request.data, partial=True)
        data.is_valid(raise_exception=True)
        values = selectors.agent_references_resolve(
            user=cast(User, request.user), values=data.validated_data
        )
        agent_services.agent_update(agent=agent, actor=cast(User, request.user), **values)
        return Response(
            AgentSerializer(
                selectors.agent_get(user=cast(User, request.user), agent_id=agent.pk)
            ).data
        )

    @extend_schema(
        summary="Delete an agent and its runs",
        responses={204: None, 409: OpenApiResponse(description="agent_busy: runs in flight")},
    )
    def destroy(self, request: Request, pk: str | None = None) -> Response:
        agent = self.get_object()
        agent_services.agent_check_can_change(agent=agent, actor=cast(User, request.user))
        agent_services.agent_delete(agent=agent)
        return Response(status=http.HTTP_204_NO_CONTENT)

    @extend_schema(
        summary="The agent's versions, newest first", responses=AgentVersionSerializer(many=True)
    )
    @action(detail=True, methods=["get"], pagination_class=None)
    def versions(self, request: Request, pk: str | None = None) -> Response:
        versions = selectors.agent_version_list(agent=self.get_object())
        return Response(AgentVersionSerializer(versions, many=True).data)

    @extend_schema(
        summary="Run the agent",
        request=RunCreateSerializer,
        examples=[
            OpenApiExample(
                "Wait for the answer",
                value={"input": "Hello, agentdeck!", "mode": "wait"},
                request_only=True,
            )
        ],
        parameters=[IDEMPOTENCY_HEADER],
        responses={
            202: OpenApiResponse(
                RunSerializer,
                description="Queued (mode=background), or still running when mode=wait timed out.",
            ),
            200: OpenApiResponse(
                RunSerializer,
                description="Finished (mode=wait), or the "
                "existing run for a replayed Idempotency-Key.",
            ),
            402: OpenApiResponse(description="insufficient_credits"),
            409: OpenApiResponse(
                description="agent_suspended, conversation_busy, idempotency_conflict"
            ),
            413: OpenApiResponse(description="input_too_large"),
        },
    )
    @action(detail=True, methods=["post"])
    def runs(self, request: Request, pk: str | None = None) -> Response:
        agent = self.get_object()
        serializer = RunCreateSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        values = dict(serializer.validated_data)
        conversation = None
        if conversation_id := values.pop("conversation_id", None):
            conversation = selectors.conversation_resolve(
                user=cast(User, request.user), conversation_id=conversation_id
            )
        run, created = agent_run_start(
            user=cast(User, request.user),
            agent=agent,
            conversation=conversation,
            idempotency_key=_idempotency_key(request),
            **values,
        )
        data: dict[str, Any] = RunSerializer(run).data
        waiting = values["mode"] == AgentRun.Mode.WAIT and created
        on_loop = FINISH_ON_LOOP in getattr(request, "scope", {})  # the ASGI request's
        if waiting and not on_loop:
            data = run_wait.wait_here(run.id)
        status = (
            http.HTTP_200_OK
            if (data["status"] in TERMINAL_STATUSES or not created)
            else http.HTTP_202_ACCEPTED
        )
        response = Response(data, status=status)
        if waiting and on_loop:
            # Waited for on the event loop, holding no thread (api/run_wait.py).
            response.finish_on_loop = functools.partial(  # type: ignore[attr-defined]  # read by core.asgi
                run_wait.finish_waiting_run, run_id=run.id
            )
        return response


@extend_schema(tags=["agents"])
class AgentVersionRestoreApi(APIView):
    @extend_schema(
        summary="Make an old version current again (as a new version)",
        request=None,
        responses=AgentSerializer,
    )
    def post(self, request: Request, pk: str, number: int) -> Response:
        agent = get_object_or_404(selectors.agents_visible_to(cast(User, request.user)), pk=pk)
        agent_services.agent_check_can_change(agent=agent, actor=cast(User, request.user))
        agent = agent_services.agent_version_restore(
            agent=agent, number=number, actor=cast(User, request.user)
        )
        return Response(
            AgentSerializer(
                selectors.agent_get(user=cast(User, request.user), agent_id=agent.pk)
            ).data
        )
