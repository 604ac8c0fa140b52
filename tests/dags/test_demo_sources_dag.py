"""The demo-sources DAG under ``airflow dags test``: params reach the generator; a rerun is a no-op."""

from __future__ import annotations

import json
from pathlib import Path

import psycopg

from customer_lens.local import airflow_cli


def test_demo_sources_dag_builds_the_sources_once(make_database, tmp_path: Path) -> None:
    wh, sales = make_database("demo_dag_wh"), make_database("demo_dag_sales")
    files = tmp_path / "sources"
    env = airflow_cli.environment(
        home=tmp_path / "airflow",
        extra={
            "LENS_WAREHOUSE_URL": wh,
            "LENS_SALES_SRC_URL": sales,
            "LENS_SOURCES_DIR": str(files),
            "LENS_STATE_DIR": str(tmp_path / "state"),
        },
    )
    airflow_cli.airflow("db", "migrate", env=env)
    conf = json.dumps({"scale": "tiny", "seed": 11, "end_date": "2026-06-30", "bad_records": False})

    airflow_cli.airflow("dags", "test", "lens_demo_sources", "-c", conf, env=env)

    meta = json.loads((files / "demo_generation.json").read_text())
    assert (meta["scale"], meta["seed"], meta["end_date"]) == ("tiny", 11, "2026-06-30")
    with psycopg.connect(sales) as conn:
        customers = conn.execute("select count(*) from public.customers").fetchone()[0]
        generated_at = conn.execute("select generated_at from public.demo_generation").fetchone()[0]
    assert customers == meta["good_rows"]["customers"] > 0

    second = airflow_cli.airflow("dags", "test", "lens_demo_sources", "-c", conf, env=env)
    assert "'generated': False" in second.stdout + second.stderr
    with psycopg.connect(sales) as conn:
        assert conn.execute("select generated_at from public.demo_generation").fetchone()[0] == generated_at
