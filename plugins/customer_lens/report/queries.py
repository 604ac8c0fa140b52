"""What the report reads: the ``analytics`` views of the current baseline and the ``lens_audit`` tables.

Every figure is aggregated here, in PostgreSQL; a query returns plain rows (dicts by column name), a few
hundred at most. A query whose views are not there yet raises :class:`NoData` (the section says "no data
yet"), or returns nothing where its part of a section is optional.
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Any

from customer_lens.local import warehouse

Row = dict[str, Any]

# Groups of the attribute dimension (default region) beyond this many are folded into "other".
ATTRIBUTE_TOP_GROUPS = 8
FIXED_GROUP_TYPES = ("all", "value_tier", "segment")


class NoData(Exception):
    """A section has nothing to show yet (its message says why)."""


class Db:
    """Queries of the report, all in one read-only transaction (see :func:`customer_lens.report.render`)."""

    def __init__(self, conn: warehouse.Connection, base: Path | None = None) -> None:
        self.conn = conn
        self.base = base  # the report's folder: links to other files are relative to it

    def missing(self, *relations: str) -> list[str]:
        return [r for r in relations if warehouse.scalar(self.conn.execute("select to_regclass(%s)", (r,))) is None]

    def require(self, *relations: str) -> None:
        gone = self.missing(*relations)
        if gone:
            raise NoData(f"{', '.join(gone)} not there yet (it appears with the first baseline).")

    def rows(self, query: str, params: tuple[Any, ...] = ()) -> list[Row]:
        from psycopg.rows import dict_row

        with self.conn.cursor(row_factory=dict_row) as cur:
            return cur.execute(query, params).fetchall()

    def one(self, query: str, params: tuple[Any, ...] = ()) -> Row | None:
        found = self.rows(query, params)
        return found[0] if found else None


def lock_analytics(conn: warehouse.Connection) -> None:
    """Hold the ``analytics`` views (ACCESS SHARE) for the whole report: one baseline, never a mix.

    A promotion replaces every view in one transaction and takes its locks without waiting (and retries),
    so it simply happens after the report has read; the snapshot tables under the views never change.
    """
    from psycopg import sql

    views = [
        r[0]
        for r in conn.execute(
            "select c.relname from pg_class c join pg_namespace n on n.oid = c.relnamespace "
            "where n.nspname = 'analytics' and c.relkind in ('v', 'r', 'm') order by 1"
        ).fetchall()
    ]
    if views:
        conn.execute("set local lock_timeout = '60s'")
        conn.execute(
            sql.SQL("lock table {} in access share mode").format(
                sql.SQL(", ").join(sql.Identifier("analytics", v) for v in views)
            )
        )


# --- header -----------------------------------------------------------------------------------------


def current_baseline(db: Db) -> Row | None:
    """The baseline the ``analytics`` views show (``analytics.baseline_info``), or None before the first."""
    columns = "baseline_no, snapshot_id, promoted_at, promoted_by, reason, data_interval_end"
    if not db.missing("analytics.baseline_info"):
        return db.one(f"select {columns} from analytics.baseline_info")
    if not db.missing("lens_audit.baselines"):
        return db.one(f"select {columns} from lens_audit.baselines where status = 'current'")
    return None


def as_of(db: Db) -> dt.date | None:
    """The date the data of the baseline is as of (None before the first)."""
    if db.missing("analytics.customers"):
        return None
    row = db.one("select max(as_of_date) as as_of from analytics.customers")  # an aggregate: always one row
    as_of_date: dt.date | None = row["as_of"] if row is not None else None
    return as_of_date


def baseline_kpis(db: Db, baseline_no: int) -> list[Row]:
    """The headline KPIs of one baseline with their change against the previous and the first."""
    if db.missing("analytics.baseline_kpis"):
        return []
    return db.rows(
        "select kpi, value, change_pct_vs_previous, change_pct_vs_first, previous_value "
        "from analytics.baseline_kpis where baseline_no = %s",
        (baseline_no,),
    )


def latest_validation(db: Db) -> Row | None:
    """The latest validation run and what became of its snapshot (None before the first)."""
    if db.missing("lens_audit.validation_runs", "lens_audit.snapshots"):
        return None
    return db.one(
        "select r.snapshot_id, r.finished_at, r.passed, r.expectations_failed, s.status "
        "from lens_audit.validation_runs r join lens_audit.snapshots s using (snapshot_id) "
        "order by r.finished_at desc limit 1"
    )


# --- 1. segments ------------------------------------------------------------------------------------


def segment_totals(db: Db) -> list[Row]:
    """Customers, trailing-12-month revenue and margin per RFM segment of the latest snapshot."""
    db.require("analytics.customer_segments")
    return db.rows(
        "select rfm_segment as segment, count(*) as customers, sum(trailing_revenue) as revenue, "
        "sum(trailing_gross_margin) as gross_margin, max(snapshot_date) as snapshot_date "
        "from analytics.customer_segments where is_latest_snapshot group by rfm_segment"
    )


def tier_totals(db: Db) -> list[Row]:
    """Customers, revenue and (positive) margin per value tier of the latest snapshot."""
    return db.rows(
        "select coalesce(value_tier, 'unknown') as tier, count(*) as customers, sum(trailing_revenue) as revenue, "
        "sum(greatest(trailing_gross_margin, 0)) as gross_margin "
        "from analytics.customer_segments where is_latest_snapshot group by 1"
    )


def segment_history(db: Db) -> list[Row]:
    """Customers per RFM segment in every snapshot."""
    return db.rows(
        "select snapshot_date, rfm_segment as segment, count(*) as customers "
        "from analytics.customer_segments group by 1, 2 order by 1"
    )


# --- 2. migrations ----------------------------------------------------------------------------------


def latest_migrations(db: Db) -> list[Row]:
    """From → to counts of both segment types between the last two snapshots."""
    db.require("analytics.segment_migrations")
    return db.rows(
        "select segment_type, from_segment, to_segment, customers, previous_snapshot_date, snapshot_date "
        "from analytics.segment_migrations "
        "where snapshot_date = (select max(snapshot_date) from analytics.segment_migrations)"
    )


# --- 3. complaints ----------------------------------------------------------------------------------


def complaint_trends(db: Db) -> list[Row]:
    """Complaints per month and category (and ``all``), over every channel and segment."""
    db.require("analytics.complaint_trends")
    return db.rows(
        "select month_start_date, ticket_category as category, complaints, "
        "complaints_per_100_active_customers as per_100, complaints_mom_pct_change as mom, "
        "complaints_yoy_pct_change as yoy, complaints_rolling_3m_avg as avg_3m, trend_direction, "
        "is_complete_month from analytics.complaint_trends "
        "where ticket_channel = 'all' and rfm_segment = 'all' order by month_start_date, ticket_category"
    )


# --- 4. guerrilla metrics ---------------------------------------------------------------------------


def guerrilla_by_group(db: Db) -> list[Row]:
    """The guerrilla metrics per complete quarter and customer group; attribute groups beyond the
    :data:`ATTRIBUTE_TOP_GROUPS` largest by revenue are folded into ``other``."""
    db.require("analytics.guerrilla_metrics")
    return db.rows(
        """
        with quarters as (
            select * from analytics.guerrilla_metrics where period_type = 'quarter' and is_complete_period
        ),
        attribute_rank as (
            select group_type, group_value, rank() over (partition by group_type order by sum(revenue) desc) as rnk
            from quarters group by group_type, group_value
        )
        select q.period_start_date, q.group_type,
               case when q.group_type = any(%s) or r.rnk <= %s then q.group_value else 'other' end as group_value,
               sum(q.new_customers) as new_customers, sum(q.new_customer_revenue) as new_customer_revenue,
               sum(q.lost_customers) as lost_customers, sum(q.lost_customer_value) as lost_customer_value,
               sum(q.renewals) as renewals, sum(q.referrals) as referrals, sum(q.revenue) as revenue,
               round(100 * sum(q.gross_margin) / nullif(sum(q.revenue), 0), 2) as gross_margin_pct
        from quarters q join attribute_rank r using (group_type, group_value)
        group by 1, 2, 3 order by 1
        """,
        (list(FIXED_GROUP_TYPES), ATTRIBUTE_TOP_GROUPS),
    )


def guerrilla_company(db: Db) -> list[Row]:
    """The whole company's figures of the last five complete quarters, newest first."""
    return db.rows(
        "select period_start_date, active_customers, new_customers, new_customer_revenue, lost_customers, "
        "lost_customer_value, reactivated_customers, renewals, renewal_value, revenue, gross_margin_pct, "
        "net_margin_pct, referrals, promoter_share_pct from analytics.guerrilla_metrics "
        "where period_type = 'quarter' and group_type = 'all' and is_complete_period "
        "order by period_start_date desc limit 5"
    )


