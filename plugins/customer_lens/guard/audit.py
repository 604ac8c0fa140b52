"""The ``lens_audit`` schema: what the pipeline did, and the history of baselines.

Everything here is created idempotently by :func:`ensure` (plain DDL, safe to run on every call).

- ``lens_audit.initial_loads`` / ``transform_builds`` — what ``lens run`` did already (skip on rerun).
- ``lens_audit.candidate_builds`` — whether the last build into each candidate schema finished.
- ``lens_audit.snapshots`` — every frozen copy of the candidate marts (``lens_snapshot_<n>`` schemas)
  and its state: ``validating`` → ``quarantined`` (failed) or ``promoted``; ``pruned`` once dropped.
- ``lens_audit.validation_runs`` — every validation: run id, snapshot, passed, expectations evaluated
  and failed, duration, the short summary and the HTML report path.
- ``lens_audit.validation_failures`` — one row per failed expectation (mart, column, observed, expected).
- ``lens_audit.baselines`` — one row per promotion (``baseline_no`` 1, 2, ...): snapshot, when, data
  interval, by whom, why (``validated`` / ``override: <reason>``), and ``status``: ``current`` (exactly
  one, what ``analytics`` shows), ``retained`` (kept for rollback), ``pruned`` (its snapshot dropped).
- ``lens_audit.baseline_events`` — promote / override / rollback actions, who and why.
- ``lens_audit.restatements`` — every ``lens restate``: from which period, why, who, for which candidate,
  and the baseline that carried it (none yet: the guard accepts the change of those closed periods).
- ``lens_audit.baseline_kpi_values`` — the headline KPIs of each baseline; ``analytics.baseline_kpis``
  is the BI view over them with the change vs the previous baseline and vs baseline #1.
"""

from __future__ import annotations

import contextlib
import datetime as dt
from collections.abc import Iterator

from customer_lens.config import settings as settings_mod
from customer_lens.local import warehouse
from customer_lens.local.warehouse import Connection, scalar

SCHEMA = "lens_audit"

DDL = """
create schema if not exists lens_audit;
create table if not exists lens_audit.initial_loads (
    fingerprint text primary key,
    batches integer not null,
    rows_loaded bigint not null,
    loaded_at timestamptz not null default now()
);
create table if not exists lens_audit.transform_builds (
    fingerprint text not null,
    schema_name text not null,
    nodes integer not null,
    built_at timestamptz not null default now(),
    primary key (fingerprint, schema_name)
);
-- The state of the last dbt build into each candidate schema: a build killed or failed midway leaves
-- 'building' or 'failed', so the next build redoes a full refresh that did not finish, and the guard
-- refuses to freeze a half-built candidate (customer_lens.transform.builds.build).
create table if not exists lens_audit.candidate_builds (
    schema_name text primary key,
    status text not null check (status in ('building', 'built', 'failed')),
    full_refresh boolean not null,
    started_at timestamptz not null default now(),
    finished_at timestamptz
);
create table if not exists lens_audit.snapshots (
    snapshot_id text primary key,
    snapshot_no integer not null unique,
    schema_name text not null unique,
    candidate_schema text not null,
    created_at timestamptz not null default now(),
    data_interval_start timestamptz,
    data_interval_end timestamptz,
    marts text[] not null,
    status text not null check (status in ('validating', 'quarantined', 'promoted', 'pruned'))
);
-- The transform build the snapshot was frozen from (a rerun on the same build is not guarded again).
alter table lens_audit.snapshots add column if not exists source_build text;
create table if not exists lens_audit.validation_runs (
    run_id text primary key,
    snapshot_id text not null references lens_audit.snapshots,
    started_at timestamptz not null,
    finished_at timestamptz not null,
    duration_seconds double precision not null,
    passed boolean not null,
    expectations_evaluated integer not null,
    expectations_failed integer not null,
    summary text not null,
    report_path text,
    baseline_no integer,
    triggered_by text not null
);
create table if not exists lens_audit.validation_failures (
    run_id text not null references lens_audit.validation_runs on delete cascade,
    mart text not null,
    expectation text not null,
    column_name text,
    observed text,
    expected text
);
create index if not exists validation_failures_run on lens_audit.validation_failures (run_id);
create table if not exists lens_audit.baselines (
    baseline_no integer primary key,
    snapshot_id text not null unique references lens_audit.snapshots,
    schema_name text not null,
    promoted_at timestamptz not null default now(),
    data_interval_start timestamptz,
    data_interval_end timestamptz,
    promoted_by text not null,
    reason text not null,
    validation_run_id text references lens_audit.validation_runs,
    status text not null check (status in ('current', 'retained', 'pruned'))
);
create unique index if not exists baselines_one_current on lens_audit.baselines ((true)) where status = 'current';
create table if not exists lens_audit.baseline_events (
    event_id bigint generated always as identity primary key,
    at timestamptz not null default now(),
    action text not null check (action in ('promote', 'override', 'rollback')),
    baseline_no integer not null references lens_audit.baselines,
    previous_baseline_no integer,
    actor text not null,
    reason text not null
);
-- `lens restate`: closed periods recomputed on request. The guard accepts their change in the candidate
-- until a baseline carries it (baseline_no set when one is promoted from that candidate).
create table if not exists lens_audit.restatements (
    restatement_id bigint generated always as identity primary key,
    requested_at timestamptz not null default now(),
    from_date date not null,
    reason text not null check (reason <> ''),
    actor text not null,
    candidate_schema text not null,
    baseline_no integer references lens_audit.baselines
);
create table if not exists lens_audit.baseline_kpi_values (
    baseline_no integer not null references lens_audit.baselines,
    kpi text not null,
    value numeric,
    primary key (baseline_no, kpi)
)"""


