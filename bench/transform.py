"""Benchmark: full vs one-day incremental dbt builds at two scales, and the orchestrated transform vs plain dbt.

    python bench/transform.py [--scales medium,large] [--orchestration-scale medium] [--seed 7]

In one run, per scale, on a throwaway embedded server (or a database on ``LENS_BENCH_URL``'s server):

1. generates the demo sources and loads the raw layer up to the day *before* the last;
2. **full**: ``dbt build --full-refresh`` of the whole project (models, seeds, unit and data tests);
   then ``vacuum (analyze)`` of the database, timed apart: the maintenance autovacuum does on the new
   tables in the hours before the next daily run (it would otherwise share the CPU with the next step);
3. loads the last day into the raw layer; **incremental**: ``dbt build`` (what a daily run does);
4. at the orchestration scale only: **plain vs orchestrated**, on unchanged data. First starts a real
   Airflow stack once (``airflow standalone``: scheduler, LocalExecutor, DAG processor, triggerer, API
   server; metadata in a fresh PostgreSQL database beside the warehouse), waits for the DAG files to be
   parsed, keeps every other DAG paused and unpauses ``lens_transform`` (its startup is printed, not
   counted). Then, alternating, best of two each: ``dbt build`` from the command line, ``airflow dags
   test lens_transform`` (one Cosmos task), and a manual ``lens_transform`` run triggered through the
   REST API and polled until it succeeds, timed from the trigger to the success the client sees (the
   figure checked) and by the run's own start and end dates. The stack stays up throughout, so the plain
   and ``dags test`` builds run beside an idle scheduler (the CPU it uses meanwhile is printed); it is
   stopped at the end or on any error. A run that fails, or that needed a retry (its delay would be
   timed), raises with its task log; the temporary directory is then kept.

Also times the **yardstick** after the full build: one hand-written SQL pass over the sales history
computing the CLV summary per customer (best of two), and prints both builds in its units.

Targets: incremental <= 10% of full at large scale (issue #4); at large, the full build <= 12 yardsticks
and the one-day build <= 1 yardstick (issue #27); orchestrated <= 1.5x plain, under the scheduler and
under ``dags test`` alike.
Prints the figures and the slowest nodes of each build; writes ``bench/results/transform.json``.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import json
import os
import shutil
import sqlite3
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from urllib.parse import quote, urlsplit

import psutil
import psycopg
import record
from psycopg import sql

from customer_lens import demo, extract, pipeline
from customer_lens.config import environment, source_config
from customer_lens.config import settings as settings_mod
from customer_lens.local import airflow_cli, airflow_ui, warehouse
from customer_lens.local.airflow_ui import ApiClient
from customer_lens.transform import builds

HERE = Path(__file__).resolve().parent


def _timed(label: str, func) -> float:
    print(f"{label} ...", flush=True)
    began = time.perf_counter()
    func()
    seconds = time.perf_counter() - began
    print(f"  {seconds:.1f}s", flush=True)
    return seconds


def _plain_dbt_build(env: dict[str, str]) -> None:
    dbt = str(Path(sys.executable).with_name("dbt"))
    subprocess.run(
        [dbt, "build", "--project-dir", env["DBT_PROJECT_DIR"], "--profiles-dir", env["DBT_PROFILES_DIR"], "--quiet"],
        env=env,
        check=True,
    )


class _SchedulerStack:
    """A real Airflow stack for the project where only ``lens_transform`` may run (a context manager).

    ``airflow standalone`` with the LocalExecutor and the login of ``lens airflow``; its metadata in a
    fresh database ``bench_transform_<scale>_airflow`` on the warehouse server (not ``lens airflow``'s).
    DAGs are created paused; every DAG but ``lens_transform`` is paused again through the API before it
    is unpaused, so no extraction loads data and no guard validates the candidate meanwhile.
    """

    DAG_ID = "lens_transform"

    def __init__(self, scale: str):
        cfg = settings_mod.load()
        self.cfg = cfg
        self.log = airflow_ui.log_path(cfg)
        metadata = _fresh_database(warehouse.url("postgres", cfg), f"bench_transform_{scale}_airflow")
        self.login = airflow_ui.ensure_login(cfg)
        env = airflow_ui.environment(
            cfg, host="127.0.0.1", port=airflow_cli.free_port(), metadata=metadata, login=self.login
        )
        env["AIRFLOW__CORE__DAGS_ARE_PAUSED_AT_CREATION"] = "True"
        self.task_logs = Path(env["AIRFLOW__LOGGING__BASE_LOG_FOLDER"]) / f"dag_id={self.DAG_ID}"
        self.standalone = airflow_cli.Standalone(env, self.log)
        self.api: ApiClient | None = None
        self.startup_s = 0.0

    def __enter__(self) -> _SchedulerStack:
        print(f"starting the Airflow scheduler stack (log: {self.log}) ...", flush=True)
        began = time.perf_counter()
        try:
            self.standalone.start(timeout=300)
            self.api = ApiClient.login(self.standalone.url, self.login.user, self.login.password)
            expected = airflow_ui.dag_files(self.cfg)
            dags, errors = airflow_ui.wait_for_dags(self.api, expected, lambda _status: None, self.standalone, 300)
            missing = sorted(expected - set(dags.values()))
            if missing or errors:
                raise RuntimeError(f"DAG files not parsed: {missing}, import errors: {sorted(errors)}; see {self.log}")
            for dag_id in sorted(dags):
                self.api.request("PATCH", f"/api/v2/dags/{dag_id}", {"is_paused": dag_id != self.DAG_ID})
        except BaseException:
            self.standalone.stop()
            raise
        self.startup_s = time.perf_counter() - began
        print(f"  up, {len(dags)} DAGs parsed, only {self.DAG_ID} unpaused: {self.startup_s:.1f}s", flush=True)
        return self

    def __exit__(self, *exc) -> None:
        print("stopping the Airflow scheduler stack ...", flush=True)
        self.standalone.stop()

    def cpu_seconds(self) -> float:
        """CPU time used so far by the stack's live processes (and their reaped children)."""
        total = 0.0
        for proc in self.standalone.processes():
            with contextlib.suppress(psutil.Error):
                times = proc.cpu_times()
                total += times.user + times.system + times.children_user + times.children_system
        return total

    def run_transform(self, timeout: float = 3600) -> dict[str, float]:
        """Trigger a manual run, poll until it succeeds; its timings. Raises when it fails (or retries)."""
        print(f"scheduler: {self.DAG_ID} triggered through the REST API ...", flush=True)
        began = time.perf_counter()
        run = self.api.request("POST", f"/api/v2/dags/{self.DAG_ID}/dagRuns", {"logical_date": None})
        run_id = run["dag_run_id"]
        path = f"/api/v2/dags/{self.DAG_ID}/dagRuns/{quote(run_id, safe='')}"
        polls = 0
        while run["state"] != "success":
            if run["state"] == "failed":
                raise self._failed(run_id, "the dag run failed")
            if polls % 10 == 9:  # a failed try would wait minutes for its retry: fail now instead
                task = self.api.get(f"{path}/taskInstances/dbt_build")
                if task["state"] in ("up_for_retry", "failed", "upstream_failed"):
                    raise self._failed(run_id, f"task dbt_build is {task['state']}")
            if self.standalone.process.poll() is not None:
                raise self._failed(run_id, f"airflow standalone exited with {self.standalone.process.returncode}")
            if time.perf_counter() - began > timeout:
                raise self._failed(run_id, f"not finished after {timeout:.0f} s")
            time.sleep(0.5)
            polls += 1
            run = self.api.get(path)
        client_s = time.perf_counter() - began
        task = self.api.get(f"{path}/taskInstances/dbt_build")
        if task["try_number"] != 1:
            raise self._failed(run_id, f"dbt_build succeeded only at try {task['try_number']}")
        timings = {
            "client_s": client_s,
            "dag_run_s": _seconds_between(run["start_date"], run["end_date"]),
            "queued_s": _seconds_between(run["queued_at"], run["start_date"]),
            "task_s": _seconds_between(task["start_date"], task["end_date"]),
        }
        print(
            f"  {client_s:.1f}s trigger to success seen by the client; dag run {timings['dag_run_s']:.1f}s "
            f"(queued {timings['queued_s']:.1f}s before it), task dbt_build {timings['task_s']:.1f}s",
            flush=True,
        )
        return timings

    def check_only_transform_ran(self, expected_runs: int) -> None:
        runs = self.api.get("/api/v2/dags/~/dagRuns?limit=100")["dag_runs"]
        others = sorted({r["dag_id"] for r in runs} - {self.DAG_ID})
        ours = [r for r in runs if r["dag_id"] == self.DAG_ID]
        if others or len(ours) != expected_runs or any(r["run_type"] != "manual" for r in ours):
            summary = [(r["dag_id"], r["run_type"], r["state"]) for r in runs]
            raise RuntimeError(f"expected only our {expected_runs} manual {self.DAG_ID} runs, found {summary}")

    def _failed(self, run_id: str, why: str) -> RuntimeError:
        logs = sorted((self.task_logs / f"run_id={run_id}").rglob("*.log"))
        tail = _log_tail(logs[-1]) if logs else "(no task log yet)"
        where = ", ".join(map(str, logs)) or str(self.task_logs)
        return RuntimeError(
            f"{self.DAG_ID} run {run_id} under the scheduler: {why}\n"
            f"task log: {where}\nstack log: {self.log}\n--- task log tail ---\n{tail}"
        )


def _log_tail(path: Path, lines: int = 15, width: int = 400) -> str:
    """The end of a task log (JSON lines in Airflow 3) as ``level: event`` lines with any error, shortened."""
    shown = []
    for raw in path.read_text(errors="replace").splitlines():
        try:
            record = json.loads(raw)
        except ValueError:
            record = None
        if not isinstance(record, dict):
            shown.append(raw[:width])
            continue
        text = f"{record.get('level', '?')}: {record.get('event', '')}"
        for error in record.get("error_detail") or []:
            text += f" | {error.get('exc_type')}: {error.get('exc_value')}"
        shown.append(text[:width])
    return "\n".join(shown[-lines:])


def _dags_test(af_env: dict[str, str]) -> None:
    """``airflow dags test lens_transform``; raises when its task needed a retry (its delay would be timed)."""
    airflow_cli.airflow("dags", "test", "lens_transform", env=af_env, timeout=3600)
    metadata = af_env["AIRFLOW__DATABASE__SQL_ALCHEMY_CONN"].removeprefix("sqlite:///")
    with contextlib.closing(sqlite3.connect(metadata)) as conn:
        (tries,) = conn.execute("select max(try_number) from task_instance where dag_id = 'lens_transform'").fetchone()
    if tries != 1:
        logs = Path(af_env["AIRFLOW__LOGGING__BASE_LOG_FOLDER"]) / "dag_id=lens_transform"
        raise RuntimeError(f"airflow dags test lens_transform: dbt_build succeeded only at try {tries}; logs: {logs}")


def _seconds_between(start: str, end: str) -> float:
    return (dt.datetime.fromisoformat(end) - dt.datetime.fromisoformat(start)).total_seconds()


def _demo_history(scale: str, args: argparse.Namespace) -> tuple[dt.datetime, dt.datetime, float]:
    """Generate the demo sources and load the raw layer up to the day before the last: the last day, the
    end of the history and the load's seconds."""
    pipeline.ensure_demo_data(scale=scale, seed=args.seed, end_date=dt.date.fromisoformat(args.end_date), force=True)
    start, end = pipeline.demo_range()
    last_day = end - dt.timedelta(days=1)
    seconds = _timed(
        "loading the raw layer up to the last day",
        lambda: pipeline.load_raw(start, last_day, step="month", history=True),
    )
    return last_day, end, seconds


def _fresh_database(server_url: str, name: str) -> str:
    """URL of database ``name``, dropped and created again on the server of ``server_url``."""
    with psycopg.connect(server_url, autocommit=True) as conn:
        conn.execute(sql.SQL("drop database if exists {} with (force)").format(sql.Identifier(name)))
    warehouse.ensure_database(server_url, name)
    return warehouse.with_database(server_url, name)


def _settle(url: str) -> None:
    """Vacuum and analyze the warehouse database: the state a daily build meets a day after a full build.

    Every table a full build creates is new, so autovacuum vacuums each one soon after (insert-triggered
    vacuum); doing it here, before the day's load, keeps that work out of the timed one-day build. Its
    time is printed, not counted in either build. (Measured at large: about 10 s, and the one-day build
    was no faster for it.)
    """
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("vacuum (analyze)")


class _AutovacuumSampler:
    """Samples the autovacuum workers busy on the warehouse twice a second, in a thread, while in the block.

    ``worker_seconds`` sums workers x sampling interval: the maintenance that shared the machine with the
    timed build (at large about 10 s, started by the build's own rewrites, as in any daily run).
    """

    interval = 0.5

    def __init__(self, url: str):
        self.url = url
        self.worker_seconds = 0.0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True)

    def _sample(self) -> None:
        with psycopg.connect(self.url, autocommit=True) as conn:
            while not self._stop.wait(self.interval):
                busy = conn.execute(
                    "select count(*) from pg_stat_activity where backend_type = 'autovacuum worker'"
                    " and state is distinct from 'idle' and query <> ''"
                ).fetchone()[0]
                self.worker_seconds += busy * self.interval

    def __enter__(self) -> _AutovacuumSampler:
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join()


