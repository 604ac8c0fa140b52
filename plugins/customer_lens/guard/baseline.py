"""Write-audit-publish: freeze the candidate, validate it, promote it to ``analytics`` only if it passes.

1. **Freeze** (:func:`freeze`): the candidate marts (built by dbt into ``analytics_candidate``) are copied
   into a new schema ``lens_snapshot_<n>`` in one transaction. What is validated is exactly what is
   promoted, however long validation takes and whatever dbt does to the candidate meanwhile.
2. **Validate** (:func:`guard`): the Great Expectations suites of :mod:`customer_lens.guard.quality` run as
   SQL against the snapshot, with the current baseline's figures for the drift checks. The outcome is
   recorded (``lens_audit.validation_runs`` / ``validation_failures``) and an HTML report is written.
3. **Publish** (:func:`promote`) — only on success, or by an operator's override with a reason: in ONE
   transaction the views of schema ``analytics`` (one per mart, without the PII columns, plus
   ``analytics.baseline_info``) are recreated over the snapshot, the previous baseline becomes
   ``retained``, the new one ``current``, and its KPIs are recorded. A reader sees the old baseline or
   the new one, never a mix: every view is locked before any is replaced, and a query takes its locks
   on all views it reads before it reads any. The promotion never waits holding locks (``NOWAIT`` and
   retry), so it cannot deadlock with readers.
   On failure the snapshot stays as it is, ``quarantined``, and ``analytics`` is not touched.

Rollback (:func:`rollback`) points ``analytics`` back at a retained baseline; override
(:func:`override`) promotes a quarantined snapshot with a recorded reason. Baselines beyond
``baselines_retained`` and quarantined snapshots beyond ``quarantine_retained`` are pruned (their
schemas dropped; the audit rows stay).
"""

from __future__ import annotations

import datetime as dt
import getpass
import html
import logging
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from psycopg import sql

from customer_lens.config import settings as settings_mod
from customer_lens.guard import audit, quality
from customer_lens.local import warehouse
from customer_lens.local.warehouse import Connection, one, scalar

log = logging.getLogger(__name__)

ANALYTICS = "analytics"
CANDIDATE = "analytics_candidate"
SNAPSHOT_PREFIX = "lens_snapshot_"


class GuardError(RuntimeError):
    """The guard could not run, or an operator action is not possible."""


class ValidationFailed(GuardError):
    """The candidate failed validation: it is quarantined and the baseline is untouched."""

    def __init__(self, message: str, *, run_id: str, snapshot_id: str, report_path: Path | None):
        super().__init__(message)
        self.run_id = run_id
        self.snapshot_id = snapshot_id
        self.report_path = report_path


@dataclass(frozen=True)
class Snapshot:
    snapshot_id: str
    snapshot_no: int
    schema: str
    marts: list[str]


@dataclass(frozen=True)
class GuardResult:
    """What :func:`guard` did."""

    run_id: str
    snapshot_id: str
    passed: bool
    promoted: bool
    baseline_no: int | None
    summary: str
    report_path: Path | None
    kpis: dict[str, Any]
    skipped: bool = False
    seconds: dict[str, float] = field(default_factory=dict)  # freeze, validate, compare, promote: what each took

    def lines(self) -> list[str]:
        if self.skipped:
            return [f"baseline    #{self.baseline_no} unchanged: {self.summary}"]
        state = f"promoted to baseline #{self.baseline_no}" if self.promoted else "QUARANTINED"
        out = [f"guard       {self.snapshot_id}: {state}; {self.summary.splitlines()[0]}"]
        if self.seconds:
            out.append("            " + ", ".join(f"{step} {took:.1f} s" for step, took in self.seconds.items()))
        if self.report_path:
            out.append(f"            validation report: {self.report_path}")
        return out


def _same_content(conn: Connection, schema: str, baseline_schema: str, marts: list[quality.MartSpec]) -> bool:
    """Whether every mart of ``schema`` holds exactly the rows of the baseline's (same set of marts too).

    Row counts first (cheap), then an order-independent sum of row hashes per mart: a snapshot rebuilt from
    the same data is equal row for row, whatever order its tables were written in. When rows were loaded
    (``loaded_at``) is not data: a reload of the same rows is the same content.
    """
    names = [m.name for m in marts]
    present = {
        name
        for (name,) in conn.execute(
            "select c.relname from pg_class c join pg_namespace n on n.oid = c.relnamespace "
            "where n.nspname = %s and c.relkind in ('r', 'p', 'v', 'm')",
            (baseline_schema,),
        )
    }
    if set(names) != present:
        return False
    # (the alias is no column name: customer_lifetime_value has a column t)
    for measure in ("count(*)", "sum(hashtextextended((to_jsonb(lens_row) - 'loaded_at')::text, 0))"):
        for name in names:
            ours, theirs = (
                scalar(
                    conn.execute(
                        sql.SQL("select {} from {} lens_row").format(sql.SQL(measure), sql.Identifier(where, name))
                    )
                )
                for where in (schema, baseline_schema)
            )
            if ours != theirs:
                return False
    return True


