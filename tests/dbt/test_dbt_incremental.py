"""Incremental builds after each half of the raw load equal one full-refresh build of the whole load."""

from __future__ import annotations

import datetime as dt
import json
import uuid

import psycopg
import pytest

from customer_lens.transform import builds

COMPARED = (
    "order_lines",
    "int_customer_purchase_days_aggregated",
    "int_customer_purchases_summarized",
    "customer_episodes",
    "tickets",
    "orders",
    "customers",
    "unmatched_source_records",
    "customer_match_summary",
    "customer_lifetime_value",
    "int_customer_events_aggregated_to_months",
    "renewals_by_reason",
    "int_customer_losses_stored",
    "lost_customer_review",
    "int_survey_responses_matched",
    "int_tickets_matched",
)

# The tables with closed periods (dbt_project/DECISIONS.md, "Closed periods"): a build rewrites their open
# periods only and keeps the closed ones as built. -> the column of a row's period end (or snapshot date).
CLOSED_PERIOD_TABLES = {
    "guerrilla_metrics": "period_end_date",
    "nps_by_segment": "month_end_date",
    "complaint_trends": "month_end_date",
    "int_customer_segments_scored": "snapshot_date",
    "customer_segments": "snapshot_date",
    "segment_migrations": "snapshot_date",
    # (what groups customers by segment follows the segment history as published: closed periods too)
    "customer_period_groups": "period_end_date",
    "int_guerrilla_groups_aggregated": "period_end_date",
}

# Open rows that exist because of closed history, which follows the segments as published: complaint_trends
# is dense over the months in every series (category x channel x segment) that ever had a complaint, so
# an open month holds zero rows for the series of the closed months' published segments.
OPEN_ROWS_FROM_CLOSED_HISTORY = {"complaint_trends": "complaints > 0"}

# The headline figures restatements_pending compares, per closed period: SQL over the mart in {schema} of
# (mart_name, period_type, period_start_date, period_end_date, figure, value).
_SNAPSHOT_PERIOD = "date_trunc('month', snapshot_date)"
HEADLINE_FIGURES = {
    "guerrilla_metrics": (
        "select 'guerrilla_metrics', period_type, period_start_date, period_end_date, f.figure, f.value "
        "from {schema}.guerrilla_metrics cross join lateral (values ('orders', orders::numeric), "
        "('revenue', revenue::numeric), ('new_customers', new_customers::numeric), "
        "('renewals', renewals::numeric), ('referrals', referrals::numeric)) as f (figure, value) "
        "where group_type = 'all'"
    ),
    "nps_by_segment": (
        "select 'nps_by_segment', 'month', month_start_date, month_end_date, f.figure, f.value "
        "from {schema}.nps_by_segment cross join lateral (values ('nps_responses', nps_responses::numeric), "
        "('promoters', promoters::numeric), ('detractors', detractors::numeric), "
        "('csat_responses', csat_responses::numeric), "
        "('csat_satisfied_responses', csat_satisfied_responses::numeric)) as f (figure, value) "
        "where rfm_segment = 'all'"
    ),
    "complaint_trends": (
        "select 'complaint_trends', 'month', month_start_date, month_end_date, 'complaints', complaints::numeric "
        "from {schema}.complaint_trends "
        "where ticket_category = 'all' and ticket_channel = 'all' and rfm_segment = 'all'"
    ),
    "customer_segments": (
        f"select 'customer_segments', 'month', {_SNAPSHOT_PERIOD}::date, "
        f"({_SNAPSHOT_PERIOD} + interval '1 month - 1 day')::date, f.figure, sum(f.value) "
        "from {schema}.customer_segments cross join lateral (values ('customers', 1::numeric), "
        "('lifetime_orders', frequency_orders::numeric), ('lifetime_revenue', monetary_revenue::numeric)) "
        "as f (figure, value) group by 1, 2, 3, 4, 5"
    ),
}


def _headline_figures(schema: str) -> str:
    """SQL: (mart_name, period_type, period_start_date, period_end_date, figure, value) of the marts in `schema`."""
    columns = "mart_name, period_type, period_start_date, period_end_date, figure, value"
    parts = [f"select * from ({sql.format(schema=schema)}) as h ({columns})" for sql in HEADLINE_FIGURES.values()]
    return " union all ".join(parts)


def _differences(dbt_warehouse, left: str, right: str) -> tuple[int, int]:
    """The rows of table `left` missing from `right`, and of `right` missing from `left` (duplicates count)."""
    return dbt_warehouse.rows(
        f"""
        select
            (select count(*) from (select * from {left} except all select * from {right}) as a),
            (select count(*) from (select * from {right} except all select * from {left}) as b)
        """
    )[0]


def _recomputed_from(dbt_warehouse, schema: str, model: str) -> str:
    """What the model's last build recorded it recomputed from ('-infinity' = everything)."""
    return dbt_warehouse.rows(
        f"select fingerprint from {schema}._lens_build_inputs where model_name = %s and input_key = 'recomputed_from'",
        (model,),
    )[0][0]


def _adapter_response(run, model: str) -> dict:
    for result in run.result.results:
        if result.node.unique_id == f"model.customer_lens.{model}":
            return result.adapter_response
    raise AssertionError(f"{model} did not run")


@pytest.mark.parametrize("model", ["order_lines", "tickets", "orders"])
def test_second_run_merged_only_the_new_rows(dbt_warehouse, model) -> None:
    first = _adapter_response(dbt_warehouse.first_run, model)
    second = _adapter_response(dbt_warehouse.second_run, model)
    (total,) = dbt_warehouse.rows(f"select count(*) from {dbt_warehouse.incremental_schema}.{model}")[0]
    assert first["code"] != "MERGE"  # the first run created the table
    assert second["code"] == "MERGE"
    assert 0 < second["rows_affected"] < total


