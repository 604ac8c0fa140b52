"""A survey export in another shape reaches the marts through the sources file's ``map`` alone.

The demo's survey answers are re-exported the way a survey tool writes them: other column names, one
``Score`` column with a ``Scale`` ("0-10", "1-5", or the name of a reason survey: "renewal", "exit")
instead of ``kind``/``nps_score``/``csat_score``; values outside the value map pass through.
The sources file declares those columns (the raw layer keeps them) and maps them onto the data contract
(customer_lens.contract); after a full build, every answer in staging has the kind and score the
original export gave it, and the NPS/CSAT mart has figures.
"""

from __future__ import annotations

import csv
import datetime as dt
import json
from pathlib import Path

import demo_sources
import psycopg
import pytest
import yaml

from customer_lens import demo, environment, transform

END = dt.date(2026, 10, 31)
SCHEMA = "dbt_mapped_survey"
# The tool's "Scale" column: the score's scale, or the survey's name where it asks for a reason.
SCALE = {"nps": "0-10", "csat": "1-5", "renewal": "renewal", "exit": "exit"}

SURVEY_TOOL = {
    "kind": "files",
    "format": "csv",
    "entities": {
        "responses": {
            "glob": "export_*.csv",
            "file_date": "export_%Y-%m-%d.csv",
            "primary_key": ["response_id"],
            "columns": {
                "response_id": {"source": "Response ID", "type": "text", "required": True},
                "customer_ref": {"source": "Respondent", "type": "text", "required": True},
                "answered_at": {"source": "Answered At", "type": "timestamptz", "required": True},
                "scale": {"source": "Scale", "type": "text", "required": True},
                "score": {"source": "Score", "type": "integer", "min": 0, "max": 10},
                "reason": {"source": "Reason", "type": "text"},
                "comment": {"source": "Comment", "type": "text"},
            },
            "map": {
                "submitted_at": "answered_at",
                "kind": {"column": "scale", "values": {"0-10": "nps", "1-5": "csat"}},
                "nps_score": {"sql": "case when scale = '0-10' then score end"},
                "csat_score": {"sql": "case when scale = '1-5' then score end"},
                "language": {"value": "en"},
            },
        }
    },
}


def _reexport(demo_dir: Path, target: Path) -> dict[str, tuple]:
    """Write the demo's survey files in the survey tool's shape; returns the original answers by id."""
    target.mkdir(parents=True)
    originals = {}
    for path in sorted(demo_dir.glob("responses_*.csv")):
        day = path.name.removeprefix("responses_").removesuffix(".csv")
        with path.open(newline="") as src, (target / f"export_{day}.csv").open("w", newline="") as dst:
            writer = csv.writer(dst)
            writer.writerow(["Response ID", "Respondent", "Answered At", "Scale", "Score", "Reason", "Comment"])
            for row in csv.DictReader(src):
                score = row["nps_score"] or row["csat_score"]
                writer.writerow(
                    [
                        row["response_id"],
                        row["customer_ref"],
                        row["submitted_at"],
                        SCALE[row["kind"]],
                        score,
                        row["reason"],
                        row["comment"],
                    ]
                )
                originals[row["response_id"]] = (
                    row["kind"],
                    int(row["nps_score"]) if row["nps_score"] else None,
                    int(row["csat_score"]) if row["csat_score"] else None,
                )
    return originals


@pytest.fixture(scope="module")
def mapped(make_database, tmp_path_factory) -> tuple[str, dict[str, tuple]]:
    tmp = tmp_path_factory.mktemp("mapped_survey")
    sales_url, wh = make_database("mapped_sales_src"), make_database("mapped_wh")
    files = tmp / "sources"
    demo.generate(scale="tiny", seed=7, end_date=END, sales_url=sales_url, files_dir=files)
    originals = _reexport(files / "survey", tmp / "survey_tool")
    document = demo_sources.sources_document(sales_url, files)
    document["sources"]["survey"] = SURVEY_TOOL | {"location": str(tmp / "survey_tool")}
    config = tmp / "sources.yml"
    config.write_text(yaml.safe_dump(document))
    start_date = json.loads((files / "demo_generation.json").read_text())["start_date"]
    start = dt.datetime.combine(dt.date.fromisoformat(start_date), dt.time(), dt.UTC)
    end = dt.datetime.combine(END, dt.time(), dt.UTC) + dt.timedelta(days=1)
    env = {"LENS_WAREHOUSE_URL": wh, "LENS_STATE_DIR": str(tmp / "state"), "LENS_SOURCES_CONFIG": str(config)}
    with environment.overridden(env):
        demo_sources.load(document, start, end, wh, history=True)
        transform.build(schema=SCHEMA, full_refresh=True)  # raises DbtError if any model or test fails
    return wh, originals


def test_the_raw_layer_keeps_the_exports_own_columns(mapped) -> None:
    wh, originals = mapped
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


def test_every_answer_keeps_its_kind_and_score(mapped) -> None:
    wh, originals = mapped
    with psycopg.connect(wh) as conn:
        staged = {
            response_id: (kind, nps, csat)
            for response_id, kind, nps, csat, language in conn.execute(
                f"select response_id, response_kind, nps_score, csat_score, language_code "
                f"from {SCHEMA}.stg_survey__responses"
            )
            if language == "en"
        }
    assert staged == originals
    assert {kind for kind, *_ in staged.values()} == {"nps", "csat", "renewal", "exit"}


def test_the_feedback_mart_has_nps_and_csat(mapped) -> None:
    wh, _ = mapped
    with psycopg.connect(wh) as conn:
        with_nps, with_csat = conn.execute(
            f"select count(*) filter (where nps is not null), count(*) filter (where csat_pct is not null) "
            f"from {SCHEMA}.nps_by_segment"
        ).fetchone()
    assert with_nps > 0 and with_csat > 0
