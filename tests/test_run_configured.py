"""``lens run --config FILE``: a company's own sources, by configuration alone, to a promoted baseline.

The sources file gives the sales system's orders and lines (no customers, products or contracts), a
survey tool's export in its own shape (mapped onto the data contract) and no service source. The run
loads each source over its own range, builds, guards and promotes; a second run reloads the same
intervals (nothing duplicated) and keeps the baseline (same data).
"""

from __future__ import annotations

import csv
import datetime as dt
import json
from decimal import ROUND_HALF_UP, Decimal
from pathlib import Path

import crosscheck
import demo_sources
import pandas as pd
import psycopg
import pytest
import yaml
from lens_cli import run_lens

from customer_lens import demo

END = dt.date(2026, 10, 31)
MONTH_BEFORE = dt.date(2026, 9, 30)

COUNTS = "select (select count(*) from raw_sales.order_lines), (select count(*) from raw_survey.responses)"


def _first_run(config: Path, env: dict[str, str], sales_url: str, wh: str, start_date: str, answers: list) -> tuple:
    """The whole job on a company's own sources: loaded over their range, built in full, guarded, promoted."""
    first = run_lens("run", "--config", str(config), env=env)
    assert "demo data" not in first.stdout
    assert f"sales (postgres): {start_date} to {END}" in first.stdout
    assert "sales.customers: derived from sales.orders" in first.stdout
    assert "service.tickets: not configured (empty)" in first.stdout
    assert "marts       built in full" in first.stdout
    assert "promoted to baseline #1" in first.stdout
    assert "may be empty:" in first.stdout and "(no service.tickets configured)" in first.stdout
    with psycopg.connect(wh) as conn:
        counts = conn.execute(COUNTS).fetchone()
        (as_of,) = conn.execute("select as_of_date from analytics_candidate.int_as_of_date").fetchone()
        staged = conn.execute("select count(*) from analytics_candidate.stg_survey__responses").fetchone()[0]
        (nps_rows,) = conn.execute("select count(*) from analytics.nps_by_segment where nps is not null").fetchone()
    with psycopg.connect(sales_url) as conn:
        assert conn.execute("select count(*) from public.order_lines").fetchone()[0] == counts[0]
    assert counts[1] == staged == len(answers)
    assert as_of == END  # reported as of the history's last day, not today
    assert nps_rows > 0
    return counts


def _second_run_keeps_the_baseline(config: Path, env: dict[str, str], wh: str, counts: tuple) -> None:
    """Same data, same baseline: validated, found equal, not promoted again (no +0.00% baseline #2)."""
    second = run_lens("run", "--config", str(config), env=env)
    assert "marts       built in full" in second.stdout
    assert "baseline    #1 unchanged: validated, and equal to it" in second.stdout
    with psycopg.connect(wh) as conn:
        assert conn.execute(COUNTS).fetchone() == counts
        assert conn.execute("select count(*) from lens_audit.baselines").fetchone() == (1,)
        assert conn.execute(r"select count(*) from pg_namespace where nspname like 'lens\_snapshot\_%'").fetchone() == (
            1,
        )  # the equal snapshot was dropped


def _another_sources_file_is_refused(tmp_path: Path, env: dict[str, str], wh: str, counts: tuple) -> None:
    """Another sources file on this warehouse (a transaction file: orders, lines and customers derived, no
    survey) would build on this one's loaded rows: refused before anything moves, in one line."""
    exports = tmp_path / "other_exports"
    exports.mkdir()
    (exports / "sales.csv").write_text("Customer,Date,Qty,Amount\n1,01/10/2026 10:00,1,9.99\n")
    other = tmp_path / "other.yml"
    sales_only = _example(
        "transactions_csv.yml", "sales", location=str(exports), start_date="2026-10-01", end_date=str(END)
    )
    other.write_text(yaml.safe_dump({"sources": {"sales": sales_only}}))
    refused = run_lens("run", "--config", str(other), env=env, check=False)
    assert refused.returncode == 1 and "Traceback" not in refused.stderr, refused.stderr
    assert refused.stderr.startswith("error: the warehouse holds loaded rows of ")
    for stale in ('"raw_sales"."orders"', '"raw_sales"."order_lines"', '"raw_survey"."responses"'):
        assert stale in refused.stderr
    assert "its own warehouse (LENS_STATE_DIR=" in refused.stderr
    with psycopg.connect(wh) as conn:
        assert conn.execute("select to_regclass('raw_sales.transactions')").fetchone() == (None,)  # nothing loaded
        assert conn.execute(COUNTS).fetchone() == counts


