"""docs/api.md lists exactly the routes of the OpenAPI document the controller serves.

The doc's convention: the "## Endpoints" section has a table whose first cell on each
route's row is the method and full path in backticks, e.g. `` | `GET /api/v1/queues` | ``.
"""

from __future__ import annotations

import re
from pathlib import Path

from ccserver.api import openapi
from ccserver.api.routes import ROUTES

DOC = Path(__file__).resolve().parents[2] / "docs" / "api.md"
_METHODS = ("get", "put", "post", "delete", "patch", "head", "options", "trace")
_ROW = re.compile(r"^\|\s*`([A-Z]+) (/\S+)`\s*\|", re.MULTILINE)


def _served() -> set[tuple[str, str]]:
    """(METHOD, path) of every operation in the OpenAPI document of the route table."""
    paths = openapi.document(ROUTES)["paths"]
    return {(m.upper(), path) for path, ops in paths.items() for m in ops if m in _METHODS}


def _endpoints_section(text: str) -> str:
    match = re.search(r"^## Endpoints\n(.*?)(?=^## |\Z)", text, re.MULTILINE | re.DOTALL)
    assert match, f"{DOC} has no '## Endpoints' section"
    return match.group(1)


def _documented() -> set[tuple[str, str]]:
    """(METHOD, path) of every row of the Endpoints table of docs/api.md."""
    rows = _ROW.findall(_endpoints_section(DOC.read_text(encoding="utf-8")))
    return {(method, path) for method, path in rows}


def test_the_endpoints_table_parses() -> None:
    assert ("GET", "/api/v1/openapi.json") in _documented()


def test_docs_api_lists_every_route_of_the_openapi_document() -> None:
    served, documented = _served(), _documented()
    missing = sorted(served - documented)
    unknown = sorted(documented - served)
    assert served == documented, (
        "docs/api.md's Endpoints table and the OpenAPI document differ;\n"
        f"  missing from the doc: {[f'{m} {p}' for m, p in missing]}\n"
        f"  in the doc but not served: {[f'{m} {p}' for m, p in unknown]}"
    )
