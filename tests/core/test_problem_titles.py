"""One title per problem code, across the whole code base (RFC 9457: a problem type's title
does not change between occurrences; issue #14 found ``insufficient_scope`` with two).

Every way a code reaches a client is rendered through the real code path and grouped by code:
each ApplicationError subclass, each raise site that passes ``code=`` (found in the source),
DRF's exceptions and the permission classes' codes, the middleware's status codes and every
``problem(...)`` built by hand."""

from __future__ import annotations

import ast
import importlib
import inspect
import pkgutil
from collections import defaultdict
from pathlib import Path
from typing import Any

from django.http import Http404
from rest_framework import exceptions as drf
from rest_framework.permissions import BasePermission

import agentdeck
from agentdeck.core.errors import STATUS_CODES, exception_to_problem, problem
from agentdeck.core.exceptions import ApplicationError

ROOT = Path(agentdeck.__file__).parent


def _modules() -> list[Any]:
    modules = []
    for info in pkgutil.walk_packages(agentdeck.__path__, "agentdeck."):
        if ".migrations" in info.name:
            continue
        modules.append(importlib.import_module(info.name))
    return modules


def _subclasses(cls: type) -> list[type]:
    found, todo = [], [cls]
    while todo:
        for sub in todo.pop().__subclasses__():
            found.append(sub)
            todo.append(sub)
    return found


def _rendered(exc: Exception) -> tuple[str, str]:
    body, _ = exception_to_problem(exc, "/api/v1/x")
    return body["code"], body["title"]


_UNKNOWN = object()


def _literal(node: ast.AST) -> Any:
    try:
        return ast.literal_eval(node)
    except (ValueError, SyntaxError, TypeError):
        return _UNKNOWN  # an f-string or a variable


def _resolve(func: ast.AST, module: Any, by_name: dict[str, type]) -> Any:
    if isinstance(func, ast.Name):
        return module.__dict__.get(func.id) or by_name.get(func.id)
    if isinstance(func, ast.Attribute):
        owner = _resolve(func.value, module, {})
        return getattr(owner, func.attr, None) if owner is not None else by_name.get(func.attr)
    return None


def _raise_sites(modules: list[Any], by_name: dict[str, type]) -> list[tuple[str, str, str]]:
    """(code, title, where) for each call in the source that builds an error with a literal
    code: ``SomeError(..., code="x")``, ``AuthFailed(detail, "x")``, ``problem(code="x")``."""
    sites = []
    for module in modules:
        path = Path(module.__file__)
        for node in ast.walk(ast.parse(path.read_text())):
            if not isinstance(node, ast.Call):
                continue
            target = _resolve(node.func, module, by_name)
            # Unknown positional values are texts (a detail); unknown keywords are left out.
            args = [v if v is not _UNKNOWN else "x" for v in map(_literal, node.args)]
            kwargs = {k.arg: _literal(k.value) for k in node.keywords if k.arg}
            kwargs = {k: v for k, v in kwargs.items() if v is not _UNKNOWN or k == "detail"}
            if kwargs.get("detail") is _UNKNOWN:
                kwargs["detail"] = "x"
            where = f"{path.relative_to(ROOT.parent)}:{node.lineno}"
            if target is problem and isinstance(kwargs.get("code"), str):
                kwargs.setdefault("detail", "x")
                body = problem(**kwargs)
                sites.append((body["code"], body["title"], where))
            elif inspect.isclass(target) and issubclass(
                target, ApplicationError | drf.APIException
            ):
                literal_code = isinstance(kwargs.get("code"), str) or (
                    issubclass(target, drf.APIException) and len(args) > 1
                )
                if not literal_code and not (args and target.__init__ is not Exception.__init__):
                    continue
                try:
                    exc = target(*args, **kwargs)
                except TypeError:
                    continue
                sites.append((*_rendered(exc), where))
    return sites


def test_every_problem_code_has_one_title():
    modules = _modules()
    titles: dict[str, dict[str, list[str]]] = defaultdict(lambda: defaultdict(list))

    def seen(code: str, title: str, where: str) -> None:
        titles[code][title].append(where)

    classes = [ApplicationError, *_subclasses(ApplicationError)]
    by_name = {cls.__name__: cls for cls in classes}
    for cls in classes:
        try:
            exc = cls("x")
        except TypeError:  # a family taking its code at construction: see its raise sites
            continue
        seen(*_rendered(exc), f"class {cls.__module__}.{cls.__qualname__}")

    for code, title, where in _raise_sites(modules, by_name):
        seen(code, title, where)

    for cls in _subclasses(BasePermission):
        if cls.__module__.startswith("agentdeck") and getattr(cls, "code", None):
            # What DRF raises when has_permission() answers False.
            exc = drf.PermissionDenied(detail=getattr(cls, "message", None), code=cls.code)
            seen(*_rendered(exc), f"permission {cls.__module__}.{cls.__qualname__}")

    for exc in (
        Http404(),
        drf.NotFound(),
        drf.PermissionDenied(),
        drf.NotAuthenticated(),
        drf.AuthenticationFailed(),
        drf.MethodNotAllowed("GET"),
        drf.NotAcceptable(),
        drf.UnsupportedMediaType("text/x"),
        drf.Throttled(3),
        drf.ParseError(),
        drf.ValidationError({"f": ["bad"]}),
    ):
        seen(*_rendered(exc), f"DRF {type(exc).__name__}")
    for status, code in STATUS_CODES.items():  # ProblemJsonMiddleware, for Django's own errors
        seen(code, problem(status=status, code=code, detail="x")["title"], f"middleware {status}")

    assert titles["insufficient_scope"], "the scope permission's code was not found"
    conflicts = {code: dict(by_title) for code, by_title in titles.items() if len(by_title) > 1}
    assert not conflicts, "codes with more than one title:\n" + "\n".join(
        f"  {code}: " + "; ".join(f"{t!r} at {', '.join(w[:3])}" for t, w in by.items())
        for code, by in conflicts.items()
    )
