"""The extraction DAGs under real Airflow: ``airflow dags test`` per day, and a scheduler-run backfill.

Both must leave exactly the same raw rows, and every successful run must update the source's Asset.
"""

from __future__ import annotations

import datetime as dt
import json
import sqlite3
import time
from pathlib import Path

import psycopg
import pytest
import yaml

from customer_lens.airflow.assets import raw_asset_uri
from customer_lens.local import airflow_cli

DAY1 = dt.datetime(2026, 3, 1, tzinfo=dt.UTC)
DAYS = [DAY1 + dt.timedelta(days=i) for i in range(3)]

SOURCE_ROWS = """
create table public.orders (order_id bigint primary key, customer_id bigint, status text,
                            created_at timestamptz not null, updated_at timestamptz not null);
insert into public.orders values
  (1, 10, 'completed', '2026-03-01 09:00+00', '2026-03-01 09:00+00'),
  (2, 11, 'completed', '2026-03-01 23:59:59+00', '2026-03-01 23:59:59+00'),
  (3, 12, 'returned',  '2026-03-01 10:00+00', '2026-03-03 08:00+00'),   -- changed two days later
  (4, 13, 'completed', '2026-03-02 00:00+00', '2026-03-02 00:00+00'),   -- exactly on a boundary
  (5, 14, 'completed', '2026-03-03 12:00+00', '2026-03-03 12:00+00'),
  (6, 15, 'completed', '2026-03-04 00:00+00', '2026-03-04 00:00+00');   -- after the range
"""


def _config(src_url: str) -> dict:
    return {
        "sources": {
            "shop": {
                "kind": "postgres",
                "url": src_url,
                "start_date": "2026-02-01",
                "entities": {
                    "orders": {
                        "table": "public.orders",
                        "cursor": "updated_at",
                        "primary_key": ["order_id"],
                        "columns": {
                            "order_id": {"type": "bigint", "required": True},
                            "customer_id": "bigint",
                            "status": "text",
                            "created_at": "timestamptz",
                            "updated_at": "timestamptz",
                        },
                    }
                },
            }
        }
    }


def _raw_rows(url: str) -> list[tuple]:
    with psycopg.connect(url) as conn:
        return conn.execute(
            "select _interval_start, _interval_end, order_id, status, updated_at from raw_shop.orders "
            "where _interval_start >= '2026-03-01' and _interval_end <= '2026-03-04' order by 1, 3"
        ).fetchall()


@pytest.mark.slow
def test_daily_dags_test_runs_equal_a_scheduler_backfill(make_database, tmp_path: Path) -> None:
    src = make_database("dag_src")
    with psycopg.connect(src) as conn:
        conn.execute(SOURCE_ROWS)
    config = tmp_path / "sources.yml"
    config.write_text(yaml.safe_dump(_config(src)))
    daily_wh, backfill_wh, metadata = (
        make_database("dag_wh_daily"),
        make_database("dag_wh_backfill"),
        make_database("dag_airflow_meta"),
    )
    base = {"LENS_SOURCES_CONFIG": str(config), "LENS_STATE_DIR": str(tmp_path / "state")}

    # 1. Daily: `airflow dags test` with the logical date at each interval's end (manual-run semantics).
    daily_env = airflow_cli.environment(home=tmp_path / "af-daily", extra=base | {"LENS_WAREHOUSE_URL": daily_wh})
    airflow_cli.airflow("db", "migrate", env=daily_env)
    for day in DAYS:
        end = (day + dt.timedelta(days=1)).date().isoformat()
        airflow_cli.airflow("dags", "test", "extract_shop", end, env=daily_env)

    daily = _raw_rows(daily_wh)
    assert [(r[0].date().isoformat(), r[2]) for r in daily] == [
        ("2026-03-01", 1),
        ("2026-03-01", 2),
        ("2026-03-02", 4),
        ("2026-03-03", 3),
        ("2026-03-03", 5),
    ]

    # 2. Backfill: `airflow backfill create`, executed by a real scheduler (LocalExecutor, Postgres metadata).
    port = airflow_cli.free_port()
    backfill_env = airflow_cli.environment(
        home=tmp_path / "af-backfill",
        metadata_url=metadata,
        port=port,
        extra=base | {"LENS_WAREHOUSE_URL": backfill_wh, "AIRFLOW__CORE__PARALLELISM": "2"},
    )
    airflow_cli.airflow("db", "migrate", env=backfill_env)
    with airflow_cli.Standalone(backfill_env, tmp_path / "standalone.log"):
        _wait_for_dag(backfill_env, "extract_shop")
        airflow_cli.airflow("dags", "unpause", "extract_shop", env=backfill_env)
        airflow_cli.airflow(
            "backfill", "create", "--dag-id", "extract_shop",
            "--from-date", DAYS[0].date().isoformat(), "--to-date", DAYS[-1].date().isoformat(),
            env=backfill_env,
        )  # fmt: skip
        runs = _wait_for_backfill(backfill_env, "extract_shop", expected=3)
    assert sorted(r["logical_date"][:10] for r in runs) == ["2026-03-01", "2026-03-02", "2026-03-03"]
    assert {r["state"] for r in runs} == {"success"}

    assert _raw_rows(backfill_wh) == daily

    # Every successful run published the source's Asset.
    with psycopg.connect(metadata) as conn:
        events = conn.execute(
            "select count(*) from asset_event e join asset a on a.id = e.asset_id "
            "where a.uri = %s and e.source_run_id like 'backfill%%'",
            (raw_asset_uri("shop"),),
        ).fetchone()[0]
    assert events == 3


