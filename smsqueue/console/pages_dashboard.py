"""The dashboard: the last hour's and day's messages by status and by provider, a chart of the day by
hour, and the provider errors. `?part=1` answers the refreshable part alone (console.js reloads it)."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from flask import render_template, request

import smsqueue.console.strings as t
from smsqueue.clock import now
from smsqueue.console import chart, queries
from smsqueue.console import session as console_session
from smsqueue.console.blueprint import bp, principal
from smsqueue.console.timefmt import hour_label
from smsqueue.statuses import Status

REFRESH_SECONDS = 30


def _provider_rows(
    hour: queries.Tally, day: queries.Tally, names: queries.Names
) -> list[tuple[str, int, int, dict[str, int]]]:
    """(provider, hour total, day total, day by status), busiest first."""
    out = []
    for provider_id, statuses in day.by_provider.items():
        code = names.provider_code(provider_id) or t.no_provider
        out.append(
            (code, sum(hour.by_provider.get(provider_id, {}).values()), sum(statuses.values()), statuses)
        )
    return sorted(out, key=lambda row: (-row[2], row[0]))


def _failure_rows(
    hour: queries.Tally, day: queries.Tally, names: queries.Names
) -> list[tuple[str, str, str, int, int]]:
    """(provider, status, reason, hour count, day count), most first."""
    out = []
    for (provider_id, status, reason), count in day.failures.items():
        out.append(
            (
                names.provider_code(provider_id) or t.no_provider,
                t.status(status),
                t.reason(reason),
                hour.failures.get((provider_id, status, reason), 0),
                count,
            )
        )
    return sorted(out, key=lambda row: (-row[4], row[0], row[1], row[2]))


@bp.get("/dashboard")
def dashboard() -> str:
    who = principal()
    zone = console_session.zone()
    at = now()
    with queries.bounded() as conn:
        names = queries.names(conn, who)
        data = queries.dashboard(conn, who, at)
        totals = queries.provider_error_totals(conn) if who.is_admin else None
    labels = [hour_label(data.start + timedelta(hours=i), zone) for i in range(queries.DAY_HOURS)]
    context: dict[str, Any] = {
        "at": at,
        "hour": data.hour,
        "day": data.day,
        "statuses": [(s.value, t.status(s.value)) for s in Status],
        "chart": chart.hourly_bars(data.hourly, labels),
        "legend": chart.legend(),
        "providers": _provider_rows(data.hour, data.day, names),
        "failures": _failure_rows(data.hour, data.day, names),
        "error_totals": totals,
        "refresh_seconds": REFRESH_SECONDS,
    }
    template = "console/dashboard_part.html" if request.args.get("part") else "console/dashboard.html"
    return render_template(template, **context)