def _slowest(result: builds.DbtResult, n: int = 10) -> list[dict]:
    """The ``n`` slowest nodes of a build: where its time went."""
    timed = [
        {"node": r.node.unique_id, "seconds": round(r.execution_time, 1)} for r in getattr(result.result, "results", [])
    ]
    return sorted(timed, key=lambda row: -row["seconds"])[:n]


def _slowest_in(target: Path, n: int = 10) -> list[dict]:
    """The ``n`` slowest nodes of the last dbt CLI command whose target path is ``target``."""
    results = json.loads((target / "run_results.json").read_text())["results"]
    timed = [{"node": r["unique_id"], "seconds": round(r["execution_time"], 1)} for r in results]
    return sorted(timed, key=lambda row: -row["seconds"])[:n]


# The yardstick (issue #27): one hand-written pass over the sales history computing the CLV summary per
# customer (frequency, recency, T, monetary value in the lifetimes convention) from the raw layer, latest
# versions only. It is what reading the history once costs; the builds are also printed in its units.
YARDSTICK_SQL = """
with orders as (
    select distinct on (order_id) order_id, customer_id, status, (ordered_at at time zone 'UTC')::date as day
    from raw_sales.orders
    order by order_id, updated_at desc, _loaded_at desc
),
order_lines as (
    select distinct on (order_line_id) order_id, quantity * unit_price * (1 - coalesce(discount_pct, 0)) as revenue
    from raw_sales.order_lines
    order by order_line_id, updated_at desc, _loaded_at desc
),
days as (
    select orders.customer_id, orders.day, sum(order_lines.revenue) as revenue
    from order_lines
    join orders using (order_id)
    where orders.status = 'completed' and orders.day <= %(as_of)s
    group by orders.customer_id, orders.day
),
per_customer as (
    select
        customer_id,
        count(*) - 1 as frequency,
        max(day) - min(day) as recency,
        %(as_of)s::date - min(day) as t,
        coalesce((sum(revenue) - (array_agg(revenue order by day))[1]) / nullif(count(*) - 1, 0), 0) as monetary
    from days
    group by customer_id
)
select count(*), sum(frequency), sum(monetary) from per_customer
"""


