"""The marts against an independent pandas computation straight from the raw layer (exact equality).

pandas re-derives, from raw_sales / raw_survey and raw_<source>._batches only, what the marts claim:
the as-of date, recency/frequency/monetary and their scores at every snapshot, the lifetimes-style
CLV summary, and NPS/CSAT per month and segment (segment membership is taken from customer_segments,
whose own figures the RFM check verifies).
"""

from __future__ import annotations

import datetime as dt
from decimal import ROUND_HALF_UP, Decimal

import crosscheck
import pandas as pd
import psycopg
import pytest


def _frame(url: str, query: str) -> pd.DataFrame:
    with psycopg.connect(url) as conn:
        cursor = conn.execute(query)
        columns = [c.name for c in cursor.description]
        return pd.DataFrame(cursor.fetchall(), columns=columns)


def _latest(frame: pd.DataFrame, key: str, order: str) -> pd.DataFrame:
    """The latest loaded version of each record (highest ``order`` column, then latest load)."""
    ranked = frame.sort_values([key, order, "_loaded_at"])
    return ranked.drop_duplicates(key, keep="last").reset_index(drop=True)


def _round(value: Decimal, places: str = "0.01") -> Decimal:
    return value.quantize(Decimal(places), rounding=ROUND_HALF_UP)


@pytest.fixture(scope="module")
def raw(dbt_warehouse) -> dict:
    """Raw tables as pandas frames, latest versions, plus the as-of date derived from the batches."""
    url = dbt_warehouse.url
    batches = _frame(
        url,
        " union all ".join(
            f"select '{source}' as source, entity, interval_end from raw_{source}._batches where status = 'loaded'"
            for source in ("sales", "service", "survey")
        ),
    )
    loaded_until = batches.groupby(["source", "entity"])["interval_end"].max().min()
    as_of = loaded_until.astimezone(dt.UTC).date() - dt.timedelta(days=1)

    customers = _latest(_frame(url, "select * from raw_sales.customers"), "customer_id", "updated_at")
    orders = _latest(_frame(url, "select * from raw_sales.orders"), "order_id", "updated_at")
    lines = _latest(_frame(url, "select * from raw_sales.order_lines"), "order_line_id", "updated_at")
    lines["revenue"] = [
        q * p * (1 - (d if d is not None and not pd.isna(d) else Decimal(0)))
        for q, p, d in zip(lines["quantity"], lines["unit_price"], lines["discount_pct"], strict=True)
    ]
    revenue = lines.groupby("order_id")["revenue"].sum()
    orders["revenue"] = [revenue.get(order_id, Decimal(0)) for order_id in orders["order_id"]]
    orders["order_date"] = [ts.astimezone(dt.UTC).date() for ts in orders["ordered_at"]]
    purchases = orders[
        (orders["status"].isna() | (orders["status"] == "completed"))
        & orders["customer_id"].isin(customers["customer_id"])
        & (orders["order_date"] <= as_of)
    ]
    responses = _latest(_frame(url, "select * from raw_survey.responses"), "response_id", "submitted_at")
    return {"as_of": as_of, "customers": customers, "purchases": purchases, "responses": responses}


def test_as_of_date_is_the_last_day_every_entity_loaded(dbt_warehouse, raw) -> None:
    (as_of,) = dbt_warehouse.rows(f"select distinct as_of_date from {dbt_warehouse.full_schema}.customers")[0]
    assert as_of == raw["as_of"]


def test_customer_segments_rfm_values_and_scores_match_pandas(dbt_warehouse, raw) -> None:
    segments = _frame(
        dbt_warehouse.url,
        f"select customer_id, snapshot_date, last_purchase_date, recency_days, frequency_orders, "
        f"monetary_revenue, r_score, f_score, m_score from {dbt_warehouse.full_schema}.customer_segments",
    )
    snapshots = sorted(segments["snapshot_date"].unique())
    assert snapshots[-1] == raw["as_of"]
    assert len(snapshots) >= 30  # month ends of ~3 years
    columns = ["last_purchase_date", "recency_days", "frequency_orders", "monetary_revenue", "r_score", "f_score"]
    columns.append("m_score")
    for snapshot in snapshots:
        expected = crosscheck.expected_rfm(raw["purchases"], snapshot)
        actual = segments[segments["snapshot_date"] == snapshot].set_index("customer_id").sort_index()
        assert list(actual.index) == list(expected.index), snapshot
        for column in columns:
            assert list(actual[column]) == list(expected[column]), (snapshot, column)