def reports_dir(cfg: settings_mod.Settings | None = None) -> Path:
    cfg = cfg or settings_mod.load()
    return cfg.state_dir / "reports" / "validation"


# --- reading the state ---------------------------------------------------------------------------------


def current_baseline(conn: Connection) -> tuple[int, str, str] | None:
    """(baseline_no, snapshot_id, schema) of the current baseline, or None."""
    return conn.execute(
        "select baseline_no, snapshot_id, schema_name from lens_audit.baselines where status = 'current'"
    ).fetchone()


def _schema_exists(conn: Connection, schema: str) -> bool:
    return conn.execute("select 1 from pg_namespace where nspname = %s", (schema,)).fetchone() is not None


# --- freeze -------------------------------------------------------------------------------------------------


def freeze(
    conn: Connection,
    marts: list[quality.MartSpec],
    *,
    candidate: str = CANDIDATE,
    source_build: str | None = None,
    data_interval: tuple[dt.datetime | None, dt.datetime | None] = (None, None),
) -> Snapshot:
    """Copy the candidate marts into a new ``lens_snapshot_<n>`` schema (one transaction)."""
    from psycopg import sql

    missing = [
        m.name
        for m in marts
        if conn.execute(
            "select 1 from information_schema.tables where table_schema = %s and table_name = %s", (candidate, m.name)
        ).fetchone()
        is None
    ]
    if missing:
        raise GuardError(f"candidate schema {candidate} lacks mart(s) {', '.join(missing)}: run the transform first")
    with conn.transaction():
        conn.execute("select pg_advisory_xact_lock(hashtext('lens_snapshot_no'))")
        number: int = scalar(conn.execute("select coalesce(max(snapshot_no), 0) + 1 from lens_audit.snapshots"))
        snapshot_id = f"s{number:04d}-{dt.datetime.now(dt.UTC):%Y%m%dT%H%M%SZ}"
        schema = f"{SNAPSHOT_PREFIX}{number}"
        conn.execute(sql.SQL("drop schema if exists {} cascade").format(sql.Identifier(schema)))
        conn.execute(sql.SQL("create schema {}").format(sql.Identifier(schema)))
        for mart in marts:
            target = sql.Identifier(schema, mart.name)
            conn.execute(sql.SQL("create table {} as table {}").format(target, sql.Identifier(candidate, mart.name)))
        conn.execute(
            "insert into lens_audit.snapshots (snapshot_id, snapshot_no, schema_name, candidate_schema, "
            "source_build, data_interval_start, data_interval_end, marts, status) "
            "values (%s, %s, %s, %s, %s, %s, %s, %s, 'validating')",
            (snapshot_id, number, schema, candidate, source_build, *data_interval, [m.name for m in marts]),
        )
    for mart in marts:  # planner statistics for the checks (outside the transaction: cheap, not needed for safety)
        conn.execute(sql.SQL("analyze {}").format(sql.Identifier(schema, mart.name)))
    return Snapshot(snapshot_id, number, schema, [m.name for m in marts])


# --- validate and record -------------------------------------------------------------------------------


def _record_validation(
    conn: Connection,
    run_id: str,
    snapshot: Snapshot,
    outcome: quality.ValidationOutcome,
    report_path: Path | None,
    triggered_by: str,
) -> None:
    with conn.transaction():
        conn.execute(
            "insert into lens_audit.validation_runs (run_id, snapshot_id, started_at, finished_at, duration_seconds, "
            "passed, expectations_evaluated, expectations_failed, summary, report_path, triggered_by) "
            "values (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s)",
            (
                run_id,
                snapshot.snapshot_id,
                outcome.started_at,
                outcome.finished_at,
                outcome.duration_seconds,
                outcome.passed,
                outcome.evaluated,
                len(outcome.failures),
                outcome.summary(),
                str(report_path) if report_path else None,
                triggered_by,
            ),
        )
        with conn.cursor() as cur:
            cur.executemany(
                "insert into lens_audit.validation_failures "
                "(run_id, mart, expectation, column_name, observed, expected) values (%s, %s, %s, %s, %s, %s)",
                [(run_id, f.mart, f.expectation, f.column, f.observed, f.expected) for f in outcome.failures],
            )
        if not outcome.passed:
            conn.execute(
                "update lens_audit.snapshots set status = 'quarantined' where snapshot_id = %s", (snapshot.snapshot_id,)
            )