def renewal_reasons(db: Db) -> list[Row]:
    """Contract renewals per complete quarter and stated reason (none before the view exists)."""
    if db.missing("analytics.renewals_by_reason"):
        return []
    return db.rows(
        "select period_start_date, renewal_reason, sum(renewals) as renewals, sum(renewal_value) as value "
        "from analytics.renewals_by_reason "
        "where period_type = 'quarter' and group_type = 'all' and is_complete_period group by 1, 2 order by 1"
    )


# --- 5. NPS and CSAT --------------------------------------------------------------------------------


def nps_last_12(db: Db) -> list[Row]:
    """NPS and CSAT per RFM segment (and ``all``) over the last 12 complete months."""
    db.require("analytics.nps_by_segment")
    return db.rows(
        """
        with last_12 as (
            select * from analytics.nps_by_segment
            where is_complete_month and month_start_date > (
                select max(month_start_date) from analytics.nps_by_segment where is_complete_month
            ) - interval '12 months'
        )
        select rfm_segment as segment, min(month_start_date) as first_month, max(month_start_date) as last_month,
               sum(nps_responses) as nps_responses,
               round(100.0 * (sum(promoters) - sum(detractors)) / nullif(sum(nps_responses), 0), 1) as nps,
               sum(csat_responses) as csat_responses,
               round(100.0 * sum(csat_satisfied_responses) / nullif(sum(csat_responses), 0), 1) as csat
        from last_12 group by rfm_segment
        """
    )


