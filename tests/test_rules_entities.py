"""The entity settings rules that need no request: 230-FZ settings as columns, the stored limits merged
with an edit's, the order of the limits, and the law's defaults where the columns and the API take them."""

from __future__ import annotations

from types import SimpleNamespace

from smsqueue import law
from smsqueue.api.rules_schemas import FzIn
from smsqueue.models import LegalEntity
from smsqueue.rules.entities import fz_columns, limit_errors, merged_limits


def test_fz_settings_become_their_columns_and_only_those_given():
    assert fz_columns({"per_day": 1, "weekend_hours": {"from": "10:00", "to": "19:00"}}) == {
        "fz_per_day": 1,
        "fz_weekend_from": "10:00",
        "fz_weekend_to": "19:00",
    }
    assert fz_columns({}) == {}


def test_an_edit_is_judged_with_the_stored_limits_it_leaves_alone():
    stored = SimpleNamespace(fz_per_day=2, fz_per_week=4, fz_per_month=16)
    assert merged_limits(stored, {"fz_per_week": 1}) == (2, 1, 16)  # type: ignore[arg-type]
    errors = limit_errors(*merged_limits(stored, {"fz_per_week": 1}))  # type: ignore[arg-type]
    assert [(e.field, e.code) for e in errors] == [("fz.per_week", "limit_below_shorter_period")]


def test_limits_must_not_shrink_with_a_longer_period():
    assert limit_errors(2, 4, 16) == []
    assert limit_errors(3, 3, 3) == []
    assert [e.field for e in limit_errors(5, 4, 16)] == ["fz.per_week"]
    assert [e.field for e in limit_errors(1, 4, 3, prefix="")] == ["per_month"]


def test_the_law_s_defaults_are_those_of_the_columns_and_of_the_api():
    assert (law.PER_DAY, law.PER_WEEK, law.PER_MONTH) == (2, 4, 16)
    columns = LegalEntity.__table__.c
    assert [columns[f"fz_per_{k}"].default.arg for k in ("day", "week", "month")] == [2, 4, 16]
    assert (columns.fz_weekday_from.default.arg, columns.fz_weekday_to.default.arg) == ("08:00", "22:00")
    assert (columns.fz_weekend_from.default.arg, columns.fz_weekend_to.default.arg) == ("09:00", "20:00")
    fz = FzIn().model_dump(by_alias=True)
    assert (fz["per_day"], fz["per_week"], fz["per_month"]) == (2, 4, 16)
    assert fz["weekday_hours"] == {"from": "08:00", "to": "22:00"}
    assert fz["weekend_hours"] == {"from": "09:00", "to": "20:00"}
