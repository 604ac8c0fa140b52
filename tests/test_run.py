"""``lens run`` — the main job behind ``make run`` — end to end (sources, raw layer, marts), twice."""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import psycopg
from lens_cli import run_lens

from customer_lens.local import warehouse

COUNTS = """
select (select count(*) from raw_sales.order_lines), (select count(*) from raw_service.tickets),
       (select count(*) from raw_survey.responses), (select count(*) from raw_sales._batches)
"""


def _project_copy(home: Path) -> Path:
    """The project's dags/, config/ and dbt_project/ in ``home`` (LENS_HOME), as an analyst's checkout."""
    repo = Path(__file__).resolve().parents[1]
    ignore = shutil.ignore_patterns("target", "logs", "dbt_packages", "__pycache__")
    for folder in ("dags", "config", "dbt_project"):
        shutil.copytree(repo / folder, home / folder, ignore=ignore)
    return home


def _first_run(env: dict[str, str], wh: str) -> tuple[subprocess.CompletedProcess, tuple]:
    """The first run: demo sources, raw layer as lens_loader, marts as lens_transformer."""
    first = run_lens("run", "--scale", "tiny", "--seed", "5", env=env)
    assert "demo data generated" in first.stdout
    assert "raw layer" in first.stdout and "0 rejected" in first.stdout
    assert "marts       built in schema analytics_candidate" in first.stdout
    # Progress on stderr (plain milestones without a terminal), not dbt's line per node.
    assert re.search(r"^raw layer   (\d+)/\1 batches in [\d.]+s$", first.stderr, re.M), first.stderr
    assert re.search(r"^marts       (\d+)/\1 dbt nodes in [\d.]+s$", first.stderr, re.M), first.stderr
    assert re.search(r"^guard       snapshot validated in [\d.]+s$", first.stderr, re.M), first.stderr
    assert "START sql" not in first.stdout + first.stderr
    with psycopg.connect(wh) as conn:
        # The pipeline loaded as lens_loader and built as lens_transformer (the default roles).
        owners = dict(
            conn.execute(
                "select nspname, pg_get_userbyid(nspowner) from pg_namespace "
                "where nspname in ('raw_sales', 'raw_service', 'raw_survey', 'analytics_candidate')"
            ).fetchall()
        )
        assert owners == {
            "raw_sales": "lens_loader",
            "raw_service": "lens_loader",
            "raw_survey": "lens_loader",
            "analytics_candidate": "lens_transformer",
        }
        assert conn.execute(
            "select count(*) from pg_class c join pg_namespace n on n.oid = c.relnamespace "
            "where n.nspname = 'analytics_candidate' and c.relkind in ('r', 'v') "
            "and pg_get_userbyid(c.relowner) <> 'lens_transformer'"
        ).fetchone() == (0,)
        counts = conn.execute(COUNTS).fetchone()
        marts = conn.execute("select count(*) from analytics_candidate.customer_segments").fetchone()[0]
    assert marts > 0
    assert all(n > 0 for n in counts)
    sales_src = warehouse.with_database(wh, "sales_src")
    with psycopg.connect(sales_src) as conn:
        assert conn.execute("select count(*) from public.order_lines").fetchone()[0] == counts[0]
    return first, counts


def _rerun_changes_nothing(env: dict[str, str], wh: str, first: subprocess.CompletedProcess, counts: tuple) -> None:
    """A rerun on the same data: nothing loaded or built again; the baseline, its report and docs kept."""
    second = run_lens("run", "--scale", "tiny", "--seed", "5", env=env)
    assert "demo data unchanged" in second.stdout
    assert "raw layer   up to date" in second.stdout
    assert "marts       up to date" in second.stdout
    with psycopg.connect(wh) as conn:
        assert conn.execute(COUNTS).fetchone() == counts
    # The run ends with a promoted, validated baseline, its KPIs and the report; the rerun keeps it.
    assert "promoted to baseline #1" in first.stdout and "headline KPIs" in first.stdout
    # what each guard step took (a first baseline has nothing to compare with)
    assert re.search(r"^ +freeze [0-9.]+ s, validate [0-9.]+ s, promote [0-9.]+ s$", first.stdout, re.M)
    report = Path(first.stdout.split("report      ")[1].split()[0])
    assert report.is_file() and report.stat().st_size > 100_000
    # The validation report is linked relative to the report (it travels with the reports folder).
    html = report.read_text()
    assert 'href="validation/v' in html and 'href="file://' not in html
    # dbt docs as a page that opens from disk: manifest and catalog inlined, no server needed.
    docs = Path(first.stdout.split("dbt docs    ")[1].split()[0])
    assert docs.name == "static_index.html" and "customers_by_country" not in docs.read_text()
    assert "model.customer_lens.customer_segments" in docs.read_text()
    assert "baseline    #1 unchanged" in second.stdout
    with psycopg.connect(wh) as conn:
        assert conn.execute("select count(*) from lens_audit.baselines").fetchone()[0] == 1


