"""File sources (NDJSON, CSV): interval selection, rejects with reasons, drift, encodings, atomicity."""

from __future__ import annotations

import datetime as dt
import json
import os
from pathlib import Path

import psycopg
import pytest

from customer_lens import extract
from customer_lens.config import source_config

DAY1 = dt.datetime(2026, 3, 1, tzinfo=dt.UTC)
DAY2 = DAY1 + dt.timedelta(days=1)
DAY3 = DAY2 + dt.timedelta(days=1)

TICKET_COLUMNS = {
    "ticket_id": {"type": "bigint", "required": True},
    "requester_email": "text",
    "created_at": {"type": "timestamptz", "required": True},
    "updated_at": {"type": "timestamptz", "required": True},
    "status": "text",
    "reopen_count": {"type": "integer", "min": 0},
    "description": "text",
}
RESPONSE_COLUMNS = {
    "response_id": {"type": "text", "required": True},
    "customer_ref": {"type": "text", "required": True},
    "submitted_at": {"type": "timestamptz", "required": True},
    "nps_score": {"type": "integer", "min": 0, "max": 10},
    "comment": "text",
    "language": "text",
}


def _sources(tmp_path: Path, **overrides) -> dict[str, source_config.Source]:
    document = {
        "sources": {
            "service": {
                "kind": "files",
                "format": "ndjson",
                "location": str(tmp_path / "service"),
                "max_reject_ratio": overrides.get("ratio", 0.9),
                "reject_ratio_min_rows": overrides.get("min_rows", 100),
                "entities": {
                    "tickets": {
                        "glob": "tickets_*.ndjson",
                        "file_date": "tickets_%Y-%m-%d.ndjson",
                        "primary_key": ["ticket_id", "updated_at"],
                        "columns": TICKET_COLUMNS,
                    }
                },
            },
            "survey": {
                "kind": "files",
                "format": "csv",
                "location": str(tmp_path / "survey"),
                "encoding": overrides.get("encoding", "utf-8"),
                "max_reject_ratio": overrides.get("ratio", 0.9),
                "entities": {
                    "responses": {
                        "glob": "responses_*.csv",
                        "file_date": "responses_%Y-%m-%d.csv",
                        "primary_key": ["response_id"],
                        "columns": RESPONSE_COLUMNS,
                    }
                },
            },
        }
    }
    return source_config.parse(document)


def _ticket(ticket_id: int, updated: str, **fields) -> str:
    record = {"ticket_id": ticket_id, "created_at": "2026-03-01T08:00:00Z", "updated_at": updated, "status": "open"}
    return json.dumps(record | fields, ensure_ascii=False)


