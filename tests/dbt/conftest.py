"""One warehouse, built once, for every dbt test: tiny demo data (with the bad-records catalogue) loaded
into the raw layer in two halves, the dbt project built incrementally after each half into one schema
and with ``--full-refresh`` after both into another.

Between the halves the sales source changes some order lines that were already loaded (late updates),
and after the second half older versions of a line and a ticket arrive late in the raw layer, so the
incremental path has to merge updates and ignore stale versions to end up equal to the full refresh.
The second half stops a day short: the last day is a third, daily run, before which a customer known
since the first half moves to another region and an order line of the week before changes (what the
segment models must pick up: a current attribute on history rows, a late purchase in the open month,
the running snapshot moving to the new as-of date). The months between the first and the second half
close before the second build, which must build them all the same.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import demo_sources
import psycopg
import pytest

from customer_lens import demo
from customer_lens.config import environment
from customer_lens.transform import builds

END = dt.date(2026, 10, 31)
MID = dt.datetime(2025, 7, 1, tzinfo=dt.UTC)
INCREMENTAL_SCHEMA = "dbt_incremental"
FULL_SCHEMA = "dbt_full"
# Order lines whose source row changes after the first half was loaded.
LATE_UPDATED_LINES = 25
# The customer whose region changes before the daily run, and the region it moves to.
MOVED_CUSTOMER_REGION = "Moved Region"
# Only the rows loaded since the previous run: no lookback, so the test sees the pure incremental path.
NO_LOOKBACK = json.dumps({"incremental_lookback_hours": 0})


@dataclass
class DbtWarehouse:
    """The shared warehouse: URLs, where the demo files are, and the dbt results of the builds."""

    url: str
    full_schema: str
    incremental_schema: str
    mid: dt.datetime
    sales_url: str
    files_dir: Path
    state_dir: Path
    manifest: list[dict]
    first_run: builds.DbtResult
    second_run: builds.DbtResult
    daily_run: builds.DbtResult
    full_build: builds.DbtResult
    late_line_ids: list[int]
    stale_line_id: int
    stale_ticket_id: int
    moved_customer_id: int
    moved_region: str
    daily_late_line_id: int
    corrected_contract_customer_id: int
    moved_ticket: tuple[int, int, int]

    @contextlib.contextmanager
    def env(self) -> Iterator[None]:
        """LENS_* pointing ``customer_lens`` at this warehouse, for the duration of the block."""
        with _lens_env(self.url, self.state_dir):
            yield

    def rows(self, query: str, params: tuple = ()) -> list[tuple]:
        with psycopg.connect(self.url) as conn:
            return conn.execute(query, params or None).fetchall()


def _lens_env(url: str, state_dir: Path):
    return environment.overridden({"LENS_WAREHOUSE_URL": url, "LENS_STATE_DIR": str(state_dir)})


def _sources(sales_url: str, files: Path) -> dict:
    document = demo_sources.sources_document(sales_url, files)
    document["defaults"]["max_reject_ratio"] = 1.0  # tiny batches: a few bad records are a large share
    return document


def _update_loaded_lines(sales_url: str) -> list[int]:
    """Change order lines that the first half already loaded, as the sales system would (later updated_at)."""
    with psycopg.connect(sales_url) as conn:
        rows = conn.execute(
            """
            update public.order_lines
            set quantity = quantity + 1,
                updated_at = %(at)s + (order_line_id %% 500) * interval '1 hour'
            where order_line_id in (
                select order_line_id from public.order_lines
                where updated_at < %(mid)s - interval '60 days'
                order by order_line_id
                limit %(n)s
            )
            returning order_line_id
            """,
            {"at": MID + dt.timedelta(days=20), "mid": MID, "n": LATE_UPDATED_LINES},
        ).fetchall()
    return sorted(row[0] for row in rows)


def _change_before_the_last_day(sales_url: str, last_day: dt.datetime) -> tuple[int, int]:
    """On the last day the sales system moves a long-known buyer to another region and changes a line of an
    order placed a week or two before, in the same month (more units): returns (customer_id, order_line_id).
    The month's running snapshot moves to the new as-of date, and the late line starts the recomputation
    inside that month: the previous as-of date's snapshot must not survive."""
    at = last_day + dt.timedelta(hours=12)
    with psycopg.connect(sales_url) as conn:
        (customer_id,) = conn.execute(
            """
            update public.customers
            set region = %(region)s, updated_at = %(at)s
            where customer_id = (
                select customers.customer_id
                from public.customers
                inner join public.orders on orders.customer_id = customers.customer_id
                where customers.updated_at < %(mid)s and orders.ordered_at < %(mid)s
                order by customers.customer_id
                limit 1
            )
            returning customer_id
            """,
            {"region": MOVED_CUSTOMER_REGION, "at": at, "mid": MID},
        ).fetchone()
        (line_id,) = conn.execute(
            """
            update public.order_lines
            set quantity = quantity + 5, updated_at = %(at)s
            where order_line_id = (
                select order_lines.order_line_id
                from public.order_lines
                inner join public.orders on orders.order_id = order_lines.order_id
                where orders.ordered_at between %(at)s - interval '13 days' and %(at)s - interval '6 days'
                    and orders.status = 'completed'
                    and order_lines.updated_at < %(last_day)s
                order by order_lines.order_line_id
                limit 1
            )
            returning order_line_id
            """,
            {"at": at, "last_day": last_day},
        ).fetchone()
    return customer_id, line_id


