"""The project's own sources file pointed at a demo generation, and loading it, for tests that build dbt."""

from __future__ import annotations

import csv
import datetime as dt
import json
from pathlib import Path

import yaml

from customer_lens import extract
from customer_lens.config import source_config

REPO = Path(__file__).resolve().parents[1]


def sources_document(sales_url: str, files: Path) -> dict:
    """``config/sources.yml`` as a dict, reading the demo's sales database and export folders."""
    document = yaml.safe_load((REPO / "config" / "sources.yml").read_text())
    document["sources"]["sales"]["url"] = sales_url
    for name in ("service", "survey"):
        document["sources"][name]["location"] = str(files / name)
    return document


def demo_interval(files: Path, end_date: dt.date) -> tuple[dt.datetime, dt.datetime]:
    """``[first day, day after end_date)`` of a demo generation written to ``files``, as UTC datetimes."""
    start_date = json.loads((files / "demo_generation.json").read_text())["start_date"]
    start = dt.datetime.combine(dt.date.fromisoformat(start_date), dt.time(), dt.UTC)
    return start, dt.datetime.combine(end_date, dt.time(), dt.UTC) + dt.timedelta(days=1)


def load(document: dict, start: dt.datetime, end: dt.datetime, wh: str, history: bool) -> None:
    """Extract every source of ``document`` for ``[start, end)``, month by month, into ``wh``."""
    for source in source_config.parse(document).values():
        extract.extract_range(source, start, end, step="month", warehouse_url=wh, history=history)


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


def survey_tool_export(demo_dir: Path, target: Path) -> dict[str, tuple]:
    """Write the demo's survey files in the survey tool's shape; returns the original answers by id.

    As such tools do, the files start with a UTF-8 byte-order mark, and a comment written on two lines
    is one quoted field spanning them (every comment of an answer whose id ends in 0 or 5 gets a
    second line). Returns ``{response_id: (kind, nps_score, csat_score, comment)}``.
    """
    target.mkdir(parents=True)
    originals = {}
    for path in sorted(demo_dir.glob("responses_*.csv")):
        day = path.name.removeprefix("responses_").removesuffix(".csv")
        with (
            path.open(newline="") as src,
            (target / f"export_{day}.csv").open("w", newline="", encoding="utf-8-sig") as dst,
        ):
            writer = csv.writer(dst)
            writer.writerow(["Response ID", "Respondent", "Answered At", "Scale", "Score", "Reason", "Comment"])
            for row in csv.DictReader(src):
                score = row["nps_score"] or row["csat_score"]
                comment = row["comment"]
                if comment and row["response_id"][-1] in "05":
                    comment += "\nP.S. written on a second line"
                writer.writerow(
                    [
                        row["response_id"],
                        row["customer_ref"],
                        row["submitted_at"],
                        SCALE[row["kind"]],
                        score,
                        row["reason"],
                        comment,
                    ]
                )
                originals[row["response_id"]] = (
                    row["kind"],
                    int(row["nps_score"]) if row["nps_score"] else None,
                    int(row["csat_score"]) if row["csat_score"] else None,
                    comment or None,
                )
    return originals