def nps_trend(db: Db) -> list[Row]:
    """The company's NPS and CSAT per complete quarter."""
    return db.rows(
        "select date_trunc('quarter', month_start_date)::date as quarter, sum(nps_responses) as nps_responses, "
        "round(100.0 * (sum(promoters) - sum(detractors)) / nullif(sum(nps_responses), 0), 1) as nps, "
        "round(100.0 * sum(csat_satisfied_responses) / nullif(sum(csat_responses), 0), 1) as csat "
        "from analytics.nps_by_segment where rfm_segment = 'all' "
        "group by 1 having bool_and(is_complete_month) order by 1"
    )


# --- 6. lost-customer review ------------------------------------------------------------------------


def lost_period(db: Db) -> Row | None:
    """The last complete month with a lost customer: how many, and their value before the loss."""
    db.require("analytics.lost_customer_review")
    return db.one(
        "select period_start_date, count(*) as losses, sum(revenue_12m_before_loss) as value "
        "from analytics.lost_customer_review where period_type = 'month' and period_start_date = ("
        "select max(period_start_date) from analytics.lost_customer_review "
        "where period_type = 'month' and is_complete_period) group by 1"
    )


def lost_top(db: Db, period_start: dt.date) -> list[Row]:
    """The ten most valuable customers lost in a month (by id: the views hold no names)."""
    return db.rows(
        "select value_rank, customer_id, region, country_code, industry, company_size, lost_date, loss_type, "
        "revenue_12m_before_loss, share_of_period_lost_value_pct, tenure_days, episode_number, "
        "complaints_before_loss, last_nps_score, stated_reason, stated_reason_source, exit_comment "
        "from analytics.lost_customer_review where period_type = 'month' and period_start_date = %s "
        "order by value_rank, customer_id limit 10",
        (period_start,),
    )


def lost_reasons(db: Db) -> list[Row]:
    """Customers lost and their value per stated reason, over the last four complete quarters."""
    return db.rows(
        "select period_start_date, coalesce(stated_reason, 'not_stated') as reason, count(*) as losses, "
        "sum(revenue_12m_before_loss) as value from analytics.lost_customer_review "
        "where period_type = 'quarter' and is_complete_period and period_start_date >= ("
        "select max(period_start_date) from analytics.lost_customer_review "
        "where period_type = 'quarter' and is_complete_period) - interval '9 months' group by 1, 2 order by 1"
    )


# --- 7. baseline history ----------------------------------------------------------------------------


def kpi_history(db: Db) -> list[Row]:
    """Every KPI of every baseline, with its previous and first value."""
    db.require("analytics.baseline_kpis")
    return db.rows(
        "select baseline_no, promoted_at, kpi, value, previous_value, change_vs_previous, change_pct_vs_previous, "
        "first_value, change_vs_first, change_pct_vs_first from analytics.baseline_kpis order by baseline_no, kpi"
    )


def promotions(db: Db) -> list[Row] | None:
    """The last 12 promotions, newest first (None before ``lens_audit.baselines`` exists)."""
    if db.missing("lens_audit.baselines"):
        return None
    return db.rows(
        "select baseline_no, promoted_at, promoted_by, reason, status, data_interval_end "
        "from lens_audit.baselines order by baseline_no desc limit 12"
    )


# --- 8. latest validation ---------------------------------------------------------------------------


def restatements_pending(db: Db) -> list[Row] | None:
    """What has arrived for closed periods since they were built (None before the view exists)."""
    if db.missing("analytics.restatements_pending"):
        return None
    return db.rows(
        "select mart_name, period_type, period_start_date, period_end_date, figure, difference, difference_pct "
        "from analytics.restatements_pending order by period_start_date, mart_name, period_type, figure"
    )


def validation_runs(db: Db) -> list[Row]:
    """The last ten validation runs, newest first, each with what became of its snapshot: its baseline
    (also after an override), else its state; none before the audit tables exist."""
    if db.missing("lens_audit.validation_runs", "lens_audit.snapshots", "lens_audit.baselines"):
        return []
    return db.rows(
        "select r.run_id, r.snapshot_id, r.finished_at, r.duration_seconds, r.passed, r.expectations_evaluated, "
        "r.expectations_failed, r.report_path, r.triggered_by, s.status as snapshot_status, "
        "coalesce(r.baseline_no, b.baseline_no) as baseline_no, b.reason as baseline_reason "
        "from lens_audit.validation_runs r join lens_audit.snapshots s using (snapshot_id) "
        "left join lens_audit.baselines b using (snapshot_id) order by r.finished_at desc limit 10"
    )


def validation_failures(db: Db, run_id: str) -> list[Row] | None:
    """The first 50 failed expectations of a run (None before ``lens_audit.validation_failures`` exists)."""
    if db.missing("lens_audit.validation_failures"):
        return None
    return db.rows(
        "select mart, expectation, column_name, observed, expected from lens_audit.validation_failures "
        "where run_id = %s order by mart, column_name nulls first, expectation limit 50",
        (run_id,),
    )
