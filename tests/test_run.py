"""``lens run`` — the main job behind ``make run`` — end to end (sources, raw layer, marts), twice."""

from __future__ import annotations

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
    with psycopg.connect(wh) as conn:
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