def ensure(conn: Connection) -> None:
    """Create the ``lens_audit`` tables if missing (idempotent; serialised by an advisory lock)."""
    conn.execute("select pg_advisory_xact_lock(hashtext('lens_audit ddl'))")
    conn.execute(DDL)


@contextlib.contextmanager
def connect(cfg: settings_mod.Settings | None = None, *, autocommit: bool = False) -> Iterator[Connection]:
    """A psycopg connection to the warehouse with the ``lens_audit`` tables in place."""
    import psycopg

    with psycopg.connect(warehouse.url(cfg=cfg or settings_mod.load())) as conn:
        ensure(conn)
        conn.commit()
        conn.autocommit = autocommit
        yield conn


def candidate_build(conn: Connection, schema: str) -> tuple[str, bool] | None:
    """(status, full_refresh) of the last build into ``schema``, or None when none was recorded."""
    return conn.execute(
        "select status, full_refresh from lens_audit.candidate_builds where schema_name = %s", (schema,)
    ).fetchone()


def record_candidate_build(conn: Connection, schema: str, status: str, *, full_refresh: bool | None = None) -> None:
    """Mark a build into ``schema`` as started (``building``, with ``full_refresh``) or ended."""
    if status == "building":
        conn.execute(
            "insert into lens_audit.candidate_builds (schema_name, status, full_refresh) values (%s, %s, %s) "
            "on conflict (schema_name) do update set status = excluded.status, "
            "full_refresh = excluded.full_refresh, started_at = now(), finished_at = null",
            (schema, status, bool(full_refresh)),
        )
    else:
        conn.execute(
            "update lens_audit.candidate_builds set status = %s, finished_at = now() where schema_name = %s",
            (status, schema),
        )


def record_restatement(conn: Connection, from_date: dt.date, reason: str, actor: str, candidate: str) -> int:
    """Record that ``actor`` asked to recompute the closed periods of ``candidate`` from ``from_date`` on."""
    restatement_id: int = scalar(
        conn.execute(
            "insert into lens_audit.restatements (from_date, reason, actor, candidate_schema) values (%s, %s, %s, %s) "
            "returning restatement_id",
            (from_date, reason, actor, candidate),
        )
    )
    return restatement_id


# The restatements a build of the candidate includes: asked for before that build started, and not yet
# carried by a baseline. (One asked for while a build runs waits for the next build.)
_BUILT_RESTATEMENTS = """
    from lens_audit.restatements as r
    join lens_audit.candidate_builds as b on b.schema_name = r.candidate_schema
    where r.candidate_schema = %s and r.baseline_no is null and r.requested_at <= b.started_at"""


def restated_from(conn: Connection, candidate: str) -> dt.date | None:
    """The earliest period the current (or last) build of ``candidate`` restates, or None."""
    restated: dt.date | None = scalar(conn.execute(f"select min(r.from_date) {_BUILT_RESTATEMENTS}", (candidate,)))
    return restated


def settle_restatements(conn: Connection, candidate: str, baseline_no: int) -> None:
    """The baseline ``baseline_no``, promoted from ``candidate``, carries the restatements built into it."""
    conn.execute(
        f"update lens_audit.restatements set baseline_no = %s where restatement_id in "
        f"(select r.restatement_id {_BUILT_RESTATEMENTS})",
        (baseline_no, candidate),
    )