def write_report(
    path: Path, run_id: str, snapshot: Snapshot, outcome: quality.ValidationOutcome, baseline: quality.Baseline | None
) -> Path:
    """A self-contained HTML page of one validation: verdict, per-mart counts, every expectation."""
    esc = html.escape
    verdict = "passed" if outcome.passed else "FAILED"
    against = (
        f"baseline #{baseline.baseline_no} ({baseline.schema})" if baseline else "no baseline (absolute checks only)"
    )
    marts = "".join(
        f"<tr class='{'bad' if failed else 'ok'}'><td>{esc(m)}</td><td>{n}</td><td>{failed}</td></tr>"
        for m, (n, failed) in sorted(outcome.per_mart.items())
    )
    ordered = sorted(outcome.results, key=lambda r: (r["success"], r["mart"]))
    rows = "".join(
        f"<tr class='{'ok' if r['success'] else 'bad'}'><td>{'✔' if r['success'] else '✘'}</td>"
        f"<td>{esc(r['mart'])}</td>"
        f"<td>{esc(r['column'] or '')}</td><td>{esc(r['expectation'])}</td><td>{esc(r['observed'])}</td>"
        f"<td>{esc(r['expected'])}</td></tr>"
        for r in ordered
    )
    page = f"""<!doctype html><html lang="en"><head><meta charset="utf-8">
<title>Customer Lens validation {esc(run_id)} — {verdict}</title>
<style>body{{font:14px system-ui,sans-serif;margin:2em;color:#222}} table{{border-collapse:collapse;margin:1em 0}}
td,th{{border:1px solid #ddd;padding:4px 8px;text-align:left;vertical-align:top;max-width:40em;overflow-wrap:anywhere}}
th{{background:#f3f3f3}} tr.bad td{{background:#fde8e8}} .verdict{{font-size:1.4em;font-weight:600;
color:{"#1a7f37" if outcome.passed else "#c62828"}}}</style></head><body>
<h1>Customer Lens — snapshot validation</h1>
<p class="verdict">{verdict}: {len(outcome.failures)} of {outcome.evaluated} expectations failed</p>
<p>Run <code>{esc(run_id)}</code> · snapshot <code>{esc(snapshot.snapshot_id)}</code> (schema
<code>{esc(snapshot.schema)}</code>) · against {esc(against)} · {outcome.started_at:%Y-%m-%d %H:%M:%S} UTC ·
{outcome.duration_seconds:.1f} s · Great Expectations suites from <code>customer_lens.guard.quality</code></p>
<h2>Marts</h2><table><tr><th>mart</th><th>expectations</th><th>failed</th></tr>{marts}</table>
<h2>Expectations</h2><table><tr><th></th><th>mart</th><th>column</th><th>expectation</th><th>observed</th>
<th>expected</th></tr>{rows}</table></body></html>"""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(page, encoding="utf-8")
    return path


# --- publish ------------------------------------------------------------------------------------------------

# A promotion first tries to lock the analytics views between reads (no reader ever waits) for this
# long, then queues for them (GuardConfig.promotion_lock_timeout, cancel_blocking_readers).
_PROMOTE_ATTEMPTS = 100
_PROMOTE_PAUSE_SECONDS = 0.05
_QUEUED_ATTEMPTS = 3


def _analytics_views(conn: Connection) -> list[str]:
    return [
        r[0]
        for r in conn.execute(
            "select c.relname from pg_class c join pg_namespace n on n.oid = c.relnamespace "
            "where n.nspname = %s and c.relkind = 'v' order by 1",
            (ANALYTICS,),
        ).fetchall()
    ]


