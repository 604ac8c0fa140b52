"""``lens``: the command line of Customer Lens.

Every command is a thin layer over the package: the same functions run from Airflow tasks and from
the tests. Errors print one line saying what failed and where to look, and exit non-zero.
"""

from __future__ import annotations

import datetime as dt
import functools
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, NoReturn, ParamSpec, TypeVar

import typer

from customer_lens import pipeline
from customer_lens.config import environment
from customer_lens.config.contract import MappingError
from customer_lens.config.source_config import ConfigError
from customer_lens.extract import ExtractError
from customer_lens.extract.raw import DerivationError, IntervalOverlap, SchemaChanged
from customer_lens.local import warehouse

app = typer.Typer(
    help="Customer Lens: customer analytics on Airflow, dbt and Great Expectations.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
warehouse_app = typer.Typer(help="Run the embedded PostgreSQL warehouse (or inspect LENS_WAREHOUSE_URL).")
app.add_typer(warehouse_app, name="warehouse")
baseline_app = typer.Typer(help="The baselines BI reads: history, rollback, override of a quarantined snapshot.")
app.add_typer(baseline_app, name="baseline")


_P = ParamSpec("_P")
_R = TypeVar("_R")


def _fail(message: str) -> NoReturn:
    typer.secho(f"error: {message}", fg=typer.colors.RED, err=True)
    raise typer.Exit(1)


def _friendly_errors(func: Callable[_P, _R]) -> Callable[_P, _R]:
    """Turn the package's expected errors into one clear line instead of a traceback."""

    @functools.wraps(func)
    def wrapper(*args: _P.args, **kwargs: _P.kwargs) -> _R:
        try:
            return func(*args, **kwargs)
        except (
            warehouse.WarehouseError,
            ExtractError,
            ConfigError,
            MappingError,
            IntervalOverlap,
            DerivationError,
            SchemaChanged,
        ) as exc:
            _fail(str(exc))
        except Exception as exc:
            from customer_lens.guard.baseline import GuardError
            from customer_lens.transform.builds import DbtError

            if isinstance(exc, GuardError | DbtError):
                _fail(str(exc))
            raise

    return wrapper


@app.callback()
def _main() -> None:
    environment.apply()


# -- warehouse ---------------------------------------------------------------------------------
def _print_status(status: warehouse.Status) -> None:
    state = "running" if status.running else "stopped"
    typer.echo(f"warehouse: {status.mode}, {state}")
    for label, value in (
        ("url", status.url),
        ("pid", status.pid),
        ("port", status.port),
        ("data", status.data_dir),
        ("note", status.detail),
    ):
        if value:
            typer.echo(f"  {label:5} {value}")


@warehouse_app.command("start")
@_friendly_errors
def warehouse_start() -> None:
    """Start the embedded warehouse (initialising it on first use); no-op if it runs already."""
    _print_status(warehouse.ensure_running())


@warehouse_app.command("stop")
@_friendly_errors
def warehouse_stop() -> None:
    """Stop the embedded warehouse (fast shutdown: open sessions are disconnected)."""
    if warehouse.is_external():
        typer.echo("LENS_WAREHOUSE_URL is set: that server is not ours to stop.")
        return
    stopped = warehouse.embedded().stop()
    typer.echo("warehouse stopped" if stopped else "warehouse was not running")


@warehouse_app.command("status")
@_friendly_errors
def warehouse_status() -> None:
    """Show whether the warehouse runs, where its data lives and how to reach it (exit 3 if stopped)."""
    status = warehouse.status()
    _print_status(status)
    if not status.running:
        raise typer.Exit(3)


@warehouse_app.command("url")
@_friendly_errors
def warehouse_url(
    database: Annotated[str | None, typer.Option(help="Another database on the same server.")] = None,
) -> None:
    """Print the libpq URL of the warehouse, e.g. `psql "$(lens warehouse url)"`."""
    typer.echo(warehouse.url(database))


# -- demo data ---------------------------------------------------------------------------------
@app.command("demo-data")
@_friendly_errors
def demo_data(
    scale: Annotated[str, typer.Option(help="tiny | small | medium | large")] = "small",
    seed: Annotated[int, typer.Option(help="Random seed: same seed, same data.")] = 42,
    end_date: Annotated[
        dt.datetime | None,
        typer.Option(formats=["%Y-%m-%d"], help="Last day of history [default: kept if installed, else yesterday]."),
    ] = None,
    bad_records: Annotated[bool, typer.Option(help="Inject the documented catalogue of faults.")] = False,
    force: Annotated[bool, typer.Option(help="Regenerate even if the same data is already there.")] = False,
) -> None:
    """Build the demo source systems: sales (Postgres `sales_src`), service (NDJSON), survey (CSV)."""
    from customer_lens import demo

    _check_demo_options(scale)

    if scale not in demo.SCALES:
        _fail(f"unknown scale {scale!r}; choose one of {', '.join(demo.SCALES)}")
    warehouse.ensure_running()
    state = pipeline.ensure_demo_data(
        scale=scale,
        seed=seed,
        end_date=end_date.date() if end_date else None,
        bad_records=bad_records,
        force=force,
        progress=sys.stderr.isatty(),
    )
    typer.echo(state)


# -- extraction ----------------------------------------------------------------------------------
@app.command("extract")
@_friendly_errors
def extract_cmd(
    start: Annotated[dt.datetime, typer.Option(formats=["%Y-%m-%d"], help="First day to load.")],
    end: Annotated[dt.datetime, typer.Option(formats=["%Y-%m-%d"], help="Day after the last day to load.")],
    source: Annotated[list[str] | None, typer.Option(help="Source name (repeatable) [default: all].")] = None,
    step: Annotated[str, typer.Option(help="Interval size: day | week | month.")] = "day",
    history: Annotated[
        bool, typer.Option(help="Initial load: also load everything before --start, as one first batch.")
    ] = False,
) -> None:
    """Load sources into the raw layer for [start, end), interval by interval (initial loads, catch-up).

    Scheduled loads run in Airflow (the extract_<source> DAGs); this is the same code, by hand.
    """
    if end <= start:
        _fail(f"--end {end:%Y-%m-%d} is not after --start {start:%Y-%m-%d}: nothing to load ([start, end) is empty)")
    warehouse.ensure_running()
    start_utc, end_utc = start.replace(tzinfo=dt.UTC), end.replace(tzinfo=dt.UTC)
    results = pipeline.load_raw(start_utc, end_utc, step=step, sources=source, echo=typer.echo, history=history)
    typer.echo(
        f"{len(results)} batches, {sum(r.rows_loaded for r in results)} rows loaded, "
        f"{sum(r.rows_rejected for r in results)} rejected"
    )


# -- the whole job -----------------------------------------------------------------------------
@app.command("run")
@_friendly_errors
def run(
    scale: Annotated[str, typer.Option(help="Demo data scale.")] = "small",
    seed: Annotated[int, typer.Option(help="Demo data seed.")] = 42,
    anomaly: Annotated[
        str | None,
        typer.Option(help="Inject a business anomaly the guard must block: duplicate-orders | vanished-region."),
    ] = None,
    config: Annotated[
        Path | None,
        typer.Option(
            help="Your sources file: run on its sources instead of the demo [default: $LENS_SOURCES_CONFIG].",
            exists=True,
            dir_okay=False,
        ),
    ] = None,
    start: Annotated[
        dt.datetime | None,
        typer.Option(formats=["%Y-%m-%d"], help="With a sources file: first day to load [default: its start_date]."),
    ] = None,
    end: Annotated[
        dt.datetime | None,
        typer.Option(
            formats=["%Y-%m-%d"], help="With a sources file: day after the last to load [default: end_date+1 or today]."
        ),
    ] = None,
) -> None:
    """The main job: warehouse, sources, raw layer, dbt marts, guard, promotion to `analytics`.

    Without a sources file (`--config` or LENS_SOURCES_CONFIG) it runs on generated demo data.
    """
    import os

    from customer_lens.progress import Reporter

    _check_demo_options(scale, anomaly)
    reporter = Reporter()
    if config is not None:
        os.environ["LENS_SOURCES_CONFIG"] = str(config.resolve())
    if os.environ.get("LENS_SOURCES_CONFIG"):
        if anomaly:
            _fail("--anomaly changes the demo data; it does not apply to your own sources")

        def day(value: dt.datetime | None) -> dt.date | None:
            return value.date() if value else None

        lines = pipeline.run_configured(start=day(start), end=day(end), reporter=reporter)
    else:
        if start or end:
            _fail("--start/--end choose what to load of your own sources: give --config (the demo loads its history)")
        lines = pipeline.run(scale=scale, seed=seed, progress=sys.stderr.isatty(), anomaly=anomaly, reporter=reporter)
    for line in lines:
        typer.echo(line)


def _check_demo_options(scale: str, anomaly: str | None = None) -> None:
    """Unknown demo options are one line naming the choices, before anything runs."""
    from customer_lens.demo import SCALES, anomalies

    if scale not in SCALES:
        _fail(f"--scale {scale!r} is not one of {', '.join(SCALES)}")
    if anomaly is not None and anomaly not in anomalies.KINDS:
        _fail(f"--anomaly {anomaly!r} is not one of {', '.join(anomalies.KINDS)}")


@app.command("transform")
@_friendly_errors
def transform_cmd(
    full_refresh: Annotated[
        bool, typer.Option(help="Rebuild the incremental models from the whole raw layer.")
    ] = False,
    select: Annotated[list[str] | None, typer.Option(help="dbt selection (repeatable), e.g. marts.growth+.")] = None,
) -> None:
    """Build the dbt project into the candidate schema from the raw layer as it is (no extraction, no guard)."""
    from customer_lens.progress import Reporter
    from customer_lens.transform import builds

    warehouse.ensure_running()
    with Reporter().phase("marts", unit="dbt nodes") as step:
        result = builds.build(full_refresh=full_refresh, select=select, progress=step)
    typer.echo(f"marts       built in schema {result.schema}: {len(result.node_statuses)} dbt nodes passed")


# -- the report and the Airflow UI ------------------------------------------------------------------
@app.command("report")
@_friendly_errors
def report_cmd(
    out: Annotated[
        Path | None,
        typer.Option(help="Where to write it [default: $LENS_STATE_DIR/reports/customer_lens.html]."),
    ] = None,
) -> None:
    """Write the Customer Lens report: one self-contained HTML file (opens offline) from the baseline."""
    from customer_lens import report

    if out is not None and not out.resolve().parent.is_dir():
        _fail(f"cannot write {out}: the folder {out.resolve().parent} does not exist")
    warehouse.ensure_running()
    try:
        path = report.render(out=out, progress=lambda line: typer.echo(line, err=True))
    except report.ReportError as exc:
        _fail(str(exc))
    typer.echo(f"report      {path}")


@app.command("airflow")
@_friendly_errors
def airflow_cmd(
    port: Annotated[int, typer.Option(help="Port of the Airflow UI and API.")] = 8080,
    host: Annotated[str, typer.Option(help="Interface to listen on (0.0.0.0: your network).")] = "127.0.0.1",
) -> None:
    """Airflow 3 (UI, scheduler, DAG processor, triggerer) with the project's DAGs; Ctrl-C stops it."""
    from customer_lens.local import airflow_ui

    try:
        airflow_ui.serve(host=host, port=port, echo=typer.echo)
    except airflow_ui.AirflowUIError as exc:
        _fail(str(exc))


@app.command("dbt", context_settings={"allow_extra_args": True, "ignore_unknown_options": True})
@_friendly_errors
def dbt_cmd(ctx: typer.Context) -> None:
    """Any dbt command on the project, as lens and Airflow run it: `lens dbt build --select my_mart+`.

    Same connection, transformer role, candidate schema, mappings and target/log folders (under
    $LENS_STATE_DIR/dbt) as every build of the pipeline; dbt's own output is shown.
    """
    from customer_lens.transform import builds

    if not ctx.args:
        _fail("give a dbt command, e.g. `lens dbt build --select my_mart+` or `lens dbt ls`")
    warehouse.ensure_running()
    result = builds.run_dbt(list(ctx.args))
    if result.node_statuses:
        typer.echo(f"dbt         {len(result.node_statuses)} node(s) in schema {result.schema}")


@app.command("sqlfluff", context_settings={"allow_extra_args": True, "ignore_unknown_options": True})
@_friendly_errors
def sqlfluff_cmd(ctx: typer.Context) -> None:
    """sqlfluff (dbt templater) on the dbt project: `lens sqlfluff lint dbt_project` (what `make lint` runs).

    dbt compiles the models against a throwaway embedded warehouse, started for this command and stopped
    after it; your own warehouse is not used. Exits with sqlfluff's code.
    """
    from customer_lens.transform import sql_lint

    if not ctx.args:
        _fail("give a sqlfluff command, e.g. `lens sqlfluff lint dbt_project` or `lens sqlfluff fix FILE`")
    code = sql_lint.run(list(ctx.args))
    if code:
        raise typer.Exit(code)


@app.command("backfill")
@_friendly_errors
def backfill_cmd(
    dag_id: Annotated[str, typer.Argument(help="The DAG, e.g. extract_sales.")],
    start: Annotated[dt.datetime, typer.Option(formats=["%Y-%m-%d"], help="First logical date.")],
    end: Annotated[dt.datetime, typer.Option(formats=["%Y-%m-%d"], help="Last logical date.")],
) -> None:
    """Re-run a DAG over past dates with `lens airflow`'s scheduler (unpauses the DAG, creates the backfill)."""
    from customer_lens.local import airflow_ui

    if end < start:
        _fail(f"--end {end:%Y-%m-%d} is before --start {start:%Y-%m-%d}")
    try:
        lines = airflow_ui.backfill(dag_id, f"{start:%Y-%m-%d}", f"{end:%Y-%m-%d}")
    except airflow_ui.AirflowUIError as exc:
        _fail(str(exc))
    for line in lines:
        typer.echo(line)


@app.command("restate")
@_friendly_errors
def restate_cmd(
    from_: Annotated[
        dt.datetime,
        typer.Option("--from", formats=["%Y-%m"], help="The first closed period to recompute (YYYY-MM)."),
    ],
    reason: Annotated[str, typer.Option(help="Why (kept in lens_audit.restatements with who asked).")],
) -> None:
    """Recompute closed periods from a month on, then guard and promote (restatements_pending shows why).

    Closed periods are otherwise kept as built; the guard accepts this change of them and no other.
    """
    from customer_lens.guard import baseline
    from customer_lens.progress import Reporter

    if not reason.strip():
        _fail("--reason must say why the closed periods are restated")
    if from_.date() > dt.date.today():
        _fail(f"--from {from_:%Y-%m} is in the future: there is nothing closed to restate")
    reporter = Reporter()
    for line in pipeline.restate(from_.date(), reason.strip(), actor=baseline.current_actor(), reporter=reporter):
        typer.echo(line)


@app.command("roles")
@_friendly_errors
def roles_cmd() -> None:
    """Create the warehouse roles (bi_reader, lens_loader, lens_transformer) and apply their grants."""
    from customer_lens import roles

    for line in roles.apply():
        typer.echo(line)


# -- the snapshot guard and the baselines ----------------------------------------------------------
@app.command("guard")
@_friendly_errors
def guard_cmd(
    candidate: Annotated[str, typer.Option(help="Schema the dbt build wrote.")] = "analytics_candidate",
) -> None:
    """Freeze the candidate marts, validate them with Great Expectations, promote them if they pass."""
    from customer_lens.guard import baseline

    for line in baseline.guard(candidate=candidate).lines():
        typer.echo(line)


@baseline_app.command("list")
@_friendly_errors
def baseline_list() -> None:
    """Baselines (newest first) and the quarantined snapshots."""
    from customer_lens.guard import audit

    with audit.connect() as conn:
        rows = conn.execute(
            "select baseline_no, snapshot_id, status, promoted_at, promoted_by, reason from lens_audit.baselines "
            "order by baseline_no desc"
        ).fetchall()
        quarantined = conn.execute(
            "select s.snapshot_id, s.created_at, v.expectations_failed, v.report_path from lens_audit.snapshots s "
            "left join lens_audit.validation_runs v on v.snapshot_id = s.snapshot_id "
            "where s.status = 'quarantined' order by s.snapshot_no desc"
        ).fetchall()
        # Validated but not promoted (readers held the views), or left by a guard that stopped midway.
        waiting = conn.execute(
            "select s.snapshot_id, s.created_at, v.passed from lens_audit.snapshots s "
            "left join lens_audit.validation_runs v on v.snapshot_id = s.snapshot_id "
            "where s.status = 'validating' order by s.snapshot_no desc"
        ).fetchall()
    if not rows:
        typer.echo("no baseline yet: run `lens run` (or `lens guard` after a build)")
    for no, snapshot, status, at, by, reason in rows:
        typer.echo(f"#{no:<4} {status:<9} {snapshot}  {at:%Y-%m-%d %H:%M} by {by}: {reason}")
    for snapshot, at, failed, report in quarantined:
        typer.echo(f"quarantined    {snapshot}  {at:%Y-%m-%d %H:%M}: {failed} failed expectations, report {report}")
    for snapshot, at, passed in waiting:
        state = "validated, not promoted (lens baseline promote)" if passed else "left by a guard that stopped"
        typer.echo(f"validating     {snapshot}  {at:%Y-%m-%d %H:%M}: {state}")


@baseline_app.command("rollback")
@_friendly_errors
def baseline_rollback(
    baseline_no: Annotated[int, typer.Argument(help="The retained baseline to return to.")],
    reason: Annotated[str, typer.Option(help="Why (recorded in lens_audit.baseline_events).")],
) -> None:
    """Point `analytics` back at an earlier (retained) baseline."""
    from customer_lens.guard import audit, baseline

    with audit.connect(autocommit=True) as conn:
        number = baseline.rollback(conn, baseline_no, actor=baseline.current_actor(), reason=reason)
    typer.echo(f"analytics now shows baseline #{number}")


@baseline_app.command("promote")
@_friendly_errors
def baseline_promote(
    reason: Annotated[str, typer.Option(help="Why the failed checks are acceptable (recorded).")],
    snapshot: Annotated[str | None, typer.Argument(help="Quarantined snapshot id [default: the latest].")] = None,
) -> None:
    """Override: promote a quarantined snapshot despite its failed validation."""
    from customer_lens.guard import audit, baseline

    with audit.connect(autocommit=True) as conn:
        number = baseline.override(conn, snapshot, actor=baseline.current_actor(), reason=reason)
    typer.echo(f"override: snapshot promoted as baseline #{number}")


if __name__ == "__main__":  # pragma: no cover
    app()
