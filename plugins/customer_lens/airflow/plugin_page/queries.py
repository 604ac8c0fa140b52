"""What the Customer Lens page shows, read from the ``lens_audit`` tables (DDL in ``customer_lens.guard.audit``).

Read-only: the page never creates the audit schema; before the first ``lens run`` (or with an audit
schema from before a table existed) it reports that there is no baseline yet.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path

from customer_lens.config import settings as settings_mod
from customer_lens.local import warehouse
from customer_lens.local.warehouse import scalar

AUDIT_TABLES = ("baselines", "baseline_kpi_values", "validation_runs", "validation_failures")
RECENT_VALIDATIONS = 10
MAX_FAILURES = 500


@dataclass(frozen=True)
class Baseline:
    baseline_no: int
    status: str
    promoted_at: dt.datetime
    data_interval_start: dt.datetime | None
    data_interval_end: dt.datetime | None
    promoted_by: str
    reason: str
    validation_run_id: str | None
    snapshot_id: str
    validation_report_path: str | None


@dataclass(frozen=True)
class Kpi:
    """A headline KPI of one baseline, with its value in the previous baseline and in baseline #1."""

    kpi: str
    value: Decimal | None
    previous: Decimal | None
    previous_no: int | None
    first: Decimal | None
    first_no: int | None


@dataclass(frozen=True)
class ValidationRun:
    run_id: str
    snapshot_id: str
    started_at: dt.datetime
    finished_at: dt.datetime
    duration_seconds: float
    passed: bool
    expectations_evaluated: int
    expectations_failed: int
    summary: str
    report_path: str | None
    baseline_no: int | None
    triggered_by: str


@dataclass(frozen=True)
class Failure:
    mart: str
    expectation: str
    column_name: str | None
    observed: str | None
    expected: str | None


@dataclass(frozen=True)
class Overview:
    """Everything on the page. ``audit_ready`` is False before the audit tables exist."""

    audit_ready: bool
    baselines: list[Baseline] = field(default_factory=list)
    kpi_baseline_no: int | None = None
    kpis: list[Kpi] = field(default_factory=list)
    validations: list[ValidationRun] = field(default_factory=list)  # newest first
    failures: list[Failure] = field(default_factory=list)  # of validations[0]
    failures_total: int = 0
    # analytics.restatements_pending: (figures, closed periods, the month `lens restate --from` needs)
    restatements_pending: tuple[int, int, dt.date | None] | None = None

    @property
    def current(self) -> Baseline | None:
        return next((b for b in self.baselines if b.status == "current"), None)

    @property
    def latest_validation(self) -> ValidationRun | None:
        return self.validations[0] if self.validations else None


_BASELINES = """
select b.baseline_no, b.status, b.promoted_at, b.data_interval_start, b.data_interval_end, b.promoted_by,
       b.reason, b.validation_run_id, b.snapshot_id, v.report_path
from lens_audit.baselines as b
left join lens_audit.validation_runs as v on v.run_id = b.validation_run_id
order by b.baseline_no desc
"""

# The change vs the previous baseline and vs baseline #1, per KPI (the view analytics.baseline_kpis
# exposes the same to BI; the page reads the table so it works whatever the view's shape).
_KPIS = """
with kpi_history as (
    select
        baseline_no,
        kpi,
        value,
        lag(value) over by_baseline as previous,
        lag(baseline_no) over by_baseline as previous_no,
        first_value(value) over by_baseline as first,
        first_value(baseline_no) over by_baseline as first_no
    from lens_audit.baseline_kpi_values
    window by_baseline as (partition by kpi order by baseline_no)
)
select kpi, value, previous, previous_no, first, first_no
from kpi_history
where baseline_no = %s
order by kpi
"""

_VALIDATIONS = """
select run_id, snapshot_id, started_at, finished_at, duration_seconds, passed, expectations_evaluated,
       expectations_failed, summary, report_path, baseline_no, triggered_by
from lens_audit.validation_runs
order by finished_at desc, run_id desc
limit %s
"""

_FAILURES = """
select mart, expectation, column_name, observed, expected
from lens_audit.validation_failures
where run_id = %s
order by mart, column_name nulls first, expectation
limit %s
"""


def load(cfg: settings_mod.Settings | None = None, *, connect_timeout: int = 5) -> Overview:
    """Read the overview from the warehouse; raises ``psycopg.OperationalError`` if it does not answer."""
    import psycopg

    cfg = cfg or settings_mod.load()
    with psycopg.connect(warehouse.url(cfg=cfg), connect_timeout=connect_timeout) as conn:
        # One snapshot for all queries: the page never mixes two states of a promotion.
        conn.isolation_level = psycopg.IsolationLevel.REPEATABLE_READ
        conn.read_only = True
        present = scalar(
            conn.execute(
                "select count(to_regclass('lens_audit.' || t)) from unnest(%s::text[]) as t", (list(AUDIT_TABLES),)
            )
        )
        if present < len(AUDIT_TABLES):
            return Overview(audit_ready=False)
        baselines = [Baseline(*row) for row in conn.execute(_BASELINES)]
        current = next((b for b in baselines if b.status == "current"), baselines[0] if baselines else None)
        kpis = [Kpi(*row) for row in conn.execute(_KPIS, (current.baseline_no,))] if current else []
        validations = [ValidationRun(*row) for row in conn.execute(_VALIDATIONS, (RECENT_VALIDATIONS,))]
        failures: list[Failure] = []
        failures_total = 0
        if validations:
            latest = validations[0].run_id
            failures = [Failure(*row) for row in conn.execute(_FAILURES, (latest, MAX_FAILURES))]
            failures_total = scalar(
                conn.execute("select count(*) from lens_audit.validation_failures where run_id = %s", (latest,))
            )
        pending = None
        if scalar(conn.execute("select to_regclass('analytics.restatements_pending')")):
            pending = conn.execute(
                "select count(*), count(distinct (mart_name, period_type, period_start_date)), min(period_end_date) "
                "from analytics.restatements_pending"
            ).fetchone()
    return Overview(
        audit_ready=True,
        restatements_pending=pending,
        baselines=baselines,
        kpi_baseline_no=current.baseline_no if current else None,
        kpis=kpis,
        validations=validations,
        failures=failures,
        failures_total=failures_total,
    )


def reports_dir(cfg: settings_mod.Settings | None = None) -> Path:
    """Where the HTML report and the validation docs are written (``$LENS_STATE_DIR/reports``)."""
    cfg = cfg or settings_mod.load()
    return cfg.state_dir / "reports"