def _yardstick(url: str, as_of: dt.date) -> None:
    with psycopg.connect(url) as conn:
        conn.execute(YARDSTICK_SQL, {"as_of": as_of}).fetchone()


def _measure_orchestration(scale: str, tmp: Path) -> dict[str, float]:
    """Plain ``dbt build`` against ``lens_transform`` under ``airflow dags test`` and under a scheduler, twice."""
    figures = {}
    env = os.environ | builds.dbt_env()
    af_env = airflow_cli.environment(home=tmp / scale / "airflow")
    airflow_cli.airflow("db", "migrate", env=af_env)
    plain, dags_test, scheduler, idle_cpu = [], [], [], []
    with _SchedulerStack(scale) as stack:
        figures["scheduler_stack_startup_s"] = stack.startup_s
        for _ in range(2):
            cpu_before = stack.cpu_seconds()
            plain.append(_timed("plain dbt build", lambda: _plain_dbt_build(env)))
            idle_cpu.append(stack.cpu_seconds() - cpu_before)
            print(f"  (the idle scheduler stack used {idle_cpu[-1]:.1f} CPU-s meanwhile)", flush=True)
            dags_test.append(_timed("airflow dags test lens_transform", lambda: _dags_test(af_env)))
            scheduler.append(stack.run_transform())
        stack.check_only_transform_ran(expected_runs=2)
    figures["plain_dbt_build_s"] = min(plain)
    figures["orchestrated_dags_test_s"] = min(dags_test)
    figures["orchestrated_scheduler_s"] = min(run["client_s"] for run in scheduler)
    figures["orchestrated_scheduler_dag_run_s"] = min(run["dag_run_s"] for run in scheduler)
    figures["scheduler_queued_s"] = min(run["queued_s"] for run in scheduler)
    figures["scheduler_task_s"] = min(run["task_s"] for run in scheduler)
    figures["stack_idle_cpu_per_plain_build_s"] = max(idle_cpu)
    return figures


