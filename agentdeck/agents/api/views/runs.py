"""HTTP layer of runs: list, read, events, tool calls, approvals, cancel. (A run starts at
``POST /agents/{id}/runs/``, views/agents.py.) Thin: validate, call one service or selector,
render."""

from __future__ import annotations

from typing import cast

from drf_spectacular.utils import (
    OpenApiResponse,
    extend_schema,
)
from rest_framework import viewsets
from rest_framework.decorators import action
from rest_framework.request import Request
from rest_framework.response import Response

from agentdeck.accounts.models import User
from agentdeck.agents import selectors
from agentdeck.agents.api.serializers.runs import (
    ApprovalsSerializer,
    RunEventPageSerializer,
    RunEventSerializer,
    RunEventsQuerySerializer,
    RunListQuerySerializer,
    RunSerializer,
    ToolCallSerializer,
)
from agentdeck.agents.models.run import TERMINAL_STATUSES
from agentdeck.agents.services.runs import agent_run_approve, agent_run_cancel

# --- runs ----------------------------------------------------------------------------------------


@extend_schema(tags=["runs"])
class RunViewSet(viewsets.GenericViewSet):
    serializer_class = RunSerializer
    lookup_value_regex = "[0-9a-f-]{36}"

    def get_queryset(self):
        return selectors.run_list(user=cast(User, self.request.user))

    @extend_schema(summary="Your runs, newest first", parameters=[RunListQuerySerializer])
    def list(self, request: Request) -> Response:
        query = RunListQuerySerializer(data=request.query_params)
        query.is_valid(raise_exception=True)
        values = dict(query.validated_data)
        qs = selectors.run_list(
            user=cast(User, request.user), agent_id=values.pop("agent", None), **values
        )
        page = self.paginate_queryset(qs)
        return self.get_paginated_response(RunSerializer(page, many=True).data)

    @extend_schema(summary="A run: status, output, error, usage, timings")
    def retrieve(self, request: Request, pk: str | None = None) -> Response:
        return Response(RunSerializer(self.get_object()).data)

    @extend_schema(
        summary="The run's persisted events after a sequence number, in order",
        description=(
            "With `Accept: text/event-stream` the same events stream as Server-Sent Events: "
            "replay after `after` (or `Last-Event-ID`), then live; `id:` is the seq, `event:` the type, "
            "`data:` the JSON frame; a `: heartbeat` comment every 15 s; the stream ends after the "
            "terminal event. EventSource clients may pass `?token=`."
        ),
        parameters=[RunEventsQuerySerializer],
        responses={
            (200, "application/json"): RunEventPageSerializer,
            (200, "text/event-stream"): OpenApiResponse(
                response={"type": "string"}, description="Server-Sent Events, one per run event."
            ),
        },
    )
    @action(detail=True, methods=["get"])
    def events(self, request: Request, pk: str | None = None) -> Response:
        run = self.get_object()
        query = RunEventsQuerySerializer(data=request.query_params)
        query.is_valid(raise_exception=True)
        after, limit = query.validated_data["after"], query.validated_data["limit"]
        finished_before = (
            run.status in TERMINAL_STATUSES
        )  # read first: events never follow the terminal one
        events = list(selectors.run_events_after(run=run, after=after, limit=limit))
        next_after = events[-1].seq if events else after
        finished = finished_before and len(events) < limit
        return Response(
            {
                "results": RunEventSerializer(events, many=True).data,
                "next_after": next_after,
                "finished": finished,
            }
        )

    @extend_schema(
        summary="The run's tool calls, in order", responses=ToolCallSerializer(many=True)
    )
    @action(detail=True, methods=["get"], url_path="tool-calls", pagination_class=None)
    def tool_calls(self, request: Request, pk: str | None = None) -> Response:
        calls = selectors.run_tool_calls(run=self.get_object())
        return Response(ToolCallSerializer(calls, many=True).data)

    @extend_schema(
        summary="Approve or reject the calls a run is waiting on",
        description="When every pending call is answered the run is queued again and resumes from its "
        "stored state. Rejected calls get `message` (or a default) as their result.",
        request=ApprovalsSerializer,
        responses={200: RunSerializer, 409: OpenApiResponse(description="run_not_waiting")},
    )
    @action(detail=True, methods=["post"])
    def approvals(self, request: Request, pk: str | None = None) -> Response:
        data = ApprovalsSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        run = agent_run_approve(run=self.get_object(), decisions=data.validated_data["decisions"])
        return Response(RunSerializer(selectors.run_get(run_id=run.pk)).data)

    @extend_schema(
        summary="Cancel a run",
        request=None,
        responses={200: RunSerializer, 409: OpenApiResponse(description="run_not_cancellable")},
    )
    @action(detail=True, methods=["post"])
    def cancel(self, request: Request, pk: str | None = None) -> Response:
        run = agent_run_cancel(run=self.get_object())
        return Response(RunSerializer(run).data)
