"""The REST API fuzzed from its own OpenAPI document (schemathesis), on the real controller
of a private stack: no answer is a 5xx, every answer is one the document lists (with the
documented body), and no token gets past its role.

tests/unit/test_api.py proves the role refusals against an in-memory backend; this proves
them on the running controller with generated requests: every operation with the admin
token (valid and invalid inputs), then with the supervisor token, an agent token, no token
and a wrong token. A role below the one the document names gets 403 (401 without a valid
token), and a write by a lower role never succeeds.

The API refuses a remote address for a minute after 5 failed tokens — and the check comes
before the token is looked at, so a valid token is refused too. The wrong-token requests
therefore come last and are few, and a 429 counts as the refusal it is.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Iterator
from typing import Any

import pytest
import requests
import schemathesis
from hypothesis import given
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from tests.fuzzing import fuzz
from tests.integration.conftest import LiveStack, start_stack

pytestmark = pytest.mark.integration

ROLES = {"agent": 1, "supervisor": 2, "admin": 3}
WRITES = {"POST", "PUT", "PATCH", "DELETE"}
NEEDS = re.compile(r"Needs (?:role (\w+) or above|no token)\.")
CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_schema_conformance,
]
AGENT = "1001"


@pytest.fixture(scope="module")
def live(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveStack]:
    yield from start_stack(tmp_path_factory.mktemp("api-fuzz"), {"answer": [AGENT, "1002"]})


@pytest.fixture(scope="module")
def schema(live: LiveStack) -> Any:
    base = f"http://127.0.0.1:{live.config.controller.http_port}"
    loaded = schemathesis.openapi.from_url(f"{base}/api/v1/openapi.json", timeout=10)
    return loaded


def _operations(schema: Any) -> list[Any]:
    return [result.ok() for result in schema.get_all_operations()]


def _least_role(operation: Any) -> str | None:
    """The role the document says the operation needs (None: no token)."""
    found = NEEDS.search(operation.definition.raw.get("description", ""))
    assert found is not None, f"{operation.label}: the document names no role"
    return found[1]


def _run(
    live: LiveStack,
    operation: Any,
    mode: GenerationMode,
    examples: int,
    token: str | None,
    on_answer: Any,
    tried: Counter[str],
) -> None:
    base = f"http://127.0.0.1:{live.config.controller.http_port}"
    headers = {} if token is None else {"Authorization": f"Bearer {token}"}
    session = requests.Session()

    @fuzz(examples, live=True)
    @given(case=operation.as_strategy(generation_mode=mode))
    def run(case: schemathesis.Case) -> None:
        if token is None and case.headers:  # schemathesis makes up one from the document
            case.headers = {k: v for k, v in case.headers.items() if k.lower() != "authorization"}
        response = case.call(base_url=base, headers=headers, session=session, timeout=30)
        sent = response.request.headers.get("Authorization")
        left_out = sent is None and mode is GenerationMode.NEGATIVE  # a deliberate omission
        assert sent == headers.get("Authorization") or left_out, "our token was not sent"
        tried[f"{operation.label} {mode.value}"] += 1
        tried["requests"] += 1
        on_answer(case, response)

    try:
        run()
    finally:
        session.close()


def test_admin_fuzz_gets_no_5xx_and_only_documented_answers(live: LiveStack, schema: Any) -> None:
    token = live.secrets().api_tokens["admin"]
    tried: Counter[str] = Counter()
    statuses: Counter[int] = Counter()

    def check(case: Any, response: schemathesis.Response) -> None:
        statuses[response.status_code] += 1
        case.validate_response(response, checks=CHECKS)
        if _least_role(case.operation) is None:  # no token used: PIN limits may answer 403/429
            return
        if response.status_code == 401:  # invalid data may leave out the Authorization header
            assert case.meta.generation.mode is GenerationMode.NEGATIVE
            assert response.json()["error"] == "auth-required", response.text
        assert response.status_code not in (403, 429), response.text

    for operation in _operations(schema):
        _run(live, operation, GenerationMode.POSITIVE, 25, token, check, tried)
        if operation.body or operation.path_parameters:
            _run(live, operation, GenerationMode.NEGATIVE, 15, token, check, tried)
    print(f"\nadmin fuzz: {tried['requests']} requests, statuses {dict(sorted(statuses.items()))}")
    print({k: v for k, v in tried.items() if k != "requests"})
    assert tried["requests"] >= 100 and not any(s >= 500 for s in statuses)


@pytest.mark.parametrize("name", ["supervisor", f"agent:{AGENT}"])
def test_lower_roles_are_refused_exactly_where_the_document_says(
    live: LiveStack, schema: Any, name: str
) -> None:
    token = live.secrets().api_tokens[name]
    role = name.split(":")[0]
    tried: Counter[str] = Counter()
    outcomes: Counter[str] = Counter()

    for operation in _operations(schema):
        least = _least_role(operation)
        below = least is not None and ROLES[role] < ROLES[least]
        own_only = role == "agent" and "{id}" in operation.path and "/agents/" in operation.path

        def check(
            case: Any,
            response: schemathesis.Response,
            least: str | None = least,
            below: bool = below,
            own_only: bool = own_only,
        ) -> None:
            status = response.status_code
            assert status < 500, (case.method, case.formatted_path, status, response.text)
            case.validate_response(response, checks=[status_code_conformance])
            if below:
                assert status == 403, (case.method, case.formatted_path, status)
                assert response.json()["error"] == "forbidden"
            elif own_only and case.path_parameters.get("id") != AGENT:
                assert status == 403, (case.method, case.formatted_path, status)
            if case.method.upper() in WRITES and (below or own_only):
                assert not 200 <= status < 300, (case.method, case.formatted_path, status)
            outcomes["refused" if status in (401, 403) else str(status)] += 1
            if least is not None:  # a valid token is never refused
                assert status not in (401, 429), response.text

        _run(live, operation, GenerationMode.POSITIVE, 10, token, check, tried)
    print(f"\n{name} fuzz: {tried['requests']} requests, outcomes {dict(outcomes)}")
    assert outcomes["refused"] > 0


def test_no_token_gets_401_everywhere_but_the_document(live: LiveStack, schema: Any) -> None:
    tried: Counter[str] = Counter()

    def check(case: Any, response: schemathesis.Response) -> None:
        if _least_role(case.operation) is None:  # the document, the desk's PIN login
            assert response.status_code < 500 and response.status_code != 401, response.text
            case.validate_response(response, checks=[status_code_conformance])
            return
        assert response.status_code == 401, (case.method, case.formatted_path, response.text)
        assert response.json()["error"] == "auth-required"
        assert response.headers["www-authenticate"][0].startswith("Bearer")

    for operation in _operations(schema):
        _run(live, operation, GenerationMode.POSITIVE, 4, None, check, tried)
    print(f"\nno-token fuzz: {tried['requests']} requests")
    assert tried["requests"] >= 40


def test_wrong_tokens_last_are_refused_and_then_rate_limited(live: LiveStack, schema: Any) -> None:
    """Runs after the others (file order): the limiter then refuses this address for a
    minute. Writes are tried too: a wrong token never gets one through."""
    writes = [
        op
        for op in _operations(schema)
        if op.method.upper() in WRITES and _least_role(op) is not None
    ]
    tried: Counter[int] = Counter()

    def check(case: Any, response: schemathesis.Response) -> None:
        tried[response.status_code] += 1
        assert response.status_code in (401, 429), (case.method, case.formatted_path)
        slug = response.json()["error"]
        assert slug == ("auth-invalid" if response.status_code == 401 else "rate-limited")

    wrong = ["x", "Bearer", "a" * 5000, live.secrets().api_tokens["admin"] + "x"]
    for i, operation in enumerate(writes):
        _run(live, operation, GenerationMode.POSITIVE, 2, wrong[i % len(wrong)], check, Counter())
    print(f"\nwrong-token requests by status: {dict(tried)}")
    assert tried[401] >= 1 and tried[429] >= 1 and set(tried) <= {401, 429}