def _demo_options_and_a_file_without_orders_are_refused(
    config: Path, document: dict, survey: dict, env: dict[str, str]
) -> None:
    """The demo's options do not apply to a user's sources, and a file without orders is refused up front."""
    refused = run_lens("run", "--config", str(config), "--anomaly", "duplicate-orders", env=env, check=False)
    assert refused.returncode == 1 and "does not apply to your own sources" in refused.stderr
    document["sources"] = {"survey": survey}
    config.write_text(yaml.safe_dump(document))
    refused = run_lens("run", "--config", str(config), env=env, check=False)
    assert refused.returncode == 1
    assert "the marts need at least sales.orders and sales.order_lines" in refused.stderr
    assert "Traceback" not in refused.stderr


def test_run_on_own_sources(make_database, tmp_path: Path) -> None:
    sales_url, wh = make_database("configured_sales_src"), make_database("configured_wh")
    files = tmp_path / "demo"
    demo.generate(scale="tiny", seed=3, end_date=END, sales_url=sales_url, files_dir=files)
    answers = demo_sources.survey_tool_export(files / "survey", tmp_path / "survey_tool")
    start_date = json.loads((files / "demo_generation.json").read_text())["start_date"]

    document = demo_sources.sources_document(sales_url, files)
    sales = document["sources"]["sales"]
    sales["entities"] = {name: sales["entities"][name] for name in ("orders", "order_lines")}
    survey = demo_sources.SURVEY_TOOL | {"location": str(tmp_path / "survey_tool")}
    document = {
        "defaults": {"start_date": start_date, "end_date": END.isoformat()},  # a history that has ended
        "sources": {"sales": sales, "survey": survey},
    }
    config = tmp_path / "my_sources.yml"
    config.write_text(yaml.safe_dump(document))
    env = {"LENS_STATE_DIR": str(tmp_path / "state"), "LENS_WAREHOUSE_URL": wh}

    counts = _first_run(config, env, sales_url, wh, start_date, answers)
    _second_run_keeps_the_baseline(config, env, wh, counts)
    _another_sources_file_is_refused(tmp_path, env, wh, counts)
    _demo_options_and_a_file_without_orders_are_refused(config, document, survey, env)