def _correct_an_old_contract(sales_url: str, wh: str, last_day: dt.datetime) -> int:
    """On the last day the sales system corrects a contract term that ended in a loss half a year or more
    before: it ran 90 days longer. The customer's loss moves (an episode ends later) while no purchase day
    changes, so only that customer's old periods change: returns the customer_id."""
    with psycopg.connect(wh) as conn:
        customer_id, lost_date = conn.execute(
            f"""
            select customer_id, lost_date
            from {INCREMENTAL_SCHEMA}.customer_episodes
            where loss_type in ('contract_expired', 'contract_cancelled')
                and lost_date < %(last_day)s - interval '180 days'
            order by customer_id
            limit 1
            """,
            {"last_day": last_day},
        ).fetchone()
    with psycopg.connect(sales_url) as conn:
        updated = conn.execute(
            """
            update public.contracts
            set end_date = end_date + 90, updated_at = %(at)s
            where customer_id = %(customer)s and end_date = %(lost)s::date - 1
            """,
            {"at": last_day + dt.timedelta(hours=13), "customer": customer_id, "lost": lost_date},
        ).rowcount
    assert updated == 1
    return customer_id


def _insert_stale_versions(wh: str, line_id: int) -> int:
    """Load, late, versions OLDER than the newest of one order line and one ticket (must not win)."""
    with psycopg.connect(wh) as conn:
        conn.execute(
            """
            insert into raw_sales.order_lines
            select order_line_id, order_id, product_id, 999, unit_price, discount_pct, unit_cost, created_at,
                   updated_at - interval '1 day', gen_random_uuid(), now(), _interval_start, _interval_end,
                   _source_file, _source_line, _extra
            from raw_sales.order_lines
            where order_line_id = %s
            order by updated_at desc
            limit 1
            """,
            (line_id,),
        )
        ticket_id = conn.execute(
            "select ticket_id from raw_service.tickets group by ticket_id having count(*) >= 3 "
            "order by ticket_id limit 1"
        ).fetchone()[0]
        conn.execute(
            """
            insert into raw_service.tickets (ticket_id, requester_email, created_at, updated_at, first_reply_at,
                solved_at, status, channel, type, category, priority, reopen_count, satisfaction, subject,
                description, _batch_id, _loaded_at, _interval_start, _interval_end, _source_file, _source_line)
            select ticket_id, requester_email, created_at, updated_at - interval '1 second', first_reply_at,
                   null, 'open', channel, type, category, priority, 7, null, subject, description,
                   gen_random_uuid(), now(), _interval_start, _interval_end, 'late.ndjson', 1
            from raw_service.tickets
            where ticket_id = %s
            order by updated_at desc
            limit 1
            """,
            (ticket_id,),
        )
    return ticket_id


