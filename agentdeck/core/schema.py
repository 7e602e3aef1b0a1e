"""OpenAPI additions: security schemes for the JWT and API-key authentication, the
problem+json error responses on every operation, and OpenAPI links from each create operation to
the operations on what it created (drf-spectacular postprocessing hooks).

The document is checked against the live server by Schemathesis (tests/contract/), which follows
the links to chain create -> read -> change -> delete."""

from __future__ import annotations

from typing import Any

from drf_spectacular.extensions import OpenApiAuthenticationExtension
from drf_spectacular.generators import SchemaGenerator
from drf_spectacular.openapi import AutoSchema
from rest_framework.request import Request

PROBLEM_SCHEMA: dict[str, Any] = {
    "type": "object",
    "description": "RFC 9457 problem details. `code` is stable; switch on it, not on `title`.",
    "properties": {
        "type": {"type": "string", "example": "urn:agentdeck:problem:not_found"},
        "title": {"type": "string", "example": "Not Found"},
        "status": {"type": "integer", "example": 404},
        "detail": {"type": "string"},
        "code": {"type": "string", "example": "not_found"},
        "instance": {"type": "string", "example": "/api/v1/api-keys/3f2e.../"},
        "errors": {
            "type": "array",
            "description": "Per-field errors; present on `validation_error` only.",
            "items": {
                "type": "object",
                "properties": {
                    "field": {"type": "string", "example": "name"},
                    "code": {"type": "string", "example": "required"},
                    "detail": {"type": "string"},
                },
                "required": ["field", "code", "detail"],
            },
        },
    },
    "required": ["type", "title", "status", "detail", "code"],
    "additionalProperties": True,
}

_DESCRIPTIONS = {
    "400": "Invalid input (`validation_error` with per-field `errors`) or a malformed body.",
    "401": "Missing, malformed, expired or revoked credentials.",
    "403": "Authenticated, but not allowed (for example an API key without the needed scope).",
    "404": "Not found, or not yours.",
    "405": "Method not allowed.",
    "429": "Too many requests; `Retry-After` says when to come back.",
    "500": "A bug on our side; it has been logged.",
}
# agentdeck.core.pagination refuses a cursor it did not issue with 400 invalid_cursor.
_CURSOR_400 = _DESCRIPTIONS["400"] + " Also `invalid_cursor`: a `cursor` this list did not issue."

# Headers that always come with a status, whichever view answered (DRF sets them from the
# exception: NotAuthenticated's authenticate_header, Throttled's wait).
_HEADERS = {
    "401": {
        "WWW-Authenticate": {
            "description": "The scheme to authenticate with: `Bearer`.",
            "schema": {"type": "string"},
        }
    },
    "429": {
        "Retry-After": {
            "description": "Seconds to wait before retrying.",
            "schema": {"type": "integer"},
        }
    },
}


def _problem_content() -> dict[str, Any]:
    return {"application/problem+json": {"schema": {"$ref": "#/components/schemas/Problem"}}}


def _problem_response(status: str) -> dict[str, Any]:
    return {"description": _DESCRIPTIONS[status], "content": _problem_content()}


def add_problem_responses(
    result: dict[str, Any], generator: SchemaGenerator, request: Request | None, public: bool
) -> dict[str, Any]:
    """Document the error shape on every operation so clients can generate their error types.

    Errors a view documents by code only (``409: OpenApiResponse(description="agent_busy")``)
    get the problem+json body too: every 4xx and 5xx the API sends is one."""
    result.setdefault("components", {}).setdefault("schemas", {})["Problem"] = PROBLEM_SCHEMA
    for path, operations in result.get("paths", {}).items():
        for method, operation in operations.items():
            if method not in {"get", "post", "put", "patch", "delete"}:
                continue
            responses = operation.setdefault("responses", {})
            parameters = operation.get("parameters", [])
            statuses = ["429", "500"]
            if operation.get("security") != [{}] and operation.get("security") != []:
                statuses += ["401", "403"]
            if "{" in path:
                statuses.append("404")
            if "requestBody" in operation or any(p.get("in") == "query" for p in parameters):
                statuses.append("400")
            for status in statuses:
                responses.setdefault(status, _problem_response(status))
            if any(p.get("in") == "query" and p.get("name") == "cursor" for p in parameters):
                responses["400"]["description"] = _CURSOR_400
            for status, response in responses.items():
                if status[0] in "45" and not response.get("content"):
                    response["content"] = _problem_content()
                if status in _HEADERS:
                    response.setdefault("headers", {}).update(_HEADERS[status])
    return result