def _write(path: Path, lines: list[str] | bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(lines if isinstance(lines, bytes) else ("\n".join(lines) + "\n").encode())


@pytest.fixture
def wh(make_database) -> str:
    return make_database("extract_files")


def _rows(url: str, query: str, *params) -> list[tuple]:
    with psycopg.connect(url) as conn:
        return conn.execute(query, params or None).fetchall()


def test_each_interval_loads_its_files_and_late_versions(tmp_path: Path, wh: str) -> None:
    service = _sources(tmp_path)["service"]
    folder = tmp_path / "service"
    _write(
        folder / "tickets_2026-03-01.ndjson", [_ticket(1, "2026-03-01T08:00:00Z"), _ticket(2, "2026-03-01T09:00:00Z")]
    )
    _write(folder / "tickets_2026-03-02.ndjson", [_ticket(1, "2026-03-02T10:00:00Z", status="solved")])
    _write(folder / "tickets_2026-03-03.ndjson", [_ticket(2, "2026-03-03T07:00:00Z", status="closed", reopen_count=1)])

    for start in (DAY1, DAY2, DAY3):
        result = extract.extract(service, "tickets", start, start + dt.timedelta(days=1), warehouse_url=wh)
        assert result.rows_rejected == 0 and result.status == "loaded"

    rows = _rows(
        wh,
        "select _interval_start::date::text, ticket_id, status, _source_file, _source_line "
        "from raw_service.tickets order by 1, 2",
    )
    assert rows == [
        ("2026-03-01", 1, "open", "tickets_2026-03-01.ndjson", 1),
        ("2026-03-01", 2, "open", "tickets_2026-03-01.ndjson", 2),
        ("2026-03-02", 1, "solved", "tickets_2026-03-02.ndjson", 1),
        ("2026-03-03", 2, "closed", "tickets_2026-03-03.ndjson", 1),
    ]
    batches = _rows(wh, "select interval_start::date::text, status, rows_loaded from raw_service._batches order by 1")
    assert batches == [("2026-03-01", "loaded", 2), ("2026-03-02", "loaded", 1), ("2026-03-03", "loaded", 1)]


def test_rerun_replaces_the_interval(tmp_path: Path, wh: str) -> None:
    service = _sources(tmp_path)["service"]
    path = tmp_path / "service" / "tickets_2026-03-01.ndjson"
    _write(path, [_ticket(1, "2026-03-01T08:00:00Z"), "{broken"])
    first = extract.extract(service, "tickets", DAY1, DAY2, warehouse_url=wh)
    again = extract.extract(service, "tickets", DAY1, DAY2, warehouse_url=wh)
    assert (first.rows_loaded, first.rows_rejected) == (again.rows_loaded, again.rows_rejected) == (1, 1)
    assert _rows(wh, "select count(*) from raw_service.tickets") == [(1,)]
    assert _rows(wh, "select count(*) from raw_service._rejects") == [(1,)]
    assert _rows(wh, "select count(*), min(batch_id::text) = %s from raw_service._batches", str(again.batch_id)) == [
        (1, True)
    ]
    # The source file is corrected: the rerun replaces the batch, the reject disappears.
    _write(path, [_ticket(1, "2026-03-01T08:00:00Z"), _ticket(3, "2026-03-01T09:00:00Z")])
    fixed = extract.extract(service, "tickets", DAY1, DAY2, warehouse_url=wh)
    assert (fixed.rows_loaded, fixed.rows_rejected) == (2, 0)
    assert _rows(wh, "select ticket_id from raw_service.tickets order by 1") == [(1,), (3,)]
    assert _rows(wh, "select count(*) from raw_service._rejects") == [(0,)]


def test_ndjson_faults_are_rejected_with_reasons_and_nothing_is_lost(tmp_path: Path, wh: str) -> None:
    service = _sources(tmp_path)["service"]
    good = [_ticket(i, f"2026-03-01T0{i}:00:00Z") for i in range(1, 6)]
    lines = [
        good[0],
        '{"ticket_id": 9, "created_at": "2026-03-01T0',  # truncated → malformed_json
        good[1],
        json.dumps({"created_at": "2026-03-01T08:00:00Z", "updated_at": "2026-03-01T08:00:00Z"}),  # no ticket_id
        _ticket(10, "2026-13-45T99:00:00Z"),  # invalid timestamp
        _ticket(11, "2026-03-01T08:00:00Z", reopen_count=-1),  # out of range
        good[2],
        good[2],  # exact repeat → duplicate
        _ticket(3, "2026-03-01T03:00:00Z", status="other"),  # same version key, other content → duplicate_key
        "[1, 2, 3]",  # valid JSON but not an object
        good[3],
        _ticket(12, "2026-03-01T08:00:00Z", sla_policy="gold"),  # drift: kept in _extra
        good[4],
    ]
    raw_bytes = ("\n".join(lines) + "\n").encode()
    bad_utf8 = _ticket(13, "2026-03-01T08:00:00Z", description="XX").encode().replace(b"XX", b"\xc3\x28")
    _write(tmp_path / "service" / "tickets_2026-03-01.ndjson", raw_bytes + bad_utf8 + b"\n")

    result = extract.extract(service, "tickets", DAY1, DAY2, warehouse_url=wh)

    assert result.rows_in == len(lines) + 1
    assert result.rows_loaded == 6
    assert result.extra_fields == ["sla_policy"]
    rejects = _rows(wh, "select _source_line, reason, detail from raw_service._rejects order by _source_line")
    assert rejects == [
        (2, "malformed_json", "malformed_json"),
        (4, "missing_required_field", "missing_required_field:ticket_id"),
        (5, "invalid_value", "invalid_value:updated_at"),
        (6, "out_of_range", "out_of_range:reopen_count"),
        (8, "duplicate", "duplicate"),
        (9, "duplicate_key", "duplicate_key"),
        (10, "malformed_json", "malformed_json"),
        (14, "invalid_utf8", "invalid_utf8"),
    ]
    assert _rows(wh, "select _extra from raw_service.tickets where ticket_id = 12") == [({"sla_policy": "gold"},)]
    # The undecodable line is kept visibly (escaped), not dropped.
    assert _rows(wh, "select raw_text like '%\\xc3(%' from raw_service._rejects where _source_line = 14") == [(True,)]


def test_csv_faults_drift_and_multilingual_text(tmp_path: Path, wh: str) -> None:
    survey = _sources(tmp_path)["survey"]
    comments = {
        "r1": "A entrega atrasou três semanas",
        "r2": "Teslimat çok geç geldi, müşteri hizmetleri ilgisiz",
        "r3": "التوصيل كان متأخرا جدا",
        "r4": "A szállítás nagyon késett, de a termék kiváló",
        "r5": 'Great, "quoted", with a comma',
    }
    header = "response_id,customer_ref,submitted_at,nps_score,comment,language,channel"
    rows = [
        f'{rid},{i},2026-03-01T10:00:00Z,{i},"{c.replace(chr(34), chr(34) * 2)}",xx,web'
        for i, (rid, c) in enumerate(comments.items(), start=1)
    ]
    rows += [
        "r6,7,2026-03-01T10:00:00Z,11,,en,web",  # out of range
        "r7,8,2026-03-01T10:00:00Z,nine,,en,web",  # not a number
        "r1,9,2026-03-01T10:00:00Z,3,other,en,web",  # duplicate id, other content
        "r9,,2026-03-01T10:00:00Z,5,,en,web",  # missing customer_ref
        # broken quoting: the open quote runs to the end of the file (a quoted field may span lines, so
        # any line after it would be part of this one malformed record, and shown in its raw text)
        'r8,"broken,2026-03-01',
    ]
    _write(tmp_path / "survey" / "responses_2026-03-01.csv", [header, *rows])

    result = extract.extract(survey, "responses", DAY1, DAY2, warehouse_url=wh)

    assert (result.rows_loaded, result.rows_rejected) == (5, 5)
    assert result.extra_fields == ["channel"]
    loaded = dict(_rows(wh, "select response_id, comment from raw_survey.responses"))
    assert loaded == comments  # byte-exact round trip (pt, tr, ar, hu, quotes)
    assert dict(_rows(wh, "select reason, count(*) from raw_survey._rejects group by 1")) == {
        "out_of_range": 1,
        "invalid_value": 1,
        "duplicate_key": 1,
        "malformed_row": 1,
        "missing_required_field": 1,
    }


def test_duplicate_of_a_row_loaded_in_another_interval_is_rejected(tmp_path: Path, wh: str) -> None:
    survey = _sources(tmp_path)["survey"]
    header = "response_id,customer_ref,submitted_at,nps_score,comment,language"
    _write(tmp_path / "survey" / "responses_2026-03-01.csv", [header, "r1,1,2026-03-01T10:00:00Z,9,,en"])
    day2 = [header, "r1,2,2026-03-02T10:00:00Z,2,,en", "r2,2,2026-03-02T11:00:00Z,8,,en"]
    _write(tmp_path / "survey" / "responses_2026-03-02.csv", day2)
    extract.extract(survey, "responses", DAY1, DAY2, warehouse_url=wh)
    second = extract.extract(survey, "responses", DAY2, DAY3, warehouse_url=wh)
    assert second.reject_reasons == {"duplicate_key": 1}
    # Rerunning the first interval does not reject its own rows.
    again = extract.extract(survey, "responses", DAY1, DAY2, warehouse_url=wh)
    assert (again.rows_loaded, again.rows_rejected) == (1, 0)


def test_missing_required_column_fails_naming_column_and_file(tmp_path: Path, wh: str) -> None:
    survey = _sources(tmp_path)["survey"]
    header = "response_id,customer_ref,submitted_at,nps_score,comment,language"
    _write(tmp_path / "survey" / "responses_2026-03-01.csv", [header, "r1,1,2026-03-01T10:00:00Z,9,ok,en"])
    extract.extract(survey, "responses", DAY1, DAY2, warehouse_url=wh)
    _write(tmp_path / "survey" / "responses_2026-03-01.csv", ["response_id,submitted_at", "r2,2026-03-01T10:00:00Z"])
    with pytest.raises(extract.SourceSchemaError, match=r"responses_2026-03-01\.csv: required column 'customer_ref'"):
        extract.extract(survey, "responses", DAY1, DAY2, warehouse_url=wh)
    assert _rows(wh, "select response_id from raw_survey.responses") == [("r1",)]  # previous state kept


def test_missing_optional_column_loads_nulls_and_reports(tmp_path: Path, wh: str) -> None:
    survey = _sources(tmp_path)["survey"]
    _write(
        tmp_path / "survey" / "responses_2026-03-01.csv",
        ["response_id,customer_ref,submitted_at,nps_score,comment", "r1,1,2026-03-01T10:00:00Z,9,ok"],
    )
    result = extract.extract(survey, "responses", DAY1, DAY2, warehouse_url=wh)
    assert result.missing_columns == ["language"] and result.rows_loaded == 1
    assert _rows(wh, "select language from raw_survey.responses") == [(None,)]


def test_configured_encoding_decodes_legacy_files(tmp_path: Path, wh: str) -> None:
    survey = _sources(tmp_path, encoding="latin-1")["survey"]
    content = (
        "response_id,customer_ref,submitted_at,nps_score,comment,language\nr1,1,2026-03-01T10:00:00Z,9,Très bien,fr\n"
    )
    _write(tmp_path / "survey" / "responses_2026-03-01.csv", content.encode("latin-1"))
    extract.extract(survey, "responses", DAY1, DAY2, warehouse_url=wh)
    assert _rows(wh, "select comment from raw_survey.responses") == [("Très bien",)]


def test_reject_ratio_exceeded_keeps_previous_state_and_the_evidence(tmp_path: Path, wh: str) -> None:
    service = _sources(tmp_path, ratio=0.2, min_rows=1)["service"]
    path = tmp_path / "service" / "tickets_2026-03-01.ndjson"
    _write(path, [_ticket(1, "2026-03-01T08:00:00Z")])
    extract.extract(service, "tickets", DAY1, DAY2, warehouse_url=wh)
    _write(path, [_ticket(2, "2026-03-01T08:00:00Z"), "{bad", "{bad", "{bad"])

    with pytest.raises(extract.RejectRatioExceeded, match=r"3 of 4 rows rejected"):
        extract.extract(service, "tickets", DAY1, DAY2, warehouse_url=wh)

    assert _rows(wh, "select ticket_id from raw_service.tickets") == [(1,)]
    assert _rows(wh, "select status, rows_rejected from raw_service._batches order by status") == [
        ("failed", 3),
        ("loaded", 0),
    ]
    assert _rows(wh, "select count(*) from raw_service._rejects") == [(3,)]


def test_csv_with_a_byte_order_mark_and_comments_spanning_lines(tmp_path: Path, wh: str) -> None:
    """What survey tools export: a UTF-8 byte-order mark, a quoted comment with line breaks (LF and CRLF)."""
    survey = _sources(tmp_path)["survey"]
    header = "response_id,customer_ref,submitted_at,nps_score,comment,language"
    text = (
        f"\ufeff{header}\r\n"
        'r1,1,2026-03-01T10:00:00Z,9,"Great service.\r\nWill order again,\nand tell my friends.",en\r\n'
        "r2,2,2026-03-01T11:00:00Z,11,,en\r\n"  # out of range: its line number counts the record above as 3 lines
        'r3,3,2026-03-01T12:00:00Z,7,"one line",en\r\n'
    )
    _write(tmp_path / "survey" / "responses_2026-03-01.csv", text.encode())

    result = extract.extract(survey, "responses", DAY1, DAY2, warehouse_url=wh)

    assert (result.rows_loaded, result.rows_rejected) == (2, 1)
    assert result.extra_fields == []  # the mark is not part of the first column's name
    loaded = dict(_rows(wh, "select response_id, comment from raw_survey.responses"))
    assert loaded == {"r1": "Great service.\nWill order again,\nand tell my friends.", "r3": "one line"}
    assert _rows(wh, "select _source_line, reason from raw_survey._rejects") == [(5, "out_of_range")]


def test_a_small_batch_fails_on_its_rejects_only_when_all_are_rejected(tmp_path: Path, wh: str) -> None:
    """The shipped settings (5%, from 100 rows on): one bad row in a quiet day's file of five is a reject."""
    service = _sources(tmp_path, ratio=0.05)["service"]
    path = tmp_path / "service" / "tickets_2026-03-01.ndjson"
    _write(path, [*(_ticket(n, "2026-03-01T08:00:00Z") for n in range(1, 5)), "{bad"])
    result = extract.extract(service, "tickets", DAY1, DAY2, warehouse_url=wh)
    assert (result.status, result.rows_loaded, result.rows_rejected) == ("loaded", 4, 1)

    _write(path, ["{bad"] * 5)  # the export changed format: nothing in it is readable
    with pytest.raises(extract.RejectRatioExceeded, match=r"5 of 5 rows rejected \(every row of a batch under"):
        extract.extract(service, "tickets", DAY1, DAY2, warehouse_url=wh)
    assert _rows(wh, "select count(*) from raw_service.tickets") == [(4,)]  # the day's earlier load stays


def test_a_batch_leaves_its_block_ranges_summarized(tmp_path: Path, wh: str) -> None:
    """A load summarizes the block ranges it appended, so the next interval's replacement reads only the
    blocks that can hold that interval (an unsummarized range matches every search)."""
    survey = _sources(tmp_path)["survey"]
    header = "response_id,customer_ref,submitted_at,nps_score,comment,language"
    comment = "a comment long enough to fill several block ranges " * 3
    rows = [f"big{n},{n},2026-03-01T10:00:00Z,{n % 11},{comment},en" for n in range(20_000)]
    _write(tmp_path / "survey" / "responses_2026-03-01.csv", [header, *rows])
    loaded = extract.extract(survey, "responses", DAY1, DAY2, warehouse_url=wh)
    assert loaded.rows_loaded == 20_000
    (blocks,) = _rows(wh, "select pg_relation_size('raw_survey.responses') / 8192")[0]
    assert blocks > 2 * 128  # more than two whole block ranges
    for index in ("responses_interval_brin", "responses_loaded_brin"):  # nothing left to summarize
        assert _rows(wh, f"select brin_summarize_new_values('raw_survey.{index}')") == [(0,)]
    empty = extract.extract(survey, "responses", DAY3, DAY3 + dt.timedelta(days=1), warehouse_url=wh)
    assert (empty.rows_loaded, _rows(wh, "select count(*) from raw_survey.responses")) == (0, [(20_000,)])


def test_a_day_file_inside_a_loaded_month_replaces_that_files_rows(tmp_path: Path, wh: str) -> None:
    survey = _sources(tmp_path)["survey"]
    header = "response_id,customer_ref,submitted_at,nps_score,comment,language"
    for day in (1, 2, 3):
        rows = [f"r{day}{n},{n},2026-03-0{day}T10:0{n}:00Z,{n},,en" for n in range(1, 4)]
        rows.append(f"r{day}9,9,2026-03-0{day}T11:00:00Z,99,,en")  # out of range: a reject per file
        _write(tmp_path / "survey" / f"responses_2026-03-0{day}.csv", [header, *rows])
    month = extract.extract(survey, "responses", DAY1, DAY1 + dt.timedelta(days=31), warehouse_url=wh)
    others = "select response_id, nps_score, _batch_id from raw_survey.responses where _source_file <> %s order by 1"
    before = _rows(wh, others.replace("%s", "'responses_2026-03-02.csv'"))

    rows = [f"r2{n},{n},2026-03-02T10:0{n}:00Z,{n + 5},,en" for n in range(1, 4)]  # day 2 corrected
    _write(tmp_path / "survey" / "responses_2026-03-02.csv", [header, *rows])
    day = extract.extract(survey, "responses", DAY2, DAY3, warehouse_url=wh)

    assert (month.rows_loaded, day.rows_loaded, day.rows_rejected) == (9, 3, 0)
    assert _rows(wh, others.replace("%s", "'responses_2026-03-02.csv'")) == before
    assert _rows(
        wh, "select response_id, nps_score from raw_survey.responses where response_id like 'r2%' order by 1"
    ) == [
        ("r21", 6),
        ("r22", 7),
        ("r23", 8),
    ]
    # day 2's old reject went with its file; days 1 and 3 keep theirs
    assert _rows(wh, "select _source_file from raw_survey._rejects order by 1") == [
        ("responses_2026-03-01.csv",),
        ("responses_2026-03-03.csv",),
    ]


def test_odd_csv_files_load_or_say_why(tmp_path: Path, wh: str) -> None:
    """CR-only line ends and a 200 KB comment load; a NUL byte is a reject; a repeated header name fails the file."""
    survey = _sources(tmp_path)["survey"]
    header = "response_id,customer_ref,submitted_at,nps_score,comment,language"
    long_comment = "x" * 200_000
    lines = [header, "r1,1,2026-03-01T10:00:00Z,9,first,en", f"r2,2,2026-03-01T11:00:00Z,8,{long_comment},en"]
    lines.append("r3,3,2026-03-01T12:00:00Z,7,nul\x00here,en")
    _write(tmp_path / "survey" / "responses_2026-03-01.csv", "\r".join(lines).encode() + b"\r")  # old Mac ends

    result = extract.extract(survey, "responses", DAY1, DAY2, warehouse_url=wh)

    assert (result.rows_loaded, result.rows_rejected) == (2, 1)
    assert _rows(wh, "select response_id, length(comment) from raw_survey.responses order by 1") == [
        ("r1", 5),
        ("r2", 200_000),
    ]
    assert _rows(wh, "select _source_line, reason from raw_survey._rejects") == [(4, "nul_byte")]

    _write(
        tmp_path / "survey" / "responses_2026-03-02.csv", [f"{header},comment", "r9,9,2026-03-02T10:00:00Z,9,a,en,b"]
    )
    with pytest.raises(extract.SourceSchemaError, match=r"column 'comment' appears twice in the header"):
        extract.extract(survey, "responses", DAY2, DAY3, warehouse_url=wh)


def test_a_json_key_given_twice_is_a_reject_not_last_wins(tmp_path: Path, wh: str) -> None:
    service = _sources(tmp_path)["service"]
    lines = [
        _ticket(1, "2026-03-01T08:00:00Z"),
        '{"ticket_id": 2, "ticket_id": 3, "created_at": "2026-03-01T08:00:00Z", "updated_at": "2026-03-01T08:00:00Z"}',
        _ticket(4, "2026-03-01T09:00:00Z", subject="nul\u0000byte"),  # \u0000 escaped in JSON: not storable
    ]
    _write(tmp_path / "service" / "tickets_2026-03-01.ndjson", lines)
    result = extract.extract(service, "tickets", DAY1, DAY2, warehouse_url=wh)
    assert (result.rows_loaded, result.rows_rejected) == (1, 2)
    assert _rows(wh, "select _source_line, reason from raw_service._rejects order by 1") == [
        (2, "duplicate_json_key"),
        (3, "malformed_json"),
    ]


def test_a_file_added_after_a_listing_is_loaded_by_the_next_batch(tmp_path: Path, wh: str) -> None:
    """The batches of a range list a folder once; a day file arriving later in the same process is not missed."""
    service = _sources(tmp_path)["service"]
    folder = tmp_path / "service"
    _write(folder / "tickets_2026-03-01.ndjson", [_ticket(1, "2026-03-01T08:00:00Z")])
    old = (dt.datetime.now() - dt.timedelta(minutes=1)).timestamp()
    os.utime(folder, (old, old))  # a folder that has not changed for a while: its listing is kept
    first = extract.extract(service, "tickets", DAY1, DAY1 + dt.timedelta(days=2), warehouse_url=wh)
    assert first.files == ["tickets_2026-03-01.ndjson"]
    _write(folder / "tickets_2026-03-02.ndjson", [_ticket(2, "2026-03-02T08:00:00Z")])
    second = extract.extract(service, "tickets", DAY1, DAY1 + dt.timedelta(days=2), warehouse_url=wh)
    assert second.files == ["tickets_2026-03-01.ndjson", "tickets_2026-03-02.ndjson"]
    assert _rows(wh, "select ticket_id from raw_service.tickets order by 1") == [(1,), (2,)]


# -- NDJSON read by pyarrow, with the exact (SQL) path for what pyarrow does not read ---------------------
_AT = '"created_at": "2026-03-01T08:00:00Z", "updated_at": "2026-03-01T08:00:00Z"'
_TRICKY_LINES = [
    _ticket(20, "2026-03-01T08:00:00Z", description='caf\u00e9 \U0001f600 "quoted"\nsecond line', reopen_count=2),
    _ticket(21, "2026-03-01T08:00:00Z", status=None, description=""),  # null and empty text stay apart
    f'{{"ticket_id": 22, {_AT}, "status": 5}}',
    f'{{"ticket_id": "23", {_AT}}}',
    f'{{"ticket_id": 24, {_AT}, "reopen_count": 1.0}}',
    f'{{"ticket_id": 25, {_AT}, "reopen_count": 1e2}}',
    f'{{"ticket_id": 26, {_AT}}}{{"ticket_id": 27, {_AT}}}',
    f'{{"ticket_id": 28, "ticket_id": 29, {_AT}}}',
    _ticket(30, "2026-03-01T08:00:00Z", sla={"tier": "gold", "hours": 4.50}),  # nested drift, kept as is
    _ticket(31, "2026-03-01T08:00:00Z", subject="nul\u0000byte"),
    f'{{"ticket_id": 32, {_AT}, "status": "\\ud800"}}',
    "  " + _ticket(33, "2026-03-01T08:00:00Z") + "  ",
    _ticket(34, "2026-03-01T08:00:00Z", status=True),
    _ticket(35, "2026-03-01T08:00:00Z", reopen_count=99999999999999999999),
    _ticket(36, "2026-03-01T08:00:00Z", reopen_count=3_000_000_000),  # an int64, not an integer
    _ticket(37, "2026-03-01T08:00:00Z", requester_email="?"),
]


def _load_both_ways(tmp_path: Path, wh: str, monkeypatch, files: dict[str, bytes], days: tuple[int, ...] = (31,)):
    """Load the files (in batches of ``days``) with pyarrow reading what it can, then with the exact path only:
    both results (the last batch's, and the raw layer's)."""
    from customer_lens.extract import files as files_mod

    service = _sources(tmp_path)["service"]
    for name, content in files.items():
        _write(tmp_path / "service" / name, content)
    outcomes = []
    typed_rows = []
    real_add = files_mod._TypedRows.add

    def counting_add(self, table):
        typed_rows.append(table.num_rows)
        real_add(self, table)

    for fast in (True, False):
        with monkeypatch.context() as patch:
            patch.setattr(files_mod._TypedRows, "add", counting_add)
            if not fast:
                patch.setattr(files_mod, "_json_read_schema", lambda source, entity: None)
            start = DAY1
            for length in days:
                end = start + dt.timedelta(days=length)
                result = extract.extract(service, "tickets", start, end, warehouse_url=wh)
                start = end
        rows = _rows(
            wh,
            "select _source_file, _source_line, ticket_id, requester_email, created_at, updated_at, status, "
            "reopen_count, description, _extra from raw_service.tickets order by 1, 2",
        )
        rejects = _rows(
            wh,
            "select _source_file, _source_line, record_key, raw_text, reason, detail "
            "from raw_service._rejects order by 1, 2",
        )
        outcomes.append((result.rows_loaded, result.rows_rejected, result.extra_fields, rows, rejects))
        typed_rows.append(None)  # separates the two loads
    return outcomes, typed_rows


def test_pyarrow_reads_clean_lines_and_the_exact_path_the_rest_with_the_same_outcome(
    tmp_path: Path, wh: str, monkeypatch
) -> None:
    """Each odd line in a day file of its own: pyarrow reads the clean ones (one read for the batch, then each
    file alone when one is refused), SQL the others; loaded with the exact path only, the outcome is the same."""
    clean = [_ticket(n, f"2026-03-01T{n % 24:02d}:00:00Z", reopen_count=n % 3) for n in range(1, 11)]
    clean += [clean[2], _ticket(3, "2026-03-01T03:00:00Z", status="other")]  # a repeat, then other content
    files = {"tickets_2026-03-01.ndjson": ("\n".join(clean) + "\n").encode()}
    for day, line in enumerate(_TRICKY_LINES, start=2):
        files[f"tickets_2026-03-{day:02d}.ndjson"] = line.encode()  # no line end at the end of the file
    # not UTF-8 inside a string (pyarrow.json would take it)
    files["tickets_2026-03-30.ndjson"] = (
        _ticket(38, "2026-03-01T08:00:00Z", subject="XX").encode().replace(b"XX", b"\xc3\x28")
    )
    # a byte-order mark, a blank line, CR line ends: line numbers as the exact path counts them
    files["tickets_2026-03-31.ndjson"] = (
        b"\xef\xbb\xbf"
        + _ticket(40, "2026-03-03T08:00:00Z").encode()
        + b"\n\n"
        + _ticket(41, "2026-03-03T08:00:00Z").encode()
        + b"\r\n"
        + _ticket(41, "2026-03-03T08:00:00Z", status="other").encode()
        + b"\r"
        + _ticket(43, "2026-03-03T08:00:00Z").encode()
    )
    (fast, exact), typed_rows = _load_both_ways(tmp_path, wh, monkeypatch, files)
    assert fast == exact
    # read by pyarrow: the clean file, and the lines of tickets 20, 21, 33, 36 and 37; none when it is off
    assert typed_rows == [12, 1, 1, 1, 1, 1, None, None]
    loaded, rejected, extra_fields, rows, rejects = fast
    assert (loaded, rejected) == (10 + 9 + 2, 12)
    assert extra_fields == ["sla"]
    by_id = {row[2]: row for row in rows}
    assert by_id[20][8] == 'café 😀 "quoted"\nsecond line' and by_id[20][7] == 2
    assert (by_id[21][6], by_id[21][8]) == (None, "")  # null and empty text stay apart
    assert (by_id[22][6], by_id[23][1], by_id[25][7], by_id[34][6], by_id[37][3]) == ("5", 1, 100, "true", "?")
    assert by_id[30][9] == {"sla": {"tier": "gold", "hours": 4.50}}
    assert sorted(by_id) == [*range(1, 11), 20, 21, 22, 23, 25, 30, 33, 34, 37, 41, 43]
    assert [(r[0][-9:], r[1], r[4]) for r in rejects] == [
        ("01.ndjson", 11, "duplicate"),
        ("01.ndjson", 12, "duplicate_key"),
        ("06.ndjson", 1, "invalid_value"),  # 1.0 for an integer
        ("08.ndjson", 1, "malformed_json"),  # two objects on a line
        ("09.ndjson", 1, "duplicate_json_key"),
        ("11.ndjson", 1, "malformed_json"),  # an escaped NUL
        ("12.ndjson", 1, "malformed_json"),  # half a surrogate pair
        ("15.ndjson", 1, "invalid_value"),  # beyond bigint
        ("16.ndjson", 1, "invalid_value"),  # beyond integer (read by pyarrow, judged by SQL)
        ("30.ndjson", 1, "invalid_utf8"),
        ("31.ndjson", 1, "malformed_json"),  # the byte-order mark
        ("31.ndjson", 4, "duplicate_key"),
    ]


def test_parquet_day_files_of_a_batch_land_together_with_their_line_numbers(tmp_path: Path, wh: str) -> None:
    """Several small parquet files in one batch (one COPY): each row keeps its file and row number, a file
    without an optional column loads nulls, a bad value is a reject, a file without a required column fails."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    document = {
        "sources": {
            "survey": {
                "kind": "files",
                "format": "parquet",
                "location": str(tmp_path / "survey"),
                "max_reject_ratio": 0.9,
                "entities": {
                    "responses": {
                        "glob": "responses_*.parquet",
                        "file_date": "responses_%Y-%m-%d.parquet",
                        "primary_key": ["response_id"],
                        "columns": RESPONSE_COLUMNS,
                    }
                },
            }
        }
    }
    survey = source_config.parse(document)["survey"]
    folder = tmp_path / "survey"
    folder.mkdir()
    day1 = {
        "response_id": ["a1", "a2", "a3"],
        "customer_ref": ["1", "2", "3"],
        "submitted_at": ["2026-03-01T10:00:00Z", "2026-03-01T11:00:00Z", "2026-03-01T12:00:00Z"],
        "nps_score": [9, 11, 0],  # 11: out of range
        "comment": ["fine", None, ""],
        "language": ["en", "pt", None],
    }
    pq.write_table(pa.table(day1), folder / "responses_2026-03-01.parquet")
    day2 = {k: v[:2] for k, v in day1.items() if k != "language"} | {"response_id": ["b1", "b2"]}
    pq.write_table(pa.table(day2), folder / "responses_2026-03-02.parquet", row_group_size=1)

    result = extract.extract(survey, "responses", DAY1, DAY3, warehouse_url=wh)

    assert (result.rows_loaded, result.rows_rejected) == (3, 2)
    assert result.missing_columns == ["language"]
    assert _rows(
        wh,
        "select _source_file, _source_line, response_id, nps_score, comment, language "
        "from raw_survey.responses order by 1, 2",
    ) == [
        ("responses_2026-03-01.parquet", 1, "a1", 9, "fine", "en"),
        ("responses_2026-03-01.parquet", 3, "a3", 0, "", None),
        ("responses_2026-03-02.parquet", 1, "b1", 9, "fine", None),
    ]
    assert _rows(wh, "select _source_file, _source_line, reason from raw_survey._rejects order by 1") == [
        ("responses_2026-03-01.parquet", 2, "out_of_range"),
        ("responses_2026-03-02.parquet", 2, "out_of_range"),
    ]
    pq.write_table(pa.table({"response_id": ["c1"]}), folder / "responses_2026-03-02.parquet")
    with pytest.raises(extract.SourceSchemaError, match=r"responses_2026-03-02\.parquet: required column"):
        extract.extract(survey, "responses", DAY1, DAY3, warehouse_url=wh)
    assert _rows(wh, "select count(*) from raw_survey.responses") == [(3,)]


def test_a_large_ndjson_file_is_read_in_chunks_with_the_same_outcome(tmp_path: Path, wh: str, monkeypatch) -> None:
    """A file bigger than a chunk is read a chunk at a time (memory stays bounded); a chunk pyarrow refuses
    (a broken line, CR line ends) goes the exact way, the others through pyarrow; rows, line numbers and the
    raw text of rejects (read again from the file for lines pyarrow read) as with the exact path only."""
    from customer_lens.extract import files as files_mod

    monkeypatch.setattr(files_mod, "JSON_CHUNK_BYTES", 4096)
    chunks = []
    real_chunks = files_mod._json_chunks

    def recording_chunks(path):
        for offset, chunk in real_chunks(path):
            chunks.append(len(chunk))
            yield offset, chunk

    monkeypatch.setattr(files_mod, "_json_chunks", recording_chunks)
    lines = [_ticket(n, "2026-03-01T08:00:00Z", description="x" * (n % 50)) for n in range(1, 301)]
    lines[120] = '{"ticket_id": 121, "created_at": "2026-03-01T0'  # broken: its chunk goes the exact way
    lines[200] = _ticket(201, "2026-03-01T08:00:00Z", reopen_count=-1)  # read by pyarrow, rejected by SQL
    lines[250] = lines[249]  # a repeat, read by pyarrow
    content = "\n".join(lines[:280]) + "\r\n" + "\n".join(lines[280:])  # one CR LF: another exact chunk
    day2 = [
        _ticket(5, "2026-03-01T08:00:00Z", description="x" * 5),
        _ticket(500, "2026-03-02T08:00:00Z"),
    ]  # 5: loaded on day 1
    (fast, exact), typed_rows = _load_both_ways(
        tmp_path,
        wh,
        monkeypatch,
        {"tickets_2026-03-01.ndjson": content.encode(), "tickets_2026-03-02.ndjson": "\n".join(day2).encode()},
        days=(1, 1),
    )
    assert fast == exact
    assert len(chunks) > 10 and max(chunks) < 2 * 4096 + 200
    assert 200 < sum(n for n in typed_rows if n) < 300
    loaded, rejected, _, rows, rejects = fast
    assert (loaded, rejected) == (1, 1)  # the second day's batch
    assert [(r[0][-8:], r[1], r[4], r[5]) for r in rejects] == [
        ("1.ndjson", 121, "malformed_json", "malformed_json"),
        ("1.ndjson", 201, "out_of_range", "out_of_range:reopen_count"),
        ("1.ndjson", 251, "duplicate", "duplicate"),
        ("2.ndjson", 1, "duplicate_key", "duplicate_key:loaded in another interval"),
    ]
    # the raw lines pyarrow read, read again from their files
    assert [r[3] for r in rejects[1:]] == [lines[200], lines[249], day2[0]]
    assert [(r[0][-8:], r[1], r[2]) for r in rows if r[1] in (1, 2, 280, 281, 300)] == [
        ("1.ndjson", 1, 1),
        ("1.ndjson", 2, 2),
        ("1.ndjson", 280, 280),
        ("1.ndjson", 281, 281),
        ("1.ndjson", 300, 300),
        ("2.ndjson", 2, 500),
    ]


def test_an_interval_whose_file_is_gone_is_emptied_and_recorded(tmp_path: Path, wh: str) -> None:
    service = _sources(tmp_path)["service"]
    path = tmp_path / "service" / "tickets_2026-03-01.ndjson"
    _write(path, [_ticket(1, "2026-03-01T08:00:00Z"), "{bad"])
    first = extract.extract(service, "tickets", DAY1, DAY2, warehouse_url=wh)
    assert (first.rows_loaded, first.rows_rejected) == (1, 1)
    path.unlink()  # the export of that day was withdrawn
    again = extract.extract(service, "tickets", DAY1, DAY2, warehouse_url=wh)
    assert (again.status, again.rows_loaded, again.rows_rejected, again.files) == ("loaded", 0, 0, [])
    assert _rows(wh, "select count(*) from raw_service.tickets") == [(0,)]
    assert _rows(wh, "select count(*) from raw_service._rejects") == [(0,)]
    assert _rows(wh, "select rows_in, files from raw_service._batches") == [(0, None)]
