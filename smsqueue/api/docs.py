"""The OpenAPI document (`/api/v1/openapi.json`, built by api.openapi from the operations registry)
and `/docs`, a Swagger UI page that renders it. The page's assets are served by us, from the files the
`flask-swagger-ui` package ships (Swagger UI 5, which reads OpenAPI 3.1): nothing is loaded from the
internet, and the online validator badge is off."""

from __future__ import annotations

import json
import threading
from functools import cache
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any

from flask import Blueprint, Response, send_from_directory

from smsqueue.api.openapi import build as build_openapi
from smsqueue.api.schemas import ProblemOut
from smsqueue.api.spec import OPERATIONS, route
from smsqueue.errors import not_found

bp = Blueprint("docs", __name__)
TAG = "Documentation"
ASSET_MAX_AGE = 24 * 3600

_lock = threading.Lock()
_document: tuple[int, bytes] | None = None


def _version() -> str:
    try:
        return version("smsqueue")
    except PackageNotFoundError:
        return "1.0.0"


def document() -> dict[str, Any]:
    return json.loads(document_bytes())


def document_bytes() -> bytes:
    """The document, built once per process (again only if operations were registered since)."""
    global _document
    with _lock:
        if _document is None or _document[0] != len(OPERATIONS):
            spec = build_openapi(OPERATIONS, version=_version())
            _document = (len(OPERATIONS), json.dumps(spec, ensure_ascii=False, indent=1).encode())
        return _document[1]


@route(
    bp,
    "GET",
    "/api/v1/openapi.json",
    summary="This OpenAPI 3.1 document",
    tag=TAG,
    auth="none",
    responses={200: "The OpenAPI 3.1 document of this API (application/json)."},
)
def openapi_json() -> Response:
    response = Response(document_bytes(), mimetype="application/json")
    response.headers["Cache-Control"] = "no-cache"
    return response


@cache
def assets_folder() -> Path:
    import flask_swagger_ui

    return Path(flask_swagger_ui.__file__).resolve().parent / "dist"


@cache
def asset_names() -> frozenset[str]:
    return frozenset(
        p.name for p in assets_folder().iterdir() if p.is_file() and p.suffix in (".js", ".css", ".png")
    )


PAGE = """<!DOCTYPE html>
<html lang="en">
<head>
  <meta charset="utf-8">
  <meta name="viewport" content="width=device-width, initial-scale=1">
  <title>smsqueue API</title>
  <link rel="stylesheet" href="docs/assets/swagger-ui.css">
  <link rel="icon" type="image/png" href="docs/assets/favicon-32x32.png" sizes="32x32">
  <style>body { margin: 0; }</style>
</head>
<body>
  <div id="swagger-ui"></div>
  <script src="docs/assets/swagger-ui-bundle.js"></script>
  <script>
    window.ui = SwaggerUIBundle({
      url: "api/v1/openapi.json",
      dom_id: "#swagger-ui",
      deepLinking: true,
      validatorUrl: null,
      presets: [SwaggerUIBundle.presets.apis],
      layout: "BaseLayout"
    });
  </script>
</body>
</html>
"""


@route(
    bp,
    "GET",
    "/docs",
    summary="A page that renders this document (Swagger UI)",
    tag=TAG,
    auth="none",
    responses={
        200: "An HTML page; its scripts and styles come from /docs/assets, nothing from the internet."
    },
    extra={"responses": {"200": {"content": {"text/html": {"schema": {"type": "string"}}}}}},
)
def docs_page() -> Response:
    return Response(PAGE, mimetype="text/html")


@route(
    bp,
    "GET",
    "/docs/assets/<name>",
    summary="A script, style sheet or image of the /docs page",
    tag=TAG,
    auth="none",
    responses={200: "The file (JavaScript, CSS or PNG).", 404: ProblemOut},
)
def docs_asset(name: str) -> Response:
    if name not in asset_names():
        raise not_found("asset")
    return send_from_directory(assets_folder(), name, max_age=ASSET_MAX_AGE)