def require_bodies_with_required_fields(
    result: dict[str, Any], generator: SchemaGenerator, request: Request | None, public: bool
) -> dict[str, Any]:
    """A request body given as a plain schema (``request={"application/json": {...}}``) is
    required when its schema requires a field, as drf-spectacular decides for serializers."""
    for operations in result.get("paths", {}).values():
        for operation in operations.values():
            body = operation.get("requestBody") if isinstance(operation, dict) else None
            if not body or "required" in body:
                continue
            schemas = [
                _resolve(result, media.get("schema", {})) for media in body["content"].values()
            ]
            if schemas and all(schema.get("required") for schema in schemas):
                body["required"] = True
    return result


# --- links ---------------------------------------------------------------------------------------

# Creates whose result lives under another collection than the one they were posted to.
_LINK_TARGETS: dict[str, str] = {
    "/api/v1/agents/{id}/runs/": "/api/v1/runs/{id}/",
}
_LINK_METHODS = ("get", "patch", "post", "delete")


def _resolve(result: dict[str, Any], schema: dict[str, Any]) -> dict[str, Any]:
    while "$ref" in schema:
        schema = result["components"]["schemas"][schema["$ref"].rsplit("/", 1)[1]]
    return schema


def _created_schema(result: dict[str, Any], response: dict[str, Any]) -> dict[str, Any]:
    content = response.get("content", {}).get("application/json", {})
    return _resolve(result, content.get("schema", {}))


def add_links(
    result: dict[str, Any], generator: SchemaGenerator, request: Request | None, public: bool
) -> dict[str, Any]:
    """OpenAPI links from every create to the operations on the object it created.

    A ``POST /things/`` whose success response carries an ``id`` links to every operation under
    ``/things/{id}/`` with ``id`` taken from the response, so a client (and Schemathesis's
    stateful tests) can follow create -> retrieve -> change -> delete without guessing ids.
    Creates whose object lives elsewhere (a run started under its agent) are in
    ``_LINK_TARGETS``; an attachment links to its detach with both ids."""
    paths = result.get("paths", {})
    operation_ids = {
        path: {m: op["operationId"] for m, op in ops.items() if m in _LINK_METHODS}
        for path, ops in paths.items()
    }
    for path, operations in paths.items():
        create = operations.get("post")
        if create is None:
            continue
        base = _LINK_TARGETS.get(path, path + "{id}/")
        targets = [
            (target, method, operation_id)
            for target, ids in operation_ids.items()
            if target.startswith(base)
            for method, operation_id in ids.items()
        ]
        for status, response in create.get("responses", {}).items():
            if status[0] != "2":
                continue
            created = _created_schema(result, response)
            properties = created.get("properties", {})
            links = response.setdefault("links", {})
            if "id" in properties:
                for target, method, operation_id in targets:
                    links[operation_id] = {
                        "operationId": operation_id,
                        "parameters": {"id": "$response.body#/id"},
                        "description": f"{method.upper()} {target} on the created object.",
                    }
            # An attachment (POST .../{id}/files/) is detached by its index and file ids.
            detach = path + "{file_id}/"
            if "file_id" in properties and "delete" in operation_ids.get(detach, {}):
                operation_id = operation_ids[detach]["delete"]
                links[operation_id] = {
                    "operationId": operation_id,
                    "parameters": {"id": "$request.path.id", "file_id": "$response.body#/file_id"},
                    "description": "Detach the file just attached.",
                }
            if not links:
                del response["links"]
    return result


class ApiKeyAuthenticationScheme(OpenApiAuthenticationExtension):
    target_class = "agentdeck.accounts.authentication.ApiKeyAuthentication"
    name = "apiKeyAuth"

    def get_security_definition(self, auto_schema: AutoSchema) -> dict[str, Any]:
        return {
            "type": "http",
            "scheme": "bearer",
            "bearerFormat": "adk_...",
            "description": (
                "An API key from `POST /api/v1/api-keys/`: `Authorization: Bearer adk_...`."
            ),
        }


class NextJsJWTAuthenticationScheme(OpenApiAuthenticationExtension):
    target_class = "agentdeck.accounts.authentication.NextJsJWTAuthentication"
    name = "jwtAuth"

    def get_security_definition(self, auto_schema: AutoSchema) -> dict[str, Any]:
        return {
            "type": "http",
            "scheme": "bearer",
            "bearerFormat": "JWT",
            "description": "A short-lived JWT signed by the Next.js server; `sub` is the user id.",
        }