def _publish(
    conn: Connection,
    baseline_no: int,
    snapshot_id: str,
    schema: str,
    marts: list[quality.MartSpec],
    cfg: settings_mod.Settings,
    *,
    queue: bool = False,
) -> None:
    """Recreate the ``analytics`` views over ``schema`` (inside the caller's transaction).

    Every view is locked first. Without ``queue``, without waiting (no reader ever waits for a promotion);
    with it, in the lock queue under the transaction's lock_timeout, so readers that keep coming cannot
    starve it (they wait behind it). A deadlock with a reader holding views in another order aborts this
    transaction (it waited first), not the reader; the caller tries again.
    """
    from psycopg import sql

    conn.execute(sql.SQL("create schema if not exists {}").format(sql.Identifier(ANALYTICS)))
    existing = _analytics_views(conn)
    if existing:
        conn.execute(
            sql.SQL("lock table {} in access exclusive mode{}").format(
                sql.SQL(", ").join(sql.Identifier(ANALYTICS, v) for v in existing), sql.SQL("" if queue else " nowait")
            )
        )
    wanted = {m.name for m in marts} | {"baseline_info", "baseline_kpis"}
    for view in existing:
        if view not in wanted:  # a mart removed from the project leaves the BI contract with its baseline
            conn.execute(sql.SQL("drop view {}").format(sql.Identifier(ANALYTICS, view)))
    for mart in marts:
        mart_view = sql.Identifier(ANALYTICS, mart.name)
        conn.execute(sql.SQL("drop view if exists {}").format(mart_view))
        conn.execute(
            sql.SQL("create view {} as select {} from {}").format(
                mart_view,
                sql.SQL(", ").join(sql.Identifier(c) for c in mart.public_columns),
                sql.Identifier(schema, mart.name),
            )
        )
        _copy_comments(conn, schema, mart)
    # Literals, not a query on lens_audit: a repeatable-read reader whose snapshot predates this
    # transaction still sees the new views (catalog) over data frozen before it (the snapshot tables),
    # but not rows this transaction writes — baseline_info must not depend on them.
    info = one(
        conn.execute(
            "select promoted_at, data_interval_start, data_interval_end, promoted_by, reason from lens_audit.baselines "
            "where baseline_no = %s",
            (baseline_no,),
        )
    )
    conn.execute(sql.SQL("drop view if exists {}").format(sql.Identifier(ANALYTICS, "baseline_info")))
    conn.execute(
        sql.SQL(
            "create view {} as select {}::integer as baseline_no, {}::text as snapshot_id, {}::timestamptz as "
            "promoted_at, {}::timestamptz as data_interval_start, {}::timestamptz as data_interval_end, "
            "{}::text as promoted_by, {}::text as reason"
        ).format(sql.Identifier(ANALYTICS, "baseline_info"), baseline_no, snapshot_id, *map(sql.Literal, info))
    )
    conn.execute("comment on view analytics.baseline_info is 'The baseline the analytics views show: one row.'")
    conn.execute(_BASELINE_KPIS_VIEW)
    try:
        from customer_lens import roles
    except ImportError:  # pragma: no cover - roles land separately
        return
    roles.grant_reader(conn, ANALYTICS)


def _copy_comments(conn: Connection, schema: str, mart: quality.MartSpec) -> None:
    """dbt's documentation (persisted as comments on the candidate tables) onto the analytics view."""
    from psycopg import sql

    rows = conn.execute(
        "select a.attname, col_description(c.oid, a.attnum), obj_description(c.oid, 'pg_class') "
        "from pg_class c join pg_namespace n on n.oid = c.relnamespace "
        "join pg_attribute a on a.attrelid = c.oid and a.attnum > 0 and not a.attisdropped "
        "where n.nspname = %s and c.relname = %s",
        (CANDIDATE, mart.name),
    ).fetchall()
    public = set(mart.public_columns)
    for column, comment, _table_comment in rows:
        if comment and column in public:
            conn.execute(
                sql.SQL("comment on column {} is {}").format(
                    sql.Identifier(ANALYTICS, mart.name, column), sql.Literal(comment)
                )
            )
    if rows and rows[0][2]:
        conn.execute(
            sql.SQL("comment on view {} is {}").format(sql.Identifier(ANALYTICS, mart.name), sql.Literal(rows[0][2]))
        )
    del schema


_BASELINE_KPIS_VIEW = """
create or replace view analytics.baseline_kpis as
with kpis as (
    select
        b.baseline_no,
        b.snapshot_id,
        b.promoted_at,
        b.status as baseline_status,
        v.kpi,
        v.value
    from lens_audit.baseline_kpi_values as v
    join lens_audit.baselines as b on b.baseline_no = v.baseline_no
),
compared as (
    select
        kpis.*,
        lag(value) over (partition by kpi order by baseline_no) as previous_value,
        first_value(value) over (partition by kpi order by baseline_no) as first_value
    from kpis
)
select
    baseline_no,
    snapshot_id,
    promoted_at,
    baseline_status,
    kpi,
    value,
    previous_value,
    value - previous_value as change_vs_previous,
    round(100 * (value - previous_value) / nullif(abs(previous_value), 0), 2) as change_pct_vs_previous,
    first_value,
    value - first_value as change_vs_first,
    round(100 * (value - first_value) / nullif(abs(first_value), 0), 2) as change_pct_vs_first
from compared"""