@pytest.mark.parametrize("model", ["order_lines", "tickets"])
def test_the_daily_run_read_only_the_batches_loaded_since_the_last_run(dbt_warehouse, model) -> None:
    """The batches the previous run read are not read again: the daily run merged exactly the records of
    the last day's load (the previous rule re-read the newest merged batch too: half the history here), and
    the version of an old complaint loaded just before it (moved_ticket)."""
    table, key = {
        "order_lines": ("raw_sales.order_lines", "order_line_id"),
        "tickets": ("raw_service.tickets", "ticket_id"),
    }[model]
    merged = _adapter_response(dbt_warehouse.daily_run, model)
    (last_day_records,) = dbt_warehouse.rows(
        f"select count(distinct {key}) from {table} where _interval_start = (select max(_interval_start) from {table})"
    )[0]
    assert last_day_records > 0
    late = 1 if model == "tickets" else 0
    assert (merged["code"], merged["rows_affected"]) == ("MERGE", last_day_records + late)


SNAPSHOT_TABLES = ["int_customer_segments_scored", "customer_segments", "segment_migrations"]


@pytest.mark.parametrize("model", SNAPSHOT_TABLES)
def test_the_daily_run_replaced_only_the_open_snapshots(dbt_warehouse, model) -> None:
    """The daily run wrote the snapshots of the open periods (with dbt's delete+insert), not the history
    before; the previous as-of date's running snapshot is gone (one snapshot per month)."""
    response = _adapter_response(dbt_warehouse.daily_run, model)
    schema = dbt_warehouse.incremental_schema
    (total, snapshots, months, open_rows) = dbt_warehouse.rows(
        f"""
        select count(*), count(distinct snapshot_date), count(distinct date_trunc('month', snapshot_date)),
               count(*) filter (where snapshot_date >= (select rewrite_from_date from {schema}.int_periods_open))
        from {schema}.{model}
        """
    )[0]
    assert response["code"] == "INSERT"
    assert response["rows_affected"] == open_rows
    assert 0 < open_rows < total / 4, (open_rows, total)
    assert snapshots > 12 and months == snapshots


@pytest.mark.parametrize("model", SNAPSHOT_TABLES)
def test_a_snapshot_period_no_build_saw_open_was_built_by_the_next(dbt_warehouse, model) -> None:
    """The second build came 15 months after the first: the months between, closed by then, were built by it
    (no gaps), and hold what a full refresh holds for them (the migrations of the first of them start from
    the snapshot before it, as published)."""
    schema, full = dbt_warehouse.incremental_schema, dbt_warehouse.full_schema
    dates = f"select distinct snapshot_date from {{}}.{model} order by 1"
    assert dbt_warehouse.rows(dates.format(schema)) == dbt_warehouse.rows(dates.format(full))
    after = dbt_warehouse.mid + dt.timedelta(days=31 if model == "segment_migrations" else 0)
    months_between = (
        f"(select * from {{}}.{model} where snapshot_date > date '{after:%Y-%m-%d}' "
        f"and snapshot_date < (select rewrite_from_date from {schema}.int_periods_open)) as rows"
    )
    (rows,) = dbt_warehouse.rows(f"select count(*) from {months_between.format(schema)}")[0]
    assert rows > 0
    assert _differences(dbt_warehouse, months_between.format(schema), months_between.format(full)) == (0, 0)


def test_the_daily_run_wrote_only_the_changed_customer_periods(dbt_warehouse) -> None:
    """The daily run recomputed every customer's running periods (and more) but wrote only the rows that
    changed: fewer than the recomputed window holds."""
    model = "customer_period_groups"
    response = _adapter_response(dbt_warehouse.daily_run, model)
    schema = dbt_warehouse.incremental_schema
    (total, years, window) = dbt_warehouse.rows(
        f"""
        select count(*), count(distinct period_start_date) filter (where period_type = 'year'),
            count(*) filter (where period_end_date >= (
                select fingerprint::date from {schema}._lens_build_inputs
                where model_name = %s and input_key = 'recomputed_from'))
        from {schema}.{model}
        """,
        (model,),
    )[0]
    assert response["code"] == "INSERT"
    assert years >= 3
    assert 0 < response["rows_affected"] < window / 2, (response, window, total)


def test_the_daily_run_recomputed_the_window_only_for_the_regrouped_customers(dbt_warehouse) -> None:
    """Within a month, the daily run's window (the running periods, and those after the week-old late
    purchase) holds the periods the last build stored, so customer_period_groups recomputed it only for the
    customers whose stored groups differ from their segment snapshots now, whose episodes changed or
    began since (list_regrouped_customers); the equality with a full refresh is checked below."""
    model = "customer_period_groups"
    (compiled,) = [r.node.compiled_code for r in dbt_warehouse.daily_run.result.results if r.node.name == model]
    assert "pg_temp.lens_regrouped__customer_period_groups" in compiled
    (first_compiled,) = [r.node.compiled_code for r in dbt_warehouse.second_run.result.results if r.node.name == model]
    assert "lens_regrouped__" not in first_compiled  # a new half year of periods: every customer


@pytest.mark.parametrize(
    "model",
    [
        "int_customer_purchase_days_aggregated",
        "int_customer_purchases_summarized",
        "customer_episodes",
        "int_customer_losses_stored",
        "int_customer_events_aggregated_to_months",
    ],
)
def test_the_incremental_runs_recomputed_only_the_touched_customers(dbt_warehouse, model) -> None:
    """The per-customer models recomputed only the customers a load touched or the as-of date's move
    reached (list_touched_customers), in both incremental runs; the equality with a full refresh is
    checked below. The first run built everyone. (The events by month name the few customers as a literal
    array, which reaches each source's customer index.)"""
    for run in (dbt_warehouse.second_run, dbt_warehouse.daily_run):
        (compiled,) = [r.node.compiled_code for r in run.result.results if r.node.name == model]
        if model == "int_customer_events_aggregated_to_months":
            assert "customer_id = any('{" in compiled
        else:
            assert f"pg_temp.lens_changed__{model}" in compiled
    (first_compiled,) = [r.node.compiled_code for r in dbt_warehouse.first_run.result.results if r.node.name == model]
    assert "lens_changed__" not in first_compiled


