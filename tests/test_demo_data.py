"""The demo data generator against a real PostgreSQL server: determinism, invariants, realism,
the bad-record catalogue, atomicity and the installed fingerprint. Everything runs at the tiny
scale (300 customers in three chunks), a few seconds per generation."""

from __future__ import annotations

import csv
import datetime as dt
import hashlib
import io
import json
import re
from collections import Counter, defaultdict
from dataclasses import dataclass
from pathlib import Path

import psycopg
import pytest

from customer_lens import demo
from customer_lens.demo import faults, generator

END = dt.date(2026, 6, 30)
START = dt.date(2023, 7, 1)
SEED = 7
TABLE_KEYS = {
    "customers": "customer_id",
    "products": "product_id",
    "orders": "order_id",
    "order_lines": "order_line_id",
    "contracts": "contract_id",
}
TICKET_FIELDS = [
    "ticket_id", "requester_email", "created_at", "updated_at", "first_reply_at", "solved_at", "status",
    "channel", "type", "category", "priority", "reopen_count", "satisfaction", "subject", "description",
]  # fmt: skip
SURVEY_COLUMNS = [
    "response_id", "customer_ref", "submitted_at", "kind", "nps_score",
    "csat_score", "reason", "would_refer", "comment", "language",
]  # fmt: skip


@dataclass
class Run:
    url: str
    files: Path
    summary: demo.Summary


def _generate(make_database, tmp_path_factory, name: str, seed: int = SEED, bad_records: bool = False) -> Run:
    url = make_database(name)
    files = tmp_path_factory.mktemp(name) / "sources"
    summary = demo.generate(
        scale="tiny", seed=seed, end_date=END, sales_url=url, files_dir=files, bad_records=bad_records
    )
    return Run(url, files, summary)


@pytest.fixture(scope="module")
def run_a(make_database, tmp_path_factory) -> Run:
    return _generate(make_database, tmp_path_factory, "demo_a")


@pytest.fixture(scope="module")
def run_b(make_database, tmp_path_factory) -> Run:
    return _generate(make_database, tmp_path_factory, "demo_b")


@pytest.fixture(scope="module")
def run_other_seed(make_database, tmp_path_factory) -> Run:
    return _generate(make_database, tmp_path_factory, "demo_other_seed", seed=SEED + 1)


@pytest.fixture(scope="module")
def run_bad(make_database, tmp_path_factory) -> Run:
    return _generate(make_database, tmp_path_factory, "demo_bad", bad_records=True)


# --- helpers ----------------------------------------------------------------------------------------
def _query(url: str, sql: str, params: tuple = ()) -> list[tuple]:
    with psycopg.connect(url) as conn:
        return conn.execute(sql, params).fetchall()


def _scalar(url: str, sql: str, params: tuple = ()):
    return _query(url, sql, params)[0][0]


def _table_checksums(url: str, exclude: dict[str, set[int]] | None = None) -> dict[str, tuple[int, str]]:
    """(row count, md5 of all rows in key order) per table, leaving out the keys in ``exclude``."""
    result = {}
    for table, key in TABLE_KEYS.items():
        skip = sorted((exclude or {}).get(table, set()))
        result[table] = tuple(
            _query(
                url,
                f"select count(*), md5(string_agg(t::text, E'\\n' order by {key})) from public.{table} t "
                f"where not ({key} = any(%s))",
                (skip,),
            )[0]
        )
    return result


def _file_checksums(root: Path) -> dict[str, str]:
    return {
        path.relative_to(root).as_posix(): hashlib.sha256(path.read_bytes()).hexdigest()
        for path in sorted(root.rglob("*"))
        if path.is_file()
    }


def _days() -> list[str]:
    return [(START + dt.timedelta(days=i)).isoformat() for i in range((END - START).days + 1)]


def _versions(root: Path) -> list[tuple[str, dict]]:
    """Every ticket version as (file name, record), in file order."""
    out = []
    for path in sorted((root / "service").glob("*.ndjson")):
        out += [(path.name, json.loads(line)) for line in path.read_text(encoding="utf-8").splitlines()]
    return out


def _responses(root: Path) -> list[dict]:
    rows = []
    for path in sorted((root / "survey").glob("*.csv")):
        with path.open(encoding="utf-8", newline="") as handle:
            rows += list(csv.DictReader(handle))
    return rows