def test_a_bare_transaction_file_reaches_the_marts(make_database, tmp_path: Path) -> None:
    """Customer id, date, quantity and amount per line: no order or line id, no products, no customers."""
    sales_url, wh = make_database("bare_sales_src"), make_database("bare_wh")
    demo.generate(scale="tiny", seed=9, end_date=END, sales_url=sales_url, files_dir=tmp_path / "demo")
    exports = tmp_path / "exports"
    exports.mkdir()
    with psycopg.connect(sales_url) as conn:
        rows = conn.execute(
            """select o.customer_id, to_char(o.ordered_at at time zone 'UTC', 'DD/MM/YYYY HH24:MI'), l.quantity,
                      round(l.quantity * l.unit_price * (1 - coalesce(l.discount_pct, 0)), 2)
               from orders o join order_lines l using (order_id) where o.status = 'completed'
               order by o.ordered_at"""
        ).fetchall()
    with (exports / "sales.csv").open("w") as out:  # day-first dates, as many exports write them
        out.write("Customer,Date,Qty,Amount\n")
        out.writelines(f"{c},{d},{q},{a}\n" for c, d, q, a in rows)
    first_day = dt.datetime.strptime(rows[0][1], "%d/%m/%Y %H:%M").date()
    sales = _example(
        "transactions_csv.yml",
        "sales",
        location=str(exports),
        start_date=first_day.isoformat(),
        end_date=END.isoformat(),
    )
    document = {"sources": {"sales": sales}}
    config = tmp_path / "bare.yml"
    config.write_text(yaml.safe_dump(document))
    env = {"LENS_STATE_DIR": str(tmp_path / "state"), "LENS_WAREHOUSE_URL": wh}
    run = run_lens("run", "--config", str(config), env=env, check=False)
    assert run.returncode == 0, run.stdout + run.stderr
    assert "promoted to baseline #1" in run.stdout
    with psycopg.connect(wh) as conn:
        customers, revenue, lines = conn.execute(
            "select count(*), sum(lifetime_revenue), (select count(*) from analytics.order_lines) "
            "from analytics.customers"
        ).fetchone()
    assert customers == len({c for c, *_ in rows})
    assert lines == len(rows)
    assert float(revenue) == pytest.approx(float(sum(a for *_, a in rows)), abs=0.01)

    # The CLV summary, recomputed from the file alone: a customer's lines of one moment are one order.
    orders: dict[tuple, Decimal] = {}
    for customer, moment, _, amount in rows:
        orders[customer, moment] = orders.get((customer, moment), Decimal(0)) + amount
    purchases = pd.DataFrame(
        [
            (customer, f"{customer}@{moment}", dt.datetime.strptime(moment, "%d/%m/%Y %H:%M").date(), amount)
            for (customer, moment), amount in orders.items()
        ],
        columns=["customer_id", "order_id", "order_date", "revenue"],
    )
    with psycopg.connect(wh) as conn:
        clv = {
            row[0]: tuple(row[1:])
            for row in conn.execute(
                "select customer_id, frequency, recency, t, monetary_value from analytics.customer_lifetime_value"
            )
        }
    assert clv == crosscheck.expected_clv(purchases, END)


CHANNEL_NAMES = {"phone": "IVR", "email": "E-mail", "chat": "Chat", "web": "Web Form", "social": "Social"}
DAY_FIRST = "%d/%m/%Y %H:%M:%S"


def _day_first(value: str | None) -> str:
    return "?" if value is None else dt.datetime.fromisoformat(value).strftime(DAY_FIRST)


def _helpdesk_export(demo_dir: Path, target: Path, customer_of_email: dict[str, int]) -> dict[str, dict]:
    """The demo's tickets as a helpdesk writes them: INC numbers, day-first times, "?" for nothing, its own
    channel names and categories, no type; every other ticket names its requester by the sales system's
    customer number (C-000042) instead of an e-mail. Returns each ticket's latest row by number."""
    target.mkdir()
    latest: dict[str, dict] = {}
    header = ["Number", "Requester", "Customer No", "Opened", "Updated", "First Response", "Resolved", "Channel"]
    for path in sorted((demo_dir / "service").glob("tickets_*.ndjson")):
        day = path.name.removeprefix("tickets_").removesuffix(".ndjson")
        with (target / f"incidents_{day}.csv").open("w", newline="") as out:
            writer = csv.writer(out)
            writer.writerow([*header, "Category", "State"])
            for line in path.read_text().splitlines():
                ticket = json.loads(line)
                number = f"INC{ticket['ticket_id']:07d}"
                customer = customer_of_email.get((ticket["requester_email"] or "").lower())
                by_number = customer is not None and ticket["ticket_id"] % 2 == 0
                row = {
                    "Number": number,
                    "Requester": "?" if by_number or not ticket["requester_email"] else ticket["requester_email"],
                    "Customer No": f"C-{customer:06d}" if by_number else "?",
                    "Opened": _day_first(ticket["created_at"]),
                    "Updated": _day_first(ticket["updated_at"]),
                    "First Response": _day_first(ticket["first_reply_at"]),
                    "Resolved": _day_first(ticket["solved_at"]),
                    "Channel": CHANNEL_NAMES[ticket["channel"]],
                    "Category": ticket["category"].replace("_", " ").title(),
                    "State": ticket["status"].upper(),
                }
                writer.writerow(row.values())
                if number not in latest or row_time(row, "Updated") >= row_time(latest[number], "Updated"):
                    latest[number] = row | {"channel": ticket["channel"]}
    return latest


def row_time(row: dict, column: str) -> dt.datetime | None:
    return None if row[column] == "?" else dt.datetime.strptime(row[column], DAY_FIRST)


