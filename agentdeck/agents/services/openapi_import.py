"""Read an OpenAPI 3 document into http tool definitions.

The document is the client's: any part of it can be the wrong type, a ``$ref`` can point
nowhere or at itself, and it can be huge. Every such fault is a 400 ``invalid_openapi`` whose
message says where (``paths./pets.get.parameters.0: ...``); nothing here raises anything else.

What becomes of an operation: its path and query parameters and its JSON request body's
properties are the tool's arguments. ``$ref`` to a parameter or request body is followed (a
bounded number of hops, loops refused). ``$ref`` inside a schema to ``#/components/schemas/X``
is kept as a reference, to ``#/$defs/X``, with each component it reaches copied into the tool's
``$defs`` once: a recursive schema (a tree node with children of its own type) stays finite.
Other references (another file, a URL) are refused: the tool's schema must stand alone.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass
from typing import Any

from agentdeck.agents.limits import (
    JSON_SCHEMA_SHAPE,
    MAX_IMPORTED_OPERATIONS,
    OPENAPI_DOCUMENT_SHAPE,
    TOOL_DESCRIPTION_MAX_LENGTH,
)
from agentdeck.core.exceptions import ApplicationError
from agentdeck.core.jsonshape import ShapeError, check_shape

HTTP_METHODS = ("get", "post", "put", "patch", "delete")
# A chain of $ref to $ref ... longer than this is refused as if it were a loop.
MAX_REF_HOPS = 32
_SCHEMAS = "#/components/schemas/"


class InvalidOpenAPI(ApplicationError):
    status = 400
    code = "invalid_openapi"
    title = "Invalid OpenAPI document"


@dataclass(frozen=True)
class ImportedOperation:
    method: str  # upper case
    path: str
    operation_id: str
    description: str
    parameters_schema: dict[str, Any]


def _where(path: tuple[Any, ...]) -> str:
    return ".".join(str(p) for p in path) or "document"


def _fail(path: tuple[Any, ...], message: str) -> InvalidOpenAPI:
    return InvalidOpenAPI(f"{_where(path)}: {message}")


def _get(
    node: dict[str, Any],
    key: str,
    kind: type | tuple[type, ...],
    path: tuple[Any, ...],
    default: Any = None,
) -> Any:
    """``node[key]`` if it is of ``kind``; ``default`` when absent; else refused."""
    if key not in node or node[key] is None:
        return default
    value = node[key]
    if not isinstance(value, kind) or (kind is not bool and isinstance(value, bool)):
        names = kind.__name__ if isinstance(kind, type) else " or ".join(k.__name__ for k in kind)
        words = {"dict": "an object", "list": "a list", "str": "a string", "bool": "a boolean"}
        raise _fail((*path, key), f"must be {words.get(names, names)}.")
    return value


class _Reader:
    def __init__(self, document: dict[str, Any]) -> None:
        self.document = document
        # What one operation's schemas may still copy (bytes, about): copying stops at the
        # bound, so a component referenced by every operation costs each at most the bound.
        self.budget = JSON_SCHEMA_SHAPE.max_bytes

    def pointer(self, ref: str, path: tuple[Any, ...]) -> Any:
        """The value a local ``$ref`` ("#/a/b") points at."""
        if not ref.startswith("#/"):
            raise _fail(path, f"$ref {ref[:100]!r} is not in this document; only '#/...' works.")
        node: Any = self.document
        for raw in ref[2:].split("/"):
            part = _unescape(raw)
            if isinstance(node, dict) and part in node:
                node = node[part]
            elif isinstance(node, list) and part.isdigit() and int(part) < len(node):
                node = node[int(part)]
            else:
                raise _fail(path, f"$ref {ref[:100]!r} points at nothing.")
        return node

    def resolve(self, node: Any, path: tuple[Any, ...]) -> Any:
        """``node`` with any chain of ``$ref`` followed; a loop or a chain too long is refused."""
        seen: set[str] = set()
        while isinstance(node, dict) and "$ref" in node:
            ref = node["$ref"]
            if not isinstance(ref, str):
                raise _fail((*path, "$ref"), "must be a string.")
            if ref in seen or len(seen) >= MAX_REF_HOPS:
                raise _fail(path, f"$ref {ref[:100]!r} loops back on itself.")
            seen.add(ref)
            node = self.pointer(ref, path)
        return node

    def object(self, node: Any, path: tuple[Any, ...]) -> dict[str, Any]:
        node = self.resolve(node, path)
        if not isinstance(node, dict):
            raise _fail(path, "must be an object.")
        return node

    # --- schemas ---------------------------------------------------------------------------------

    def schema(self, node: Any, path: tuple[Any, ...], defs: dict[str, Any]) -> Any:
        """A copy of the schema ``node`` whose component references point into ``defs``
        (filled with every component reached, each once). Breadth-first over the components,
        so reference cycles end; recursion only follows the document's own nesting, which the
        parser bounds."""
        pending: deque[str] = deque()
        copied = self._rewrite(node, path, pending)
        while pending:
            name = pending.popleft()
            if name in defs:
                continue
            defs[name] = None  # claimed: a cycle back to it is not queued again
            target_path = ("components", "schemas", name)
            target = self.pointer(_SCHEMAS + _escape(name), target_path)
            defs[name] = self._rewrite(target, target_path, pending)
        return copied

    def _rewrite(self, node: Any, path: tuple[Any, ...], pending: deque[str]) -> Any:
        self.budget -= len(node) + 2 if isinstance(node, str) else 4
        if self.budget < 0:
            raise _fail(
                path,
                "the operation's arguments' schema is larger than "
                f"{JSON_SCHEMA_SHAPE.max_bytes:,} bytes.",
            )
        if isinstance(node, list):
            return [self._rewrite(item, (*path, i), pending) for i, item in enumerate(node)]
        if not isinstance(node, dict):
            return node
        out: dict[str, Any] = {}
        for key, value in node.items():
            self.budget -= len(key) + 3
            if key == "$ref" and isinstance(value, str):
                if not value.startswith(_SCHEMAS) or "/" in value[len(_SCHEMAS) :]:
                    raise _fail(
                        path,
                        f"$ref {value[:100]!r}: only references to a whole schema in "
                        "#/components/schemas/ are supported inside schemas.",
                    )
                name = _unescape(value[len(_SCHEMAS) :])
                self.pointer(value, path)  # refused here if it points at nothing
                pending.append(name)
                out[key] = "#/$defs/" + _escape(name)
            else:
                out[key] = self._rewrite(value, (*path, key), pending)
        return out

    # --- operations ------------------------------------------------------------------------------

    def parameters(self, node: Any, path: tuple[Any, ...]) -> list[dict[str, Any]]:
        if node is None:
            return []
        if not isinstance(node, list):
            raise _fail(path, "must be a list.")
        out = []
        for i, item in enumerate(node):
            parameter = self.object(item, (*path, i))
            for key in ("name", "in"):
                if not _get(parameter, key, str, (*path, i)):
                    raise _fail((*path, i, key), "is required.")
            out.append(parameter)
        return out

    def operation(
        self, method: str, route: str, item: dict[str, Any], operation: dict[str, Any]
    ) -> ImportedOperation:
        path = ("paths", route, method)
        self.budget = JSON_SCHEMA_SHAPE.max_bytes
        properties: dict[str, Any] = {}
        required: set[str] = set()
        defs: dict[str, Any] = {}
        shared = self.parameters(item.get("parameters"), ("paths", route, "parameters"))
        own = self.parameters(operation.get("parameters"), (*path, "parameters"))
        for i, parameter in enumerate([*shared, *own]):
            if parameter["in"] not in ("path", "query"):
                continue  # headers and cookies are the tool's config, not the model's arguments
            where = (*path, "parameters", i)
            schema = _get(parameter, "schema", dict, where, {"type": "string"})
            schema = self.schema(schema, (*where, "schema"), defs)
            description = _get(parameter, "description", str, where)
            if description and isinstance(schema, dict):
                schema = {**schema, "description": description}
            properties[parameter["name"]] = schema
            if _get(parameter, "required", bool, where) or parameter["in"] == "path":
                required.add(parameter["name"])
        body = self._json_body(operation, path)
        if body is not None:
            body_path = (*path, "requestBody", "content", "application/json", "schema")
            body = self.object(body, body_path)
            if body.get("type") == "object":
                for name, schema in (_get(body, "properties", dict, body_path) or {}).items():
                    properties[name] = self.schema(schema, (*body_path, "properties", name), defs)
                names = _get(body, "required", list, body_path) or []
                if not all(isinstance(n, str) for n in names):
                    raise _fail((*body_path, "required"), "must be a list of names.")
                required.update(names)
        arguments: dict[str, Any] = {"type": "object", "properties": properties}
        if required:
            arguments["required"] = sorted(required)
        if defs:
            arguments["$defs"] = defs
        operation_id = _get(operation, "operationId", str, path) or ""
        description = (
            _get(operation, "summary", str, path)
            or _get(operation, "description", str, path)
            or f"{method.upper()} {route}"
        )
        try:
            check_shape(arguments, JSON_SCHEMA_SHAPE)
        except ShapeError as exc:
            raise _fail(path, f"its arguments' schema is too large: {exc.message}") from None
        return ImportedOperation(
            method=method.upper(),
            path=route,
            operation_id=operation_id,
            description=description[:TOOL_DESCRIPTION_MAX_LENGTH],
            parameters_schema=arguments,
        )

    def _json_body(self, operation: dict[str, Any], path: tuple[Any, ...]) -> Any:
        if operation.get("requestBody") is None:
            return None
        body = self.object(operation["requestBody"], (*path, "requestBody"))
        content = _get(body, "content", dict, (*path, "requestBody")) or {}
        media_path = (*path, "requestBody", "content")
        media = _get(content, "application/json", dict, media_path)
        if media is None:
            return None
        return _get(media, "schema", dict, (*media_path, "application/json"))


def _escape(name: str) -> str:
    return name.replace("~", "~0").replace("/", "~1")


def _unescape(name: str) -> str:
    return name.replace("~1", "/").replace("~0", "~")


def openapi_read(document: Any, *, base_url: str = "") -> tuple[str, list[ImportedOperation]]:
    """(base URL, operations) of an OpenAPI 3 ``document``, or :class:`InvalidOpenAPI`.

    1. Bound the document (``OPENAPI_DOCUMENT_SHAPE``) and check its version.
    2. The base URL: ``base_url``, else the first server's absolute http(s) URL.
    3. Every operation under ``paths`` (at most ``MAX_IMPORTED_OPERATIONS``), each read into
       an argument schema as the module docstring says.
    """
    try:
        check_shape(document, OPENAPI_DOCUMENT_SHAPE)
    except ShapeError as exc:
        raise InvalidOpenAPI(f"{exc.dotted('document')}: {exc.message}") from None
    version = document.get("openapi")
    if not isinstance(version, str) or not version.startswith("3."):
        raise InvalidOpenAPI("Only OpenAPI 3 documents can be imported.")
    reader = _Reader(document)
    servers = _get(document, "servers", list, ()) or []
    first = reader.object(servers[0], ("servers", 0)) if servers else {}
    base = (base_url or _get(first, "url", str, ("servers", 0)) or "").rstrip("/")
    if not base.startswith(("http://", "https://")):
        raise InvalidOpenAPI("The document has no absolute server URL; pass base_url.")
    if "{" in base:
        raise InvalidOpenAPI("The server URL has variables; pass base_url.")
    paths = _get(document, "paths", dict, ()) or {}
    operations: list[ImportedOperation] = []
    for route, raw_item in paths.items():
        if not route.startswith("/"):
            raise _fail(("paths", route), "paths must start with '/'.")
        item = reader.object(raw_item, ("paths", route))
        for method in HTTP_METHODS:
            if item.get(method) is None:
                continue
            if len(operations) == MAX_IMPORTED_OPERATIONS:
                raise InvalidOpenAPI(
                    f"The document has more than {MAX_IMPORTED_OPERATIONS} operations; import "
                    "it in parts."
                )
            operation = reader.object(item[method], ("paths", route, method))
            operations.append(reader.operation(method, route, item, operation))
    if not operations:
        raise InvalidOpenAPI("The document has no operations to import.")
    return base, operations
