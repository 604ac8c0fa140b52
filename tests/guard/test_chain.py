"""The whole chain, extract Assets → transform → validate → promote, under a real Airflow scheduler and
under ``airflow dags test``.

Under the scheduler nothing is triggered by hand. The warehouse holds the demo history through yesterday in
month batches, as ``make run`` loads it; ``lens airflow`` starts Airflow 3 (scheduler, DAG processor,
triggerer, API server, LocalExecutor) and the test only unpauses the DAGs (the README's daily workflow).
The scheduler then runs each extraction DAG for its latest complete interval (yesterday, the demo data's
last day, inside the month batch that loaded it: the day's rows are replaced, the month's others stay); their Assets
trigger ``lens_transform`` (Cosmos ``dbt build`` into the candidate schema); its mart Assets trigger
``lens_guard``, which validates the snapshot with Great Expectations and promotes it to baseline #1.
``airflow dags test`` does not follow Assets, so there the same DAGs run one after the other, as an
engineer debugging the chain would run them.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import psycopg
import pytest
from airflow_procs import lens_processes, start_lens_airflow, wait_for_output

from customer_lens import pipeline
from customer_lens.config import source_config
from customer_lens.local import airflow_cli, warehouse
from customer_lens.local.airflow_ui import ApiClient

CHAIN = ("extract_sales", "extract_service", "extract_survey", "lens_transform", "lens_guard")


def _runs(api: ApiClient, dag_id: str) -> list[dict]:
    return api.get(f"/api/v2/dags/{dag_id}/dagRuns?limit=20")["dag_runs"]


def _wait_for_chain(api: ApiClient, timeout: float) -> dict[str, list[dict]]:
    """Every DAG of the chain has a finished run (or one failed: no point waiting for the rest)."""
    deadline = time.monotonic() + timeout
    runs: dict[str, list[dict]] = {}
    while time.monotonic() < deadline:
        runs = {dag_id: _runs(api, dag_id) for dag_id in CHAIN}
        states = [run["state"] for dag_runs in runs.values() for run in dag_runs]
        if "failed" in states:
            return runs
        if all(dag_runs and dag_runs[-1]["state"] == "success" for dag_runs in runs.values()):
            return runs
        time.sleep(3)
    return runs


def _start_lens_airflow(tmp_path: Path) -> tuple[subprocess.Popen, ApiClient]:
    """``lens airflow`` in the background, and a client logged in to its API."""
    out = tmp_path / "lens-airflow.out"
    proc, port = start_lens_airflow(out)
    text = wait_for_output(out, proc, "Press Ctrl-C to stop.", timeout=300)
    password = re.search(r"login\s+admin / (\S+)", text).group(1)
    api = ApiClient.login(f"http://127.0.0.1:{port}", "admin", password)
    return proc, api


def _backfill_a_week(api: ApiClient, url: str, last_day: dt.datetime, before: int) -> None:
    """The README's backfill of a past week, from a plain shell, run by the same scheduler."""
    week = [(last_day - dt.timedelta(days=d)).date() for d in range(8, 1, -1)]
    done = subprocess.run(
        [
            str(Path(sys.executable).with_name("lens")),
            "backfill",
            "extract_sales",
            "--start",
            str(week[0]),
            "--end",
            str(week[-1]),
        ],
        env=dict(os.environ),
        capture_output=True,
        text=True,
        check=False,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr
    deadline = time.monotonic() + 600
    while time.monotonic() < deadline:
        backfilled = [r for r in _runs(api, "extract_sales") if r["run_type"] == "backfill"]
        if len(backfilled) == 7 and all(r["state"] in ("success", "failed") for r in backfilled):
            break
        time.sleep(3)
    assert sorted(r["state"] for r in backfilled) == ["success"] * 7, backfilled
    with psycopg.connect(url) as conn:  # seven days reloaded inside their months: the same rows
        assert conn.execute("select count(*) from raw_sales.order_lines").fetchone()[0] == before


@pytest.mark.slow
def test_the_scheduler_runs_extract_transform_guard_on_assets(tmp_path: Path, monkeypatch) -> None:
    state = tmp_path / "state"
    for var in ("LENS_WAREHOUSE_URL", "LENS_WAREHOUSE_PORT", "LENS_SALES_SRC_URL", "LENS_SOURCES_DIR"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("LENS_STATE_DIR", str(state))

    # The demo history ends yesterday; the raw layer holds everything before it.
    yesterday = dt.datetime.now(dt.UTC).date() - dt.timedelta(days=1)
    url = warehouse.ensure_running().url
    proc = None
    try:
        pipeline.ensure_demo_data(scale="tiny", seed=11, end_date=yesterday)
        start, end = pipeline.demo_range()
        last_day = end - dt.timedelta(days=1)
        assert last_day.date() == yesterday
        pipeline.load_raw(start, end, step="month", history=True)  # yesterday too, as make run does
        with psycopg.connect(url) as conn:
            before = conn.execute("select count(*) from raw_sales.order_lines").fetchone()[0]

        proc, api = _start_lens_airflow(tmp_path)
        for dag_id in CHAIN:
            api.request("PATCH", f"/api/v2/dags/{dag_id}", {"is_paused": False})

        runs = _wait_for_chain(api, timeout=900)
        summary = {d: [(r["run_type"], r["state"]) for r in rs] for d, rs in runs.items()}
        print(f"chain: {summary}")

        # Each extraction ran once, by schedule, for yesterday; the rest ran on their Assets, once.
        for source in ("sales", "service", "survey"):
            (run,) = runs[f"extract_{source}"]
            assert (run["run_type"], run["state"]) == ("scheduled", "success"), summary
            assert dt.datetime.fromisoformat(run["data_interval_start"]) == last_day
        for dag_id in ("lens_transform", "lens_guard"):
            (run,) = runs[dag_id]
            assert (run["run_type"], run["state"]) == ("asset_triggered", "success"), summary

        _assert_promoted_from_the_last_day(url, last_day)
        with psycopg.connect(url) as conn:  # yesterday reloaded inside its month: nothing doubled, nothing lost
            assert conn.execute("select count(*) from raw_sales.order_lines").fetchone()[0] == before

        _backfill_a_week(api, url, last_day, before)
    finally:
        if proc is not None and proc.poll() is None:
            proc.send_signal(signal.SIGINT)
            with contextlib.suppress(subprocess.TimeoutExpired):
                proc.wait(timeout=120)
        warehouse.embedded().stop()  # before the sweep below: the server carries LENS_STATE_DIR too
        for leftover in lens_processes(state):
            leftover.kill()


def _assert_promoted_from_the_last_day(url: str, last_day: dt.datetime) -> None:
    with psycopg.connect(url, autocommit=True) as conn:
        for name, source in source_config.load().items():
            loaded = conn.execute(
                f"select count(*) from {source.raw_schema}._batches where interval_start = %s and status = 'loaded'",
                (last_day,),
            ).fetchone()[0]
            assert loaded == len(source.entities), name
        passed, failed = conn.execute(
            "select passed, expectations_failed from lens_audit.validation_runs order by started_at desc limit 1"
        ).fetchone()
        assert (passed, failed) == (True, 0)
        baseline_no, status, promoted_by = conn.execute(
            "select baseline_no, status, promoted_by from lens_audit.baselines"
        ).fetchone()
        assert (baseline_no, status) == (1, "current")
        assert "lens_guard" in promoted_by
        assert conn.execute("select count(*) from analytics.customers").fetchone()[0] == 300


@pytest.mark.slow
def test_the_chain_under_dags_test(make_database, tmp_path: Path, monkeypatch) -> None:
    lens_env = {
        "LENS_STATE_DIR": str(tmp_path / "state"),
        "LENS_WAREHOUSE_URL": make_database("chain_dags_test_wh"),
        "LENS_SALES_SRC_URL": make_database("chain_dags_test_sales_src"),
    }
    for var, value in lens_env.items():
        monkeypatch.setenv(var, value)
    pipeline.ensure_demo_data(scale="tiny", seed=11, end_date=dt.date(2026, 6, 30))
    start, end = pipeline.demo_range()
    last_day = end - dt.timedelta(days=1)
    pipeline.load_raw(start, last_day, step="month", history=True)

    env = airflow_cli.environment(home=tmp_path / "airflow", extra=lens_env)
    airflow_cli.airflow("db", "migrate", env=env)
    for source in source_config.load():  # `dags test DAG D` runs the interval ending at D
        airflow_cli.airflow("dags", "test", f"extract_{source}", end.isoformat(), env=env, timeout=600)
    airflow_cli.airflow("dags", "test", "lens_transform", env=env, timeout=900)
    airflow_cli.airflow("dags", "test", "lens_guard", env=env, timeout=900)

    _assert_promoted_from_the_last_day(lens_env["LENS_WAREHOUSE_URL"], last_day)
