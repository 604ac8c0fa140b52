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
from pathlib import Path

import demo_sources
import psycopg
import pytest
import yaml
from lens_cli import run_lens

from customer_lens import demo

END = dt.date(2026, 10, 31)

COUNTS = "select (select count(*) from raw_sales.order_lines), (select count(*) from raw_survey.responses)"


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

    second = run_lens("run", "--config", str(config), env=env)
    assert "marts       built in full" in second.stdout
    # Same data, same baseline: validated, found equal, not promoted again (no +0.00% baseline #2).
    assert "baseline    #1 unchanged: validated, and equal to it" in second.stdout
    with psycopg.connect(wh) as conn:
        assert conn.execute(COUNTS).fetchone() == counts
        assert conn.execute("select count(*) from lens_audit.baselines").fetchone() == (1,)
        assert conn.execute(r"select count(*) from pg_namespace where nspname like 'lens\_snapshot\_%'").fetchone() == (
            1,
        )  # the equal snapshot was dropped

    # The demo's options do not apply to a user's sources, and a file without orders is refused up front.
    refused = run_lens("run", "--config", str(config), "--anomaly", "duplicate-orders", env=env, check=False)
    assert refused.returncode == 1 and "does not apply to your own sources" in refused.stderr
    document["sources"] = {"survey": survey}
    config.write_text(yaml.safe_dump(document))
    refused = run_lens("run", "--config", str(config), env=env, check=False)
    assert refused.returncode == 1
    assert "the marts need at least sales.orders and sales.order_lines" in refused.stderr
    assert "Traceback" not in refused.stderr


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
    document = {
        "sources": {
            "sales": {
                "kind": "files",
                "format": "csv",
                "location": str(exports),
                "start_date": first_day.isoformat(),
                "end_date": END.isoformat(),
                "date_order": "DMY",
                "entities": {
                    "transactions": {
                        "glob": "sales.csv",
                        "cursor": "sold_at",
                        "primary_key": [],
                        "columns": {
                            "customer_id": {"source": "Customer", "type": "bigint", "required": True},
                            "sold_at": {"source": "Date", "type": "timestamptz", "required": True},
                            "qty": {"source": "Qty", "type": "integer"},
                            "amount": {"source": "Amount", "type": "numeric"},
                        },
                        "map": {
                            "ordered_at": "sold_at",
                            "quantity": "qty",
                            "unit_price": {"sql": "amount / nullif(qty, 0)"},
                        },
                    }
                },
            }
        }
    }
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


CHANNEL_NAMES = {"phone": "IVR", "email": "E-mail", "chat": "Chat", "web": "Web Form", "social": "Social"}


def test_a_helpdesk_export_with_text_ids_and_its_own_values(make_database, tmp_path: Path) -> None:
    """Ticket numbers like INC0000042, day-first times, "?" for nothing, its own channel names, no type."""
    sales_url, wh = make_database("helpdesk_sales_src"), make_database("helpdesk_wh")
    files = tmp_path / "demo"
    demo.generate(scale="tiny", seed=4, end_date=END, sales_url=sales_url, files_dir=files)
    start_date = json.loads((files / "demo_generation.json").read_text())["start_date"]
    exports = tmp_path / "helpdesk"
    exports.mkdir()
    day_first = lambda value: "?" if value is None else dt.datetime.fromisoformat(value).strftime("%d/%m/%Y %H:%M:%S")  # noqa: E731
    latest: dict[int, dict] = {}
    for path in sorted((files / "service").glob("tickets_*.ndjson")):
        day = path.name.removeprefix("tickets_").removesuffix(".ndjson")
        with (exports / f"incidents_{day}.csv").open("w", newline="") as out:
            writer = csv.writer(out)
            writer.writerow(["Number", "Requester", "Opened", "Updated", "Resolved", "Channel", "Category", "State"])
            for line in path.read_text().splitlines():
                ticket = json.loads(line)
                latest[ticket["ticket_id"]] = ticket
                writer.writerow(
                    [
                        f"INC{ticket['ticket_id']:07d}",
                        ticket["requester_email"] or "?",
                        day_first(ticket["created_at"]),
                        day_first(ticket["updated_at"]),
                        day_first(ticket["solved_at"]),
                        CHANNEL_NAMES[ticket["channel"]],
                        ticket["category"].replace("_", " ").title(),
                        ticket["status"].upper(),
                    ]
                )
    document = demo_sources.sources_document(sales_url, files)
    sales = document["sources"]["sales"]
    service = {
        "kind": "files",
        "format": "csv",
        "location": str(exports),
        "date_order": "DMY",
        "null_values": ["?"],
        "entities": {
            "tickets": {
                "glob": "incidents_*.csv",
                "file_date": "incidents_%Y-%m-%d.csv",
                "primary_key": ["number", "updated_at"],
                "columns": {
                    "number": {"source": "Number", "type": "text", "required": True},
                    "requester_email": {"source": "Requester", "type": "text"},
                    "created_at": {"source": "Opened", "type": "timestamptz", "required": True},
                    "updated_at": {"source": "Updated", "type": "timestamptz", "required": True},
                    "resolved": {"source": "Resolved", "type": "timestamptz"},
                    "medium": {"source": "Channel", "type": "text"},
                    "category": {"source": "Category", "type": "text"},
                    "state": {"source": "State", "type": "text"},
                },
                "map": {
                    "ticket_id": {"key_from": "number"},
                    "solved_at": "resolved",
                    "channel": {
                        "column": "medium",
                        "values": {
                            "Phone": "phone",
                            "IVR": "phone",
                            "E-mail": "email",
                            "Chat": "chat",
                            "Web Form": "web",
                            "Social": "social",
                        },
                    },
                    "status": {"sql": "lower(state)"},
                    "type": {"value": "complaint"},  # the export has no type: every ticket is a complaint
                },
            }
        },
    }
    document = {
        "defaults": {"start_date": start_date, "end_date": END.isoformat()},
        "sources": {"sales": sales, "service": service},
    }
    config = tmp_path / "helpdesk.yml"
    config.write_text(yaml.safe_dump(document))
    env = {"LENS_STATE_DIR": str(tmp_path / "state"), "LENS_WAREHOUSE_URL": wh}
    run = run_lens("run", "--config", str(config), env=env, check=False)
    assert run.returncode == 0, run.stdout + run.stderr
    assert "promoted to baseline #1" in run.stdout and "0 rejected" in run.stdout

    with psycopg.connect(wh) as conn:
        tickets = {
            number: (channel, ticket_type, solved)
            for number, channel, ticket_type, solved in conn.execute(
                "select r.number, t.ticket_channel, t.ticket_type, t.solved_at is not null "
                "from analytics.tickets t join (select distinct number, ticket_id from raw_service.tickets) r "
                "using (ticket_id)"
            )
        }
        (matched,) = conn.execute(
            "select count(*) from analytics_candidate.int_tickets_matched where match_status = 'matched'"
        ).fetchone()
    assert tickets == {
        f"INC{ticket_id:07d}": (t["channel"], "complaint", t["solved_at"] is not None)
        for ticket_id, t in latest.items()
    }
    assert matched > 0