def _with_lock_retries(conn: Connection, work: Callable[[bool], int], config: quality.GuardConfig) -> int:
    """Run ``work(queue)`` in a transaction until it gets the analytics views, in bounded time.

    First between reads (``queue=False``: a lock not free at once is tried again 50 ms later), for about
    five seconds; then in the lock queue for ``promotion_lock_timeout`` per attempt, cancelling the
    readers that still hold the views between attempts when ``cancel_blocking_readers`` is set.
    """
    import psycopg

    busy = (psycopg.errors.LockNotAvailable, psycopg.errors.DeadlockDetected)
    for _ in range(_PROMOTE_ATTEMPTS):
        try:
            with conn.transaction():
                return work(False)
        except busy:
            time.sleep(_PROMOTE_PAUSE_SECONDS)
    for attempt in range(_QUEUED_ATTEMPTS):
        if attempt and config.cancel_blocking_readers:
            _cancel_readers(conn)
        try:
            with conn.transaction():
                conn.execute(
                    sql.SQL("set local lock_timeout = {}").format(
                        sql.Literal(f"{int(config.promotion_lock_timeout * 1000)}ms")
                    )
                )
                return work(True)
        except busy:
            continue
    waited = _QUEUED_ATTEMPTS * config.promotion_lock_timeout
    raise GuardError(
        f"could not lock the analytics views: readers held them for {waited:.0f} s in the lock queue "
        "(config/guard.yml: promotion_lock_timeout, or cancel_blocking_readers: true)"
    )


def _cancel_readers(conn: Connection) -> None:
    """Cancel the queries of other sessions that hold a lock on a view of ``analytics``."""
    cancelled = conn.execute(
        "select l.pid, pg_cancel_backend(l.pid) from pg_locks l join pg_class c on c.oid = l.relation "
        "join pg_namespace n on n.oid = c.relnamespace where n.nspname = %s and l.granted "
        "and l.pid <> pg_backend_pid() group by l.pid",
        (ANALYTICS,),
    ).fetchall()
    if cancelled:
        log.warning("promotion: cancelled %d reader(s) holding the analytics views: %s", len(cancelled), cancelled)


def promote(
    conn: Connection,
    snapshot_id: str,
    *,
    actor: str,
    reason: str,
    action: str = "promote",
    validation_run_id: str | None = None,
    cfg: settings_mod.Settings | None = None,
) -> int:
    """Make a snapshot the current baseline (one transaction); returns its baseline number.

    ``conn`` must be in autocommit mode (each step below is its own transaction), as are the
    connections of :func:`customer_lens.guard.audit.connect` with ``autocommit=True``.
    """
    cfg = cfg or settings_mod.load()
    row = conn.execute(
        "select schema_name, marts, data_interval_start, data_interval_end, status from lens_audit.snapshots "
        "where snapshot_id = %s",
        (snapshot_id,),
    ).fetchone()
    if row is None:
        raise GuardError(f"no snapshot {snapshot_id}")
    schema, mart_names, start, end, status = row
    if status == "pruned" or not _schema_exists(conn, schema):
        raise GuardError(f"snapshot {snapshot_id} was pruned (schema {schema} is gone)")
    if status == "promoted":
        raise GuardError(f"snapshot {snapshot_id} is a baseline already: use rollback to return to it")
    specs = {m.name: m for m in quality.load_marts(cfg, parse=False)}
    marts = [specs.get(name) or _spec_from_table(conn, schema, name) for name in mart_names]
    kpis = quality.compute_kpis(conn, schema)

    def work(queue: bool) -> int:
        if not queue:
            conn.execute("set local lock_timeout = '2s'")
        conn.execute("select pg_advisory_xact_lock(hashtext('lens_baseline'))")
        previous = current_baseline(conn)
        number: int = scalar(conn.execute("select coalesce(max(baseline_no), 0) + 1 from lens_audit.baselines"))
        conn.execute("update lens_audit.baselines set status = 'retained' where status = 'current'")
        conn.execute(
            "insert into lens_audit.baselines (baseline_no, snapshot_id, schema_name, data_interval_start, "
            "data_interval_end, promoted_by, reason, validation_run_id, status) "
            "values (%s, %s, %s, %s, %s, %s, %s, %s, 'current')",
            (number, snapshot_id, schema, start, end, actor, reason, validation_run_id),
        )
        conn.execute("update lens_audit.snapshots set status = 'promoted' where snapshot_id = %s", (snapshot_id,))
        with conn.cursor() as cur:
            cur.executemany(
                "insert into lens_audit.baseline_kpi_values (baseline_no, kpi, value) values (%s, %s, %s)",
                [(number, k, v) for k, v in kpis.items()],
            )
        conn.execute(
            "insert into lens_audit.baseline_events (action, baseline_no, previous_baseline_no, actor, reason) "
            "values (%s, %s, %s, %s, %s)",
            (action, number, previous[0] if previous else None, actor, reason),
        )
        if validation_run_id:
            conn.execute(
                "update lens_audit.validation_runs set baseline_no = %s where run_id = %s", (number, validation_run_id)
            )
        _publish(conn, number, snapshot_id, schema, marts, cfg, queue=queue)
        return number

    config = quality.GuardConfig.load(cfg)
    number = _with_lock_retries(conn, work, config)
    prune(conn, config)
    return number