def _measure_scale(scale: str, args: argparse.Namespace, tmp: Path, orchestrate: bool) -> dict:
    """Full vs one-day incremental build at one scale (and plain vs orchestrated when asked)."""
    os.environ["LENS_STATE_DIR"] = str(tmp / scale / "state")
    os.environ.pop("LENS_WAREHOUSE_URL", None)
    environment.apply()
    server = None
    if os.environ.get("LENS_BENCH_URL"):
        database = f"bench_transform_{scale}"
        os.environ["LENS_WAREHOUSE_URL"] = warehouse.with_database(os.environ["LENS_BENCH_URL"], database)
        warehouse.ensure_database(os.environ["LENS_BENCH_URL"], database)
    else:
        server = warehouse.embedded()
        server.start()
    figures: dict = {}
    slowest: dict = {}
    try:
        print(f"\n== {scale}: generating the demo sources ...", flush=True)
        last_day, end, figures["extract_history_s"] = _demo_history(scale, args)
        results: dict[str, builds.DbtResult] = {}

        def build(name: str, **kwargs) -> None:
            results[name] = builds.build(**kwargs)

        figures["full_build_s"] = _timed("dbt build --full-refresh", lambda: build("full", full_refresh=True))
        figures["settle_after_full_s"] = _timed(
            "vacuum (analyze) after the full build (not counted)", lambda: _settle(warehouse.url())
        )
        figures["yardstick_s"] = min(
            _timed(
                "yardstick: one SQL pass over the sales history (CLV summary)",
                lambda: _yardstick(warehouse.url(), last_day),
            )
            for _ in range(2)
        )
        figures["extract_last_day_s"] = _timed(
            "loading the last day", lambda: pipeline.load_raw(last_day, end, step="day")
        )
        with _AutovacuumSampler(warehouse.url()) as autovacuum:
            figures["incremental_build_s"] = _timed("dbt build (one new day)", lambda: build("incremental"))
        figures["autovacuum_during_incremental_s"] = autovacuum.worker_seconds
        slowest = {name: _slowest(result) for name, result in results.items()}
        with psycopg.connect(warehouse.url()) as conn:
            figures["order_lines"] = conn.execute("select count(*) from raw_sales.order_lines").fetchone()[0]

        if orchestrate:
            figures |= _measure_orchestration(scale, tmp)
    finally:
        if server:
            server.stop()
    return {"figures": figures, "slowest_nodes": slowest}


