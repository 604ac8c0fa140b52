"""A user's own transaction file, by configuration only: Online Retail II (parquet) as the sales source."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import psycopg
import pytest

from customer_lens import extract, source_config

REPO = Path(__file__).resolve().parents[2]
DATA = REPO.parent / "shared" / "data" / "online_retail_ii_2009_2010.parquet"


@pytest.mark.skipif(not DATA.exists(), reason="../shared/data is not beside the repository")
def test_online_retail_loads_through_configuration_only(make_database, monkeypatch) -> None:
    monkeypatch.delenv("LENS_RETAIL_DIR", raising=False)
    wh = make_database("online_retail")
    sales = source_config.load(REPO / "config" / "examples" / "online_retail.yml")["sales"]

    result = extract.extract(
        sales,
        "order_lines",
        dt.datetime(2009, 12, 1, tzinfo=dt.UTC),
        dt.datetime(2010, 12, 10, tzinfo=dt.UTC),
        warehouse_url=wh,
    )

    assert (result.rows_loaded, result.rows_rejected) == (525_461, 0)
    with psycopg.connect(wh) as conn:
        lines, invoices, customers, cancellations, anonymous, first, last = conn.execute(
            """select count(*), count(distinct invoice_no), count(distinct customer_id),
                      count(*) filter (where is_cancellation), count(*) filter (where not has_customer),
                      min(invoiced_at)::text, max(invoiced_at)::text
               from raw_sales.order_lines"""
        ).fetchone()
        sample = conn.execute(
            "select quantity, unit_price::text, customer_id::text from raw_sales.order_lines "
            "where invoice_no = '489434' and stock_code = '85048'"
        ).fetchone()
    assert (lines, invoices, customers) == (525_461, 28_816, 4_383)
    assert (cancellations, anonymous) == (10_206, 107_927)  # kept and flagged, not dropped
    assert (first, last) == ("2009-12-01 07:45:00+00", "2010-12-09 20:01:00+00")
    assert sample == (12, "6.95", "13085")