def _spec_from_table(conn: Connection, schema: str, name: str) -> quality.MartSpec:
    """A mart no longer in the dbt project (an old snapshot): its columns as stored, nothing hidden."""
    cols = conn.execute(
        "select column_name, data_type from information_schema.columns where table_schema = %s and table_name = %s "
        "order by ordinal_position",
        (schema, name),
    ).fetchall()
    return quality.MartSpec(name, dict(cols), ())


def rollback(
    conn: Connection, baseline_no: int, *, actor: str, reason: str, cfg: settings_mod.Settings | None = None
) -> int:
    """Point ``analytics`` back at a retained baseline (audited); returns that baseline's number."""
    cfg = cfg or settings_mod.load()
    row = conn.execute(
        "select snapshot_id, schema_name, status from lens_audit.baselines where baseline_no = %s", (baseline_no,)
    ).fetchone()
    if row is None:
        raise GuardError(f"no baseline #{baseline_no}")
    snapshot_id, schema, status = row
    if status == "current":
        raise GuardError(f"baseline #{baseline_no} is the current one already")
    if status == "pruned" or not _schema_exists(conn, schema):
        raise GuardError(f"baseline #{baseline_no} was pruned: it cannot be restored")
    mart_names = scalar(conn.execute("select marts from lens_audit.snapshots where snapshot_id = %s", (snapshot_id,)))
    specs = {m.name: m for m in quality.load_marts(cfg, parse=False)}
    marts = [specs.get(name) or _spec_from_table(conn, schema, name) for name in mart_names]

    def work(queue: bool) -> int:
        if not queue:
            conn.execute("set local lock_timeout = '2s'")
        conn.execute("select pg_advisory_xact_lock(hashtext('lens_baseline'))")
        previous = current_baseline(conn)
        conn.execute("update lens_audit.baselines set status = 'retained' where status = 'current'")
        conn.execute("update lens_audit.baselines set status = 'current' where baseline_no = %s", (baseline_no,))
        conn.execute(
            "insert into lens_audit.baseline_events (action, baseline_no, previous_baseline_no, actor, reason) "
            "values ('rollback', %s, %s, %s, %s)",
            (baseline_no, previous[0] if previous else None, actor, reason),
        )
        _publish(conn, baseline_no, snapshot_id, schema, marts, cfg, queue=queue)
        return baseline_no

    return _with_lock_retries(conn, work, quality.GuardConfig.load(cfg))


def override(
    conn: Connection, snapshot_id: str | None, *, actor: str, reason: str, cfg: settings_mod.Settings | None = None
) -> int:
    """Promote a quarantined snapshot (default: the latest) despite its failed validation, with a reason."""
    if not reason or not reason.strip():
        raise GuardError("an override needs a reason")
    if snapshot_id is None:
        row = conn.execute(
            "select snapshot_id from lens_audit.snapshots where status = 'quarantined' "
            "order by snapshot_no desc limit 1"
        ).fetchone()
        if row is None:
            raise GuardError("no quarantined snapshot to promote")
        snapshot_id = row[0]
    status = conn.execute("select status from lens_audit.snapshots where snapshot_id = %s", (snapshot_id,)).fetchone()
    run = conn.execute(
        "select run_id, passed from lens_audit.validation_runs where snapshot_id = %s "
        "order by finished_at desc limit 1",
        (snapshot_id,),
    ).fetchone()
    # A snapshot that passed validation but whose promotion did not happen (readers held the views) is
    # promotable too; one still validating without a result is not.
    validated = status is not None and status[0] == "validating" and run is not None and run[1]
    if status is None or (status[0] != "quarantined" and not validated):
        raise GuardError(
            f"snapshot {snapshot_id} is neither quarantined nor validated and waiting "
            f"({status[0] if status else 'unknown'})"
        )
    return promote(
        conn,
        snapshot_id,
        actor=actor,
        reason=f"override: {reason.strip()}",
        action="override",
        validation_run_id=run[0] if run else None,
        cfg=cfg,
    )