def _example(name: str, source: str, **settings) -> dict:
    """A source of a worked example in config/examples, with its location and range for this test."""
    document = yaml.safe_load((demo_sources.REPO / "config" / "examples" / name).read_text())
    return document["sources"][source] | settings


def _post_purchase_export(sales_url: str, target: Path) -> list[tuple]:
    """Answers to every third order (and two to orders the sales system does not know), each with its
    order number, a score of 1-5 and now and then a comment over several lines."""
    target.mkdir()
    with psycopg.connect(sales_url) as conn:
        orders = conn.execute(
            "select order_id, customer_id, ordered_at from orders where order_id % 3 = 0 order by order_id"
        ).fetchall()
    answers = [
        (f"A{order_id}", f"SO-{order_id}", ordered_at + dt.timedelta(days=2), order_id % 5 + 1, customer_id)
        for order_id, customer_id, ordered_at in orders
        if (ordered_at + dt.timedelta(days=2)).date() <= END
    ]
    answers += [("A-x1", "SO-999999991", answers[0][2], 1, None), ("A-x2", "SO-999999992", answers[-1][2], 2, None)]
    with (target / "answers.csv").open("w", newline="") as out:
        writer = csv.writer(out)
        writer.writerow(["Answer", "Order", "Answered", "Stars", "Comment"])
        for index, (answer, order_no, at, stars, _) in enumerate(answers):
            comment = "Fast delivery.\nThe box was\r\ndamaged, though." if index % 4 == 0 else ""
            writer.writerow([answer, order_no, at.isoformat(), stars, comment])
    return answers


@pytest.fixture(scope="module")
def helpdesk_and_survey(make_database, tmp_path_factory) -> dict:
    """Shapes (c) and (d): the demo's sales database, a helpdesk export and a post-purchase survey export,
    each in its own shape, through ``lens run --config`` to a promoted baseline."""
    tmp_path = tmp_path_factory.mktemp("own_exports")
    sales_url, wh = make_database("exports_sales_src"), make_database("exports_wh")
    files = tmp_path / "demo"
    demo.generate(scale="tiny", seed=4, end_date=END, sales_url=sales_url, files_dir=files)
    start_date = json.loads((files / "demo_generation.json").read_text())["start_date"]
    with psycopg.connect(sales_url) as conn:
        emails = conn.execute("select lower(email), count(*), min(customer_id) from customers group by 1").fetchall()
    customer_of_email = {email: customer for email, count, customer in emails if email and count == 1}
    tickets = _helpdesk_export(files, tmp_path / "helpdesk", customer_of_email)
    answers = _post_purchase_export(sales_url, tmp_path / "answers")
    document = {
        "defaults": {"start_date": start_date, "end_date": END.isoformat()},
        "sources": {
            "sales": demo_sources.sources_document(sales_url, files)["sources"]["sales"],
            "service": _example(
                "helpdesk_export.yml", "service", location=str(tmp_path / "helpdesk"), start_date=start_date
            ),
            "survey": _example(
                "post_purchase_survey.yml", "survey", location=str(tmp_path / "answers"), start_date=start_date
            ),
        },
    }
    # First as the scheduled runs go: the history up to a month before the end built, then the last month
    # loaded a week at a time and built incrementally. Then `lens run --config` over the whole range (a
    # full build) to a promoted baseline, which the incremental build must equal.
    config = tmp_path / "exports.yml"
    config.write_text(yaml.safe_dump(document))
    env = {"LENS_STATE_DIR": str(tmp_path / "state"), "LENS_WAREHOUSE_URL": wh, "LENS_SOURCES_CONFIG": str(config)}
    run_lens("extract", "--start", start_date, "--end", str(MONTH_BEFORE), "--step", "month", env=env)
    run_lens("transform", env=env)
    run_lens(
        "extract", "--start", str(MONTH_BEFORE), "--end", str(END + dt.timedelta(days=1)), "--step", "week", env=env
    )
    run_lens("transform", env=env)
    with psycopg.connect(wh, autocommit=True) as conn:
        tables = [
            name
            for (name,) in conn.execute(
                "select table_name from information_schema.tables "
                "where table_schema = 'analytics_candidate' and table_type = 'BASE TABLE' "
                "and table_name not like '\\_%' order by 1"
            )
        ]
        conn.execute("create schema incremental_build")
        for name in tables:
            conn.execute(f"create table incremental_build.{name} as select * from analytics_candidate.{name}")
    run = run_lens("run", "--config", str(config), env=env, check=False)
    assert run.returncode == 0, run.stdout + run.stderr
    return {
        "run": run,
        "wh": wh,
        "tables": tables,
        "tickets": tickets,
        "answers": answers,
        "customer_of_email": customer_of_email,
    }


