"""The OpenAPI schema, fuzzed with schemathesis against the real server: no 5xx, no surprises."""

from __future__ import annotations

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from schemathesis import GenerationMode
from schemathesis.specs.openapi.checks import positive_data_acceptance

from tests.bots.web.conftest import ServerFactory

EXAMPLES_PER_OPERATION = 20


@pytest.mark.parametrize("mode", [GenerationMode.POSITIVE, GenerationMode.NEGATIVE])
def test_any_request_gets_a_documented_answer(live_server: ServerFactory, mode: GenerationMode):
    # schemathesis' own pytest loader cannot take a per-test server with this pytest version,
    # so each operation's strategy is driven by hypothesis directly.
    server = live_server()
    schema = schemathesis.openapi.from_url(server.base + "/openapi.json")
    operations = [result.ok() for result in schema.get_all_operations()]
    assert {op.label for op in operations} >= {
        "POST /chat",
        "POST /chat/stream",
        "POST /v1/chat/completions",
        "GET /v1/models",
        "GET /healthz",
    }
    for operation in operations:
        if mode is GenerationMode.NEGATIVE and not list(operation.body):
            # No request body: nothing a client can send wrongly (a path segment is any string).
            continue

        @given(case=operation.as_strategy(mode))
        @settings(
            max_examples=EXAMPLES_PER_OPERATION,
            deadline=None,
            database=None,
            suppress_health_check=list(HealthCheck),
        )
        def call(case: schemathesis.Case) -> None:
            # Schema-valid is not always usable: no schema can say "this string decodes to an
            # image", so a documented 400 for such input is right and positive_data_acceptance
            # does not apply.
            case.call_and_validate(excluded_checks=[positive_data_acceptance], timeout=60)

        call()