def _dbt_cli_build(env: dict[str, str], *extra: str) -> None:
    dbt = str(Path(sys.executable).with_name("dbt"))
    subprocess.run([dbt, "build", "--quiet", *extra], env=env, check=True)


def _measure_against(scale: str, args: argparse.Namespace, tmp: Path) -> dict:
    """Same-run A/B: this checkout's dbt project against the one at ``args.against``, each built with the dbt
    CLI into its own copy of the same raw layer (a database made from the other as a template): the full
    builds, a settle of both, the next day loaded into both, then the one-day builds, alternating."""
    os.environ["LENS_STATE_DIR"] = str(tmp / f"{scale}-against" / "state")
    os.environ.pop("LENS_WAREHOUSE_URL", None)
    environment.apply()
    server = warehouse.embedded()
    server.start()
    repo = HERE.parent
    reference = tmp / "reference"
    subprocess.run(["git", "-C", str(repo), "worktree", "add", "--detach", str(reference), args.against], check=True)
    figures: dict = {}
    try:
        print(f"\n== {scale}, against {args.against}: generating the demo sources ...", flush=True)
        last_day, end, figures["extract_history_s"] = _demo_history(scale, args)
        url = warehouse.url()
        # Settled before it is copied: otherwise autovacuum works through both copies' new raw tables
        # while the first full build runs, and that build pays for the second's hint bits too.
        _timed("vacuum (analyze) of the raw layer (not counted)", lambda: _settle(url))
        database = urlsplit(url).path.lstrip("/")
        with psycopg.connect(warehouse.with_database(url, "postgres"), autocommit=True) as conn:
            conn.execute(sql.SQL("create database {} template {}").format(
                sql.Identifier(f"{database}_ref"), sql.Identifier(database)
            ))  # fmt: skip
            grants = conn.execute(  # a template gives the contents, not the database's own grants
                "select a.privilege_type, a.grantee::regrole::text from pg_database d, aclexplode(d.datacl) a "
                "where d.datname = %s and a.grantee <> 0",
                (database,),
            ).fetchall()
            for privilege, grantee in grants:
                conn.execute(
                    sql.SQL("grant {} on database {} to {}").format(
                        sql.SQL(privilege), sql.Identifier(f"{database}_ref"), sql.SQL(grantee)
                    )
                )
        reference_url = warehouse.with_database(url, f"{database}_ref")
        builds.prepare_inputs()
        env = os.environ | builds.dbt_env()
        project = str(reference / "dbt_project")
        reference_env = env | {
            "DBT_PROJECT_DIR": project,
            "DBT_PROFILES_DIR": project,
            "LENS_DB_NAME": f"{database}_ref",
            "DBT_TARGET_PATH": str(tmp / "reference-target"),
            "DBT_LOG_PATH": str(tmp / "reference-logs"),
        }
        figures["full_build_s"] = _timed(
            "dbt build --full-refresh (this checkout)", lambda: _dbt_cli_build(env, "--full-refresh")
        )
        figures["full_build_reference_s"] = _timed(
            f"dbt build --full-refresh ({args.against})", lambda: _dbt_cli_build(reference_env, "--full-refresh")
        )
        figures["slowest_full_build"] = _slowest_in(Path(env["DBT_TARGET_PATH"]))
        figures["slowest_full_build_reference"] = _slowest_in(tmp / "reference-target")
        _timed("vacuum (analyze) of both (not counted)", lambda: (_settle(url), _settle(reference_url)))
        figures["yardstick_s"] = min(_timed("yardstick", lambda: _yardstick(url, last_day)) for _ in range(2))
        for source in source_config.load().values():
            for target in (url, reference_url):
                extract.extract_range(source, last_day, end, step="day", warehouse_url=target)
        figures["incremental_build_s"] = _timed("dbt build (one new day, this checkout)", lambda: _dbt_cli_build(env))
        figures["incremental_build_reference_s"] = _timed(
            f"dbt build (one new day, {args.against})", lambda: _dbt_cli_build(reference_env)
        )
    finally:
        server.stop()
        subprocess.run(["git", "-C", str(repo), "worktree", "remove", "--force", str(reference)], check=False)
    return figures


