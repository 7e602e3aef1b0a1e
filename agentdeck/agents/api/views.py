"""HTTP layer of the agents domain: validate, call one service or selector, render."""

from __future__ import annotations

import functools

from django.shortcuts import get_object_or_404
from drf_spectacular.utils import (
    OpenApiExample,
    OpenApiParameter,
    OpenApiResponse,
    extend_schema,
    extend_schema_view,
)
from rest_framework import status as http
from rest_framework import viewsets
from rest_framework.decorators import action
from rest_framework.exceptions import ErrorDetail, ValidationError
from rest_framework.generics import ListAPIView
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from agentdeck.agents import selectors
from agentdeck.agents.api import run_wait
from agentdeck.agents.api import serializers as s
from agentdeck.agents.exceptions import InvalidReference
from agentdeck.agents.models import AgentRun, AgentVersion, ConversationItem, Provider, Tool
from agentdeck.agents.models.run import TERMINAL_STATUSES
from agentdeck.agents.services import agents as agent_services
from agentdeck.agents.services import conversations as conversation_services
from agentdeck.agents.services import providers as provider_services
from agentdeck.agents.services import tools as tool_services
from agentdeck.agents.services.runs import agent_run_approve, agent_run_cancel, agent_run_start
from agentdeck.core.asgi import FINISH_ON_LOOP
from agentdeck.core.exceptions import PermissionDenied
from agentdeck.core.pagination import CreatedAtCursorPagination
from agentdeck.core.permissions import scope_to_owner
from agentdeck.files.models import VectorIndex

IDEMPOTENCY_KEY_MAX_LENGTH = AgentRun._meta.get_field("idempotency_key").max_length
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


def _require_owner_or_staff(request: Request, owner_id: str, what: str) -> None:
    if request.user.pk != owner_id and not request.user.is_staff:
        raise PermissionDenied(f"Only the owner can change this {what}.")


# --- providers -----------------------------------------------------------------------------------