def test_customer_lifetime_value_matches_lifetimes_convention(dbt_warehouse, raw) -> None:
    expected = crosscheck.expected_clv(raw["purchases"], raw["as_of"])
    actual = {
        row[0]: tuple(row[1:])
        for row in dbt_warehouse.rows(
            f"select customer_id, frequency, recency, t, monetary_value "
            f"from {dbt_warehouse.full_schema}.customer_lifetime_value"
        )
    }
    assert actual == expected


def test_nps_by_segment_matches_pandas(dbt_warehouse, raw) -> None:
    customers, responses, as_of = raw["customers"], raw["responses"], raw["as_of"]
    ids = set(customers["customer_id"])
    emails = customers["email"].str.strip().str.lower().value_counts()
    email_to_id = {
        email: customer_id
        for email, customer_id in zip(customers["email"].str.strip().str.lower(), customers["customer_id"], strict=True)
        if emails[email] == 1
    }

    def match(ref: str) -> int | None:
        ref = ref.strip()
        if ref.isdigit():
            return int(ref) if int(ref) in ids else None
        return email_to_id.get(ref.lower()) if "@" in ref else None

    responses = responses.copy()
    responses["customer_id"] = [match(ref) for ref in responses["customer_ref"]]
    responses["submitted_date"] = [ts.astimezone(dt.UTC).date() for ts in responses["submitted_at"]]
    responses["month"] = [d.replace(day=1) for d in responses["submitted_date"]]
    nps = responses[
        (responses["kind"] == "nps") & responses["nps_score"].notna() & (responses["submitted_date"] <= as_of)
    ]
    csat = responses[
        (responses["kind"] == "csat") & responses["csat_score"].notna() & (responses["submitted_date"] <= as_of)
    ]

    segments = _frame(
        dbt_warehouse.url,
        f"select customer_id, snapshot_date, rfm_segment from {dbt_warehouse.full_schema}.customer_segments",
    )
    segment_of = {
        (customer_id, snapshot.replace(day=1)): segment
        for customer_id, snapshot, segment in segments.itertuples(index=False)
    }

    def segment(customer_id, month) -> str:
        if customer_id is None or pd.isna(customer_id):
            return "unmatched"
        return segment_of.get((int(customer_id), month), "unsegmented")

    expected: dict[tuple, list[int]] = {}
    for frame, kind in ((nps, "nps"), (csat, "csat")):
        for row in frame.itertuples(index=False):
            for seg in (segment(row.customer_id, row.month), "all"):
                counts = expected.setdefault((row.month, seg), [0, 0, 0, 0, 0, 0])
                if kind == "nps":
                    score = int(row.nps_score)
                    counts[0] += 1
                    counts[1 if score >= 9 else 2 if score >= 7 else 3] += 1
                else:
                    counts[4] += 1
                    counts[5] += int(row.csat_score) >= 4

    def figures(counts: list[int]) -> tuple:
        responses_, promoters, _passives, detractors, csat_n, satisfied = counts
        score = _round(Decimal(100 * (promoters - detractors)) / responses_) if responses_ else None
        csat_pct = _round(Decimal(100 * satisfied) / csat_n) if csat_n else None
        return (*counts, score, csat_pct)

    actual = {
        (month, seg): tuple(values)
        for month, seg, *values in dbt_warehouse.rows(
            f"select month_start_date, rfm_segment, nps_responses, promoters, passives, detractors, "
            f"csat_responses, csat_satisfied_responses, nps, csat_pct from {dbt_warehouse.full_schema}.nps_by_segment"
        )
    }
    answered = {key: value for key, value in actual.items() if value[0] or value[4]}
    assert answered == {key: figures(counts) for key, counts in expected.items()}
    assert all(value == (0, 0, 0, 0, 0, 0, None, None) for key, value in actual.items() if key not in answered)
    assert len(expected) > 20