def test_the_daily_run_applied_the_logged_changes_to_the_guerrilla_sums(dbt_warehouse) -> None:
    """The daily run did not recompute the guerrilla sums: it applied the customer periods its inputs
    logged (the corrected contract's old loss, half a year or more back; the moved customer's periods) and
    emptied the logs; the equality with a full refresh is checked below."""
    schema = dbt_warehouse.incremental_schema
    model = "int_guerrilla_groups_aggregated"
    response = _adapter_response(dbt_warehouse.daily_run, model)
    assert _recomputed_from(dbt_warehouse, schema, model) != "-infinity"  # changes applied, nothing recomputed
    assert response["code"] == "DELETE"  # the last statement: groups left empty
    for producer in ("customer_period_groups", "int_customer_events_aggregated_to_months"):
        (logged,) = dbt_warehouse.rows(f"select count(*) from {schema}._lens_changes__{producer}")[0]
        assert logged == 0, producer
    (periods_of_the_loss,) = dbt_warehouse.rows(
        f"""
        select count(*) from {schema}.{model}
        where group_type = 'all' and period_type = 'month' and lost_customers > 0
            and period_start_date = (
                select date_trunc('month', min(lost_date))::date from {dbt_warehouse.full_schema}.customer_episodes
                where customer_id = %s)
        """,
        (dbt_warehouse.corrected_contract_customer_id,),
    )[0]
    assert periods_of_the_loss == 1


def test_the_daily_run_logged_only_what_changed(dbt_warehouse) -> None:
    """customer_period_groups recomputed every customer's running periods but wrote only the rows that
    changed; the events by month likewise (the written rows are what the guerrilla sums applied)."""
    schema = dbt_warehouse.incremental_schema
    for model in ("customer_period_groups", "int_customer_events_aggregated_to_months"):
        response = _adapter_response(dbt_warehouse.daily_run, model)
        (total,) = dbt_warehouse.rows(f"select count(*) from {schema}.{model}")[0]
        assert response["code"] == "INSERT", model
        assert 0 < response["rows_affected"] < total / 20, (model, response, total)


def test_a_complaint_that_changed_hands_left_its_old_customer(dbt_warehouse) -> None:
    """The old complaint now requested from another customer's email (upper-cased: the match ignores
    case) counts for the new customer in both builds; its old customer, whose own records the load did not
    touch, was recomputed too: the events by month and the losses equal the full build's (below)."""
    ticket_id, old_customer_id, new_customer_id = dbt_warehouse.moved_ticket
    for schema in (dbt_warehouse.incremental_schema, dbt_warehouse.full_schema):
        (customer_id,) = dbt_warehouse.rows(
            f"select customer_id from {schema}.int_tickets_matched where ticket_id = %s", (ticket_id,)
        )[0]
        assert customer_id == new_customer_id, schema
    complaints = {
        schema: dbt_warehouse.rows(
            f"select coalesce(sum(complaints), 0) from {schema}.int_customer_events_aggregated_to_months "
            "where customer_id = %s",
            (old_customer_id,),
        )[0][0]
        for schema in (dbt_warehouse.incremental_schema, dbt_warehouse.full_schema)
    }
    assert complaints[dbt_warehouse.incremental_schema] == complaints[dbt_warehouse.full_schema]


def test_a_moved_customer_has_the_new_region_on_every_snapshot(dbt_warehouse) -> None:
    for schema in (dbt_warehouse.incremental_schema, dbt_warehouse.full_schema):
        (snapshots, moved) = dbt_warehouse.rows(
            f"select count(*), count(*) filter (where region = %s) from {schema}.customer_segments "
            "where customer_id = %s",
            (dbt_warehouse.moved_region, dbt_warehouse.moved_customer_id),
        )[0]
        assert snapshots > 6, schema  # a customer since the first half: long history
        assert moved == snapshots, schema
        (periods, moved) = dbt_warehouse.rows(
            f"select count(*), count(*) filter (where attribute_value = %s) from {schema}.customer_period_groups "
            "where customer_id = %s",
            (dbt_warehouse.moved_region, dbt_warehouse.moved_customer_id),
        )[0]
        assert periods > 6, schema
        assert moved == periods, schema


@pytest.mark.parametrize("model", ["customer_segments", "customer_period_groups", "lost_customer_review"])
def test_current_attributes_are_updated_from_the_customers_loaded_since(dbt_warehouse, model) -> None:
    """The post-hook update_current_attributes reads the customers loaded since the model's last build; that
    mark is recorded by the daily run (the same invocation start as orders') and survives the ledger rewrite
    of record_build_inputs, else every build would compare every customer's rows."""
    marks = dict(
        dbt_warehouse.rows(
            f"select model_name, fingerprint from {dbt_warehouse.incremental_schema}._lens_build_inputs"
            " where input_key = 'loaded_through' and model_name in (%s, 'orders')",
            (model,),
        )
    )
    assert model in marks
    assert marks[model] == marks["orders"]


@pytest.mark.parametrize("model", COMPARED)
def test_incremental_equals_full_refresh(dbt_warehouse, model) -> None:
    incremental = f"{dbt_warehouse.incremental_schema}.{model}"
    full = f"{dbt_warehouse.full_schema}.{model}"
    (rows,) = dbt_warehouse.rows(f"select count(*) from {full}")[0]
    assert rows > 0
    assert _differences(dbt_warehouse, incremental, full) == (0, 0)


def test_every_table_the_project_builds_is_compared(dbt_warehouse) -> None:
    """Not a hand-kept list: every table both builds made (not the engine's _ledgers) equals its full refresh,
    the tables with closed periods in their open periods (below); restatements_pending is what differs in
    closed ones."""
    query = (
        "select table_name from information_schema.tables where table_schema = %s and table_type = 'BASE TABLE' "
        "and table_name not like '\\_%%'"
    )
    incremental = {name for (name,) in dbt_warehouse.rows(query, (dbt_warehouse.incremental_schema,))}
    full = {name for (name,) in dbt_warehouse.rows(query, (dbt_warehouse.full_schema,))}
    assert incremental == full
    assert set(COMPARED) | set(CLOSED_PERIOD_TABLES) <= incremental
    differing = {}
    for name in sorted(incremental - set(CLOSED_PERIOD_TABLES) - {"restatements_pending"}):
        found = _differences(
            dbt_warehouse, f"{dbt_warehouse.incremental_schema}.{name}", f"{dbt_warehouse.full_schema}.{name}"
        )
        if found != (0, 0):
            differing[name] = found
    assert differing == {}


