"""A survey export in another shape reaches the marts through the sources file's ``map`` alone.

The demo's survey answers are re-exported the way a survey tool writes them (a byte-order mark, comments
on several lines as one quoted field): other column names, one
``Score`` column with a ``Scale`` ("0-10", "1-5", or the name of a reason survey: "renewal", "exit")
instead of ``kind``/``nps_score``/``csat_score``; values outside the value map pass through.
The sources file declares those columns (the raw layer keeps them) and maps them onto the data contract
(customer_lens.config.contract); after a full build, every answer in staging has the kind and score the
original export gave it, and the NPS/CSAT mart has figures.
"""

from __future__ import annotations

import csv
import datetime as dt
from decimal import ROUND_HALF_UP, Decimal
from pathlib import Path

import demo_sources
import psycopg
import pytest
import yaml

from customer_lens import demo
from customer_lens.config import environment
from customer_lens.transform import builds

END = dt.date(2026, 10, 31)
SCHEMA = "dbt_mapped_survey"


@pytest.fixture(scope="module")
def mapped(make_database, tmp_path_factory) -> tuple[str, dict[str, tuple], Path]:
    tmp = tmp_path_factory.mktemp("mapped_survey")
    sales_url, wh = make_database("mapped_sales_src"), make_database("mapped_wh")
    files = tmp / "sources"
    demo.generate(scale="tiny", seed=7, end_date=END, sales_url=sales_url, files_dir=files)
    originals = demo_sources.survey_tool_export(files / "survey", tmp / "survey_tool")
    document = demo_sources.sources_document(sales_url, files)
    document["sources"]["survey"] = demo_sources.SURVEY_TOOL | {"location": str(tmp / "survey_tool")}
    config = tmp / "sources.yml"
    config.write_text(yaml.safe_dump(document))
    start, end = demo_sources.demo_interval(files, END)
    env = {"LENS_WAREHOUSE_URL": wh, "LENS_STATE_DIR": str(tmp / "state"), "LENS_SOURCES_CONFIG": str(config)}
    with environment.overridden(env):
        demo_sources.load(document, start, end, wh, history=True)
        builds.build(schema=SCHEMA, full_refresh=True)  # raises DbtError if any model or test fails
    return wh, originals, tmp / "survey_tool"


def test_the_raw_layer_keeps_the_exports_own_columns(mapped) -> None:
    wh, originals, _ = mapped
    with psycopg.connect(wh) as conn:
        columns = {
            name
            for (name,) in conn.execute(
                "select column_name from information_schema.columns "
                "where table_schema = 'raw_survey' and table_name = 'responses'"
            )
        }
        (rows,) = conn.execute("select count(*) from raw_survey.responses").fetchone()
    assert {"scale", "score", "answered_at"} <= columns
    assert not {"kind", "nps_score", "csat_score", "submitted_at"} & columns
    assert rows == len(originals) > 100


def test_every_answer_keeps_its_kind_score_and_comment(mapped) -> None:
    wh, originals, _ = mapped
    with psycopg.connect(wh) as conn:
        staged = {
            response_id: (kind, nps, csat, comment)
            for response_id, kind, nps, csat, comment, language in conn.execute(
                f"select response_id, response_kind, nps_score, csat_score, response_comment, language_code "
                f"from {SCHEMA}.stg_survey__responses"
            )
            if language == "en"
        }
    assert staged == originals
    assert {kind for kind, *_ in staged.values()} == {"nps", "csat", "renewal", "exit"}
    # comments written on two lines arrived whole (a quoted field spanning lines is one value)
    assert sum("\n" in (comment or "") for *_, comment in staged.values()) > 10


def test_nps_and_csat_by_month_match_the_export(mapped) -> None:
    """nps_by_segment over every segment, month by month, against the export's own rows in Python."""
    wh, _, export = mapped
    expected: dict[dt.date, list[int]] = {}
    for path in sorted(export.glob("export_*.csv")):
        with path.open(newline="", encoding="utf-8-sig") as rows:
            for row in csv.DictReader(rows):
                answered = dt.datetime.fromisoformat(row["Answered At"]).astimezone(dt.UTC).date()
                if answered > END or row["Scale"] not in ("0-10", "1-5") or not row["Score"]:
                    continue
                counts = expected.setdefault(answered.replace(day=1), [0, 0, 0, 0, 0, 0])
                score = int(row["Score"])
                if row["Scale"] == "0-10":
                    counts[0] += 1
                    counts[1 if score >= 9 else 2 if score >= 7 else 3] += 1
                else:
                    counts[4] += 1
                    counts[5] += score >= 4

    def pct(part: int, whole: int) -> Decimal | None:
        return (Decimal(100 * part) / whole).quantize(Decimal("0.01"), ROUND_HALF_UP) if whole else None

    with psycopg.connect(wh) as conn:
        actual = {
            month: tuple(values)
            for month, *values in conn.execute(
                f"select month_start_date, nps_responses, promoters, passives, detractors, csat_responses, "
                f"csat_satisfied_responses, nps, csat_pct from {SCHEMA}.nps_by_segment "
                f"where rfm_segment = 'all' and (nps_responses > 0 or csat_responses > 0)"
            )
        }
    assert actual == {
        month: (*counts, pct(counts[1] - counts[3], counts[0]), pct(counts[5], counts[4]))
        for month, counts in expected.items()
    }
    assert sum(counts[0] for counts in expected.values()) > 100
