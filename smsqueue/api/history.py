"""Evidence for one debtor or one number of an entity (API.md "Evidence"): every message, oldest first,
with every status and the rules' decisions as they were recorded at sending time, as JSON or (with
`Accept: text/csv`) CSV. Admin keys only (API.md gives entity keys no part in it)."""

from __future__ import annotations

import csv
import io
import json
from typing import Any

from flask import Blueprint, Response, jsonify, request

from smsqueue import entity_cache, evidence
from smsqueue.api.compliance_schemas import HistoryOut
from smsqueue.api.http import require_admin
from smsqueue.api.legal_entities import ADMIN_NOTE, BASE, ERRORS, TAG, entity_or_404
from smsqueue.api.schemas import ProblemOut
from smsqueue.api.spec import route
from smsqueue.api.stop_list import path_debtor, path_number
from smsqueue.clock import iso
from smsqueue.db import session_scope

bp = Blueprint("history", __name__)
CSV = "text/csv"
# The 200 answer is CSV too, with `Accept: text/csv`.
CSV_ANSWER = {"responses": {"200": {"content": {CSV: {"schema": {"type": "string"}}}}}}
CSV_COLUMNS = (
    "id", "created_at", "to", "debtor", "text", "sender", "provider", "provider_message_id", "status",
    "reason", "events", "decision", "decision_at", "decision_reasons", "counts_day", "counts_week",
    "counts_month", "decisions",
)  # fmt: skip
DESCRIPTION = (
    f"{ADMIN_NOTE} Every message of the entity {{what}}, oldest first: id, to, text, sender, provider, "
    "provider_message_id, every status with its time and reason (`events`), and every decision the "
    "sender's rules step made about it (`decisions`: allowed, deferred or rejected, with the reasons, the "
    "FZ counts it judged by and, when deferred, the new time), recorded when it was made. `interactions` "
    "lists interactions reported as made elsewhere. With `Accept: text/csv`: CSV, a header row and one "
    "row per message (the last decision in its own columns, every event and decision in one cell each). "
    "Messages purged by retention are no longer shown."
)


def render_item(item: evidence.Item) -> dict[str, Any]:
    row = item.message
    return {
        "id": str(row.id),
        "to": row.recipient,
        "debtor": row.debtor,
        "text": row.text,
        "sender": row.sender,
        "provider": entity_cache.provider_code(row.provider_id),
        "provider_message_id": row.provider_message_id,
        "status": row.status,
        "reason": row.reason,
        "created_at": iso(row.created_at),
        "events": [{"status": e["status"], "at": iso(e["at"]), "reason": e["reason"]} for e in item.events],
        "decisions": [
            {
                "at": iso(x["at"]),
                "outcome": x["outcome"],
                "reasons": x["reasons"],
                "counts": x["counts"],
                "until": iso(x["until"]),
            }
            for x in item.decisions
        ],
    }


def csv_row(item: dict[str, Any]) -> list[Any]:
    last = item["decisions"][-1] if item["decisions"] else None
    counts = (last or {}).get("counts") or {}
    events = "; ".join(
        f"{e['at']} {e['status']}" + (f" ({e['reason']})" if e["reason"] else "") for e in item["events"]
    )
    decisions = "; ".join(
        f"{x['at']} {x['outcome']}"
        + (f" ({','.join(x['reasons'])})" if x["reasons"] else "")
        + (f" counts {json.dumps(x['counts'], sort_keys=True)}" if x["counts"] else "")
        + (f" until {x['until']}" if x["until"] else "")
        for x in item["decisions"]
    )
    return [
        item["id"], item["created_at"], item["to"], item["debtor"], item["text"], item["sender"],
        item["provider"], item["provider_message_id"], item["status"], item["reason"], events,
        last["outcome"] if last else "", last["at"] if last else "",
        ",".join(last["reasons"]) if last else "",
        counts.get("day", ""), counts.get("week", ""), counts.get("month", ""), decisions,
    ]  # fmt: skip


def wants_csv() -> bool:
    # JSON unless CSV is preferred (a */* or no Accept header at all gets JSON).
    return request.accept_mimetypes.best_match(["application/json", CSV]) == CSV


def answer(code: str, key: dict[str, str]) -> Response:
    with session_scope() as session:
        entity = entity_or_404(session, code)
        conn = session.connection()
        found = evidence.history(conn, entity.id, **_filters(key))
        interactions = evidence.interactions(conn, entity.id, **_filters(key))
    # Rendered after the transaction: a provider code the cache misses is read in a transaction of its
    # own, which on SQLite would wait for this one's write lock.
    items = [render_item(i) for i in found]
    if wants_csv():
        out = io.StringIO()
        writer = csv.writer(out)
        writer.writerow(CSV_COLUMNS)
        writer.writerows(csv_row(i) for i in items)
        name = f"{code}-{'-'.join(key.values())}-history.csv".replace('"', "")
        return Response(
            out.getvalue(),
            mimetype=CSV,
            headers={"Content-Disposition": f'attachment; filename="{name}"'},
        )
    return jsonify({"legal_entity": code, **key, "items": items, "interactions": interactions})


def _filters(key: dict[str, str]) -> dict[str, str]:
    return {"debtor": key["debtor"]} if "debtor" in key else {"recipient": key["to"]}


@route(
    bp,
    "GET",
    f"{BASE}/<code>/debtors/<debtor>/history",
    summary="Evidence: one debtor's history",
    tag=TAG,
    responses={200: HistoryOut, 404: ProblemOut, 422: ProblemOut, **ERRORS},
    auth="admin",
    extra=CSV_ANSWER,
    description=DESCRIPTION.format(what="with this `debtor` (to any number)"),
)
def debtor_history(code: str, debtor: str) -> Response:
    require_admin()
    return answer(code, {"debtor": path_debtor(debtor)})


@route(
    bp,
    "GET",
    f"{BASE}/<code>/numbers/<number>/history",
    summary="Evidence: one number's history",
    tag=TAG,
    responses={200: HistoryOut, 404: ProblemOut, 422: ProblemOut, **ERRORS},
    auth="admin",
    extra=CSV_ANSWER,
    description=DESCRIPTION.format(what="to this number (any common form; stored E.164)"),
)
def number_history(code: str, number: str) -> Response:
    require_admin()
    return answer(code, {"to": path_number(number)})
