"""The baseline of the ingest benchmark: a minimal Flask endpoint that does one psycopg2 INSERT with
commit and one Redis LPUSH per request. Run under the same gunicorn settings as the product's web."""

from __future__ import annotations

import json
import os
import threading
import uuid

import psycopg2
import redis
from flask import Flask, Response, request

app = Flask(__name__)
_local = threading.local()
_redis = redis.Redis.from_url(os.environ["BASELINE_REDIS_URL"])


def _conn() -> psycopg2.extensions.connection:
    conn = getattr(_local, "conn", None)
    if conn is None:
        conn = _local.conn = psycopg2.connect(os.environ["BASELINE_DATABASE_URL"])
    return conn


@app.post("/messages")
def create() -> Response:
    body = request.get_json()
    ident = str(uuid.uuid4())
    conn = _conn()
    with conn.cursor() as cur:
        cur.execute(
            "INSERT INTO baseline_messages (id, recipient, text) VALUES (%s, %s, %s)",
            (ident, body["to"], body["text"]),
        )
    conn.commit()
    _redis.lpush("baseline", ident)
    return Response(json.dumps({"id": ident, "status": "queued"}), status=202, mimetype="application/json")