def test_the_daily_builds_equal_a_full_refresh(helpdesk_and_survey) -> None:
    """The last month loaded a week at a time and built incrementally gives what a full build gives: the
    matching by customer number and by rated order holds on the incremental path too."""
    differing = {}
    with psycopg.connect(helpdesk_and_survey["wh"]) as conn:
        for name in helpdesk_and_survey["tables"]:
            # every column but the load stamps: `lens run` loaded the same rows again
            columns = ", ".join(
                f'"{column}"'
                for (column,) in conn.execute(
                    "select column_name from information_schema.columns where table_schema = 'analytics_candidate' "
                    "and table_name = %s and column_name not like '%%loaded_at' order by ordinal_position",
                    (name,),
                )
            )
            left = f"select {columns} from incremental_build.{name}"
            right = f"select {columns} from analytics_candidate.{name}"
            counts = conn.execute(
                f"select (select count(*) from ({left} except all {right}) as a), "
                f"(select count(*) from ({right} except all {left}) as b)"
            ).fetchone()
            if counts != (0, 0):
                differing[name] = counts
    assert "int_tickets_matched" in helpdesk_and_survey["tables"]
    assert differing == {}


def _pending(url: str, mart: str, figure: str) -> dict:
    """``{month: difference}`` of a figure of a mart's closed months in the promoted restatements_pending."""
    with psycopg.connect(url) as conn:
        return dict(
            conn.execute(
                "select period_start_date, difference::bigint from analytics.restatements_pending "
                "where mart_name = %s and figure = %s and period_type = 'month'",
                (mart, figure),
            ).fetchall()
        )


def _keyed(url: str, query: str) -> dict:
    """``{first column: the other columns}`` of a query's rows."""
    with psycopg.connect(url) as conn:
        return {key: tuple(rest) for key, *rest in conn.execute(query)}


def test_a_helpdesk_export_with_text_ids_and_its_own_values(helpdesk_and_survey) -> None:
    """(c) Ticket numbers like INC0000042, day-first times, "?" for nothing, its own channel names, no type."""
    run, tickets = helpdesk_and_survey["run"], helpdesk_and_survey["tickets"]
    assert "promoted to baseline #1" in run.stdout and "0 rejected" in run.stdout
    actual = _keyed(
        helpdesk_and_survey["wh"],
        "select r.number, t.ticket_channel, t.ticket_type, t.solved_at is not null "
        "from analytics.tickets t "
        "join (select distinct number, ticket_id from raw_service.tickets) r using (ticket_id)",
    )
    assert actual == {number: (t["channel"], "complaint", t["Resolved"] != "?") for number, t in tickets.items()}


def test_tickets_find_their_customer_by_customer_number_or_email(helpdesk_and_survey) -> None:
    """(c) A requester named by the sales system's customer number, or by e-mail: both find the customer."""
    tickets, customer_of_email = helpdesk_and_survey["tickets"], helpdesk_and_survey["customer_of_email"]
    matched = _keyed(
        helpdesk_and_survey["wh"],
        "select r.number, m.customer_id from analytics_candidate.int_tickets_matched m "
        "join (select distinct number, ticket_id from raw_service.tickets) r using (ticket_id)",
    )
    expected = {
        number: (
            int(t["Customer No"][2:]) if t["Customer No"] != "?" else customer_of_email.get(t["Requester"].lower()),
        )
        for number, t in tickets.items()
    }
    assert matched == expected
    by_number = [n for n, t in tickets.items() if t["Customer No"] != "?"]
    assert len(by_number) > 50 and all(matched[n] != (None,) for n in by_number)


