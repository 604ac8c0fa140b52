"""The generator's ``--bad-records`` catalogue through the real extraction of the demo sources.

Every catalogued fault must land where the manifest says (a reject with the right reason, a loaded
row, or the overflow column), and nothing else may be lost: rows in = rows loaded + rows rejected.
"""

from __future__ import annotations

import csv
import datetime as dt
import json
from pathlib import Path

import psycopg
import pytest
import yaml

from customer_lens import demo, extract
from customer_lens.config import source_config

REPO = Path(__file__).resolve().parents[2]
END = dt.date(2026, 10, 31)


@pytest.fixture(scope="module")
def loaded(make_database, tmp_path_factory) -> dict:
    """Tiny demo sources with bad records, extracted month by month into a fresh warehouse."""
    tmp = tmp_path_factory.mktemp("bad_records")
    sales_url, wh = make_database("bad_sales_src"), make_database("bad_wh")
    files = tmp / "sources"
    demo.generate(scale="tiny", seed=3, end_date=END, sales_url=sales_url, files_dir=files, bad_records=True)
    document = yaml.safe_load((REPO / "config" / "sources.yml").read_text())
    # The shipped settings: a few faults in a small batch are rejected, the batch still loads.
    document["sources"]["sales"]["url"] = sales_url
    for name in ("service", "survey"):
        document["sources"][name]["location"] = str(files / name)
    sources = source_config.parse(document)
    meta = json.loads((files / "demo_generation.json").read_text())
    start = dt.datetime.combine(dt.date.fromisoformat(meta["start_date"]), dt.time(), dt.UTC)
    end = dt.datetime.combine(END, dt.time(), dt.UTC) + dt.timedelta(days=1)
    results = []
    for source in sources.values():
        results += extract.extract_range(source, start, end, step="month", warehouse_url=wh, history=True)
    manifest = json.loads((files / "bad_records.json").read_text())
    return {"wh": wh, "sales": sales_url, "files": files, "manifest": manifest, "results": results}


def _one(url: str, query: str, params: tuple = ()) -> tuple:
    with psycopg.connect(url) as conn:
        return conn.execute(query, params or None).fetchone()


def test_every_catalogued_fault_lands_as_documented(loaded) -> None:
    wh = loaded["wh"]
    assert loaded["manifest"], "the generator injected no faults"
    checked = 0
    for fault in loaded["manifest"]:
        schema = f"raw_{fault['source']}"
        entity = {"order": "orders", "order_line": "order_lines"}.get(fault["entity"])
        kind, _, reason = fault["expected"].partition(":")
        where = f"{fault['fault']} at {fault['file']}:{fault['line']} key {fault['key']}"
        if kind == "reject":
            if fault["file"]:
                found = _one(
                    wh,
                    f"select reason from {schema}._rejects where _source_file = %s and _source_line = %s",
                    (fault["file"].split("/")[-1], fault["line"]),
                )
            else:
                found = _one(
                    wh,
                    f"select reason from {schema}._rejects where entity = %s and record_key = %s",
                    (entity, str(fault["key"])),
                )
            assert found == (reason,), where
        elif fault["fault"] == "missing_optional_column":
            rows, nulls = _one(
                wh,
                f"select count(*), count(*) filter (where language is null) from {schema}.responses "
                "where _source_file = %s",
                (fault["file"].split("/")[-1],),
            )
            assert rows > 0 and rows == nulls, where
        elif fault["file"]:  # flagged or overflow: the row is loaded, from exactly that line
            table = "tickets" if fault["source"] == "service" else "responses"
            found = _one(
                wh,
                f"select _extra from {schema}.{table} where _source_file = %s and _source_line = %s",
                (fault["file"].split("/")[-1], fault["line"]),
            )
            assert found is not None, where
            if kind == "overflow":
                assert found[0] and "sla_policy" in found[0], where
        else:  # sales rows pointing at unknown parents are loaded (the models flag them)
            key_col = "order_id" if entity == "orders" else "order_line_id"
            assert _one(wh, f"select count(*) from raw_sales.{entity} where {key_col} = %s", (fault["key"],)) == (1,), (
                where
            )
        checked += 1
    assert checked == len(loaded["manifest"])


def test_nothing_is_lost_rows_in_equal_loaded_plus_rejected(loaded) -> None:
    wh, files = loaded["wh"], loaded["files"]
    # Files: every non-empty line after the CSV header is one record.
    for source, table, pattern, header in (
        ("service", "tickets", "tickets_*.ndjson", 0),
        ("survey", "responses", "responses_*.csv", 1),
    ):
        lines = sum(
            sum(1 for line in path.read_bytes().splitlines()[header:] if line.strip())
            for path in (files / source).glob(pattern)
        )
        rows, rejects = _one(
            wh, f"select (select count(*) from raw_{source}.{table}), (select count(*) from raw_{source}._rejects)"
        )
        assert rows + rejects == lines, source
        assert rejects > 0
    # Sales: every source row is either in the raw layer or among the rejects.
    for table in ("customers", "products", "orders", "order_lines", "contracts"):
        in_source = _one(loaded["sales"], f"select count(*) from public.{table}")[0]
        rows, rejects = _one(
            wh,
            f"select (select count(*) from raw_sales.{table}), "
            "(select count(*) from raw_sales._rejects where entity = %s)",
            (table,),
        )
        assert rows + rejects == in_source, table
    reported = sum(r.rows_loaded + r.rows_rejected for r in loaded["results"])
    assert (
        reported
        == _one(
            wh,
            "select (select count(*) from raw_service.tickets) + (select count(*) from raw_service._rejects) "
            "+ (select count(*) from raw_survey.responses) + (select count(*) from raw_survey._rejects) "
            "+ (select sum(rows_in) from raw_sales._batches)",
        )[0]
    )


def test_multilingual_comments_round_trip_byte_exact(loaded) -> None:
    wh, files = loaded["wh"], loaded["files"]
    faulty = {(f["file"].split("/")[-1], f["line"]) for f in loaded["manifest"] if f["file"]}
    expected: dict[str, str] = {}
    for path in sorted((files / "survey").glob("responses_*.csv")):
        with open(path, encoding="utf-8", errors="replace", newline="") as fh:
            reader = csv.DictReader(fh)
            for row in reader:
                if (path.name, reader.line_num) in faulty or row.get("language") not in ("pt", "tr", "ar", "hu"):
                    continue
                if row["comment"]:
                    expected[row["response_id"]] = row["comment"]
    with psycopg.connect(wh) as conn:
        stored = dict(
            conn.execute(
                "select response_id, comment from raw_survey.responses where response_id = any(%s)",
                (list(expected),),
            ).fetchall()
        )
    assert len(expected) > 10
    assert {k: v.encode() for k, v in stored.items()} == {k: v.encode() for k, v in expected.items()}
