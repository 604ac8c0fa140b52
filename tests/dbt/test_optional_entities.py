"""The least a company can configure: orders and their lines, nothing else, to a promoted baseline.

The sources file gives the sales source's ``orders`` and ``order_lines`` only: no customers, products
or contracts, no service, no survey. The customer list is derived from the orders, the other entities
are empty stand-ins of the data contract's shape, and the build, its data tests and the guard all pass;
the complaint and NPS marts are empty, and the guard and the report say why.
"""

from __future__ import annotations

import datetime as dt

import demo_sources
import psycopg
import pytest
import yaml

from customer_lens import demo, report
from customer_lens.config import environment
from customer_lens.guard import baseline
from customer_lens.transform import builds

END = dt.date(2026, 10, 31)


@pytest.fixture(scope="module")
def sales_only(make_database, tmp_path_factory) -> dict:
    tmp = tmp_path_factory.mktemp("sales_only")
    sales_url, wh = make_database("sales_only_src"), make_database("sales_only_wh")
    files = tmp / "sources"
    demo.generate(scale="tiny", seed=11, end_date=END, sales_url=sales_url, files_dir=files)
    document = demo_sources.sources_document(sales_url, files)
    sales = document["sources"]["sales"]
    sales["entities"] = {name: sales["entities"][name] for name in ("orders", "order_lines")}
    document["sources"] = {"sales": sales}
    config = tmp / "sources.yml"
    config.write_text(yaml.safe_dump(document))
    start, end = demo_sources.demo_interval(files, END)
    env = {"LENS_WAREHOUSE_URL": wh, "LENS_STATE_DIR": str(tmp / "state"), "LENS_SOURCES_CONFIG": str(config)}
    with environment.overridden(env):
        demo_sources.load(document, start, end, wh, history=True)
        build = builds.build(full_refresh=True)  # raises DbtError if any model or test fails
        result = baseline.guard(source_build="sales-only", data_interval=(start, end))
        html = report.render(out=tmp / "report.html").read_text()
    return {"wh": wh, "sales_url": sales_url, "build": build, "guard": result, "report": html}


def _one(url: str, query: str) -> tuple:
    with psycopg.connect(url) as conn:
        return conn.execute(query).fetchone()


def test_the_stand_ins_are_in_the_raw_layer(sales_only) -> None:
    wh = sales_only["wh"]
    with psycopg.connect(wh) as conn:
        kinds = dict(
            conn.execute(
                "select c.oid::regclass::text, c.relkind from pg_class c "
                "join pg_namespace n on n.oid = c.relnamespace where n.nspname like 'raw\\_%' "
                "and c.relname in ('customers', 'products', 'contracts', 'tickets', 'responses')"
            ).fetchall()
        )
    assert kinds == {
        "raw_sales.customers": "v",
        "raw_sales.products": "r",
        "raw_sales.contracts": "r",
        "raw_service.tickets": "r",
        "raw_survey.responses": "r",
    }
    for table in ("raw_sales.contracts", "raw_service.tickets", "raw_survey.responses"):
        assert _one(wh, f"select count(*) from {table}")[0] == 0
        assert _one(wh, f"select obj_description('{table}'::regclass)")[0].startswith("not configured")


def test_every_ordering_customer_is_a_customer(sales_only) -> None:
    wh, sales_url = sales_only["wh"], sales_only["sales_url"]
    (ordering,) = _one(sales_url, "select count(distinct customer_id) from orders")
    customers, first_orders_match = _one(
        wh,
        "select count(*), count(c.first_order_date) > 0 from analytics_candidate.customers c",
    )
    assert customers == ordering > 50
    assert first_orders_match


def test_the_guard_promotes_and_says_what_is_not_applicable(sales_only) -> None:
    result = sales_only["guard"]
    assert result.promoted
    assert "may be empty:" in result.summary
    assert "no service.tickets, survey.responses configured" in result.summary or (
        "no service.tickets configured" in result.summary and "no survey.responses configured" in result.summary
    )
    wh = sales_only["wh"]
    assert _one(wh, "select count(*) from analytics.complaint_trends")[0] == 0
    assert _one(wh, "select count(*) from analytics.nps_by_segment where nps is not null")[0] == 0
    assert _one(wh, "select count(*) from analytics.customer_segments")[0] > 0
    assert _one(wh, "select count(*) from analytics.guerrilla_metrics where revenue > 0")[0] > 0


def test_the_report_says_which_sections_do_not_apply(sales_only) -> None:
    html = sales_only["report"]
    assert "Not applicable.</b> no service source configured (the sources file gives no service.tickets)" in html
    assert "Not applicable.</b> no survey source configured" in html
    assert html.count("Not applicable.") == 2  # segments, guerrilla metrics and the rest are drawn
