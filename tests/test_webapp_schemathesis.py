"""Every operation of /api/v1/openapi.json fuzzed by schemathesis (valid and invalid inputs) against the real app
over a store analysed from a simulator scenario: no 5xx, status codes, content types and response bodies as
documented. Bounded examples per operation keep the run short; notifications are off so fuzzed alert rules
never reach the network."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import pytest
import schemathesis
from hypothesis import HealthCheck, Phase, given, settings
from schemathesis import GenerationMode
from webapp_support import analysed_store, make_tokens

from llmid.plugin.webapp import create_app
from llmid.plugin.webapp.config import WebConfig
from llmid.plugin.webapp.openapi import openapi_document

MAX_EXAMPLES = int(os.environ.get("LLMID_FUZZ_EXAMPLES", "20"))
"""Examples per operation and mode; raise it locally for a deeper run (the suite stays short by default)."""


@pytest.fixture(scope="module")
def api_env(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    tmp: Path = tmp_path_factory.mktemp("fuzz")
    url, _ = analysed_store(tmp)
    app = create_app(url, WebConfig(notify=False, rate_per_minute=0, max_body_bytes=256 * 1024,
                                    max_ingest_lines=2000))
    return {"app": app, "tokens": make_tokens(url)}


@pytest.fixture(scope="module")
def api_schema(api_env: dict[str, Any]) -> Any:
    schema = schemathesis.openapi.from_wsgi("/api/v1/openapi.json", api_env["app"])
    # The token is sent by the test; schemathesis generates everything else (auth cases: test_webapp_api.py).
    schema.config.generation.update(max_examples=MAX_EXAMPLES, with_security_parameters=False,
                                    modes=[GenerationMode.POSITIVE, GenerationMode.NEGATIVE])
    return schema


@schemathesis.serializer("application/x-ndjson")
def ndjson(ctx: Any, value: Any) -> bytes:
    """The document gives an NDJSON body as the list of values it carries: a list goes on the wire one JSON value
    per line; anything else (invalid inputs) as a body that is no NDJSON at all."""
    if isinstance(value, list):
        text = "\n".join(json.dumps(v) for v in value)
    else:
        text = "not ndjson: " + json.dumps(value)
    return text.encode("utf-8", "surrogatepass")


_PATHS = openapi_document()["paths"]
OPERATIONS = sorted((m.upper(), p) for p, ops in _PATHS.items() for m in ops)
"""(method, path) of every documented operation; one test each, so a failure names the operation."""
CASES = [(mode, m, p) for m, p in OPERATIONS for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE)
         if mode is GenerationMode.POSITIVE or set(_PATHS[p][m.lower()]) & {"parameters", "requestBody"}]
"""Valid inputs for every operation; invalid ones where an operation takes any input to get wrong."""


@pytest.mark.parametrize("mode,method,path", CASES, ids=[f"{m} {p} {mode.value}" for mode, m, p in CASES])
def test_api_conforms(api_schema: Any, api_env: dict[str, Any], mode: GenerationMode, method: str, path: str
                      ) -> None:
    # Hypothesis drives the strategy directly: schemathesis' lazy pytest fixture loader does not run on pytest 9.
    operation = api_schema[path][method]
    auth = {"Authorization": f"Bearer {api_env['tokens']['admin']}"}

    @given(case=operation.as_strategy(generation_mode=mode))
    @settings(max_examples=MAX_EXAMPLES, deadline=None, derandomize=not os.environ.get("LLMID_FUZZ_EXAMPLES"),
              database=None, suppress_health_check=list(HealthCheck), phases=[Phase.explicit, Phase.generate])
    def run(case: Any) -> None:
        case.call_and_validate(headers={**auth, **(case.headers or {})})

    run()


def test_document_covers_every_route(api_env: dict[str, Any]) -> None:
    doc = api_env["app"].test_client().get("/api/v1/openapi.json").get_json()
    documented = {(m.upper(), "/api/v1" + p) for p, ops in doc["paths"].items() for m in ops}
    routed = set()
    for rule in api_env["app"].url_map.iter_rules():
        if rule.rule.startswith("/api/v1") and rule.rule != "/api/v1/openapi.json":
            path = rule.rule.replace("<", "{").replace(">", "}")
            routed |= {(m, path) for m in rule.methods or () if m not in ("HEAD", "OPTIONS")}
    assert routed == documented