def _median(values: list[Decimal]) -> Decimal | None:
    if not values:
        return None
    ordered, middle = sorted(values), len(values) // 2
    median = ordered[middle] if len(ordered) % 2 else (ordered[middle - 1] + ordered[middle]) / 2
    return median.quantize(Decimal("0.01"), ROUND_HALF_UP)


def _hours(start: dt.datetime, end: dt.datetime | None) -> Decimal | None:
    if end is None:
        return None
    return (Decimal(int((end - start).total_seconds())) / 3600).quantize(Decimal("0.01"), ROUND_HALF_UP)


def test_complaint_counts_and_medians_match_the_export(helpdesk_and_survey) -> None:
    """(c) complaint_trends per month (all categories, channels, segments) against the file, in Python."""
    expected: dict[dt.date, list] = {}
    for ticket in helpdesk_and_survey["tickets"].values():
        opened = row_time(ticket, "Opened")
        if opened.date() > END:
            continue
        month = expected.setdefault(opened.date().replace(day=1), [0, [], []])
        month[0] += 1
        for figures, column in ((month[1], "First Response"), (month[2], "Resolved")):
            hours = _hours(opened, row_time(ticket, column))
            if hours is not None:
                figures.append(hours)
    actual = _keyed(
        helpdesk_and_survey["wh"],
        "select month_start_date, complaints, median_first_reply_hours, median_resolution_hours "
        "from analytics.complaint_trends "
        "where ticket_category = 'all' and ticket_channel = 'all' and rfm_segment = 'all'",
    )
    # A month closed before all of its tickets arrived keeps what it was built with; the rest is pending.
    pending = _pending(helpdesk_and_survey["wh"], "complaint_trends", "complaints")
    assert len(pending) <= 2
    for month, difference in pending.items():
        assert actual[month][0] + difference == expected[month][0]
    assert {month: row for month, row in actual.items() if row[0] and month not in pending} == {
        month: (count, _median(first), _median(solved))
        for month, (count, first, solved) in expected.items()
        if month not in pending
    }
    assert len(expected) > 12


def test_a_post_purchase_survey_finds_the_customer_through_the_order(helpdesk_and_survey) -> None:
    """(d) 1-5 scores only, no kind column, comments over several lines, each answer naming its order."""
    answers = helpdesk_and_survey["answers"]
    wh = helpdesk_and_survey["wh"]
    matched = _keyed(
        wh,
        "select response_id, customer_id, match_status, response_comment "
        "from analytics_candidate.int_survey_responses_matched",
    )
    unmatched = _keyed(
        wh,
        "select record_id, reference_value from analytics_candidate.unmatched_source_records "
        "where source_name = 'survey'",
    )
    csat = _keyed(
        wh,
        "select month_start_date, csat_responses, csat_satisfied_responses, csat_pct "
        "from analytics.nps_by_segment where rfm_segment = 'all' and csat_responses > 0",
    )
    assert {answer: row[:2] for answer, row in matched.items()} == {
        answer: (customer, "matched" if customer else "unknown_order_id") for answer, *_, customer in answers
    }
    assert matched[answers[0][0]][2] == "Fast delivery.\nThe box was\ndamaged, though."
    assert unmatched == {"A-x1": ("999999991",), "A-x2": ("999999992",)}

    expected: dict[dt.date, list[int]] = {}
    for _, _, at, stars, _ in answers:
        month = expected.setdefault(at.astimezone(dt.UTC).date().replace(day=1), [0, 0])
        month[0] += 1
        month[1] += stars >= 4
    pending = _pending(wh, "nps_by_segment", "csat_responses")  # answers that came after their month closed
    assert len(pending) <= 2
    for month, difference in pending.items():
        assert csat.get(month, (0,))[0] + difference == expected[month][0]
    assert {month: row for month, row in csat.items() if month not in pending} == {
        month: (n, good, (Decimal(100 * good) / n).quantize(Decimal("0.01"), ROUND_HALF_UP))
        for month, (n, good) in expected.items()
        if month not in pending
    }