@pytest.mark.parametrize("model", CLOSED_PERIOD_TABLES)
def test_a_period_mart_equals_full_refresh_in_its_open_periods(dbt_warehouse, model) -> None:
    end = CLOSED_PERIOD_TABLES[model]
    schema = dbt_warehouse.incremental_schema
    ((open_from, closed, open_rows),) = dbt_warehouse.rows(
        f"select p.open_from_date, count(*) filter (where m.{end} < p.open_from_date), "
        f"count(*) filter (where m.{end} >= p.open_from_date) "
        f"from {schema}.{model} as m cross join {schema}.int_periods_open as p group by p.open_from_date"
    )
    assert closed > 0 and open_rows > 0  # the sequence of builds closed some periods and left some open
    carried = OPEN_ROWS_FROM_CLOSED_HISTORY.get(model, "true")
    only_open = lambda s: f"(select * from {s}.{model} where {end} >= date '{open_from}' and {carried}) as rows"  # noqa: E731
    assert _differences(dbt_warehouse, only_open(schema), only_open(dbt_warehouse.full_schema)) == (0, 0)


def test_closed_periods_kept_their_figures_and_what_arrived_since_is_pending(dbt_warehouse) -> None:
    """A closed period's figure plus its pending difference is what a full refresh computes now."""
    schema, full = dbt_warehouse.incremental_schema, dbt_warehouse.full_schema
    ((pending, late_periods),) = dbt_warehouse.rows(
        f"select count(*), count(distinct (mart_name, period_type, period_start_date)) "
        f"from {schema}.restatements_pending"
    )
    # late order lines, tickets and a corrected contract reached months closed before they arrived
    assert pending > 0 and late_periods > 0
    ((compared, mismatched),) = dbt_warehouse.rows(
        f"""
        with kept as ({_headline_figures(schema)}),
        now as ({_headline_figures(full)})
        select
            count(*),
            count(*) filter (where kept.value + coalesce(pending.difference, 0) is distinct from now.value)
        from kept
        join now using (mart_name, period_type, period_start_date, figure)
        left join {schema}.restatements_pending as pending
            using (mart_name, period_type, period_start_date, figure)
        where kept.period_end_date < (select open_from_date from {schema}.int_periods_open)
        """
    )
    assert compared > 0
    assert mismatched == 0


def test_late_updates_win_and_stale_versions_do_not(dbt_warehouse) -> None:
    for schema in (dbt_warehouse.incremental_schema, dbt_warehouse.full_schema):
        lines = dbt_warehouse.rows(
            f"select order_line_id, updated_at, quantity from {schema}.order_lines where order_line_id = any(%s)",
            (dbt_warehouse.late_line_ids,),
        )
        assert len(lines) == len(dbt_warehouse.late_line_ids)
        assert all(updated_at >= dbt_warehouse.mid for _, updated_at, _ in lines), schema
        assert all(quantity != 999 for _, _, quantity in lines), schema
        (reopen_count,) = dbt_warehouse.rows(
            f"select reopen_count from {schema}.tickets where ticket_id = %s", (dbt_warehouse.stale_ticket_id,)
        )[0]
        assert reopen_count != 7, schema
    # The raw layer does hold both versions of the late-updated lines (old from the first half, new from the second).
    (versions,) = dbt_warehouse.rows(
        "select count(*) from raw_sales.order_lines where order_line_id = any(%s)", (dbt_warehouse.late_line_ids,)
    )[0]
    assert versions >= 2 * len(dbt_warehouse.late_line_ids)


def test_a_batch_that_commits_after_a_newer_one_is_still_merged(dbt_warehouse) -> None:
    """A load that started before the last build (older _loaded_at than its start) but committed after it.

    A plain "loaded since the last build" filter would skip its rows; the batch rule re-reads it.
    """
    schema = "dbt_late_batch"
    with dbt_warehouse.env():
        first = builds.run_dbt(["run", "--select", "+orders"], schema=schema)
    assert first.node_statuses["model.customer_lens.order_lines"] == "success"
    with psycopg.connect(dbt_warehouse.url) as conn:
        newest, total = conn.execute(f"select max(loaded_at), count(*) from {schema}.order_lines").fetchone()
        line_id = conn.execute("select max(order_line_id) + 1 from raw_sales.order_lines").fetchone()[0]
        batch_id = uuid.uuid4()
        conn.execute(
            """
            insert into raw_sales._batches (batch_id, entity, interval_start, interval_end, status, started_at,
                finished_at)
            values (%(batch)s, 'order_lines', '2024-01-01', '2024-01-02', 'loaded',
                    %(newest)s - interval '2 milliseconds', clock_timestamp())
            """,
            {"batch": batch_id, "newest": newest},
        )
        conn.execute(
            """
            insert into raw_sales.order_lines
            select %(line)s, order_id, product_id, quantity, unit_price, discount_pct, unit_cost, created_at,
                   updated_at, %(batch)s, %(newest)s - interval '1 millisecond', _interval_start, _interval_end,
                   _source_file, _source_line, _extra
            from raw_sales.order_lines
            order by order_line_id
            limit 1
            """,
            {"line": line_id, "batch": batch_id, "newest": newest},
        )
    try:
        with dbt_warehouse.env():
            second = builds.run_dbt(["run", "--select", "order_lines"], schema=schema)
        merged = _adapter_response(second, "order_lines")
        (found,) = dbt_warehouse.rows(
            f"select count(*) from {schema}.order_lines where order_line_id = %s", (line_id,)
        )[0]
        assert found == 1
        assert merged["code"] == "MERGE"
        assert 0 < merged["rows_affected"] < total / 2  # only the overlapping batches were read again
    finally:
        with psycopg.connect(dbt_warehouse.url) as conn:
            conn.execute("delete from raw_sales.order_lines where _batch_id = %s", (batch_id,))
            conn.execute("delete from raw_sales._batches where batch_id = %s", (batch_id,))
            conn.execute(f"drop schema if exists {schema} cascade")


