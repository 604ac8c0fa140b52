"""DAG integrity: the project's DAGs pass, and the check really catches broken DAG files."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

from customer_lens.airflow.dag_integrity import check_folder

REPO = Path(__file__).resolve().parents[2]

GOOD_HEADER = '''
"""A well-formed DAG."""
import pendulum
from airflow.sdk import dag, task
'''
GOOD_DAG = """
@dag(schedule=None, start_date=pendulum.datetime(2024, 1, 1, tz="UTC"), tags=["t"], doc_md=__doc__,
     default_args={{"owner": "team", "retries": 1}})
def {name}():
    @task
    def step():
        return 1
    step()
{name}()
"""


def _write(folder: Path, name: str, body: str) -> None:
    (folder / f"{name}.py").write_text(textwrap.dedent(body))


def test_project_dags_pass() -> None:
    dag_files = sorted(p.name for p in (REPO / "dags").glob("*.py"))
    assert dag_files, "dags/ holds no DAG file"
    problems = check_folder(REPO / "dags")
    assert problems == [], "\n".join(map(str, problems))


def test_broken_dag_files_are_reported(tmp_path: Path) -> None:
    _write(tmp_path, "good", GOOD_HEADER + GOOD_DAG.format(name="good"))
    _write(tmp_path, "syntax", GOOD_HEADER + "def broken(:\n    pass\n")
    _write(
        tmp_path,
        "bare",
        GOOD_HEADER
        + """
@dag(schedule=None, start_date=pendulum.datetime(2024, 1, 1, tz="UTC"))
def bare():
    @task
    def step():
        return 1
    step()
bare()
""",
    )
    _write(tmp_path, "heavy", GOOD_HEADER + "import pandas  # noqa\n" + GOOD_DAG.format(name="heavy"))
    _write(
        tmp_path,
        "connects",
        GOOD_HEADER
        + "import socket\nsocket.create_connection(('127.0.0.1', 9), timeout=1)\n"
        + GOOD_DAG.format(name="connects"),
    )
    _write(
        tmp_path,
        "queries",
        GOOD_HEADER
        + "import psycopg\npsycopg.connect('postgresql://x@127.0.0.1:1/x')\n"
        + GOOD_DAG.format(name="queries"),
    )
    _write(tmp_path, "helpers", "def shared_helper():\n    return 42\n")

    found = {(p.file, p.kind) for p in check_folder(tmp_path)}

    assert found == {
        ("syntax.py", "import_error"),
        ("bare.py", "missing_tags"),
        ("bare.py", "missing_doc"),
        ("bare.py", "missing_owner"),
        ("bare.py", "missing_retries"),
        ("heavy.py", "heavy_import"),
        ("connects.py", "parse_time_work"),
        ("queries.py", "parse_time_work"),
        ("helpers.py", "no_dag"),
    }


def test_only_the_dags_that_run_dbt_load_cosmos_operators_when_parsed() -> None:
    """Parsing is what the scheduler does every few seconds: Cosmos' operators only where a task builds.
    (Airflow itself loads Cosmos' plugin and constants, for every DAG file; the operators are what a DAG
    file adds.)"""
    probe = "import runpy, sys; runpy.run_path(sys.argv[1]); print('cosmos.operators.local' in sys.modules)"
    loads_operators = {}
    for name in ("lens_guard", "lens_extract", "lens_baseline_rollback", "lens_transform"):
        proc = subprocess.run(
            [sys.executable, "-c", probe, str(REPO / "dags" / f"{name}.py")],
            capture_output=True,
            text=True,
            check=True,
        )
        loads_operators[name] = proc.stdout.strip().splitlines()[-1] == "True"
    assert loads_operators == {
        "lens_guard": False,
        "lens_extract": False,
        "lens_baseline_rollback": False,
        "lens_transform": True,
    }