def _customers(url: str) -> dict[str, dict]:
    rows = _query(url, "select customer_id, email, created_at from public.customers")
    return {"ids": {str(r[0]): r[0] for r in rows}, "emails": {r[1].lower(): r[0] for r in rows}}


def _resolve(ref: str, customers: dict) -> int | None:
    return customers["emails"].get(ref.lower()) if "@" in ref else customers["ids"].get(ref)


def _parse_ts(text: str) -> dt.datetime:
    value = dt.datetime.fromisoformat(text)
    assert value.utcoffset() == dt.timedelta(0), text
    return value


# --- determinism ------------------------------------------------------------------------------------------
def test_same_parameters_give_identical_tables_and_files(run_a: Run, run_b: Run) -> None:
    assert _table_checksums(run_a.url) == _table_checksums(run_b.url)
    files_a, files_b = _file_checksums(run_a.files), _file_checksums(run_b.files)
    assert len(files_a) == 2 * len(_days()) + 1  # every day's two files + demo_generation.json
    assert files_a == files_b
    assert run_a.summary.counts() == run_b.summary.counts()
    assert run_a.summary.fingerprint == run_b.summary.fingerprint


def test_a_different_seed_gives_different_data(run_a: Run, run_other_seed: Run) -> None:
    ours, theirs = _table_checksums(run_a.url), _table_checksums(run_other_seed.url)
    assert all(ours[table][1] != theirs[table][1] for table in TABLE_KEYS)
    files_a, files_b = _file_checksums(run_a.files), _file_checksums(run_other_seed.files)
    assert files_a.keys() == files_b.keys()
    differing = [name for name in files_a if files_a[name] != files_b[name]]
    assert len(differing) > 100
    assert run_a.summary.fingerprint != run_other_seed.summary.fingerprint


def test_the_summary_counts_what_was_written(run_a: Run) -> None:
    s = run_a.summary
    for table in TABLE_KEYS:
        assert _scalar(run_a.url, f"select count(*) from public.{table}") == getattr(s, table)
    versions, responses = _versions(run_a.files), _responses(run_a.files)
    assert s.ticket_versions == len(versions)
    assert s.tickets == len({record["ticket_id"] for _, record in versions})
    assert s.survey_responses == len(responses)
    assert 250 <= s.customers <= 350 and 5_000 <= s.order_lines <= 20_000
    assert s.faults_injected == 0 and not (run_a.files / "bad_records.json").exists()
    meta = json.loads((run_a.files / "demo_generation.json").read_text())
    assert meta["fingerprint"] == s.fingerprint and meta["start_date"] == START.isoformat()
    assert meta["good_rows"] == s.counts()
    assert _query(run_a.url, "select fingerprint, scale, seed, end_date, bad_records from public.demo_generation") == [
        (s.fingerprint, "tiny", SEED, END, False)
    ]


# --- invariants of the good data ----------------------------------------------------------------------------
def test_references_resolve_although_there_are_no_foreign_keys(run_a: Run) -> None:
    violations = {
        "order without customer": "select count(*) from orders o left join customers c using (customer_id) "
        "where c.customer_id is null",
        "line without order": "select count(*) from order_lines l left join orders o using (order_id) "
        "where o.order_id is null",
        "line without product": "select count(*) from order_lines l left join products p using (product_id) "
        "where p.product_id is null",
        "contract without customer": "select count(*) from contracts k left join customers c using (customer_id) "
        "where c.customer_id is null",
        "referrer missing or not earlier": "select count(*) from customers c left join customers r "
        "on r.customer_id = c.referred_by_customer_id where c.referred_by_customer_id is not null "
        "and (r.customer_id is null or r.created_at >= c.created_at)",
        "referrer iff referral channel": "select count(*) from customers "
        "where (referred_by_customer_id is not null) <> (acquisition_channel = 'referral')",
        "renewal of another customer's contract": "select count(*) from contracts k left join contracts p "
        "on p.contract_id = k.renewed_from_contract_id where k.renewed_from_contract_id is not null "
        "and (p.contract_id is null or p.customer_id <> k.customer_id or p.status <> 'renewed')",
        "duplicate email": "select count(*) - count(distinct lower(email)) from customers",
        "foreign-key constraints present": "select count(*) from pg_constraint where contype = 'f'",
    }
    found = {name: _scalar(run_a.url, sql) for name, sql in violations.items()}
    assert found == dict.fromkeys(violations, 0)
    assert _scalar(run_a.url, "select count(*) from customers where referred_by_customer_id is not null") > 0


