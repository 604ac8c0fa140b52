"""``lens run`` — the main job behind ``make run`` — end to end (sources, raw layer, marts), twice."""

from __future__ import annotations

import re
from pathlib import Path

import psycopg
from lens_cli import run_lens

COUNTS = """
select (select count(*) from raw_sales.order_lines), (select count(*) from raw_service.tickets),
       (select count(*) from raw_survey.responses), (select count(*) from raw_sales._batches)
"""


def test_run_builds_sources_and_raw_layer_and_a_rerun_changes_nothing(make_database, tmp_path: Path) -> None:
    wh = make_database("run_wh")
    env = {"LENS_STATE_DIR": str(tmp_path / "state"), "LENS_WAREHOUSE_URL": wh}

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
    sales_src = wh.rsplit("/", 1)[0] + "/sales_src"
    with psycopg.connect(sales_src) as conn:
        assert conn.execute("select count(*) from public.order_lines").fetchone()[0] == counts[0]

    second = run_lens("run", "--scale", "tiny", "--seed", "5", env=env)
    assert "demo data unchanged" in second.stdout
    assert "raw layer   up to date" in second.stdout
    assert "marts       up to date" in second.stdout
    with psycopg.connect(wh) as conn:
        assert conn.execute(COUNTS).fetchone() == counts
    # The run ends with a promoted, validated baseline, its KPIs and the report; the rerun keeps it.
    assert "promoted to baseline #1" in first.stdout and "headline KPIs" in first.stdout
    report = Path(first.stdout.split("report      ")[1].split()[0])
    assert report.is_file() and report.stat().st_size > 100_000
    assert "baseline    #1 unchanged" in second.stdout
    with psycopg.connect(wh) as conn:
        assert conn.execute("select count(*) from lens_audit.baselines").fetchone()[0] == 1


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
