"""OpenAPI additions: security schemes for the JWT and API-key authentication, and the
problem+json error responses on every operation (drf-spectacular postprocessing hook)."""

from __future__ import annotations

from typing import Any

from drf_spectacular.extensions import OpenApiAuthenticationExtension

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


def _problem_response(status: str) -> dict[str, Any]:
    return {
        "description": _DESCRIPTIONS[status],
        "content": {
            "application/problem+json": {"schema": {"$ref": "#/components/schemas/Problem"}}
        },
    }


def add_problem_responses(result: dict[str, Any], generator, request, public) -> dict[str, Any]:
    """Document the error shape on every operation so clients can generate their error types."""
    result.setdefault("components", {}).setdefault("schemas", {})["Problem"] = PROBLEM_SCHEMA
    for path, operations in result.get("paths", {}).items():
        for method, operation in operations.items():
            if method not in {"get", "post", "put", "patch", "delete"}:
                continue
            responses = operation.setdefault("responses", {})
            statuses = ["429", "500"]
            if operation.get("security") != [{}] and operation.get("security") != []:
                statuses += ["401", "403"]
            if "{" in path:
                statuses.append("404")
            if "requestBody" in operation or any(
                p.get("in") == "query" for p in operation.get("parameters", [])
            ):
                statuses.append("400")
            for status in statuses:
                responses.setdefault(status, _problem_response(status))
    return result


class ApiKeyAuthenticationScheme(OpenApiAuthenticationExtension):
    target_class = "agentdeck.accounts.authentication.ApiKeyAuthentication"
    name = "apiKeyAuth"

    def get_security_definition(self, auto_schema):
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

    def get_security_definition(self, auto_schema):
        return {
            "type": "http",
            "scheme": "bearer",
            "bearerFormat": "JWT",
            "description": "A short-lived JWT signed by the Next.js server; `sub` is the user id.",
        }