def test_time_invariants(run_a: Run) -> None:
    end = dt.datetime.combine(END + dt.timedelta(days=1), dt.time(), dt.UTC)
    start = dt.datetime.combine(START, dt.time(), dt.UTC)
    url = run_a.url
    assert (
        _scalar(
            url, "select count(*) from orders o join customers c using (customer_id) where o.ordered_at < c.created_at"
        )
        == 0
    )
    assert _scalar(url, "select max(ordered_at) from orders") < end
    assert _scalar(url, "select min(created_at) from customers") >= start
    assert (
        _scalar(
            url, "select count(*) from order_lines l join orders o using (order_id) where l.created_at <> o.created_at"
        )
        == 0
    )
    bought_before_launch = (
        "select count(*) from order_lines l join products p using (product_id) where p.created_at > l.created_at"
    )
    assert _scalar(url, bought_before_launch) == 0
    assert _scalar(url, "select min(created_at) from products") >= start  # history starts at go-live
    for table in TABLE_KEYS:
        assert _scalar(url, f"select count(*) from {table} where updated_at < created_at") == 0, table
        assert _scalar(url, f"select max(updated_at) from {table}") < end, table
    for table in ("customers", "orders", "contracts", "products"):
        assert _scalar(url, f"select count(*) from {table} where updated_at > created_at") > 0, table
    assert _scalar(url, "select count(*) from contracts where end_date < start_date") == 0
    statuses = dict(_query(url, "select status, count(*) from orders group by 1"))
    assert set(statuses) == {"completed", "cancelled", "returned"}
    assert _scalar(url, "select count(*) from orders where status = 'completed' and updated_at <> created_at") == 0


def test_every_file_parses_and_every_reference_resolves(run_a: Run) -> None:
    customers = _customers(run_a.url)
    days = _days()
    assert sorted(p.name for p in (run_a.files / "service").iterdir()) == [f"tickets_{d}.ndjson" for d in days]
    assert sorted(p.name for p in (run_a.files / "survey").iterdir()) == [f"responses_{d}.csv" for d in days]

    versions = _versions(run_a.files)
    files_of_ticket = defaultdict(set)
    seen_keys = set()
    for name, record in versions:
        assert list(record) == TICKET_FIELDS
        updated = _parse_ts(record["updated_at"])
        assert name == f"tickets_{updated.date().isoformat()}.ndjson"
        assert _parse_ts(record["created_at"]) <= updated
        assert record["requester_email"].lower() in customers["emails"]
        assert (record["ticket_id"], record["updated_at"]) not in seen_keys  # the extraction's key
        seen_keys.add((record["ticket_id"], record["updated_at"]))
        files_of_ticket[record["ticket_id"]].add(name)
    assert any(len(files) >= 2 for files in files_of_ticket.values())
    assert {record["status"] for _, record in versions} == {"new", "open", "pending", "solved", "closed"}

    for path in sorted((run_a.files / "survey").glob("*.csv")):
        rows = list(csv.reader(io.StringIO(path.read_text(encoding="utf-8"), newline="")))
        assert rows[0] == SURVEY_COLUMNS
        assert all(len(row) == len(SURVEY_COLUMNS) for row in rows[1:]), path.name
    responses = _responses(run_a.files)
    assert len({r["response_id"] for r in responses}) == len(responses)
    for row in responses:
        assert _resolve(row["customer_ref"], customers) is not None, row
        assert _parse_ts(row["submitted_at"]).date() <= END
        assert (row["nps_score"] != "") == (row["kind"] == "nps")
        assert (row["csat_score"] != "") == (row["kind"] == "csat")
    assert all(0 <= int(r["nps_score"]) <= 10 for r in responses if r["kind"] == "nps")
    assert all(1 <= int(r["csat_score"]) <= 5 for r in responses if r["kind"] == "csat")
    assert all(r["reason"] for r in responses if r["kind"] in ("renewal", "exit"))
    by_email = sum("@" in r["customer_ref"] for r in responses) / len(responses)
    assert 0.05 < by_email < 0.3


# --- realism the marts rely on ----------------------------------------------------------------------------------
def test_a_few_customers_carry_most_of_the_revenue(run_a: Run) -> None:
    share = _scalar(
        run_a.url,
        """
        with revenue_by_customer as (
            select o.customer_id, sum(l.quantity * l.unit_price * (1 - l.discount_pct)) as revenue
            from order_lines as l join orders as o using (order_id)
            where o.status = 'completed'
            group by 1
        ),
        ranked as (select revenue, ntile(10) over (order by revenue desc) as decile from revenue_by_customer)
        select sum(revenue) filter (where decile = 1) / sum(revenue) from ranked
        """,
    )
    assert share > 0.5