@extend_schema_view(
    list=extend_schema(summary="Providers you can use (shared ones and your own)"),
    retrieve=extend_schema(summary="A provider"),
)
@extend_schema(tags=["providers"])
class ProviderViewSet(viewsets.ReadOnlyModelViewSet):
    serializer_class = s.ProviderSerializer
    lookup_value_regex = "[0-9a-f-]{36}"

    def get_queryset(self):
        return selectors.providers_visible_to(self.request.user)

    @extend_schema(
        summary="Add a provider",
        request=s.ProviderWriteSerializer,
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
            201: s.ProviderSerializer,
            403: OpenApiResponse(description="staff_only: a shared provider"),
            409: OpenApiResponse(description="provider_name_taken"),
        },
    )
    def create(self, request: Request) -> Response:
        data = s.ProviderWriteSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        provider = provider_services.provider_create(actor=request.user, **data.validated_data)
        return Response(s.ProviderSerializer(provider).data, status=http.HTTP_201_CREATED)

    @extend_schema(
        summary="Change a provider",
        request=s.ProviderWriteSerializer(partial=True),
        responses={
            200: s.ProviderSerializer,
            403: OpenApiResponse(description="staff_only: a shared provider"),
            409: OpenApiResponse(description="provider_name_taken"),
        },
    )
    def partial_update(self, request: Request, pk: str | None = None) -> Response:
        provider = self.get_object()
        data = s.ProviderWriteSerializer(instance=provider, data=request.data, partial=True)
        data.is_valid(raise_exception=True)
        fields = dict(data.validated_data)
        fields.pop("shared", None)
        provider = provider_services.provider_update(
            provider=provider, actor=request.user, **fields
        )
        return Response(s.ProviderSerializer(provider).data)

    @extend_schema(
        summary="Delete a provider (refused while agents use it)",
        responses={
            204: None,
            403: OpenApiResponse(description="staff_only: a shared provider"),
            409: OpenApiResponse(description="provider_in_use"),
        },
    )
    def destroy(self, request: Request, pk: str | None = None) -> Response:
        provider_services.provider_delete(provider=self.get_object(), actor=request.user)
        return Response(status=http.HTTP_204_NO_CONTENT)

    @extend_schema(
        summary="Models the provider offers",
        responses={
            200: s.ProviderModelsSerializer,
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


# --- agents --------------------------------------------------------------------------------------


@extend_schema(tags=["agents"])
class AgentViewSet(viewsets.GenericViewSet):
    serializer_class = s.AgentSerializer
    lookup_value_regex = "[0-9a-f-]{36}"

    def get_queryset(self):
        qs = selectors.agents_visible_to(self.request.user)
        if self.action == "runs":
            # Starting a run reads the agent row and its provider, not its tool, handoff and
            # index links (three queries on every POST .../runs/), nor its owner and metadata
            # (two joins the query compiler builds on every request).
            qs = qs.prefetch_related(None).select_related(None).select_related("provider")
        return qs

    @extend_schema(summary="Your agents and public ones", parameters=[s.AgentListQuerySerializer])
    def list(self, request: Request) -> Response:
        query = s.AgentListQuerySerializer(data=request.query_params)
        query.is_valid(raise_exception=True)
        qs = selectors.agent_list(user=request.user, **query.validated_data)
        page = self.paginate_queryset(qs)
        return self.get_paginated_response(s.AgentSerializer(page, many=True).data)

    @extend_schema(summary="An agent")
    def retrieve(self, request: Request, pk: str | None = None) -> Response:
        return Response(s.AgentSerializer(self.get_object()).data)

    def _resolve_graph(self, request: Request, values: dict) -> None:
        """Turn tool, handoff and vector index ids into rows the caller may use (else 400
        invalid_tool / invalid_handoff / invalid_vector_index)."""
        if "vector_index_ids" in values:
            ids = values.pop("vector_index_ids")
            indices = {
                i.pk: i
                for i in scope_to_owner(VectorIndex.objects.all(), request.user).filter(pk__in=ids)
            }
            missing = [str(i) for i in ids if i not in indices]
            if missing:
                raise InvalidReference(
                    f"Unknown vector index(es): {', '.join(missing)}.",
                    code="invalid_vector_index",
                )
            values["vector_indices"] = [indices[i] for i in ids]
        if "tools" in values:
            tools = {
                t.pk: t
                for t in Tool.objects.filter(
                    owner=request.user, pk__in=[e["tool"] for e in values["tools"]]
                )
            }
            missing = [str(e["tool"]) for e in values["tools"] if e["tool"] not in tools]
            if missing:
                raise InvalidReference(
                    f"Unknown tool(s): {', '.join(missing)}.", code="invalid_tool"
                )
            values["tools"] = [
                {"tool": tools[e["tool"]], "requires_approval": e["requires_approval"]}
                for e in values["tools"]
            ]
        if "handoffs" in values:
            visible = selectors.agents_visible_to(request.user)
            agents = {
                a.pk: a for a in visible.filter(pk__in=[e["agent"] for e in values["handoffs"]])
            }
            missing = [str(e["agent"]) for e in values["handoffs"] if e["agent"] not in agents]
            if missing:
                raise InvalidReference(
                    f"Unknown agent(s): {', '.join(missing)}.", code="invalid_handoff"
                )
            values["handoffs"] = [
                {**{k: v for k, v in e.items() if k != "agent"}, "to_agent": agents[e["agent"]]}
                for e in values["handoffs"]
            ]

    def _provider(self, request: Request, provider_id) -> Provider:
        provider = selectors.providers_visible_to(request.user).filter(pk=provider_id).first()
        if provider is None:
            raise InvalidReference(
                "Unknown provider.",
                code="invalid_provider",
                extra={
                    "errors": [
                        {
                            "field": "provider",
                            "code": "does_not_exist",
                            "detail": "No such provider.",
                        }
                    ]
                },
            )
        return provider

    @extend_schema(
        summary="Create an agent (version 1)",
        request=s.AgentWriteSerializer,
        responses={201: s.AgentSerializer},
    )
    def create(self, request: Request) -> Response:
        data = s.AgentWriteSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        values = dict(data.validated_data)
        values["provider"] = self._provider(request, values["provider"])
        values.pop("status", None)
        self._resolve_graph(request, values)
        metadata = values.pop("metadata", None) or {}
        if not request.user.is_staff:
            metadata.pop("featured", None)
        agent = agent_services.agent_create(owner=request.user, metadata=metadata, **values)
        return Response(
            s.AgentSerializer(self.get_queryset().get(pk=agent.pk)).data,
            status=http.HTTP_201_CREATED,
        )

    @extend_schema(
        summary="Change an agent; behaviour changes make a new version",
        request=s.AgentWriteSerializer(partial=True),
        responses=s.AgentSerializer,
    )
    def partial_update(self, request: Request, pk: str | None = None) -> Response:
        agent = self.get_object()
        _require_owner_or_staff(request, agent.owner_id, "agent")
        data = s.AgentWriteSerializer(data=request.data, partial=True)
        data.is_valid(raise_exception=True)
        values = dict(data.validated_data)
        if "provider" in values:
            values["provider"] = self._provider(request, values["provider"])
        self._resolve_graph(request, values)
        if "status" in values and not request.user.is_staff:
            raise PermissionDenied("Only staff can suspend or activate agents.", code="staff_only")
        metadata = values.pop("metadata", None)
        if metadata and not request.user.is_staff:
            metadata.pop("featured", None)
        agent_services.agent_update(agent=agent, actor=request.user, metadata=metadata, **values)
        return Response(s.AgentSerializer(self.get_queryset().get(pk=agent.pk)).data)

    @extend_schema(
        summary="Delete an agent and its runs",
        responses={204: None, 409: OpenApiResponse(description="agent_busy: runs in flight")},
    )
    def destroy(self, request: Request, pk: str | None = None) -> Response:
        agent = self.get_object()
        _require_owner_or_staff(request, agent.owner_id, "agent")
        agent_services.agent_delete(agent=agent)
        return Response(status=http.HTTP_204_NO_CONTENT)

    @extend_schema(
        summary="The agent's versions, newest first", responses=s.AgentVersionSerializer(many=True)
    )
    @action(detail=True, methods=["get"], pagination_class=None)
    def versions(self, request: Request, pk: str | None = None) -> Response:
        agent = self.get_object()
        versions = AgentVersion.objects.filter(agent=agent).order_by("-number")
        return Response(s.AgentVersionSerializer(versions, many=True).data)

    @extend_schema(
        summary="Run the agent",
        request=s.RunCreateSerializer,
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
                s.RunSerializer,
                description="Queued (mode=background), or still running when mode=wait timed out.",
            ),
            200: OpenApiResponse(
                s.RunSerializer,
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
        data = s.RunCreateSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        values = dict(data.validated_data)
        conversation = None
        if values.pop("conversation_id", None):
            conversation = (
                selectors.conversations_visible_to(request.user)
                .filter(pk=data.validated_data["conversation_id"])
                .first()
            )
            if conversation is None:
                raise InvalidReference("Unknown conversation.", code="invalid_conversation")
        run, created = agent_run_start(
            user=request.user,
            agent=agent,
            conversation=conversation,
            idempotency_key=_idempotency_key(request),
            **values,
        )
        data = s.RunSerializer(run).data
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
            response.finish_on_loop = functools.partial(run_wait.finish_waiting_run, run_id=run.id)
        return response


@extend_schema(tags=["agents"])
class AgentVersionRestoreApi(APIView):
    @extend_schema(
        summary="Make an old version current again (as a new version)",
        request=None,
        responses=s.AgentSerializer,
    )
    def post(self, request: Request, pk: str, number: int) -> Response:
        agent = get_object_or_404(selectors.agents_visible_to(request.user), pk=pk)
        _require_owner_or_staff(request, agent.owner_id, "agent")
        agent = agent_services.agent_version_restore(agent=agent, number=number, actor=request.user)
        return Response(
            s.AgentSerializer(selectors.agents_visible_to(request.user).get(pk=agent.pk)).data
        )


# --- runs ----------------------------------------------------------------------------------------


@extend_schema(tags=["runs"])
class RunViewSet(viewsets.GenericViewSet):
    serializer_class = s.RunSerializer
    lookup_value_regex = "[0-9a-f-]{36}"

    def get_queryset(self):
        return selectors.run_list(user=self.request.user)

    @extend_schema(summary="Your runs, newest first", parameters=[s.RunListQuerySerializer])
    def list(self, request: Request) -> Response:
        query = s.RunListQuerySerializer(data=request.query_params)
        query.is_valid(raise_exception=True)
        values = dict(query.validated_data)
        qs = selectors.run_list(user=request.user, agent_id=values.pop("agent", None), **values)
        page = self.paginate_queryset(qs)
        return self.get_paginated_response(s.RunSerializer(page, many=True).data)

    @extend_schema(summary="A run: status, output, error, usage, timings")
    def retrieve(self, request: Request, pk: str | None = None) -> Response:
        return Response(s.RunSerializer(self.get_object()).data)

    @extend_schema(
        summary="The run's persisted events after a sequence number, in order",
        description=(
            "With `Accept: text/event-stream` the same events stream as Server-Sent Events: "
            "replay after `after` (or `Last-Event-ID`), then live; `id:` is the seq, `event:` the type, "
            "`data:` the JSON frame; a `: heartbeat` comment every 15 s; the stream ends after the "
            "terminal event. EventSource clients may pass `?token=`."
        ),
        parameters=[s.RunEventsQuerySerializer],
        responses={
            (200, "application/json"): s.RunEventPageSerializer,
            (200, "text/event-stream"): OpenApiResponse(
                response={"type": "string"}, description="Server-Sent Events, one per run event."
            ),
        },
    )
    @action(detail=True, methods=["get"])
    def events(self, request: Request, pk: str | None = None) -> Response:
        run = self.get_object()
        query = s.RunEventsQuerySerializer(data=request.query_params)
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
                "results": s.RunEventSerializer(events, many=True).data,
                "next_after": next_after,
                "finished": finished,
            }
        )

    @extend_schema(
        summary="The run's tool calls, in order", responses=s.ToolCallSerializer(many=True)
    )
    @action(detail=True, methods=["get"], url_path="tool-calls", pagination_class=None)
    def tool_calls(self, request: Request, pk: str | None = None) -> Response:
        run = self.get_object()
        return Response(
            s.ToolCallSerializer(run.tool_calls.order_by("created_at", "id"), many=True).data
        )

    @extend_schema(
        summary="Approve or reject the calls a run is waiting on",
        description="When every pending call is answered the run is queued again and resumes from its "
        "stored state. Rejected calls get `message` (or a default) as their result.",
        request=s.ApprovalsSerializer,
        responses={200: s.RunSerializer, 409: OpenApiResponse(description="run_not_waiting")},
    )
    @action(detail=True, methods=["post"])
    def approvals(self, request: Request, pk: str | None = None) -> Response:
        data = s.ApprovalsSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        run = agent_run_approve(run=self.get_object(), decisions=data.validated_data["decisions"])
        return Response(
            s.RunSerializer(AgentRun.objects.select_related("agent_version").get(pk=run.pk)).data
        )

    @extend_schema(
        summary="Cancel a run",
        request=None,
        responses={200: s.RunSerializer, 409: OpenApiResponse(description="run_not_cancellable")},
    )
    @action(detail=True, methods=["post"])
    def cancel(self, request: Request, pk: str | None = None) -> Response:
        run = agent_run_cancel(run=self.get_object())
        return Response(s.RunSerializer(run).data)


# --- conversations -------------------------------------------------------------------------------


@extend_schema(tags=["conversations"])
class ConversationViewSet(viewsets.GenericViewSet):
    serializer_class = s.ConversationSerializer
    lookup_value_regex = "[0-9a-f-]{36}"

    def get_queryset(self):
        return selectors.conversations_visible_to(self.request.user)

    @extend_schema(summary="Your conversations")
    def list(self, request: Request) -> Response:
        page = self.paginate_queryset(self.get_queryset())
        return self.get_paginated_response(s.ConversationSerializer(page, many=True).data)

    @extend_schema(summary="A conversation")
    def retrieve(self, request: Request, pk: str | None = None) -> Response:
        return Response(s.ConversationSerializer(self.get_object()).data)

    @extend_schema(
        summary="Start a conversation with an agent",
        request=s.ConversationCreateSerializer,
        responses={201: s.ConversationSerializer},
    )
    def create(self, request: Request) -> Response:
        data = s.ConversationCreateSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        agent = (
            selectors.agents_visible_to(request.user)
            .filter(pk=data.validated_data["agent"])
            .first()
        )
        if agent is None:
            raise InvalidReference("Unknown agent.", code="invalid_agent")
        conversation = conversation_services.conversation_create(
            owner=request.user, agent=agent, title=data.validated_data["title"]
        )
        return Response(s.ConversationSerializer(conversation).data, status=http.HTTP_201_CREATED)

    @extend_schema(
        summary="Rename a conversation",
        # Spelled out: drf-spectacular documents every PATCH body as all-optional, but this one
        # validates ConversationUpdateSerializer whole, so `title` is required.
        request={
            "application/json": {
                "type": "object",
                "properties": {"title": {"type": "string", "maxLength": 200}},
                "required": ["title"],
            }
        },
        responses=s.ConversationSerializer,
    )
    def partial_update(self, request: Request, pk: str | None = None) -> Response:
        data = s.ConversationUpdateSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        conversation = conversation_services.conversation_update(
            conversation=self.get_object(), title=data.validated_data["title"]
        )
        return Response(s.ConversationSerializer(conversation).data)

    @extend_schema(
        summary="Delete a conversation and its history",
        responses={204: None, 409: OpenApiResponse(description="conversation_busy")},
    )
    def destroy(self, request: Request, pk: str | None = None) -> Response:
        conversation_services.conversation_delete(conversation=self.get_object())
        return Response(status=http.HTTP_204_NO_CONTENT)


@extend_schema(tags=["conversations"])
class ConversationItemsApi(ListAPIView):
    serializer_class = s.ConversationItemSerializer
    pagination_class = type("ItemCursor", (CreatedAtCursorPagination,), {"ordering": ("position",)})

    @extend_schema(summary="The conversation's history (SDK input items), oldest first")
    def get(self, request: Request, *args, **kwargs) -> Response:
        return super().get(request, *args, **kwargs)

    def get_queryset(self):
        if getattr(self, "swagger_fake_view", False):  # drf-spectacular introspects without a pk
            return ConversationItem.objects.none()
        conversation = get_object_or_404(
            selectors.conversations_visible_to(self.request.user), pk=self.kwargs["pk"]
        )
        return selectors.conversation_items(conversation=conversation)


# --- tools ---------------------------------------------------------------------------------------


@extend_schema(tags=["tools"])
class ToolViewSet(viewsets.GenericViewSet):
    serializer_class = s.ToolSerializer
    lookup_value_regex = "[0-9a-f-]{36}"

    def get_queryset(self):
        return scope_to_owner(Tool.objects.all(), self.request.user)

    @extend_schema(summary="Your tools")
    def list(self, request: Request) -> Response:
        page = self.paginate_queryset(self.get_queryset())
        return self.get_paginated_response(s.ToolSerializer(page, many=True).data)

    @extend_schema(summary="A tool")
    def retrieve(self, request: Request, pk: str | None = None) -> Response:
        return Response(s.ToolSerializer(self.get_object()).data)

    @extend_schema(
        summary="Create a tool",
        request=s.ToolWriteSerializer,
        examples=[
            OpenApiExample(
                "A built-in",
                value={
                    "name": "calculator",
                    "kind": "builtin",
                    "config": {"builtin": "calculator"},
                },
                request_only=True,
            )
        ],
        responses={201: s.ToolSerializer, 409: OpenApiResponse(description="tool_name_taken")},
    )
    def create(self, request: Request) -> Response:
        data = s.ToolWriteSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        tool = tool_services.tool_create(owner=request.user, **data.validated_data)
        return Response(s.ToolSerializer(tool).data, status=http.HTTP_201_CREATED)

    @extend_schema(
        summary="Change a tool",
        request=s.ToolWriteSerializer(partial=True),
        responses={200: s.ToolSerializer, 409: OpenApiResponse(description="tool_name_taken")},
    )
    def partial_update(self, request: Request, pk: str | None = None) -> Response:
        tool = self.get_object()
        data = s.ToolWriteSerializer(data=request.data, partial=True)
        data.is_valid(raise_exception=True)
        values = dict(data.validated_data)
        if values.pop("kind", tool.kind) != tool.kind:
            raise InvalidReference(
                "A tool's kind cannot change; create another tool.", code="invalid_tool"
            )
        tool = tool_services.tool_update(tool=tool, **values)
        return Response(s.ToolSerializer(tool).data)

    @extend_schema(
        summary="Delete a tool (refused while agents use it)",
        responses={204: None, 409: OpenApiResponse(description="tool_in_use")},
    )
    def destroy(self, request: Request, pk: str | None = None) -> Response:
        tool_services.tool_delete(tool=self.get_object())
        return Response(status=http.HTTP_204_NO_CONTENT)

    @extend_schema(
        summary="MCP: discover and store the server's tools",
        request=None,
        responses={
            200: s.ToolSerializer,
            400: OpenApiResponse(description="not_mcp: only MCP tools can be refreshed"),
            502: OpenApiResponse(
                description="mcp_unreachable: the server's URL is not allowed, it did not answer "
                "in time, or it failed to list its tools."
            ),
        },
    )
    @action(detail=True, methods=["post"])
    def refresh(self, request: Request, pk: str | None = None) -> Response:
        return Response(
            s.ToolSerializer(tool_services.tool_refresh_mcp(tool=self.get_object())).data
        )

    @extend_schema(
        summary="Import the operations of an OpenAPI 3 document as http tools",
        request=s.OpenApiImportSerializer,
        responses={201: s.ToolSerializer(many=True)},
    )
    @action(detail=False, methods=["post"], url_path="import-openapi", pagination_class=None)
    def import_openapi(self, request: Request) -> Response:
        data = s.OpenApiImportSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        tools = tool_services.tools_import_openapi(owner=request.user, **data.validated_data)
        return Response(s.ToolSerializer(tools, many=True).data, status=http.HTTP_201_CREATED)