def test_a_build_after_no_new_loads_tests_the_staging_keys_of_every_type(dbt_warehouse) -> None:
    """A staging model tested on the keys loaded since (meta tested_since) still compiles its tests when no
    key was loaded: the empty key list takes the tested column's type (text for the survey's response_id,
    bigint for the sales ids)."""
    schema = "dbt_no_new_keys"
    selection = [
        "--select",
        "+int_survey_responses_matched",
        "+orders",
        "--exclude",
        "test_type:singular",
        "--indirect-selection",
        "cautious",  # (not the tests that also read models outside the selection)
    ]
    try:
        with dbt_warehouse.env():
            builds.run_dbt(["build", *selection], schema=schema)
            again = builds.run_dbt(["build", *selection], schema=schema)
        staged = {
            node: status
            for node, status in again.node_statuses.items()
            if node.startswith("test.") and ("stg_survey__responses" in node or "stg_sales__orders" in node)
        }
        assert any("stg_survey__responses_response_id" in node for node in staged)
        assert staged and set(staged.values()) <= {"pass", "warn"}, staged
    finally:
        with psycopg.connect(dbt_warehouse.url) as conn:
            conn.execute(f"drop schema if exists {schema} cascade")


def test_a_build_tests_the_rows_it_rewrote_and_dbt_test_tests_all(dbt_warehouse) -> None:
    """On a window-incremental model, the data tests of `dbt build` read the rows that build rewrote (from its
    recompute date on); `dbt test` reads every row. A bad value planted in an old snapshot, which an unchanged
    daily build keeps, passes the build's tests and fails `dbt test`."""
    schema = "dbt_test_scope"
    try:
        with dbt_warehouse.env():
            builds.run_dbt(
                [
                    "build",
                    "--select",
                    "+customer_segments",
                    "+customers",
                    "--resource-type",
                    "model",
                    "--resource-type",
                    "seed",
                ],
                schema=schema,
            )
            (oldest,) = dbt_warehouse.rows(f"select min(snapshot_date) from {schema}.customer_segments")[0]
            with psycopg.connect(dbt_warehouse.url) as conn:
                planted = conn.execute(
                    f"update {schema}.customer_segments set r_score = 9 where snapshot_date = %s", (oldest,)
                ).rowcount
            assert planted > 0
            built = builds.run_dbt(["build", "--select", "customer_segments"], schema=schema)
            r_score_tests = [
                node
                for node in built.node_statuses
                if node.startswith("test.customer_lens.accepted_values_customer_") and "r_score" in node
            ]
            assert r_score_tests and all(built.node_statuses[node] == "pass" for node in r_score_tests)
            (still_planted,) = dbt_warehouse.rows(f"select count(*) from {schema}.customer_segments where r_score = 9")[
                0
            ]
            assert still_planted == planted  # the build kept the old snapshot (and so did not test it)
            with pytest.raises(builds.DbtError) as failed:
                builds.run_dbt(["test", "--select", "customer_segments"], schema=schema)
        assert any("r_score" in name for name in failed.value.failed_nodes)
    finally:
        with psycopg.connect(dbt_warehouse.url) as conn:
            conn.execute(f"drop schema if exists {schema} cascade")


def test_a_build_tests_the_fact_rows_it_merged_and_dbt_test_tests_all(dbt_warehouse) -> None:
    """On an incremental fact, the data tests of `dbt build` read the rows that build merged (loaded_at on or
    after the bound it merged from); `dbt test` reads every row. A bad quantity planted in an old line, which
    a build loading nothing new keeps, passes the build's tests and fails `dbt test`."""
    schema = "dbt_merge_test_scope"
    try:
        with dbt_warehouse.env():
            builds.run_dbt(["run", "--select", "+orders"], schema=schema)
            with psycopg.connect(dbt_warehouse.url) as conn:
                planted = conn.execute(
                    f"update {schema}.order_lines set quantity = -5 where order_line_id = "
                    f"(select min(order_line_id) from {schema}.order_lines)"
                ).rowcount
            assert planted == 1
            # (singular tests read other marts, not built here)
            only = ["--select", "order_lines", "--exclude", "test_type:singular"]
            built = builds.run_dbt(["build", *only], schema=schema)
            quantity_tests = [node for node in built.node_statuses if "order_lines_quantity" in node]
            assert quantity_tests and all(built.node_statuses[node] == "pass" for node in quantity_tests)
            (recorded,) = dbt_warehouse.rows(
                f"select fingerprint from {schema}._lens_build_inputs "
                "where model_name = 'order_lines' and input_key = 'merged_since'"
            )[0]
            assert not recorded.startswith("-infinity")  # an incremental build: a bound
            with pytest.raises(builds.DbtError) as failed:
                builds.run_dbt(["test", *only], schema=schema)
        assert any("order_lines_quantity" in name for name in failed.value.failed_nodes)
    finally:
        with psycopg.connect(dbt_warehouse.url) as conn:
            conn.execute(f"drop schema if exists {schema} cascade")