def test_orders_are_seasonal(run_a: Run) -> None:
    by_month = dict(_query(run_a.url, "select to_char(ordered_at, 'YYYY-MM'), count(*) from orders group by 1"))
    assert by_month["2025-11"] > by_month["2025-08"]
    weekday, weekend = _query(
        run_a.url, "select count(*) filter (where extract(isodow from ordered_at) < 6) / 5.0, "
        "count(*) filter (where extract(isodow from ordered_at) >= 6) / 2.0 from orders"
    )[0]  # fmt: skip
    assert weekday > 2 * weekend


def test_delivery_complaints_rise_before_the_end(run_a: Run) -> None:
    opened = {}  # ticket -> (created date, is a delivery complaint)
    for _, record in _versions(run_a.files):
        is_delivery_complaint = record["category"] == "delivery" and record["type"] == "complaint"
        opened[record["ticket_id"]] = (_parse_ts(record["created_at"]).date(), is_delivery_complaint)

    def delivery_complaints(first: dt.date, last: dt.date) -> tuple[int, int]:
        inside = [flag for day, flag in opened.values() if first <= day <= last]
        return sum(inside), len(inside)

    recent, recent_all = delivery_complaints(dt.date(2026, 4, 1), END)
    year_before, _ = delivery_complaints(dt.date(2025, 4, 1), dt.date(2025, 6, 30))
    assert recent > 1.5 * year_before > 0
    # Not just growth of the business: the category's share of all tickets rises too.
    before, before_all = delivery_complaints(START, END - dt.timedelta(days=183))
    assert recent / recent_all > 2 * before / before_all


def test_detractors_follow_complaints(run_a: Run) -> None:
    customers = _customers(run_a.url)
    complaints = defaultdict(list)
    for _, record in _versions(run_a.files):
        if record["type"] == "complaint" and record["status"] == "new":
            complaints[customers["emails"][record["requester_email"].lower()]].append(_parse_ts(record["created_at"]))
    after, without = Counter(), Counter()
    for row in _responses(run_a.files):
        if row["kind"] != "nps":
            continue
        customer, when = _resolve(row["customer_ref"], customers), _parse_ts(row["submitted_at"])
        recent = any(dt.timedelta(0) <= when - c < dt.timedelta(days=90) for c in complaints[customer])
        (after if recent else without)[int(row["nps_score"]) <= 6] += 1
    assert after.total() >= 5 and without.total() >= 50
    assert after[True] / after.total() > without[True] / without.total() + 0.2


def test_churn_renewals_and_reasons_exist(run_a: Run) -> None:
    url = run_a.url
    statuses = dict(_query(url, "select status, count(*) from contracts group by 1"))
    assert statuses.keys() >= {"active", "renewed", "cancelled"}
    assert (
        _scalar(
            url,
            "select count(*) from contracts where renewed_from_contract_id is not null and renewal_reason is not null",
        )
        > 0
    )
    assert (
        _scalar(url, "select count(*) from contracts where status = 'cancelled' and cancellation_reason is null") == 0
    )
    share = _scalar(url, "select count(distinct customer_id)::float / (select count(*) from customers) from contracts")
    assert 0.2 < share < 0.5
    half_a_year_before_the_end = dt.datetime.combine(END - dt.timedelta(days=180), dt.time(), dt.UTC)
    lost = _scalar(
        url,
        "select count(*) from (select customer_id from orders group by 1 having max(ordered_at) < %s) as lost",
        (half_a_year_before_the_end,),
    )
    assert lost > 10
    exits = [r for r in _responses(run_a.files) if r["kind"] == "exit"]
    assert exits and all(r["reason"] for r in exits)


def test_comments_are_multilingual(run_a: Run) -> None:
    comments = [r["comment"] for r in _responses(run_a.files) if r["comment"]]
    assert any(re.search("[\u0600-\u06ff]", c) for c in comments), "no Arabic comment"
    assert any(re.search("[ığş]", c) for c in comments), "no Turkish comment"
    assert {r["language"] for r in _responses(run_a.files)} >= {"en", "pt", "tr", "ar", "hu"}