def _analyst_runs_dbt(env: dict[str, str], wh: str, home: Path, tmp_path: Path) -> None:
    """The analyst's loop from a shell: lens dbt builds as the pipeline does (role, schema, .lens/dbt)."""
    state = tmp_path / "state"
    (state / "dbt" / "target" / "run_results.json").unlink()
    run_lens("dbt", "run", "--select", "stg_sales__orders", env=env)
    assert json.loads((state / "dbt" / "target" / "run_results.json").read_text())["results"][0]["status"] == "success"
    with psycopg.connect(wh) as conn:
        assert conn.execute(
            "select pg_get_userbyid(relowner) from pg_class "
            "where oid = 'analytics_candidate.stg_sales__orders'::regclass"
        ).fetchone() == ("lens_transformer",)
    assert not (home / "dbt_project" / "target").exists()  # nothing written into the project


def _analyst_adds_a_table_mart(env: dict[str, str], wh: str, home: Path, tmp_path: Path) -> None:
    """An analyst adds a mart: the next run builds it (same data, new project), guards and promotes it."""
    core = home / "dbt_project" / "models" / "marts" / "core"
    (core / "customers_by_country.sql").write_text(
        "select country_code, count(*) as customers from {{ ref('customers') }} group by country_code\n"
    )
    with (core / "_core__models.yml").open("a") as yml:  # the folder's one yml, as the conventions say
        yml.write(
            "  - name: customers_by_country\n"
            "    description: Customers per country.\n"
            "    columns:\n"
            "      - {name: country_code, data_type: text, description: Country.}\n"
            "      - {name: customers, data_type: bigint, description: Customers.}\n"
        )
    third = run_lens("run", "--scale", "tiny", "--seed", "5", env=env)
    assert "raw layer   up to date" in third.stdout
    assert "marts       built in schema analytics_candidate" in third.stdout
    assert "promoted to baseline #2" in third.stdout
    assert "no primary key, so no key checks: customers_by_country" in third.stdout
    strict = tmp_path / "guard.yml"
    strict.write_text("require_primary_keys: true\n")
    refused = run_lens("guard", env=env | {"LENS_GUARD_CONFIG": str(strict)}, check=False)
    assert refused.returncode == 1 and "mart(s) without a primary key: customers_by_country" in refused.stderr
    with psycopg.connect(wh) as conn:
        by_country = conn.execute("select sum(customers) from analytics.customers_by_country").fetchone()[0]
        assert by_country == conn.execute("select count(*) from analytics.customers").fetchone()[0] > 0


def _analyst_adds_a_period_mart(env: dict[str, str], wh: str, home: Path) -> None:
    """... and a period mart, as dbt_project/README.md shows it: incremental on open periods, and guarded."""
    core = home / "dbt_project" / "models" / "marts" / "core"
    (core / "monthly_revenue.sql").write_text(PERIOD_MART)
    with (core / "_core__models.yml").open("a") as yml:
        yml.write(
            "  - name: monthly_revenue\n"
            "    description: Revenue per month.\n"
            "    constraints: [{type: primary_key, columns: [month_start_date]}]\n"
            "    columns:\n"
            "      - {name: month_start_date, data_type: date, description: First day of the month.}\n"
            "      - {name: month_end_date, data_type: date, description: Last day of the month.}\n"
            "      - {name: orders, data_type: bigint, description: Revenue orders.}\n"
            "      - {name: revenue, data_type: numeric, description: Their revenue.}\n"
        )
    fourth = run_lens("run", "--scale", "tiny", "--seed", "5", env=env)
    assert "promoted to baseline #3" in fourth.stdout
    with psycopg.connect(wh, autocommit=True) as conn:
        assert (
            "monthly_revenue"
            in conn.execute(
                "select s.marts from lens_audit.baselines b join lens_audit.snapshots s using (snapshot_id) "
                "where b.status = 'current'"
            ).fetchone()[0]
        )
        assert conn.execute("select sum(revenue) from analytics.monthly_revenue").fetchone()[0] > 0
        # a closed month's row is kept as built, an open month's is recomputed
        closed, opened = conn.execute(
            "select min(month_start_date), max(month_start_date) from analytics_candidate.monthly_revenue"
        ).fetchone()
        conn.execute("update analytics_candidate.monthly_revenue set revenue = -1")
    run_lens("transform", env=env)
    with psycopg.connect(wh) as conn:
        kept = dict(conn.execute("select month_start_date, revenue from analytics_candidate.monthly_revenue"))
    assert kept[closed] == -1 and kept[opened] > 0


