"""A user's own transaction file, by configuration only: Online Retail II (parquet) as the sales source."""

from __future__ import annotations

import datetime as dt
import re
from decimal import Decimal
from pathlib import Path

import crosscheck
import pandas as pd
import psycopg
import pytest
from lens_cli import run_lens

from customer_lens import extract
from customer_lens.config import source_config

REPO = Path(__file__).resolve().parents[2]
DATA = REPO.parent / "shared" / "data" / "online_retail_ii_2009_2010.parquet"


@pytest.mark.skipif(not DATA.exists(), reason="../shared/data is not beside the repository")
def test_online_retail_loads_through_configuration_only(make_database, monkeypatch) -> None:
    monkeypatch.delenv("LENS_RETAIL_DIR", raising=False)
    wh = make_database("online_retail")
    sales = source_config.load(REPO / "config" / "examples" / "online_retail.yml")["sales"]

    result = extract.extract(
        sales,
        "transactions",
        dt.datetime(2009, 12, 1, tzinfo=dt.UTC),
        dt.datetime(2010, 12, 10, tzinfo=dt.UTC),
        warehouse_url=wh,
    )

    assert (result.rows_loaded, result.rows_rejected) == (525_461, 0)
    with psycopg.connect(wh) as conn:
        lines, invoices, customers, cancellations, anonymous, first, last = conn.execute(
            """select count(*), count(distinct order_ref), count(distinct customer_id),
                      count(*) filter (where is_cancellation), count(*) filter (where not has_customer),
                      min(ordered_at)::text, max(ordered_at)::text
               from raw_sales.transactions"""
        ).fetchone()
        sample = conn.execute(
            "select invoiced_quantity, price::text, customer_id::text from raw_sales.transactions "
            "where order_ref = '489434' and stock_code = '85048'"
        ).fetchone()
    assert (lines, invoices, customers) == (525_461, 28_816, 4_383)
    assert (cancellations, anonymous) == (10_206, 107_927)  # kept and flagged, not dropped
    assert (first, last) == ("2009-12-01 07:45:00+00", "2010-12-09 20:01:00+00")
    assert sample == (12, "6.95", "13085")


@pytest.mark.slow
@pytest.mark.skipif(not DATA.exists(), reason="../shared/data is not beside the repository")
def test_online_retail_reaches_a_promoted_baseline(make_database, tmp_path: Path) -> None:
    """`lens run --config config/examples/online_retail.yml`: the file's figures, computed independently."""
    wh = make_database("online_retail_run")
    env = {"LENS_WAREHOUSE_URL": wh, "LENS_STATE_DIR": str(tmp_path / "state")}
    run = run_lens("run", "--config", str(REPO / "config" / "examples" / "online_retail.yml"), env=env, timeout=900)
    assert "promoted to baseline #1" in run.stdout
    assert "sales.orders: derived from sales.transactions" in run.stdout
    assert "107927 lines without a customer left out of the orders" in run.stdout
    for kpi in ("gross_margin", "complaint_rate", "nps"):  # no costs, no service, no survey: unknown, not 0
        assert re.search(rf"^\s+{kpi}\s+n/a$", run.stdout, re.M), kpi

    # The same figures from the file with pandas: lines with a customer; revenue of the invoices (numbers,
    # not "C" cancellations or "A" adjustments).
    frame = pd.read_parquet(DATA)
    known = frame[frame["Customer ID"].notna()]
    sold = known[known["Invoice"].str.fullmatch(r"[0-9]+")]
    with psycopg.connect(wh) as conn:
        lines, orders, customers, revenue, margins, as_of = conn.execute(
            """select (select count(*) from analytics.order_lines), (select count(*) from analytics.orders),
                      count(*), sum(lifetime_revenue), count(lifetime_gross_margin),
                      (select as_of_date from analytics_candidate.int_as_of_date)
               from analytics.customers"""
        ).fetchone()
        segmented = conn.execute("select count(*) from analytics.customer_segments").fetchone()[0]
    assert lines == len(known)
    assert orders == known["Invoice"].nunique()
    assert customers == known["Customer ID"].nunique()
    assert float(revenue) == pytest.approx(float((sold["Quantity"] * sold["Price"]).sum()), abs=0.01)
    assert margins == 0  # no costs in the file
    assert as_of == dt.date(2010, 12, 9)  # as of the file's last day, not today
    assert segmented > 0

    # Segments at every snapshot and the CLV summary, recomputed from the file alone.
    sold = sold.assign(
        revenue=[Decimal(int(q)) * Decimal(str(p)) for q, p in zip(sold["Quantity"], sold["Price"], strict=True)]
    )
    purchases = (
        sold.groupby("Invoice")
        .agg(customer_id=("Customer ID", "first"), ordered_at=("InvoiceDate", "min"), revenue=("revenue", "sum"))
        .reset_index()
        .rename(columns={"Invoice": "order_id"})
    )
    purchases["customer_id"] = purchases["customer_id"].astype(int)
    purchases["order_date"] = [ts.date() for ts in pd.to_datetime(purchases["ordered_at"])]
    with psycopg.connect(wh) as conn:
        cursor = conn.execute(
            "select customer_id, snapshot_date, recency_days, frequency_orders, monetary_revenue, r_score, f_score, "
            "m_score from analytics.customer_segments"
        )
        segments = pd.DataFrame(cursor.fetchall(), columns=[c.name for c in cursor.description])
        clv = {
            row[0]: tuple(row[1:])
            for row in conn.execute(
                "select customer_id, frequency, recency, t, monetary_value from analytics.customer_lifetime_value"
            )
        }
    columns = ["recency_days", "frequency_orders", "monetary_revenue", "r_score", "f_score", "m_score"]
    snapshots = sorted(segments["snapshot_date"].unique())
    assert snapshots[-1] == as_of and len(snapshots) >= 12
    for snapshot in snapshots:
        expected = crosscheck.expected_rfm(purchases, snapshot)
        actual = segments[segments["snapshot_date"] == snapshot].set_index("customer_id").sort_index()
        assert list(actual.index) == list(expected.index), snapshot
        for column in columns:
            assert list(actual[column]) == list(expected[column]), (snapshot, column)
    assert clv == crosscheck.expected_clv(purchases, as_of)