def prune(conn: Connection, config: quality.GuardConfig) -> list[str]:
    """Drop snapshot schemas beyond what is retained; returns the dropped schemas."""
    import psycopg
    from psycopg import sql

    keep = max(config.baselines_retained, 1)
    stale = conn.execute(
        "select b.snapshot_id, b.schema_name from lens_audit.baselines b where b.status = 'retained' and "
        "b.baseline_no not in (select baseline_no from lens_audit.baselines where status <> 'pruned' "
        "order by (status = 'current') desc, baseline_no desc limit %s)",
        (keep,),
    ).fetchall()
    quarantined = conn.execute(
        "select snapshot_id, schema_name from lens_audit.snapshots where status = 'quarantined' "
        "order by snapshot_no desc offset %s",
        (max(config.quarantine_retained, 0),),
    ).fetchall()
    # Snapshots a guard froze and never validated (it crashed or was killed): gone after a day.
    abandoned = conn.execute(
        "select s.snapshot_id, s.schema_name from lens_audit.snapshots s where s.status = 'validating' "
        "and s.created_at < now() - interval '1 day' "
        "and not exists (select 1 from lens_audit.validation_runs v where v.snapshot_id = s.snapshot_id)"
    ).fetchall()
    dropped = []
    for snapshot_id, schema in [*stale, *quarantined, *abandoned]:
        try:
            with conn.transaction():
                conn.execute("set local lock_timeout = '5s'")
                conn.execute(sql.SQL("drop schema if exists {} cascade").format(sql.Identifier(schema)))
                conn.execute("update lens_audit.baselines set status = 'pruned' where snapshot_id = %s", (snapshot_id,))
                conn.execute("update lens_audit.snapshots set status = 'pruned' where snapshot_id = %s", (snapshot_id,))
            dropped.append(schema)
        except psycopg.Error as exc:  # a reader still on it: try again at the next promotion
            log.warning("could not prune %s yet: %s", schema, exc)
    return dropped


# --- the gate ------------------------------------------------------------------------------------------------


def current_actor() -> str:
    """Who runs this command: the login name, for the audit trail."""
    try:
        return getpass.getuser()
    except (KeyError, OSError):  # no login name in some containers
        return "unknown"


def _check_last_build(conn: Connection, candidate: str) -> None:
    """Refuse a candidate whose last dbt build failed or did not finish."""
    last_build = audit.candidate_build(conn, candidate)
    if last_build and last_build[0] != "built":
        how = "failed" if last_build[0] == "failed" else "did not finish (killed?)"
        raise GuardError(
            f"the last dbt build into {candidate} {how}: its marts may be half built. Build it again "
            "(lens run, or lens transform) before guarding it; the baseline is unchanged"
        )


def _frozen_from(conn: Connection, snapshot_id: str, source_build: str) -> bool:
    """Whether ``snapshot_id`` was frozen from the transform build ``source_build``."""
    return (
        conn.execute(
            "select 1 from lens_audit.snapshots where snapshot_id = %s and source_build = %s",
            (snapshot_id, source_build),
        ).fetchone()
        is not None
    )


def _keyless_marts(marts: list[quality.MartSpec], config: quality.GuardConfig) -> list[str]:
    """The marts without a primary key (refused when the guard configuration requires keys)."""
    keyless = sorted(m.name for m in marts if not m.primary_key)
    if keyless and config.require_primary_keys:
        raise GuardError(
            f"mart(s) without a primary key: {', '.join(keyless)} (require_primary_keys is set in the guard "
            "configuration): declare one (constraints: primary_key in the model's yml)"
        )
    return keyless


def _block(
    conn: Connection,
    config: quality.GuardConfig,
    run_id: str,
    snapshot: Snapshot,
    summary: str,
    report: Path,
    *,
    raise_on_failure: bool,
) -> None:
    """A snapshot failed validation: alert, prune, and raise :class:`ValidationFailed` if asked to."""
    from customer_lens.guard import alerts

    alerts.send(
        "snapshot_blocked",
        f"snapshot {snapshot.snapshot_id} failed validation and is quarantined; the baseline is unchanged. "
        f"{summary}\nreport: {report}",
        {"run_id": run_id, "snapshot_id": snapshot.snapshot_id, "report": str(report)},
    )
    prune(conn, config)
    if raise_on_failure:
        raise ValidationFailed(
            f"snapshot {snapshot.snapshot_id} failed validation and is quarantined in schema "
            f"{snapshot.schema}; the baseline is unchanged.\n{summary}\nreport: {report}",
            run_id=run_id,
            snapshot_id=snapshot.snapshot_id,
            report_path=report,
        )


