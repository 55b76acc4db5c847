"""The OpenAPI 3.1 document and the /docs page; schemathesis against the document on a live app: no
request it generates may get a 500 or an answer that breaks the document."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from smsqueue.api.spec import OPERATIONS

# --- the document -------------------------------------------------------------------------------------


def test_document_is_openapi_3_1_with_every_operation(client):
    r = client.get("/api/v1/openapi.json")  # no key needed
    assert r.status_code == 200 and r.mimetype == "application/json"
    doc = r.get_json()
    assert doc["openapi"] == "3.1.0"
    listed = {(method, path) for path, item in doc["paths"].items() for method in item}
    assert listed == {(op.method, op.path) for op in OPERATIONS}
    assert doc["components"]["securitySchemes"]["bearer"] == {
        "type": "http", "scheme": "bearer",
        "description": "An API key: admin, or bound to one or more legal entities.",
    }  # fmt: skip
    assert doc["security"] == [{"bearer": []}]
    # Every reference resolves; no pydantic $defs are left behind.
    text = r.get_data(as_text=True)
    assert "$defs" not in text
    for name in set(re.findall(r'"#/components/schemas/([^"]+)"', text)):
        assert name in doc["components"]["schemas"], name
    from openapi_spec_validator import validate

    validate(doc)


def test_operations_are_described_from_the_models_that_validate_them(client):
    doc = client.get("/api/v1/openapi.json").get_json()
    create = doc["paths"]["/api/v1/messages"]["post"]
    assert create["requestBody"]["content"]["application/json"]["schema"] == {
        "$ref": "#/components/schemas/MessageIn"
    }
    assert set(create["responses"]) >= {
        "200",
        "202",
        "400",
        "401",
        "403",
        "404",
        "409",
        "413",
        "415",
        "422",
        "503",
    }
    assert create["responses"]["422"]["content"] == {
        "application/problem+json": {"schema": {"$ref": "#/components/schemas/ProblemOut"}}
    }
    assert create["responses"]["503"]["headers"]["Retry-After"]["required"] is True
    message_in = doc["components"]["schemas"]["MessageIn"]
    # `text` is required unless a `template` is given
    assert message_in["additionalProperties"] is False and message_in["required"] == ["to"]
    listing = doc["paths"]["/api/v1/messages"]["get"]
    params = {p["name"]: p for p in listing["parameters"]}
    assert params["status"]["schema"]["type"] == "array" and params["status"]["explode"] is True
    assert params["limit"]["schema"] == {"default": 100, "maximum": 500, "minimum": 1, "type": "integer"}
    assert "MessageListQuery" not in doc["components"]["schemas"]  # spread into parameters
    attempts = doc["paths"]["/api/v1/messages/{message_id}/webhooks"]["get"]
    assert attempts["x-smsqueue-auth"] == "admin"
    assert attempts["parameters"] == [
        {"name": "message_id", "in": "path", "required": True, "schema": {"type": "string", "minLength": 1}}
    ]
    rotate = doc["paths"]["/api/v1/legal-entities/{code}/webhook-secret"]["post"]
    assert rotate["requestBody"]["required"] is False
    assert doc["paths"]["/healthz"]["get"]["security"] == []
    hook = doc["webhooks"]["message.status"]["post"]
    assert hook["requestBody"]["content"]["application/json"]["schema"] == {
        "$ref": "#/components/schemas/WebhookEvent"
    }
    assert {p["name"] for p in hook["parameters"]} == {
        "X-Smsqueue-Timestamp", "X-Smsqueue-Signature", "X-Smsqueue-Signature-Previous"
    }  # fmt: skip
    event = doc["components"]["schemas"]["WebhookEvent"]
    assert list(event["properties"]) == [
        "event",
        "id",
        "legal_entity",
        "reference",
        "status",
        "reason",
        "at",
        "sequence",
    ]


def test_docs_page_renders_the_document_with_our_own_assets(client):
    r = client.get("/docs")
    assert r.status_code == 200 and r.mimetype == "text/html"
    page = r.get_data(as_text=True)
    assert "api/v1/openapi.json" in page and "validatorUrl: null" in page
    assert not re.search(r"(?:src|href)=\"(?:https?:)?//", page), "an asset from the internet"
    assets = re.findall(r'(?:src|href)="(docs/assets/[^"]+)"', page)
    assert len(assets) >= 2
    for path in assets:
        asset = client.get("/" + path)
        assert asset.status_code == 200, path
        assert len(asset.get_data()) > 500
    assert client.get("/docs/assets/swagger-ui-bundle.js").mimetype in (
        "text/javascript",
        "application/javascript",
    )
    assert client.get("/docs/assets/swagger-ui.css").mimetype == "text/css"
    missing = client.get("/docs/assets/..%2Fsetup.py")
    assert missing.status_code == 404 and missing.mimetype == "application/problem+json"
    # The bundle is Swagger UI 5 (the first to read OpenAPI 3.1).
    bundle = client.get("/docs/assets/swagger-ui-bundle.js").get_data(as_text=True)
    assert "3.1" in bundle and "swagger" in bundle.lower()


# --- schemathesis on a live app -----------------------------------------------------------------------
#
# Schemathesis' own runner (its CLI, all phases but the stateful one), against the app on a real port,
# once with an admin key and once with a key bound to one entity (so valid messages are accepted). Its
# checks: no 5xx, and every answer conforms to the document (status code, content type, headers, body
# schema); invalid data (per the document) is rejected; a request without the key is refused.

CHECKS = [
    "not_a_server_error",
    "status_code_conformance",
    "content_type_conformance",
    "response_headers_conformance",
    "response_schema_conformance",
    "negative_data_rejection",
    "ignored_auth",
    "unsupported_method",
]
# The others, switched off in the configuration file (checks are chosen there, not on the command line,
# so that one operation can switch one off: see config_file).
OTHER_CHECKS = [
    "positive_data_acceptance",
    "missing_required_header",
    "allow_header_conformance",
    "use_after_free",
    "ensure_resource_availability",
    "object_level_authorization",
]
ST = Path(sys.executable).parent / "st"


@pytest.fixture
def seeded(client: Any, factory: Any, simulator: Any) -> dict[str, Any]:
    """Data for generated requests to find: an entity with a provider and a default callback URL, a few
    messages, and keys (admin, and one bound to the entity so that a message needs no legal_entity)."""
    provider = factory.provider(simulator.url, code="smsc-main")
    entity = factory.entity(provider, code="acme", callback_url="http://127.0.0.1:9/hook")
    keys = {"admin": factory.key(), "entity": factory.key(entity)}
    headers = {"Authorization": f"Bearer {keys['entity']}"}
    ids = []
    for n in range(3):
        r = client.post("/api/v1/messages", json={"to": f"+7916123456{n}", "text": "hi"}, headers=headers)
        assert r.status_code == 202
        ids.append(r.get_json()["id"])
    return {**keys, "messages": ids, "codes": ["acme", "smsc-main"]}


def config_file(tmp_path: Path, seeded: dict[str, Any]) -> Path:
    """Values that schemathesis mixes into what it generates (with a probability): known-good ones, so
    that requests also get past the semantic validators (phone numbers) and find existing resources, and
    known-hostile strings (a NUL character, which PostgreSQL text cannot hold; invisible spaces; a long
    string), so that the run meets them every time rather than by chance."""
    dictionaries = {
        "phones": ["+79161234567", "89161234568", "8 (916) 123-45-69"],
        "messages": seeded["messages"],
        "codes": [*seeded["codes"], "ac\x00me"],
        "hostile": ["a\x00b", "\x00", "\u00a0\u200b", "x" * 3000],
    }
    bindings = {
        "body.to": ("phones", 0.7),
        "body.messages[*].to": ("phones", 0.7),
        "body.legal_entity": ("codes", 0.5),
        "body.text": ("hostile", 0.1),
        "body.reference": ("hostile", 0.3),
        "query.reference": ("hostile", 0.3),
        "query.legal_entity": ("codes", 0.5),
        "path.message_id": ("messages", 0.6),
        "path.code": ("codes", 0.6),
        "path.provider": ("codes", 0.5),
    }
    lines = [f"checks.{name}.enabled = false" for name in OTHER_CHECKS]
    lines += ["", "[dictionaries]"]
    # JSON's string escapes (\uXXXX) are TOML's too.
    lines += [f"{name} = {{ values = {json.dumps(values)} }}" for name, values in dictionaries.items()]
    lines += ["", "[parameters]"]
    lines += [
        f'"{key}" = {{ dictionary = "{name}", probability = {p} }}' for key, (name, p) in bindings.items()
    ]
    # A provider's balance answers 502 when the provider fails, as API.md requires (the stateful phase can
    # PATCH the provider's address away): a documented 5xx there is not a server error.
    lines += [
        "",
        "[[operations]]",
        'include-path = "/api/v1/providers/{code}/balance"',
        "checks.not_a_server_error.enabled = false",
    ]
    path = tmp_path / "schemathesis.toml"
    path.write_text("\n".join(lines) + "\n")
    return path


def schemathesis_run(base: str, key: str, config: Path, *filters: str, examples: int) -> dict[str, Any]:
    report = config.parent / f"report-{len(list(config.parent.iterdir()))}.json"
    cmd = [
        str(ST), "--config-file", str(config), "run", f"{base}/api/v1/openapi.json",
        "--phases", "examples,coverage,fuzzing,stateful",
        "--max-examples", str(examples),
        "--seed", "20261126",
        "--workers", "1",  # hypothesis parses lambdas with ast, which CPython 3.11 can break across threads
        "--request-timeout", "10",
        "--suppress-health-check", "all",
        "-H", f"Authorization: Bearer {key}",
        "--report", "json", "--report-json-path", str(report),
        *filters,
    ]  # fmt: skip
    # Run from the test's folder: schemathesis keeps a cache folder in its working directory.
    proc = subprocess.run(
        cmd,
        capture_output=True,
        text=True,
        timeout=300,  # the whole API under one worker; more endpoints, and a loaded CI machine
        env={**os.environ, "NO_COLOR": "1"},
        cwd=config.parent,
    )
    output = proc.stdout + proc.stderr
    assert proc.returncode == 0, output[-12000:]
    result = json.loads(report.read_text())
    assert result["test_cases"]["with_failures"] == 0 and result["test_cases"]["errored"] == 0, output[-3000:]
    return result


def accepted(result: dict[str, Any], operation: str) -> int:
    return sum(phase.get("accepted", 0) for phase in result["valid_rates"].get(operation, {}).values())


@pytest.mark.timeout(900)  # two runs of up to 300 s each (see schemathesis_run) on a loaded machine
def test_schemathesis_finds_no_server_error_and_no_answer_that_breaks_the_document(
    live_server, seeded, tmp_path
):
    config = config_file(tmp_path, seeded)
    admin = schemathesis_run(live_server, seeded["admin"], config, examples=50)
    entity = schemathesis_run(
        live_server, seeded["entity"], config, "--include-path-regex", "^/api/v1/messages", examples=100
    )
    # Every operation but the document's own URL (schemathesis leaves the schema it loaded alone).
    assert admin["operations"]["tested"] == admin["operations"]["total"] == len(OPERATIONS) - 1
    assert admin["test_cases"]["generated"] > 1000 and entity["test_cases"]["generated"] > 300
    # The runs reached the core of the API, not only its validators.
    assert accepted(entity, "POST /api/v1/messages") > 0
    assert accepted(entity, "POST /api/v1/messages/{message_id}/cancel") > 0
    for result in (admin, entity):
        assert accepted(result, "GET /api/v1/messages/{message_id}") > 0
    assert accepted(admin, "GET /api/v1/messages/{message_id}/webhooks") > 0
    assert accepted(admin, "POST /api/v1/legal-entities/{code}/webhook-secret") > 0