def _print_scale(scale: str, result: dict) -> dict[str, dict]:
    """Print one scale's figures, slowest nodes and yardstick units; returns its checks against the targets."""
    figures = result["figures"]
    print(f"\n{scale} scale, {figures['order_lines']:,} order lines")
    for name, value in figures.items():
        if name.endswith("_s"):
            print(f"  {name:<34}{value:>9.1f}s")
    for build_name, nodes in result["slowest_nodes"].items():
        print(
            f"  slowest nodes of the {build_name} build: "
            + ", ".join(f"{n['node'].split('.')[-1]} {n['seconds']}s" for n in nodes)
        )
    large = scale == "large"
    yardstick = figures["yardstick_s"]
    print(
        f"  in yardsticks ({yardstick:.1f}s): full build {figures['full_build_s'] / yardstick:.2f}, "
        f"one-day build {figures['incremental_build_s'] / yardstick:.2f}"
    )
    checks: dict[str, dict] = {
        f"incremental_vs_full_{scale}": {
            "ratio": figures["incremental_build_s"] / figures["full_build_s"],
            "target": 0.10 if large else None,
        },
        f"full_build_in_yardsticks_{scale}": {
            "ratio": figures["full_build_s"] / yardstick,
            "target": 12.0 if large else None,
        },
        f"one_day_build_in_yardsticks_{scale}": {
            "ratio": figures["incremental_build_s"] / yardstick,
            "target": 1.0 if large else None,
        },
    }
    if "plain_dbt_build_s" in figures:
        plain = figures["plain_dbt_build_s"]
        checks[f"orchestrated_vs_plain_{scale}"] = {"ratio": figures["orchestrated_dags_test_s"] / plain, "target": 1.5}
        checks[f"orchestrated_scheduler_vs_plain_{scale}"] = {
            "ratio": figures["orchestrated_scheduler_s"] / plain,
            "target": 1.5,
            "dag_run_ratio": figures["orchestrated_scheduler_dag_run_s"] / plain,
        }
    return checks


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scales", default="medium,large", help="comma-separated, e.g. small,medium")
    parser.add_argument("--orchestration-scale", default="medium", help="'' to skip plain vs orchestrated")
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--end-date", default="2026-10-31")
    parser.add_argument(
        "--against",
        metavar="REV",
        help="instead: this checkout's dbt project against REV's (a git revision), same data, same run",
    )
    args = parser.parse_args()
    scales = [name.strip() for name in args.scales.split(",") if name.strip()]
    unknown = sorted(set(scales) - set(demo.SCALES))
    if unknown:
        parser.error(f"unknown scale(s) {unknown}; choose from {sorted(demo.SCALES)}")

    if args.against:
        return _main_against(args, scales)
    measured: dict[str, dict] = {}
    tmp = Path(tempfile.mkdtemp(prefix="lens-bench-transform-"))
    try:
        for scale in scales:
            measured[scale] = _measure_scale(scale, args, tmp, orchestrate=scale == args.orchestration_scale)
    except Exception:
        print(f"\nkept {tmp} for its logs: delete it when done", file=sys.stderr, flush=True)
        raise
    shutil.rmtree(tmp)

    checks: dict[str, dict] = {}
    for scale, result in measured.items():
        checks |= _print_scale(scale, result)
    print()
    for name, check in checks.items():
        if check["target"] is None:
            print(f"{name:<40}{check['ratio']:>9.2f}  (target applies at large)")
        else:
            check["pass"] = check["ratio"] <= check["target"]
            verdict = "PASS" if check["pass"] else "FAIL"
            note = f"  (dag run start to end alone: {check['dag_run_ratio']:.2f})" if "dag_run_ratio" in check else ""
            print(f"{name:<40}{check['ratio']:>9.2f}  target <= {check['target']:<5} {verdict}{note}")

    record.write("transform", {"scales": measured, "checks": checks})
    return 0