# --- bad records ---------------------------------------------------------------------------------------------
def _check_sales_fault(fault: str, key: object, run: Run) -> None:
    if fault == "order_unknown_customer":
        assert _scalar(run.url, "select count(*) from orders o where order_id = %s and not exists "
                       "(select 1 from customers c where c.customer_id = o.customer_id)", (key,)) == 1  # fmt: skip
    elif fault == "orphan_order_line":
        assert _scalar(run.url, "select count(*) from order_lines l where order_line_id = %s and not exists "
                       "(select 1 from orders o where o.order_id = l.order_id)", (key,)) == 1  # fmt: skip
    elif fault == "negative_quantity":
        assert _scalar(run.url, "select quantity from order_lines where order_line_id = %s", (key,)) < 0
    else:
        assert fault == "discount_out_of_range"
        assert _scalar(run.url, "select discount_pct from order_lines where order_line_id = %s", (key,)) > 1


def _check_ticket_fault(entry: dict, text: str, lines: list[bytes], customers: dict) -> None:
    fault, key = entry["fault"], entry["key"]
    if fault == "malformed_json":
        with pytest.raises(json.JSONDecodeError):
            json.loads(text)
        return
    record = json.loads(text)
    assert record.get("ticket_id") == key
    if fault == "missing_required_field":
        assert "ticket_id" not in record or "created_at" not in record
    elif fault == "bad_timestamp":
        with pytest.raises(ValueError):
            dt.datetime.fromisoformat(record["updated_at"])
    elif fault == "duplicate_id":
        assert lines[entry["line"] - 1] in lines[: entry["line"] - 1]
    elif fault == "unknown_customer":
        assert record["requester_email"].lower() not in customers["emails"]
    else:
        assert fault == "unexpected_field" and set(record) - set(TICKET_FIELDS) == {"sla_policy"}


def _check_survey_fault(entry: dict, text: str, lines: list[bytes], customers: dict) -> None:
    fault, key = entry["fault"], entry["key"]
    row = next(csv.reader([text]))
    if fault == "malformed_row":
        assert len(row) != len(SURVEY_COLUMNS)
        return
    values = dict(zip(SURVEY_COLUMNS, row, strict=True))
    assert values["response_id"] == str(key)
    if fault == "out_of_range_nps":
        assert not 0 <= int(values["nps_score"]) <= 10
    elif fault == "out_of_range_csat":
        assert not 1 <= int(values["csat_score"]) <= 5
    elif fault == "not_a_number":
        assert not re.fullmatch(r"-?\d+", values["nps_score"])
    elif fault == "duplicate_id":
        earlier = [next(csv.reader([x.decode()])) for x in lines[1 : entry["line"] - 1]]
        assert any(r[0] == str(key) and r != row for r in earlier)
    else:
        assert fault == "unknown_customer" and _resolve(values["customer_ref"], customers) is None


def _check_fault(entry: dict, run: Run, customers: dict) -> None:
    fault = entry["fault"]
    if entry["source"] == "sales":
        _check_sales_fault(fault, entry["key"], run)
        return
    lines = (run.files / entry["file"]).read_bytes().splitlines()
    if fault == "missing_optional_column":
        header = lines[0].decode().split(",")
        assert "language" not in header and header == [c for c in SURVEY_COLUMNS if c != "language"]
        assert len(lines) > 1
        return
    line = lines[entry["line"] - 1]
    if fault == "invalid_utf8":
        with pytest.raises(UnicodeDecodeError):
            line.decode("utf-8")
        return
    if entry["source"] == "service":
        _check_ticket_fault(entry, line.decode("utf-8"), lines, customers)
    else:
        _check_survey_fault(entry, line.decode("utf-8"), lines, customers)


def test_every_manifest_entry_is_where_it_says(run_bad: Run) -> None:
    manifest = json.loads((run_bad.files / "bad_records.json").read_text())
    assert len(manifest) == run_bad.summary.faults_injected
    codes = Counter((e["source"], e["fault"]) for e in manifest)
    assert {code: n for code, n in codes.items() if n < 3} == {("survey", "missing_optional_column"): 1}
    assert {(f.source, f.code) for f in faults.CATALOGUE} == set(codes)
    customers = _customers(run_bad.url)
    for entry in manifest:
        fault = next(f for f in faults.CATALOGUE if (f.source, f.code) == (entry["source"], entry["fault"]))
        assert (entry["entity"], entry["expected"]) == (fault.entity, fault.expected)
        _check_fault(entry, run_bad, customers)