def _promote_validated(
    conn: Connection, snapshot: Snapshot, run_id: str, actor: str, cfg: settings_mod.Settings
) -> int:
    """Promote a snapshot that passed validation; if readers hold the views too long, say how to retry."""
    try:
        return promote(conn, snapshot.snapshot_id, actor=actor, reason="validated", validation_run_id=run_id, cfg=cfg)
    except GuardError as exc:
        raise GuardError(
            f"{exc}. Snapshot {snapshot.snapshot_id} passed validation and stays promotable: "
            f"lens baseline promote {snapshot.snapshot_id} --reason 'validated, readers held the views'"
        ) from None


def guard(
    *,
    candidate: str = CANDIDATE,
    source_build: str | None = None,
    data_interval: tuple[dt.datetime | None, dt.datetime | None] = (None, None),
    triggered_by: str | None = None,
    raise_on_failure: bool = True,
    cfg: settings_mod.Settings | None = None,
) -> GuardResult:
    """Freeze the candidate, validate it, promote it if it passes. See the module docstring.

    ``source_build`` identifies the transform build: when the current baseline was frozen from the same
    build, nothing changed and the baseline is kept as it is (a rerun on unchanged data).
    On failure raises :class:`ValidationFailed` (after recording it) unless ``raise_on_failure`` is false.
    """

    cfg = cfg or settings_mod.load()
    config = quality.GuardConfig.load(cfg)
    actor = triggered_by or current_actor()
    url = warehouse.url(cfg=cfg)
    with audit.connect(cfg) as conn:
        conn.autocommit = True
        _check_last_build(conn, candidate)
        current = current_baseline(conn)
        if current and source_build and _frozen_from(conn, current[1], source_build):
            return GuardResult(
                "", current[1], True, False, current[0], "same transform build as the baseline", None, {}, True
            )
        marts = quality.load_marts(cfg)
        keyless = _keyless_marts(marts, config)
        seconds: dict[str, float] = {}
        began = time.monotonic()
        snapshot = freeze(conn, marts, candidate=candidate, source_build=source_build, data_interval=data_interval)
        seconds["freeze"] = time.monotonic() - began
        baseline = quality.read_baseline(conn, current[0], current[2], marts) if current else None
        restated_from = audit.restated_from(conn, candidate)
        run_id = f"v{dt.datetime.now(dt.UTC):%Y%m%dT%H%M%SZ}-{uuid.uuid4().hex[:6]}"
        began = time.monotonic()
        try:
            outcome = quality.validate(
                url, snapshot.schema, marts, config=config, baseline=baseline, restated_from=restated_from
            )
        except Exception:
            conn.execute(
                "update lens_audit.snapshots set status = 'quarantined' where snapshot_id = %s", (snapshot.snapshot_id,)
            )
            raise
        report = write_report(reports_dir(cfg) / f"{run_id}.html", run_id, snapshot, outcome, baseline)
        _record_validation(conn, run_id, snapshot, outcome, report, actor)
        seconds["validate"] = time.monotonic() - began
        summary = outcome.summary(not_applicable={m.name: m.not_applicable for m in marts if m.not_applicable})
        if keyless:
            summary += f"; no primary key, so no key checks: {', '.join(keyless)}"
        if not outcome.passed:
            _block(conn, config, run_id, snapshot, summary, report, raise_on_failure=raise_on_failure)
            return GuardResult(
                run_id, snapshot.snapshot_id, False, False, current[0] if current else None, summary, report, {}
            )
        began = time.monotonic()
        same = current is not None and _same_content(conn, snapshot.schema, current[2], marts)
        if current:
            seconds["compare"] = time.monotonic() - began
        if current is not None and same:
            # Same data, same baseline: no new baseline with every KPI +0.00% pruning real rollback targets.
            audit.settle_restatements(conn, candidate, current[0])
            conn.execute(sql.SQL("drop schema {} cascade").format(sql.Identifier(snapshot.schema)))
            conn.execute(
                "update lens_audit.snapshots set status = 'pruned' where snapshot_id = %s", (snapshot.snapshot_id,)
            )
            return GuardResult(
                run_id, current[1], True, False, current[0], f"validated, and equal to it ({summary})", report, {}, True
            )
        began = time.monotonic()
        number = _promote_validated(conn, snapshot, run_id, actor, cfg)
        audit.settle_restatements(conn, candidate, number)
        seconds["promote"] = time.monotonic() - began
        kpis = dict(
            conn.execute(
                "select kpi, value from lens_audit.baseline_kpi_values where baseline_no = %s", (number,)
            ).fetchall()
        )
    return GuardResult(run_id, snapshot.snapshot_id, True, True, number, summary, report, kpis, seconds=seconds)
