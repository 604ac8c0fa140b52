"""A sales source without costs (a user's transaction file has none): everything builds, cost figures are null.

The sources file is the project's own with ``unit_cost`` taken out of products and order lines, so the raw
tables are created without the column, exactly as for a user who configures a source that lacks it.
"""

from __future__ import annotations

import datetime as dt

import demo_sources
import psycopg
import pytest

from customer_lens import demo
from customer_lens.config import environment
from customer_lens.transform import builds

END = dt.date(2026, 10, 31)
SCHEMA = "dbt_no_cost"


@pytest.fixture(scope="module")
def no_cost_warehouse(make_database, tmp_path_factory) -> str:
    tmp = tmp_path_factory.mktemp("no_cost")
    sales_url, wh = make_database("no_cost_sales_src"), make_database("no_cost_wh")
    files = tmp / "sources"
    demo.generate(scale="tiny", seed=5, end_date=END, sales_url=sales_url, files_dir=files)
    document = demo_sources.sources_document(sales_url, files)
    for entity in ("products", "order_lines"):
        del document["sources"]["sales"]["entities"][entity]["columns"]["unit_cost"]
    start, end = demo_sources.demo_interval(files, END)
    with environment.overridden({"LENS_WAREHOUSE_URL": wh, "LENS_STATE_DIR": str(tmp / "state")}):
        demo_sources.load(document, start, end, wh, history=True)
        builds.build(schema=SCHEMA, full_refresh=True)  # raises DbtError if any model or test fails
    return wh


def _one(url: str, query: str) -> tuple:
    with psycopg.connect(url) as conn:
        return conn.execute(query).fetchone()


def test_the_raw_layer_has_no_cost_column(no_cost_warehouse) -> None:
    (columns,) = _one(
        no_cost_warehouse,
        "select count(*) from information_schema.columns "
        "where table_schema = 'raw_sales' and table_name in ('order_lines', 'products') and column_name = 'unit_cost'",
    )
    assert columns == 0


@pytest.mark.parametrize(
    ("mart", "known", "unknown"),
    [
        ("order_lines", "line_revenue", "line_cost"),
        ("order_lines", "line_revenue", "line_gross_margin"),
        ("orders", "revenue", "cost"),
        ("orders", "revenue", "gross_margin"),
        ("customers", "lifetime_revenue", "lifetime_cost"),
        ("customers", "lifetime_revenue", "lifetime_gross_margin"),
        ("customer_segments", "trailing_revenue", "trailing_gross_margin"),
        ("guerrilla_metrics", "revenue", "cost"),
        ("guerrilla_metrics", "revenue", "gross_margin"),
        ("guerrilla_metrics", "revenue", "net_margin"),
        ("lost_customer_review", "revenue_12m_before_loss", "gross_margin_12m_before_loss"),
    ],
)
def test_cost_figures_are_null_not_zero(no_cost_warehouse, mart, known, unknown) -> None:
    rows, with_value, without_value, with_unknown_figure = _one(
        no_cost_warehouse,
        f"select count(*), count(*) filter (where {known} > 0), count(*) filter (where {known} = 0), "
        f"count({unknown}) from {SCHEMA}.{mart}",
    )
    assert with_value > 0  # the figures that do not depend on cost are there
    # the ones that do are unknown on every row, never 0 - also where nothing was bought, or bought back
    assert with_unknown_figure == 0, f"{with_unknown_figure} of {rows} rows have a {unknown}"
    assert mart == "order_lines" or without_value > 0  # such rows exist here, so a filled-in 0 would show


def test_value_tiers_are_unknown_without_margins(no_cost_warehouse) -> None:
    tiers = _one(
        no_cost_warehouse,
        f"select array_agg(distinct coalesce(value_tier, '(null)')) from {SCHEMA}.customer_segments",
    )[0]
    assert set(tiers) <= {"(null)", "inactive"} and "(null)" in tiers