def test_bad_records_leave_the_good_rows_unchanged(run_a: Run, run_bad: Run) -> None:
    manifest = json.loads((run_bad.files / "bad_records.json").read_text())
    assert run_bad.summary.counts() == run_a.summary.counts()
    # Database: the bad run minus the fault rows is the good run.
    fault_keys = defaultdict(set)
    for entry in manifest:
        if entry["source"] == "sales":
            fault_keys[{"order": "orders", "order_line": "order_lines"}[entry["entity"]]].add(entry["key"])
    assert _table_checksums(run_bad.url, fault_keys) == _table_checksums(run_a.url)
    # Files: removing the fault lines gives back the good files, byte for byte.
    lines_of = defaultdict(set)
    stripped = set()
    for entry in manifest:
        if entry["fault"] == "missing_optional_column":
            stripped.add(entry["file"])
        elif entry["file"]:
            lines_of[entry["file"]].add(entry["line"])
    good_files = _file_checksums(run_a.files)
    assert set(_file_checksums(run_bad.files)) == set(good_files) | {"bad_records.json"}
    for name in good_files:
        if name == "demo_generation.json":
            continue
        bad = (run_bad.files / name).read_bytes().splitlines(keepends=True)
        kept = [line for number, line in enumerate(bad, start=1) if number not in lines_of[name]]
        good = (run_a.files / name).read_bytes()
        if name in stripped:
            rows = list(csv.reader(io.StringIO(good.decode(), newline="")))
            buffer = io.StringIO()
            csv.writer(buffer, lineterminator="\n").writerows([r[:-1] for r in rows])
            good = buffer.getvalue().encode()
        assert b"".join(kept) == good, name


# --- atomicity and the installed fingerprint --------------------------------------------------------------------
def test_a_failed_generation_leaves_the_previous_data_untouched(make_database, tmp_path_factory, monkeypatch) -> None:
    first = _generate(make_database, tmp_path_factory, "demo_atomic")
    tables_before, files_before = _table_checksums(first.url), _file_checksums(first.files)
    written = []

    def fail_on_second_chunk(load, staging, chunk, clock, totals):
        if written:
            raise RuntimeError("disk on fire")
        written.append(chunk.index)
        real_write_chunk(load, staging, chunk, clock, totals)

    real_write_chunk = generator.write_chunk
    monkeypatch.setattr(generator, "write_chunk", fail_on_second_chunk)
    with pytest.raises(RuntimeError, match="disk on fire"):
        demo.generate(scale="tiny", seed=SEED + 2, end_date=END, sales_url=first.url, files_dir=first.files)
    assert written == [0]
    assert _table_checksums(first.url) == tables_before
    assert _file_checksums(first.files) == files_before
    assert [p.name for p in first.files.parent.iterdir()] == ["sources"]  # no temporary tree left behind
    assert _scalar(first.url, "select count(*) from pg_tables where tablename like '%%\\_\\_new'") == 0
    assert demo.installed_fingerprint(sales_url=first.url, files_dir=first.files) == first.summary.fingerprint


def test_installed_fingerprint(run_a: Run, run_other_seed: Run, make_database, tmp_path: Path) -> None:
    expected = demo.fingerprint(scale="tiny", seed=SEED, end_date=END, bad_records=False)
    assert run_a.summary.fingerprint == expected
    assert demo.installed_fingerprint(sales_url=run_a.url, files_dir=run_a.files) == expected
    # Nothing there, or the database and the files from different generations: nothing usable.
    assert demo.installed_fingerprint(sales_url=make_database("demo_empty"), files_dir=tmp_path / "none") is None
    assert demo.installed_fingerprint(sales_url=run_a.url, files_dir=run_other_seed.files) is None
    assert demo.installed_fingerprint(sales_url=make_database("demo_empty"), files_dir=run_a.files) is None
    # Every parameter is part of the fingerprint.
    variants = {
        demo.fingerprint(scale="small", seed=SEED, end_date=END, bad_records=False),
        demo.fingerprint(scale="tiny", seed=SEED + 1, end_date=END, bad_records=False),
        demo.fingerprint(scale="tiny", seed=SEED, end_date=END - dt.timedelta(days=1), bad_records=False),
        demo.fingerprint(scale="tiny", seed=SEED, end_date=END, bad_records=True),
    }
    assert len(variants) == 4 and expected not in variants
