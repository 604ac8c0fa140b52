"""The main job, step by step: warehouse up, demo sources in place, raw layer loaded, marts built.

``lens run`` (and so ``make run``) calls :func:`run`. Each step is idempotent, so running it again
on unchanged inputs is quick and changes nothing.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import hashlib
import json
import logging
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from customer_lens.config import settings as settings_mod
from customer_lens.local import warehouse
from customer_lens.local.warehouse import scalar
from customer_lens.progress import Reporter

if TYPE_CHECKING:
    from customer_lens.extract.batch import BatchResult

log = logging.getLogger(__name__)

SALES_SRC_DB = "sales_src"


@dataclass(frozen=True)
class DemoState:
    """What :func:`ensure_demo_data` did."""

    generated: bool
    fingerprint: str
    end_date: dt.date
    detail: str

    def __str__(self) -> str:
        verb = "generated" if self.generated else "unchanged"
        return f"demo data {verb} (end {self.end_date}, {self.fingerprint[:12]}): {self.detail}"


def _installed_meta(cfg: settings_mod.Settings) -> dict[str, Any] | None:
    try:
        meta: dict[str, Any] = json.loads((cfg.sources_dir / "demo_generation.json").read_text())
        return meta
    except (FileNotFoundError, json.JSONDecodeError):
        return None


def ensure_demo_data(
    *,
    scale: str = "small",
    seed: int = 42,
    end_date: dt.date | None = None,
    bad_records: bool = False,
    force: bool = False,
    progress: bool = False,
    anomaly: str | None = None,
    cfg: settings_mod.Settings | None = None,
) -> DemoState:
    """Generate the demo sources unless exactly these are installed already.

    ``anomaly`` (see :mod:`customer_lens.demo.anomalies`) applies a business anomaly on top of the clean
    generation: data that loads cleanly but that the snapshot guard must block.

    Without ``end_date`` an installed generation of the same scale and seed is kept whatever its end
    date (so re-running tomorrow does not rebuild history); with none installed, history ends yesterday
    (UTC).
    """
    from customer_lens import demo

    cfg = cfg or settings_mod.load()
    if not cfg.sales_src_url:
        warehouse.ensure_database(warehouse.url("postgres", cfg), SALES_SRC_DB)
    sales_url = warehouse.sales_src_url(cfg)
    meta = _installed_meta(cfg)
    if end_date is None:
        same_kind = (
            meta is not None
            and meta.get("scale") == scale
            and meta.get("seed") == seed
            and bool(meta.get("bad_records")) == bad_records
        )
        end_date = (
            dt.date.fromisoformat(meta["end_date"])
            if meta is not None and same_kind
            else dt.datetime.now(dt.UTC).date() - dt.timedelta(days=1)
        )
    from customer_lens.demo import anomalies

    clean = demo.fingerprint(scale=scale, seed=seed, end_date=end_date, bad_records=bad_records)
    wanted = anomalies.fingerprint(clean, anomaly) if anomaly else clean
    installed = demo.installed_fingerprint(sales_url=sales_url, files_dir=cfg.sources_dir)
    if installed == wanted and not force:
        return DemoState(False, wanted, end_date, f"{scale} scale, seed {seed} already installed")
    if anomaly and installed == clean and not force:
        detail = anomalies.apply(anomaly, sales_url=sales_url, files_dir=cfg.sources_dir, base_fingerprint=clean)
        return DemoState(True, wanted, end_date, f"anomaly {anomaly}: {detail}")
    summary = demo.generate(
        scale=scale,
        seed=seed,
        end_date=end_date,
        sales_url=sales_url,
        files_dir=cfg.sources_dir,
        bad_records=bad_records,
        progress=progress,
    )
    counts = ", ".join(f"{n:,} {name.replace('_', ' ')}" for name, n in summary.counts().items())
    faults = f", {summary.faults_injected} faults injected" if bad_records else ""
    detail = f"{counts}{faults} in {summary.elapsed_seconds:.1f}s"
    if anomaly:
        applied = anomalies.apply(anomaly, sales_url=sales_url, files_dir=cfg.sources_dir, base_fingerprint=clean)
        detail += f"; anomaly {anomaly}: {applied}"
    return DemoState(True, wanted, end_date, detail)


def demo_range(cfg: settings_mod.Settings | None = None) -> tuple[dt.datetime, dt.datetime]:
    """``[first day, day after end_date)`` of the installed demo history, as UTC datetimes."""
    cfg = cfg or settings_mod.load()
    meta = _installed_meta(cfg)
    if not meta:
        raise warehouse.WarehouseError("no demo data installed: run `lens demo-data` first")
    end = dt.datetime.combine(dt.date.fromisoformat(meta["end_date"]), dt.time(), dt.UTC) + dt.timedelta(days=1)
    start = dt.datetime.combine(dt.date.fromisoformat(meta["start_date"]), dt.time(), dt.UTC)
    return start, end


def load_raw(
    start: dt.datetime,
    end: dt.datetime,
    *,
    step: str = "month",
    sources: list[str] | None = None,
    echo: Callable[[BatchResult], object] | None = None,
    history: bool = False,
) -> list[BatchResult]:
    """Extract every configured source (or the named ones) for ``[start, end)`` into the raw layer.

    ``history`` also loads everything before ``start`` as a first batch (an initial load).
    """
    from customer_lens import extract
    from customer_lens.config import source_config

    configured = source_config.load()
    unknown = set(sources or ()) - set(configured)
    if unknown:
        raise source_config.ConfigError(f"unknown source(s): {', '.join(sorted(unknown))}")
    results: list[BatchResult] = []
    for name, source in configured.items():
        if sources and name not in sources:
            continue
        results += extract.extract_range(source, start, end, step=step, on_batch=echo, history=history)
    return results


@contextlib.contextmanager
def _audit(cfg: settings_mod.Settings) -> Iterator[warehouse.Connection]:
    """A warehouse connection with the ``lens_audit`` bookkeeping tables in place."""
    from customer_lens.guard import audit

    with audit.connect(cfg) as conn:
        yield conn


def _initial_load_done(fingerprint: str, cfg: settings_mod.Settings) -> bool:
    """True when the raw layer was loaded from exactly this demo generation already."""
    with _audit(cfg) as conn:
        return (
            conn.execute("select 1 from lens_audit.initial_loads where fingerprint = %s", (fingerprint,)).fetchone()
            is not None
        )


def _record_initial_load(fingerprint: str, batches: int, rows: int, cfg: settings_mod.Settings) -> None:
    with _audit(cfg) as conn:
        conn.execute(
            "insert into lens_audit.initial_loads (fingerprint, batches, rows_loaded) values (%s, %s, %s) "
            "on conflict (fingerprint) do update set batches = excluded.batches, rows_loaded = excluded.rows_loaded, "
            "loaded_at = now()",
            (fingerprint, batches, rows),
        )


def _drop_raw_schemas(cfg: settings_mod.Settings) -> None:
    import psycopg
    from psycopg import sql

    from customer_lens.config import source_config

    with psycopg.connect(warehouse.url(cfg=cfg)) as conn:
        for source in source_config.load(cfg=cfg).values():
            conn.execute(sql.SQL("drop schema if exists {} cascade").format(sql.Identifier(source.raw_schema)))


def _drop_candidate_schema(cfg: settings_mod.Settings) -> None:
    import psycopg
    from psycopg import sql

    from customer_lens.transform import builds

    schema = builds.dbt_env(cfg=cfg)["LENS_DBT_SCHEMA"]
    with psycopg.connect(warehouse.url(cfg=cfg)) as conn:
        conn.execute(sql.SQL("drop schema if exists {} cascade").format(sql.Identifier(schema)))


def _batch_count(start: dt.datetime, end: dt.datetime, *, step: str, history: bool) -> int:
    """How many batches :func:`load_raw` runs for ``[start, end)`` (for its progress)."""
    from customer_lens import extract
    from customer_lens.config import source_config

    spans = len(extract.intervals(start, end, step)) + (1 if history else 0)
    return spans * sum(len(source.entities) for source in source_config.load().values())


def run(
    *,
    scale: str = "small",
    seed: int = 42,
    progress: bool = False,
    anomaly: str | None = None,
    reporter: Reporter | None = None,
) -> list[str]:
    """Run the whole job; returns the lines to show the user.

    ``progress`` draws the demo generator's bars; ``reporter`` shows the progress of the raw load, the
    dbt build and the guard (default: none). Raises :class:`customer_lens.guard.baseline.ValidationFailed`
    when the new snapshot is blocked by the guard (the baseline stays as it was).
    """

    reporter = reporter or Reporter(enabled=False)
    cfg = settings_mod.load()
    status = warehouse.ensure_running(cfg)
    lines = [f"warehouse   {status.url}"]
    state = ensure_demo_data(scale=scale, seed=seed, progress=progress, anomaly=anomaly, cfg=cfg)
    lines.append(str(state))
    lines.append(f"sources     sales: {warehouse.sales_src_url(cfg)}")
    lines.append(f"            service/survey exports: {cfg.sources_dir}")
    start, end = demo_range(cfg)
    rebuilt = False
    if _initial_load_done(state.fingerprint, cfg):
        lines.append(f"raw layer   up to date with demo data {state.fingerprint[:12]}")
    else:
        # A new demo generation is a new world: rebuild its raw layer and its marts rather than mixing in
        # stale batches, or closed periods of the old world (the period marts keep those through a full refresh).
        _drop_raw_schemas(cfg)
        _drop_candidate_schema(cfg)
        total = _batch_count(start, end, step="month", history=True)
        with reporter.phase("raw layer", total=total, unit="batches") as step:
            results = load_raw(
                start, end, step="month", history=True, echo=lambda r: step.advance(detail=f"{r.source}.{r.entity}")
            )
        loaded = sum(r.rows_loaded for r in results)
        rejected = sum(r.rows_rejected for r in results)
        _record_initial_load(state.fingerprint, len(results), loaded, cfg)
        rebuilt = True
        lines.append(
            f"raw layer   {len(results)} batches up to {end:%Y-%m-%d}: {loaded} rows loaded, {rejected} rejected"
        )
    # Up to date only for this data *and* this dbt project, sources file and package version: an analyst's
    # new mart or a changed mapping is built on the next run.
    from customer_lens.transform import builds

    build_fingerprint = hashlib.sha256(f"{state.fingerprint}:{builds.project_fingerprint(cfg)}".encode()).hexdigest()
    line, build_id, built = _transform(build_fingerprint, cfg, full_refresh=rebuilt, reporter=reporter)
    lines.append(line)
    docs = _docs(cfg, regenerate=built, reporter=reporter)
    return lines + _guard_and_report(build_id, (start, end), docs, cfg, reporter)


def run_configured(
    *,
    start: dt.date | None = None,
    end: dt.date | None = None,
    reporter: Reporter | None = None,
) -> list[str]:
    """The whole job on the configured sources (``LENS_SOURCES_CONFIG``): no demo data is generated.

    Each source is loaded over its own range (``start_date`` to ``end_date`` or today, or the given days)
    in month batches, each replacing what earlier loads wrote in its interval, so a rerun duplicates
    nothing. The dbt project is built in full, guarded, and promoted when it passes (a rerun on the same
    data keeps the baseline). Raises ``ConfigError`` before anything moves when the
    configuration lacks the data contract's minimum (docs/data-contract.md).
    """
    import psycopg

    from customer_lens import extract
    from customer_lens.config import contract, source_config
    from customer_lens.extract import raw

    reporter = reporter or Reporter(enabled=False)
    cfg = settings_mod.load()
    path = source_config.default_path(cfg)
    sources = source_config.load(path, cfg)
    found = contract.problems(sources)
    if found:
        raise source_config.ConfigError(f"{path} does not give what the marts need:\n  " + "\n  ".join(found))
    missing = contract.missing_minimum(sources)
    if missing:
        raise source_config.ConfigError(
            f"{path}: the marts need at least {' and '.join(contract.MINIMUM)} (or sales.transactions); "
            f"{', '.join(missing)} is not configured (docs/data-contract.md)"
        )
    ranges = {name: source.load_range(start, end) for name, source in sources.items()}
    status = warehouse.ensure_running(cfg)
    assert status.url is not None  # a running warehouse has one
    with psycopg.connect(status.url) as conn:  # before anything moves: not into another configuration's raw layer
        raw.check_unconfigured(conn, sources, origin=str(path))
    lines = [f"warehouse   {status.url}", f"sources     {path}"]
    for name, (lower, upper) in ranges.items():
        lines.append(
            f"            {name} ({sources[name].kind}): {lower:%Y-%m-%d} to {upper - dt.timedelta(days=1):%Y-%m-%d}"
        )
    total = sum(len(extract.intervals(*ranges[n], "month")) * len(s.entities) for n, s in sources.items())
    results = []
    with reporter.phase("raw layer", total=total, unit="batches") as step:
        for name, source in sources.items():
            results += extract.extract_range(
                source, *ranges[name], step="month", on_batch=lambda r: step.advance(detail=f"{r.source}.{r.entity}")
            )
    loaded, rejected = sum(r.rows_loaded for r in results), sum(r.rows_rejected for r in results)
    lines.append(f"raw layer   {len(results)} batches: {loaded} rows loaded, {rejected} rejected")
    from customer_lens.transform import builds

    for note in builds.prepare_inputs(cfg):
        lines.append(f"            {note}")
    fingerprint = _configuration_fingerprint(path, cfg)
    line, build_id = _build_configured(fingerprint, cfg, reporter=reporter)
    lines.append(line)
    docs = _docs(cfg, regenerate=True, reporter=reporter)
    interval = (min(lower for lower, _ in ranges.values()), max(upper for _, upper in ranges.values()))
    return lines + _guard_and_report(build_id, interval, docs, cfg, reporter)


def restate(from_date: dt.date, reason: str, *, actor: str, reporter: Reporter | None = None) -> list[str]:
    """Recompute the period marts' closed periods from ``from_date`` on, then guard and promote.

    The request is recorded first (``lens_audit.restatements``), so a build killed midway is finished by
    the next one, and the guard accepts the change of those periods until a baseline carries it.
    """
    from customer_lens.guard import audit
    from customer_lens.transform import builds

    reporter = reporter or Reporter(enabled=False)
    cfg = settings_mod.load()
    status = warehouse.ensure_running(cfg)
    schema = builds.dbt_env(cfg=cfg)["LENS_DBT_SCHEMA"]
    with _audit(cfg) as conn:
        number = audit.record_restatement(conn, from_date, reason, actor, schema)
    lines = [f"warehouse   {status.url}", f"restatement #{number}: from {from_date:%Y-%m} ({reason})"]
    with reporter.phase("marts", unit="dbt nodes") as step:
        result = builds.build(progress=step)
    built_at = _record_build(f"restatement-{number}", schema, len(result.node_statuses), cfg)
    nodes = len(result.node_statuses)
    lines.append(f"marts       rebuilt from {from_date:%Y-%m} in schema {schema}: {nodes} dbt nodes passed")
    docs = _docs(cfg, regenerate=True, reporter=reporter)
    return lines + _guard_and_report(f"restatement-{number}@{built_at.isoformat()}", (None, None), docs, cfg, reporter)


def _guard_and_report(
    build_id: str,
    interval: tuple[dt.datetime | None, dt.datetime | None],
    docs: Path,
    cfg: settings_mod.Settings,
    reporter: Reporter,
) -> list[str]:
    """Guard the candidate (promote it if it passes), then the KPI lines, the docs and the report."""
    from customer_lens import report
    from customer_lens.guard import baseline

    try:
        with reporter.phase("guard", unit="snapshot validated"):
            result = baseline.guard(source_build=build_id, data_interval=interval, cfg=cfg)
    except baseline.ValidationFailed:
        with contextlib.suppress(report.ReportError):
            report.render(cfg)  # shows the quarantined snapshot and its failed expectations beside the baseline
        raise
    lines = result.lines() + _baseline_kpi_lines(cfg)
    lines.append(f"dbt docs    {docs}")
    lines.append(f"report      {report.render(cfg)}")
    return lines


def _configuration_fingerprint(path: Path, cfg: settings_mod.Settings) -> str:
    """The sources file and the dbt project it is built with: a new one of either is a first build."""
    from customer_lens.transform import builds

    digest = hashlib.sha256(b"configured\0" + Path(path).read_bytes())
    digest.update(builds.project_fingerprint(cfg).encode())
    return digest.hexdigest()


def _record_build(fingerprint: str, schema: str, nodes: int, cfg: settings_mod.Settings) -> dt.datetime:
    """Record a finished build of ``fingerprint`` into ``schema``; returns when it was recorded."""
    with _audit(cfg) as conn:
        built_at: dt.datetime = scalar(
            conn.execute(
                "insert into lens_audit.transform_builds (fingerprint, schema_name, nodes) values (%s, %s, %s) "
                "on conflict (fingerprint, schema_name) do update set nodes = excluded.nodes, built_at = now() "
                "returning built_at",
                (fingerprint, schema, nodes),
            )
        )
        return built_at


def _build_configured(fingerprint: str, cfg: settings_mod.Settings, *, reporter: Reporter) -> tuple[str, str]:
    """Build the candidate in full; returns (line, build id).

    In full every time: the run has just reloaded every interval, so every raw row is "new" to the
    incremental models, and merging all of them costs more than rebuilding (Online Retail II: about 40 s
    against 20 s). Day-to-day increments are the Airflow DAGs' job.
    """
    from customer_lens.transform import builds

    schema = builds.dbt_env(cfg=cfg)["LENS_DBT_SCHEMA"]
    with reporter.phase("marts", unit="dbt nodes") as step:
        result = builds.build(full_refresh=True, progress=step)
    built_at = _record_build(fingerprint, schema, len(result.node_statuses), cfg)
    line = f"marts       built in full in schema {schema}: {len(result.node_statuses)} dbt nodes passed"
    return line, f"{fingerprint[:16]}@{built_at.isoformat()}"


def _docs(cfg: settings_mod.Settings, *, regenerate: bool, reporter: Reporter) -> Path:
    """``dbt docs generate`` (the catalog of the candidate build) unless it is there and current."""
    from customer_lens.transform import builds

    # The static page (manifest and catalog inlined) opens from disk; index.html needs `dbt docs serve`.
    index = Path(builds.dbt_env(cfg=cfg)["DBT_TARGET_PATH"]) / "static_index.html"
    if regenerate or not index.exists():
        with reporter.phase("dbt docs", unit="catalog generated"):
            builds.run_dbt(["docs", "generate", "--static", "--quiet"])
    return index


def _baseline_kpi_lines(cfg: settings_mod.Settings) -> list[str]:
    with _audit(cfg) as conn:
        rows = conn.execute(
            "select baseline_no, kpi, value, change_pct_vs_previous from analytics.baseline_kpis "
            "where baseline_status = 'current' order by kpi"
        ).fetchall()
    if not rows:
        return []
    out = [f"baseline    #{rows[0][0]} headline KPIs (change vs previous baseline):"]
    for _, kpi, value, change in rows:
        shown = "n/a" if value is None else f"{value:,.2f}".rstrip("0").rstrip(".")
        delta = "" if change is None else f" ({change:+.2f}%)"
        out.append(f"            {kpi:<17} {shown}{delta}")
    return out


def _transform(
    fingerprint: str, cfg: settings_mod.Settings, *, full_refresh: bool, reporter: Reporter
) -> tuple[str, str, bool]:
    """Build the dbt project into the candidate schema unless it was built from this data already.

    After the raw layer was rebuilt (a new demo generation), incremental models are rebuilt in full:
    merging into facts of another generation would keep rows that no longer exist.
    Returns (the line to show, the build's id, whether it built now).
    """
    from customer_lens.transform import builds

    schema = builds.dbt_env(cfg=cfg)["LENS_DBT_SCHEMA"]
    with _audit(cfg) as conn:
        done = conn.execute(
            "select b.built_at from lens_audit.transform_builds b join pg_namespace n on n.nspname = b.schema_name "
            "where b.fingerprint = %s and b.schema_name = %s",
            (fingerprint, schema),
        ).fetchone()
    if done:
        return f"marts       up to date in schema {schema}", f"{fingerprint[:16]}@{done[0].isoformat()}", False
    with reporter.phase("marts", unit="dbt nodes") as step:
        result = builds.build(full_refresh=full_refresh, progress=step)
    built_at = _record_build(fingerprint, schema, len(result.node_statuses), cfg)
    line = f"marts       built in schema {schema}: {len(result.node_statuses)} dbt nodes passed"
    return line, f"{fingerprint[:16]}@{built_at.isoformat()}", True