def _load_copy(
    conn,
    table: str,
    key: str,
    source_id: object,
    new_id: object,
    overrides: dict[str, object],
    schema: str = "raw_sales",
    newest_first: str = "updated_at desc",
) -> uuid.UUID:
    """Load into <schema>.<table>, as a new batch of its own, a copy of the newest version of record
    `source_id` under the id `new_id` with `overrides` (column: value); returns the batch id."""
    columns = [
        name
        for (name,) in conn.execute(
            "select column_name from information_schema.columns where table_schema = %s"
            " and table_name = %s order by ordinal_position",
            (schema, table),
        ).fetchall()
    ]
    batch_id = uuid.uuid4()
    values = {**overrides, key: new_id, "_batch_id": batch_id, "_loaded_at": dt.datetime.now(dt.UTC)}
    select_list = ", ".join(f"%({name})s" if name in values else name for name in columns)
    conn.execute(
        f"insert into {schema}._batches (batch_id, entity, interval_start, interval_end, status, started_at,"
        " finished_at) values (%(_batch_id)s, %(entity)s, '2024-01-01', '2024-01-02', 'loaded', now(), now())",
        {"_batch_id": batch_id, "entity": table},
    )
    conn.execute(
        f"insert into {schema}.{table} select {select_list} from {schema}.{table}"
        f" where {key} = %(source_id)s order by {newest_first} limit 1",
        {**values, "source_id": source_id},
    )
    return batch_id


def _remove_loads(url: str, batches: list[tuple[str, uuid.UUID]], schema: str) -> None:
    """Delete the test's raw batches (`schema.table`, batch id) and drop the schema it built into."""
    with psycopg.connect(url) as conn:
        for table, batch_id in batches:
            conn.execute(f"delete from {table} where _batch_id = %s", (batch_id,))
            conn.execute(f"delete from {table.split('.')[0]}._batches where batch_id = %s", (batch_id,))
        conn.execute(f"drop schema if exists {schema} cascade")


def test_an_order_matches_a_customer_loaded_after_it(dbt_warehouse) -> None:
    """An order naming a customer the sales source has not sent yet is kept, unmatched; once the customer is
    loaded, the next incremental run of orders matches it, and rebuilds that order alone."""
    schema = "dbt_late_customer"
    batches: list[uuid.UUID] = []
    try:
        with dbt_warehouse.env():
            builds.run_dbt(["run", "--select", "+orders"], schema=schema)
        with psycopg.connect(dbt_warehouse.url) as conn:
            (order_id, source_order_id, customer_id, source_customer_id) = conn.execute(
                "select (select max(order_id) + 1 from raw_sales.orders), (select min(order_id) from"
                " raw_sales.orders), (select max(customer_id) + 1 from raw_sales.customers), (select"
                " min(customer_id) from raw_sales.customers)"
            ).fetchone()
            batches.append(
                _load_copy(conn, "orders", "order_id", source_order_id, order_id, {"customer_id": customer_id})
            )
        with dbt_warehouse.env():
            builds.run_dbt(["run", "--select", "orders"], schema=schema)
        assert dbt_warehouse.rows(
            f"select is_customer_matched from {schema}.orders where order_id = %s", (order_id,)
        ) == [(False,)]
        with psycopg.connect(dbt_warehouse.url) as conn:
            batches.append(_load_copy(conn, "customers", "customer_id", source_customer_id, customer_id, {}))
        with dbt_warehouse.env():
            # (stg_sales__customers is a table: a selection that is to see new customers rebuilds it)
            rerun = builds.run_dbt(["run", "--select", "stg_sales__customers", "orders"], schema=schema)
        assert dbt_warehouse.rows(
            f"select is_customer_matched from {schema}.orders where order_id = %s", (order_id,)
        ) == [(True,)]
        merged = _adapter_response(rerun, "orders")
        assert (merged["code"], merged["rows_affected"]) == ("MERGE", 1)  # that order only
    finally:
        with psycopg.connect(dbt_warehouse.url) as conn:
            for batch_id in batches:
                for table in ("orders", "customers"):
                    conn.execute(f"delete from raw_sales.{table} where _batch_id = %s", (batch_id,))
                conn.execute("delete from raw_sales._batches where batch_id = %s", (batch_id,))
            conn.execute(f"drop schema if exists {schema} cascade")


@pytest.mark.parametrize("listed", ["literal", "join"])
def test_a_survey_answer_follows_the_customers_its_email_names(dbt_warehouse, listed) -> None:
    """An answer given by an email no customer holds yet stays unmatched; each later load of a customer
    re-matches it at the next incremental run, whichever way the email moved: a new customer takes it (the
    answer is theirs), a second customer takes it too (ambiguous), gives it up (the first one's again), the
    first customer drops it (unknown again). The answers that were matched before and whose customers the
    loads did not touch are not matched again. The answers to match again reach the survey view as a
    literal key list, or as a join beyond var listed_keys_limit (both ways)."""
    schema = f"dbt_late_answer_{listed}"
    select = ["run", "--select", "+int_survey_responses_matched"]
    if listed == "join":
        select += ["--vars", "{listed_keys_limit: 0}"]
    batches: list[tuple[str, uuid.UUID]] = []
    email = "late.answer@example.test"

    def run_and_read() -> tuple[tuple, dict]:
        with dbt_warehouse.env():
            run = builds.run_dbt(select, schema=schema)
        (match,) = dbt_warehouse.rows(
            f"select match_status, customer_id from {schema}.int_survey_responses_matched where response_id = %s",
            (response_id,),
        )
        (compiled,) = [
            r.node.compiled_code for r in run.result.results if r.node.name == "int_survey_responses_matched"
        ]
        # every run here is incremental: the keys to match again came one way or the other
        assert ("response_id = any('{" in compiled) == (listed == "literal")
        assert ("from responses_to_match" in compiled) == (listed == "join")
        return match, _adapter_response(run, "int_survey_responses_matched")

    def load(schema_: str, table: str, key: str, source_id, new_id, overrides: dict, newest_first: str) -> None:
        with psycopg.connect(dbt_warehouse.url) as conn:
            batch = _load_copy(conn, table, key, source_id, new_id, overrides, schema_, newest_first)
        batches.append((f"{schema_}.{table}", batch))

    def load_customer(customer_id: int, email_: str) -> None:
        load(
            "raw_sales",
            "customers",
            "customer_id",
            source_customer_id,
            customer_id,
            {"email": email_},
            "updated_at desc",
        )

    try:
        with dbt_warehouse.env():
            builds.run_dbt(select, schema=schema)
        (source_response_id, first_id, source_customer_id) = dbt_warehouse.rows(
            "select (select min(response_id) from raw_survey.responses),"
            " (select max(customer_id) + 1 from raw_sales.customers),"
            " (select min(customer_id) from raw_sales.customers)"
        )[0]
        response_id, second_id = f"late-{uuid.uuid4().hex[:12]}", first_id + 1
        load(
            "raw_survey",
            "responses",
            "response_id",
            source_response_id,
            response_id,
            {"customer_ref": email.upper()},
            "submitted_at desc",
        )
        match, _ = run_and_read()
        assert match == ("unknown_email", None)
        (unmatched,) = dbt_warehouse.rows(
            f"select count(*) from {schema}.int_survey_responses_matched where match_status <> 'matched'"
        )[0]

        load_customer(first_id, email)
        match, merged = run_and_read()
        assert match == ("matched", first_id)
        # the unmatched answers are matched again (this one among them); no matched one is
        assert (merged["code"], merged["rows_affected"]) == ("MERGE", unmatched)

        load_customer(second_id, email)
        assert run_and_read()[0] == ("ambiguous_email", None)
        load_customer(second_id, "someone.else@example.test")
        assert run_and_read()[0] == ("matched", first_id)
        load_customer(first_id, "moved.away@example.test")
        assert run_and_read()[0] == ("unknown_email", None)

        with dbt_warehouse.env():
            builds.run_dbt(["run", "--full-refresh", "--select", "int_survey_responses_matched"], schema=schema)
        assert run_and_read()[0] == ("unknown_email", None)
    finally:
        _remove_loads(dbt_warehouse.url, batches, schema)