def _move_an_old_complaint(wh: str) -> tuple[int, int, int]:
    """Load, on the last day, a newer version of a complaint a year or more old whose requester email is now
    another customer's: the complaint changes hands, and the customer who loses it has no record of their
    own loaded. Returns (ticket_id, old customer_id, new customer_id)."""
    with psycopg.connect(wh) as conn:
        ticket_id, old_customer_id = conn.execute(
            f"""
            select ticket_id, customer_id from {INCREMENTAL_SCHEMA}.int_tickets_matched
            where match_status = 'matched' and is_complaint
                and created_date < (select as_of_date from {INCREMENTAL_SCHEMA}.int_as_of_date) - 365
            order by ticket_id
            limit 1
            """
        ).fetchone()
        new_customer_id, email = conn.execute(
            f"""
            select customer_id, email from {INCREMENTAL_SCHEMA}.int_customer_emails_resolved
            where not is_ambiguous and customer_id <> %s
            order by customer_id
            limit 1
            """,
            (old_customer_id,),
        ).fetchone()
        conn.execute(
            """
            insert into raw_service.tickets (ticket_id, requester_email, created_at, updated_at, first_reply_at,
                solved_at, status, channel, type, category, priority, reopen_count, satisfaction, subject,
                description, _batch_id, _loaded_at, _interval_start, _interval_end, _source_file, _source_line)
            select ticket_id, %s, created_at, updated_at + interval '1 second', first_reply_at,
                   solved_at, status, channel, type, category, priority, reopen_count, satisfaction, subject,
                   description, gen_random_uuid(), now(), _interval_start, _interval_end, 'moved.ndjson', 1
            from raw_service.tickets
            where ticket_id = %s
            order by updated_at desc
            limit 1
            """,
            (email.upper(), ticket_id),
        )
    return ticket_id, old_customer_id, new_customer_id


@pytest.fixture(scope="session")
def dbt_warehouse(make_database, tmp_path_factory) -> DbtWarehouse:
    """Tiny demo sources → raw layer in two halves → incremental builds and a full-refresh build."""
    tmp = tmp_path_factory.mktemp("dbt")
    sales_url, wh = make_database("dbt_sales_src"), make_database("dbt_wh")
    files, state = tmp / "sources", tmp / "state"
    demo.generate(scale="tiny", seed=11, end_date=END, sales_url=sales_url, files_dir=files, bad_records=True)
    meta = json.loads((files / "demo_generation.json").read_text())
    start = dt.datetime.combine(dt.date.fromisoformat(meta["start_date"]), dt.time(), dt.UTC)
    end = dt.datetime.combine(END, dt.time(), dt.UTC) + dt.timedelta(days=1)
    sources = _sources(sales_url, files)

    with _lens_env(wh, state):
        demo_sources.load(sources, start, MID, wh, history=True)
        models_and_seeds = ["build", "--resource-type", "model", "--resource-type", "seed", "--vars", NO_LOOKBACK]
        first_run = builds.run_dbt(models_and_seeds, schema=INCREMENTAL_SCHEMA)
        late_line_ids = _update_loaded_lines(sales_url)
        last_day = end - dt.timedelta(days=1)
        demo_sources.load(sources, MID, last_day, wh, history=False)
        stale_ticket_id = _insert_stale_versions(wh, late_line_ids[0])
        second_run = builds.run_dbt(models_and_seeds, schema=INCREMENTAL_SCHEMA)
        moved_customer_id, daily_late_line_id = _change_before_the_last_day(sales_url, last_day)
        corrected_customer_id = _correct_an_old_contract(sales_url, wh, last_day)
        moved_ticket = _move_an_old_complaint(wh)
        demo_sources.load(sources, last_day, end, wh, history=False)
        daily_run = builds.run_dbt(models_and_seeds, schema=INCREMENTAL_SCHEMA)
        full_build = builds.build(schema=FULL_SCHEMA, full_refresh=True)

    return DbtWarehouse(
        url=wh,
        full_schema=FULL_SCHEMA,
        incremental_schema=INCREMENTAL_SCHEMA,
        mid=MID,
        sales_url=sales_url,
        files_dir=files,
        state_dir=state,
        manifest=json.loads((files / "bad_records.json").read_text()),
        first_run=first_run,
        second_run=second_run,
        daily_run=daily_run,
        full_build=full_build,
        late_line_ids=late_line_ids,
        stale_line_id=late_line_ids[0],
        stale_ticket_id=stale_ticket_id,
        moved_customer_id=moved_customer_id,
        moved_region=MOVED_CUSTOMER_REGION,
        daily_late_line_id=daily_late_line_id,
        corrected_contract_customer_id=corrected_customer_id,
        moved_ticket=moved_ticket,
    )