def _main_against(args: argparse.Namespace, scales: list[str]) -> int:
    tmp = Path(tempfile.mkdtemp(prefix="lens-bench-transform-"))
    measured = {}
    try:
        for scale in scales:
            measured[scale] = _measure_against(scale, args, tmp)
    except Exception:
        print(f"\nkept {tmp} for its logs: delete it when done", file=sys.stderr, flush=True)
        raise
    shutil.rmtree(tmp)
    print()
    for scale, figures in measured.items():
        print(f"{scale} scale: this checkout against {args.against}, same data, same run (dbt CLI builds)")
        for build in ("full_build", "incremental_build"):
            ours, theirs = figures[f"{build}_s"], figures[f"{build}_reference_s"]
            print(
                f"  {build:<20}{ours:>9.1f}s against {theirs:>9.1f}s: {ours / theirs - 1:+.1%}"
                f"   ({ours / figures['yardstick_s']:.2f} against {theirs / figures['yardstick_s']:.2f} yardsticks)"
            )
        for label, key in (("this checkout", "slowest_full_build"), (args.against, "slowest_full_build_reference")):
            print(f"  slowest nodes of the full build, {label}:")
            for row in figures[key]:
                print(f"    {row['seconds']:>7.1f}s  {row['node']}")
    record.write("transform-against", {"against": args.against, "scales": measured})
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