def test_a_ticket_follows_the_customer_its_email_names(dbt_warehouse) -> None:
    """A ticket from an email no customer holds stays unmatched; the customer who takes the email later
    gets it at the next incremental run, and loses it when their email changes again."""
    schema = "dbt_late_ticket"
    select = ["run", "--select", "+int_tickets_matched"]
    batches: list[tuple[str, uuid.UUID]] = []
    email = "late.ticket@example.test"

    def load(raw_schema: str, table: str, key: str, source_id, new_id, overrides: dict) -> None:
        with psycopg.connect(dbt_warehouse.url) as conn:
            batch = _load_copy(conn, table, key, source_id, new_id, overrides, raw_schema)
        batches.append((f"{raw_schema}.{table}", batch))

    def run_and_read() -> tuple:
        with dbt_warehouse.env():
            builds.run_dbt(select, schema=schema)
        (match,) = dbt_warehouse.rows(
            f"select match_status, customer_id from {schema}.int_tickets_matched where ticket_id = %s", (ticket_id,)
        )
        return match

    try:
        with dbt_warehouse.env():
            builds.run_dbt(select, schema=schema)
        (source_ticket_id, ticket_id, source_customer_id, customer_id) = dbt_warehouse.rows(
            "select (select min(ticket_id) from raw_service.tickets), (select max(ticket_id) + 1 from"
            " raw_service.tickets), (select min(customer_id) from raw_sales.customers),"
            " (select max(customer_id) + 1 from raw_sales.customers)"
        )[0]
        load("raw_service", "tickets", "ticket_id", source_ticket_id, ticket_id, {"requester_email": email})
        assert run_and_read() == ("unknown_email", None)
        load("raw_sales", "customers", "customer_id", source_customer_id, customer_id, {"email": email})
        assert run_and_read() == ("matched", customer_id)
        load("raw_sales", "customers", "customer_id", source_customer_id, customer_id, {"email": "gone@example.test"})
        assert run_and_read() == ("unknown_email", None)
    finally:
        _remove_loads(dbt_warehouse.url, batches, schema)


def test_changes_logged_over_several_builds_and_a_rebuilt_log_give_the_full_refresh_sums(dbt_warehouse) -> None:
    """The guerrilla sums skip two builds of their inputs (as-of dates two months and one month back, then
    today): the logs then hold rows inserted by one build and deleted by the next, and applying them still
    gives the full refresh's sums. A producer rebuilt in full starts a new log, whose rows before were never
    logged: the sums are then recomputed, and still equal."""
    schema = "dbt_change_logs"
    model = "int_guerrilla_groups_aggregated"
    producers = ["customer_period_groups", "int_customer_events_aggregated_to_months"]
    (as_of,) = dbt_warehouse.rows(f"select as_of_date from {dbt_warehouse.full_schema}.int_as_of_date")[0]

    def as_of_vars(days_back: int) -> list[str]:
        return ["--vars", f"{{as_of_date: '{as_of - dt.timedelta(days=days_back)}'}}"]

    def differences() -> tuple[int, int]:
        return _differences(dbt_warehouse, f"{schema}.{model}", f"{dbt_warehouse.full_schema}.{model}")

    def recomputed_from() -> str:
        return _recomputed_from(dbt_warehouse, schema, model)

    def build(*args: str) -> None:
        builds.run_dbt(["build", "--resource-type", "model", "--resource-type", "seed", *args], schema=schema)

    try:
        with dbt_warehouse.env():
            build("--select", f"+{model}", *as_of_vars(61))
            assert differences() != (0, 0)  # two months back: other sums
            for days_back in (30, 0):
                builds.run_dbt(
                    ["run", "--select", *(f"+{p}" for p in producers), *as_of_vars(days_back)], schema=schema
                )
            (logged, logged_twice) = dbt_warehouse.rows(
                f"""
                select count(*), count(*) - count(distinct (customer_id, period_type, period_start_date))
                from {schema}._lens_changes__customer_period_groups
                """
            )[0]
            assert logged > 0 and logged_twice > 0
            build("--select", model)
            assert recomputed_from() != "-infinity"  # the logged changes applied
            assert differences() == (0, 0)

            build("--select", producers[0], "--full-refresh")
            build("--select", model)
            assert recomputed_from() == "-infinity"
            assert differences() == (0, 0)
    finally:
        with psycopg.connect(dbt_warehouse.url) as conn:
            conn.execute(f"drop schema if exists {schema} cascade")


