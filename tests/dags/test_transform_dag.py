"""The transform DAG under ``airflow dags test``: Cosmos builds every mart into the candidate schema."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import psycopg
from lens_cli import run_lens

from customer_lens.airflow.assets import MARTS
from customer_lens.config import environment
from customer_lens.local import airflow_cli


def test_transform_dag_builds_the_marts_into_the_candidate_schema(make_database, tmp_path: Path) -> None:
    wh = make_database("transform_dag_wh")
    lens_env = {"LENS_STATE_DIR": str(tmp_path / "state"), "LENS_WAREHOUSE_URL": wh}
    run_lens("run", "--scale", "tiny", "--seed", "4", env=lens_env)
    env = airflow_cli.environment(home=tmp_path / "airflow", extra=lens_env | {"LENS_DBT_SCHEMA": "candidate_dag_test"})
    airflow_cli.airflow("db", "migrate", env=env)

    out = airflow_cli.airflow("dags", "test", "lens_transform", env=env, timeout=900)

    log = out.stdout + out.stderr
    assert "dbt success   model.customer_lens.customers" in log  # per-model results surface in the task log
    with psycopg.connect(wh) as conn:
        for mart in MARTS:
            rows = conn.execute(f"select count(*) from candidate_dag_test.{mart}").fetchone()[0]
            assert rows > 0, mart
    summary = _xcom(env, "lens_transform", "dbt_build")
    assert summary["model.customer_lens.customers"]["status"] == "success"
    assert len(summary) > 100
    assert not [n for n, r in summary.items() if r["status"] in ("error", "fail", "skipped", "runtime error")]

    # A second run reuses the partial-parse state Cosmos cached (at the latest by the first) instead of
    # parsing the whole project anew.
    again = airflow_cli.airflow("dags", "test", "lens_transform", env=env, timeout=900)
    again_log = again.stdout + again.stderr
    assert "Partial parse is enabled and the latest partial parse file is" in again_log
    assert "Unable to do partial parsing" not in again_log
    assert "dbt success   model.customer_lens.customers" in again_log

    # An operator restates from a closed month: the request is audited and the build recomputes from it.
    with psycopg.connect(wh) as conn:
        (month,) = conn.execute(
            "select (open_from_date - interval '3 months')::date from candidate_dag_test.int_periods_open"
        ).fetchone()
    conf = json.dumps({"from_month": f"{month:%Y-%m}", "reason": "credit notes booked late"})
    airflow_cli.airflow("dags", "test", "lens_restate", "-c", conf, env=env, timeout=900)
    with psycopg.connect(wh) as conn:
        assert conn.execute("select rewrite_from_date from candidate_dag_test.int_periods_open").fetchone() == (month,)
        assert conn.execute(
            "select from_date, reason, actor like 'airflow:%%', baseline_no from lens_audit.restatements "
            "where candidate_schema = 'candidate_dag_test'"
        ).fetchall() == [(month, "credit notes booked late", True, None)]


def _xcom(env: dict, dag_id: str, task_id: str) -> dict:
    """The return value of the latest run of a task, read from the metadata database."""
    script = (
        "import json, sys\n"
        "from airflow.models.xcom import XComModel\n"
        "from airflow.utils.session import create_session\n"
        "with create_session() as s:\n"
        "    row = s.query(XComModel).filter_by(dag_id=sys.argv[1], task_id=sys.argv[2], key='return_value')"
        ".order_by(XComModel.timestamp.desc()).first()\n"
        "    print(json.dumps(row.value if isinstance(row.value, dict) else json.loads(row.value)))"
    )
    out = subprocess.run(
        [sys.executable, "-c", script, dag_id, task_id], env=env, capture_output=True, text=True, check=True
    )
    return json.loads(out.stdout.strip().splitlines()[-1])


def test_transform_dag_runs_on_the_three_raw_assets_and_by_hand() -> None:
    """Scheduled on data (all three raw Assets), not on a clock, so a manual trigger is the only other way."""
    repo = Path(__file__).resolve().parents[2]
    script = (
        "import json, sys\n"
        "from airflow.dag_processing.dagbag import DagBag\n"
        "dag = DagBag(dag_folder=sys.argv[1]).dags['lens_transform']\n"
        "assets = sorted(asset.uri for asset in dag.timetable.asset_condition.objects)\n"
        "outlets = sorted(o.uri for t in dag.tasks for o in t.outlets)\n"
        "print(json.dumps({'assets': assets, 'condition': type(dag.timetable.asset_condition).__name__,\n"
        "    'timetable': type(dag.timetable).__name__, 'outlets': outlets}))"
    )
    env = os.environ | environment.defaults() | environment.airflow_env()
    out = subprocess.run(
        [sys.executable, "-c", script, str(repo / "dags" / "lens_transform.py")],
        env=env,
        capture_output=True,
        text=True,
        check=False,
        timeout=300,
    )
    assert out.returncode == 0, out.stderr[-3000:]
    found = json.loads(out.stdout.strip().splitlines()[-1])
    assert found["assets"] == ["x-lens://raw/sales", "x-lens://raw/service", "x-lens://raw/survey"]
    assert found["condition"].endswith("AssetAll")  # all three updated, not any one of them
    assert found["timetable"] == "AssetTriggeredTimetable"  # no clock: otherwise only a manual trigger
    assert len(found["outlets"]) == len(MARTS)