def test_run_builds_sources_and_raw_layer_and_a_rerun_changes_nothing(make_database, tmp_path: Path) -> None:
    wh = make_database("run_wh")
    home = _project_copy(tmp_path / "home")
    env = {"LENS_STATE_DIR": str(tmp_path / "state"), "LENS_WAREHOUSE_URL": wh, "LENS_HOME": str(home)}

    first, counts = _first_run(env, wh)
    _rerun_changes_nothing(env, wh, first, counts)
    _analyst_runs_dbt(env, wh, home, tmp_path)
    _analyst_adds_a_table_mart(env, wh, home, tmp_path)
    _analyst_adds_a_period_mart(env, wh, home)


def _readme_period_mart() -> str:
    """The period mart of dbt_project/README.md ("Closed periods"), as an analyst copies it from there."""
    readme = (Path(__file__).resolve().parents[1] / "dbt_project" / "README.md").read_text()
    section = readme[readme.index("## Closed periods") :]
    return section[section.index("```sql\n") + len("```sql\n") : section.index("```\n", section.index("```sql"))]


PERIOD_MART = _readme_period_mart()


def _current_baseline(url: str) -> tuple[int, str]:
    with psycopg.connect(url) as conn:
        return conn.execute(
            "select baseline_no, snapshot_id from lens_audit.baselines where status = 'current'"
        ).fetchone()


def test_runs_on_anomalous_data_are_blocked_and_the_baseline_stays(make_database, tmp_path: Path) -> None:
    wh = make_database("anomaly_wh")
    env = {
        "LENS_STATE_DIR": str(tmp_path / "state"),
        "LENS_WAREHOUSE_URL": wh,
        "LENS_SALES_SRC_URL": make_database("anomaly_sales_src"),
    }
    run_lens("run", "--scale", "tiny", "--seed", "6", env=env, timeout=900)
    baseline = _current_baseline(wh)
    with psycopg.connect(wh) as conn:
        customers = conn.execute("select count(*) from analytics.customers").fetchone()[0]

    for anomaly, failed_check in (
        ("duplicate-orders", "closed past periods unchanged"),
        ("vanished-region", "no group_value of baseline #1 vanishes"),
    ):
        blocked = run_lens(
            "run", "--scale", "tiny", "--seed", "6", "--anomaly", anomaly, env=env, check=False, timeout=900
        )
        assert blocked.returncode == 1, blocked.stdout + blocked.stderr
        assert "failed validation and is quarantined" in blocked.stderr
        assert failed_check in blocked.stderr, blocked.stderr
        assert "report:" in blocked.stderr
        assert _current_baseline(wh) == baseline
        with psycopg.connect(wh) as conn:
            assert conn.execute("select count(*) from analytics.customers").fetchone()[0] == customers
            quarantined = conn.execute("select count(*) from lens_audit.snapshots where status = 'quarantined'")
            assert quarantined.fetchone()[0] >= 1


def test_a_run_killed_during_its_first_build_is_finished_by_the_next(make_database, tmp_path: Path) -> None:
    """Killed while dbt rebuilds everything: the guard refuses the half-built candidate, the next run redoes it."""
    wh = make_database("killed_run_wh")
    env = {"LENS_STATE_DIR": str(tmp_path / "state"), "LENS_WAREHOUSE_URL": wh}
    full_env = {k: v for k, v in os.environ.items() if not k.startswith("LENS_") or k == "LENS_HOME"} | env
    lens = str(Path(sys.executable).with_name("lens"))
    proc = subprocess.Popen(
        [lens, "run", "--scale", "tiny", "--seed", "6"],
        env=full_env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        for line in proc.stderr:  # plain progress milestones: kill once dbt is a quarter through
            if re.match(r"^marts {7}\d+/\d+$", line.strip()):
                proc.kill()
                break
    finally:
        proc.kill()
        proc.wait(timeout=60)
    assert proc.returncode == -signal.SIGKILL

    refused = run_lens("guard", env=env, check=False)
    assert refused.returncode == 1 and "Traceback" not in refused.stderr
    assert "the last dbt build into analytics_candidate did not finish" in refused.stderr

    again = run_lens("run", "--scale", "tiny", "--seed", "6", env=env)
    assert "raw layer   up to date" in again.stdout  # the load had finished; the build is what is redone
    assert "marts       built in schema analytics_candidate" in again.stdout
    assert "promoted to baseline #1" in again.stdout
    sales_src = warehouse.with_database(wh, "sales_src")
    with psycopg.connect(sales_src) as conn:
        (orders,) = conn.execute("select count(*) from public.orders").fetchone()
    with psycopg.connect(wh) as conn:
        assert conn.execute("select count(*) from analytics.orders").fetchone() == (orders,)
        assert conn.execute(
            "select status, full_refresh from lens_audit.candidate_builds where schema_name = 'analytics_candidate'"
        ).fetchone() == ("built", True)