def _wait_for_dag(env: dict, dag_id: str, timeout: int = 120) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        listed = airflow_cli.airflow("dags", "list", "-o", "json", env=env, check=False)
        if dag_id in listed.stdout:
            return
        time.sleep(2)
    raise AssertionError(f"{dag_id} was never parsed by the DAG processor")


def _wait_for_backfill(env: dict, dag_id: str, expected: int, timeout: int = 240) -> list[dict]:
    deadline = time.monotonic() + timeout
    runs: list[dict] = []
    while time.monotonic() < deadline:
        out = airflow_cli.airflow("dags", "list-runs", dag_id, "-o", "json", env=env, check=False).stdout
        line = next((ln for ln in reversed(out.splitlines()) if ln.startswith("[")), "[]")
        runs = [r for r in json.loads(line) if r["run_id"].startswith("backfill")]
        if len(runs) == expected and all(r["state"] in ("success", "failed") for r in runs):
            return runs
        time.sleep(2)
    raise AssertionError(f"backfill did not finish: {runs}")


def test_a_data_error_fails_the_task_at_once_without_retries(make_database, tmp_path: Path) -> None:
    """A changed column type is not a glitch: the task fails on its first try, the message says why."""
    src, wh = make_database("dag_err_src"), make_database("dag_err_wh")
    with psycopg.connect(src) as conn:
        conn.execute(SOURCE_ROWS)
    config = tmp_path / "sources.yml"
    config.write_text(yaml.safe_dump(_config(src)))
    env = airflow_cli.environment(
        home=tmp_path / "af",
        extra={"LENS_SOURCES_CONFIG": str(config), "LENS_STATE_DIR": str(tmp_path / "state"), "LENS_WAREHOUSE_URL": wh},
    )
    airflow_cli.airflow("db", "migrate", env=env)
    airflow_cli.airflow("dags", "test", "extract_shop", "2026-03-02", env=env)

    changed = _config(src)
    changed["sources"]["shop"]["entities"]["orders"]["columns"]["customer_id"] = "text"
    config.write_text(yaml.safe_dump(changed))
    failed = airflow_cli.airflow("dags", "test", "extract_shop", "2026-03-03", env=env, check=False)
    output = failed.stdout + failed.stderr
    assert "columns.customer_id is text in the sources file" in output
    assert "not retried" in output
    with sqlite3.connect(tmp_path / "af" / "airflow.db") as db:
        tries = db.execute(
            "select ti.state, ti.try_number from task_instance ti join dag_run r on r.run_id = ti.run_id "
            "and r.dag_id = ti.dag_id where ti.dag_id = 'extract_shop' and ti.task_id = 'extract_orders' "
            "order by r.logical_date desc limit 1"
        ).fetchone()
    assert tries == ("failed", 1)  # failed on its first try, no retry scheduled