def test_a_build_tests_a_staging_view_on_the_keys_loaded_since_its_mart_was_built(dbt_warehouse) -> None:
    """`dbt build` tests stg_sales__orders on the orders loaded since the orders mart was last built: an order
    without a customer loaded now fails the build; an order date erased in place in an old record (the build
    of the mart tested it before, when it was good) is not read by it. `dbt test` reads every row and fails
    on both."""
    schema = "dbt_staging_scope"
    batches: list[uuid.UUID] = []
    planted: tuple[object, int] | None = None
    try:
        with dbt_warehouse.env():
            builds.run_dbt(
                ["build", "--select", "+orders", "--resource-type", "model", "--resource-type", "seed"], schema=schema
            )
        with psycopg.connect(dbt_warehouse.url) as conn:
            (old_order_id, ordered_at) = conn.execute(
                "select order_id, min(ordered_at) from raw_sales.orders group by order_id having count(*) = 1"
                " order by order_id limit 1"
            ).fetchone()
            (new_order_id,) = conn.execute("select max(order_id) + 1 from raw_sales.orders").fetchone()
            batches.append(_load_copy(conn, "orders", "order_id", old_order_id, new_order_id, {"customer_id": None}))
            conn.execute("update raw_sales.orders set ordered_at = null where order_id = %s", (old_order_id,))
            planted = (ordered_at, old_order_id)
        with dbt_warehouse.env():
            with pytest.raises(builds.DbtError) as failed_build:
                builds.run_dbt(
                    ["build", "--select", "stg_sales__orders", "--exclude", "test_type:singular"], schema=schema
                )
            with pytest.raises(builds.DbtError) as failed_test:
                builds.run_dbt(
                    ["test", "--select", "stg_sales__orders", "--exclude", "test_type:singular"], schema=schema
                )
        build_failures = failed_build.value.failed_nodes
        assert any("not_null_stg_sales__orders_customer_id" in name for name in build_failures), build_failures
        # the view's build recorded the keys loaded since, once, for its tests to read: the new order, not the old
        ((key_type, key_values),) = dbt_warehouse.rows(
            f"select key_type, key_values::bigint[] from {schema}._lens_tested_keys"
            " where model_name = 'stg_sales__orders'"
        )
        assert key_type == "bigint" and new_order_id in key_values and old_order_id not in key_values
        assert not any("ordered_at" in name for name in build_failures), build_failures
        test_failures = failed_test.value.failed_nodes
        assert any("not_null_stg_sales__orders_customer_id" in name for name in test_failures), test_failures
        assert any("not_null_stg_sales__orders_ordered_at" in name for name in test_failures), test_failures
    finally:
        with psycopg.connect(dbt_warehouse.url) as conn:
            if planted:
                conn.execute("update raw_sales.orders set ordered_at = %s where order_id = %s", planted)
            for batch_id in batches:
                conn.execute("delete from raw_sales.orders where _batch_id = %s", (batch_id,))
                conn.execute("delete from raw_sales._batches where batch_id = %s", (batch_id,))
            conn.execute(f"drop schema if exists {schema} cascade")


def test_a_build_tests_the_rows_a_model_written_by_difference_logged(dbt_warehouse) -> None:
    """customer_period_groups recomputes every customer's running periods each build but writes (and logs)
    only the rows that changed: `dbt build` tests those, read from its change log. A bad segment planted in
    an old period, which the next build keeps, passes the build's tests and fails `dbt test`."""
    schema = "dbt_logged_scope"
    model = "customer_period_groups"
    try:
        with dbt_warehouse.env():
            builds.run_dbt(
                ["build", "--select", f"+{model}", "+customers", "--resource-type", "model", "--resource-type", "seed"],
                schema=schema,
            )
            with psycopg.connect(dbt_warehouse.url) as conn:
                planted = conn.execute(
                    f"update {schema}.{model} set rfm_segment = 'bogus' where (customer_id, period_type,"
                    f" period_start_date) = (select customer_id, period_type, period_start_date from {schema}.{model}"
                    " where period_end_date < current_date - 400 order by 1, 2, 3 limit 1)"
                ).rowcount
            assert planted == 1
            built = builds.run_dbt(["build", "--select", model], schema=schema)
            segment_tests = [
                node
                for node in built.node_statuses
                if node.startswith(f"test.customer_lens.accepted_values_{model}_rfm_segment")
            ]
            assert segment_tests and all(built.node_statuses[node] == "pass" for node in segment_tests)
            compiled = [r.node.compiled_code for r in built.result.results if r.node.unique_id in segment_tests]
            assert all(f"_lens_changes__{model}" in code for code in compiled)
            with pytest.raises(builds.DbtError) as failed:
                builds.run_dbt(["test", "--select", model], schema=schema)
        assert any("rfm_segment" in name for name in failed.value.failed_nodes)
    finally:
        with psycopg.connect(dbt_warehouse.url) as conn:
            conn.execute(f"drop schema if exists {schema} cascade")


def test_a_restatement_recomputes_closed_periods_to_equal_full_refresh(dbt_warehouse) -> None:
    """Last in this module: it restates the incremental schema from its first month (what `lens restate`
    builds), after which every table equals the full refresh and nothing is pending."""
    schema, full = dbt_warehouse.incremental_schema, dbt_warehouse.full_schema
    ((first_month,),) = dbt_warehouse.rows(f"select min(period_start_date) from {full}.guerrilla_metrics")
    with dbt_warehouse.env():
        builds.run_dbt(["run", "--vars", json.dumps({"restate_from": first_month.isoformat()})], schema=schema)
    for model in [*CLOSED_PERIOD_TABLES, *COMPARED]:
        assert _differences(dbt_warehouse, f"{schema}.{model}", f"{full}.{model}") == (0, 0), model
    assert dbt_warehouse.rows(f"select count(*) from {schema}.restatements_pending") == [(0,)]
