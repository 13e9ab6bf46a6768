"""The OpenAPI 3.1 document of API v1, generated from the route table.

Pydantic gives JSON Schema 2020-12, which OpenAPI 3.1 takes as it is; nested models' `$defs`
are lifted into `components/schemas`. Auth errors (401, 403, 429) are added from each
route's role, so a route documents exactly the refusals the HTTP layer can give it.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any

from pydantic import BaseModel

from ccserver.api import models
from ccserver.api.auth import Role
from ccserver.api.table import Route

API_VERSION = "1.0.0"
_REF = "#/components/schemas/{model}"
_PARAM = re.compile(r"{(\w+)}")
_STATUS_TEXT = {
    400: "Bad request",
    401: "No token, or an invalid one",
    403: "Refused",
    404: "Not found",
    409: "Conflict with the current state",
    413: "Body too large",
    429: "Too many failed attempts",
    500: "Failed",
    502: "Asterisk refused the request",
    503: "Unavailable",
}
_SUCCESS_TEXT = {200: "OK", 201: "Created"}


def document(routes: Sequence[Route]) -> dict[str, Any]:
    schemas: dict[str, Any] = {}
    paths: dict[str, dict[str, Any]] = {}
    for route in routes:
        paths.setdefault(route.full_path, {})[route.method.lower()] = _operation(route, schemas)
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "ccserver REST API",
            "version": API_VERSION,
            "description": (
                "Agents, queues, live calls and outage notices of a ccserver contact "
                "center. Send `Authorization: Bearer <token>`; tokens are in the run dir's "
                "`secrets.json` under `api_tokens`. Roles nest: admin ⊃ supervisor ⊃ agent. "
                "Every error is `{error, message}` with a stable `error` slug."
            ),
        },
        "servers": [{"url": "/"}],
        "paths": paths,
        "components": {
            "schemas": schemas,
            "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}},
        },
        "security": [{"bearer": []}],
    }


def _operation(route: Route, schemas: dict[str, Any]) -> dict[str, Any]:
    names = _PARAM.findall(route.path)
    documented = [name for name, _ in route.params]
    if names != documented:
        raise ValueError(f"{route.full_path}: path parameters {names}, documented {documented}")
    role = "no token" if route.role is None else f"role {route.role.label} or above"
    if route.response is None:
        result: dict[str, Any] = {"type": "string", "format": "binary"}
    else:
        result = _ref(route.response, schemas)
    if route.many:
        result = {"type": "array", "items": result}
    operation: dict[str, Any] = {
        "operationId": route.operation_id,
        "summary": route.summary,
        "description": " ".join(filter(None, [route.summary, route.details, f"Needs {role}."])),
        "responses": {
            str(route.status): {
                "description": _SUCCESS_TEXT[route.status],
                "content": {route.media: {"schema": result}},
            },
            **_error_responses(route, schemas),
        },
    }
    if route.role is None:
        operation["security"] = []
    parameters = [
        {"name": name, "in": "path", "required": True, "description": text}
        | {"schema": {"type": "string"}}
        for name, text in route.params
    ]
    if route.query is not None:
        parameters += _query_parameters(route.query)
    if parameters:
        operation["parameters"] = parameters
    if route.body is not None:
        operation["requestBody"] = {
            "required": True,
            "content": {"application/json": {"schema": _ref(route.body, schemas)}},
        }
    return operation


def _query_parameters(model: type[BaseModel]) -> list[dict[str, Any]]:
    """A query model's fields as optional query parameters, each with its schema."""
    schema = model.model_json_schema(ref_template=_REF)
    found = []
    for name, field in schema["properties"].items():
        description = field.pop("description", None)
        field.pop("title", None)
        found.append(
            {"name": name, "in": "query", "required": False, "schema": field}
            | ({"description": description} if description else {})
        )
    return found


def _error_responses(route: Route, schemas: dict[str, Any]) -> dict[str, Any]:
    slugs: dict[int, list[str]] = {}
    errors = list(route.errors)
    if route.role is not None:
        errors += [(401, "auth-required"), (401, "auth-invalid"), (429, "rate-limited")]
        if route.role > Role.AGENT or route.own_agent:
            errors.append((403, "forbidden"))
    for status, slug in errors:
        slugs.setdefault(status, []).append(slug)
    error = {"application/json": {"schema": _ref(models.Error, schemas)}}
    responses = {
        str(status): {
            "description": f"{_STATUS_TEXT[status]}: " + ", ".join(f"`{s}`" for s in found),
            "content": error,
        }
        for status, found in sorted(slugs.items())
    }
    responses["default"] = {"description": "Unexpected: `internal-error`", "content": error}
    return responses


def _ref(model: type[BaseModel], schemas: dict[str, Any]) -> dict[str, Any]:
    """Put `model` (and the models it uses) into `schemas`; return a reference to it."""
    name = model.__name__
    if name not in schemas:
        schema = model.model_json_schema(ref_template=_REF)
        schemas.update(schema.pop("$defs", {}))
        schemas[name] = schema
    return {"$ref": _REF.format(model=name)}
