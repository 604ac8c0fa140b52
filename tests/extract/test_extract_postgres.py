"""Postgres sources: cursor windows, late updates, idempotent reruns, rejects, and a load killed mid-COPY."""

from __future__ import annotations

import datetime as dt
import signal
import subprocess
import sys
import textwrap
import time

import psycopg
import pytest
import yaml

from customer_lens import extract
from customer_lens.config import source_config

DAY1 = dt.datetime(2026, 3, 1, tzinfo=dt.UTC)
DAY = dt.timedelta(days=1)

DDL = """
create table public.orders (
    order_id bigint primary key, customer_id bigint, status text, amount numeric(12, 2),
    created_at timestamptz not null, updated_at timestamptz not null
);
"""


def _document(url: str) -> dict:
    return {
        "sources": {
            "shop": {
                "kind": "postgres",
                "url": url,
                "max_reject_ratio": 0.5,
                "entities": {
                    "orders": {
                        "table": "public.orders",
                        "cursor": "updated_at",
                        "primary_key": ["order_id"],
                        "columns": {
                            "order_id": {"type": "bigint", "required": True},
                            "customer_id": {"type": "bigint", "required": True},
                            "status": "text",
                            "amount": {"type": "numeric", "min": 0},
                            "created_at": {"type": "timestamptz", "required": True},
                            "updated_at": {"type": "timestamptz", "required": True},
                        },
                    }
                },
            }
        }
    }


def _source(url: str) -> source_config.Source:
    return source_config.parse(_document(url))["shop"]


@pytest.fixture
def dbs(make_database) -> tuple[str, str]:
    src, wh = make_database("pg_src"), make_database("pg_wh")
    with psycopg.connect(src) as conn:
        conn.execute(DDL)
    return src, wh


def _exec(url: str, query: str, params=None) -> list[tuple]:
    with psycopg.connect(url) as conn:
        cur = conn.execute(query, params)
        return cur.fetchall() if cur.description else []


def test_three_intervals_with_late_updates_load_exactly_the_right_versions(dbs) -> None:
    src, wh = dbs
    source = _source(src)
    _exec(
        src,
        "insert into orders values (1, 10, 'completed', 100, %(d)s + interval '1 hour', %(d)s + interval '1 hour'),"
        " (2, 11, 'completed', 50, %(d)s + interval '2 hours', %(d)s + interval '2 hours'),"
        " (3, 12, 'completed', 70, %(d)s + interval '1 day 3 hours', %(d)s + interval '1 day 3 hours')",
        {"d": DAY1},
    )
    extract.extract(source, "orders", DAY1, DAY1 + DAY, warehouse_url=wh)
    # Late update: order 1 is returned on day 3; the day-1 version stays in day 1's batch.
    _exec(src, "update orders set status = 'returned', updated_at = %s where order_id = 1", (DAY1 + 2 * DAY,))
    # A row written exactly at an interval boundary belongs to the later interval only.
    _exec(src, "insert into orders values (4, 13, 'completed', 5, %(b)s, %(b)s)", {"b": DAY1 + 2 * DAY})
    extract.extract(source, "orders", DAY1 + DAY, DAY1 + 2 * DAY, warehouse_url=wh)
    extract.extract(source, "orders", DAY1 + 2 * DAY, DAY1 + 3 * DAY, warehouse_url=wh)

    versions = _exec(wh, "select _interval_start::date::text, order_id, status from raw_shop.orders order by 1, 2")
    assert versions == [
        ("2026-03-01", 1, "completed"),
        ("2026-03-01", 2, "completed"),
        ("2026-03-02", 3, "completed"),
        ("2026-03-03", 1, "returned"),
        ("2026-03-03", 4, "completed"),
    ]
    # Types survive: numeric stays exact, timestamps stay instants.
    assert _exec(wh, "select amount::text from raw_shop.orders where order_id = 2") == [("50.00",)]


def test_rerun_of_an_interval_is_idempotent(dbs) -> None:
    src, wh = dbs
    source = _source(src)
    _exec(
        src,
        "insert into orders select g, g %% 7, 'completed', g, %(d)s + g * interval '1 second', "
        "%(d)s + g * interval '1 second' from generate_series(1, 5000) g",
        {"d": DAY1},
    )
    first = extract.extract(source, "orders", DAY1, DAY1 + DAY, warehouse_url=wh)
    snapshot = _exec(
        wh, "select md5(string_agg(order_id || status || amount, ',' order by order_id)) from raw_shop.orders"
    )
    second = extract.extract(source, "orders", DAY1, DAY1 + DAY, warehouse_url=wh)
    assert first.rows_loaded == second.rows_loaded == 5000
    assert _exec(wh, "select count(*) from raw_shop.orders") == [(5000,)]
    assert (
        _exec(wh, "select md5(string_agg(order_id || status || amount, ',' order by order_id)) from raw_shop.orders")
        == snapshot
    )
    assert _exec(wh, "select count(*), bool_and(batch_id = %s) from raw_shop._batches", (second.batch_id,)) == [
        (1, True)
    ]


def test_rows_breaking_rules_go_to_rejects_with_their_key(dbs) -> None:
    src, wh = dbs
    source = _source(src)
    _exec(
        src,
        "insert into orders values (1, 10, 'completed', 100, %(d)s, %(d)s), (2, null, 'completed', 5, %(d)s, %(d)s),"
        " (3, 12, 'completed', -4, %(d)s, %(d)s), (4, 13, 'completed', 8, %(d)s, %(d)s)",
        {"d": DAY1 + dt.timedelta(hours=5)},
    )
    result = extract.extract(source, "orders", DAY1, DAY1 + DAY, warehouse_url=wh)
    assert (result.rows_loaded, result.rows_rejected) == (2, 2)
    rejects = _exec(
        wh, "select record_key, reason, detail, raw_text::jsonb ->> 'amount' from raw_shop._rejects order by 1"
    )
    assert rejects == [
        ("2", "missing_required_field", "missing_required_field:customer_id", "5.00"),
        ("3", "out_of_range", "out_of_range:amount", "-4.00"),
    ]


def _fill(src: str, first: int, last: int) -> None:
    """Orders ``first..last``, all updated during DAY1."""
    _exec(
        src,
        "insert into orders select g, g %% 97, 'completed', g %% 1000, %(d)s, "
        "%(d)s + (g %% 86000) * interval '1 second' from generate_series(%(first)s::bigint, %(last)s::bigint) g",
        {"d": DAY1, "first": first, "last": last},
    )


KILL_SCRIPT = textwrap.dedent(
    """
    import datetime as dt, pathlib, sys
    from customer_lens import extract
    from customer_lens.config import source_config
    source = source_config.load(pathlib.Path(sys.argv[1]))["shop"]
    start = dt.datetime.fromisoformat(sys.argv[3])
    extract.extract(source, "orders", start, start + dt.timedelta(days=1), warehouse_url=sys.argv[2])
    """
)


def test_a_load_killed_mid_copy_leaves_the_previous_state_and_a_rerun_completes(dbs, tmp_path) -> None:
    src, wh = dbs
    source = _source(src)
    _fill(src, 1, 1000)
    extract.extract(source, "orders", DAY1, DAY1 + DAY, warehouse_url=wh)
    # The source grows a lot; the next load of the same interval is killed while it streams.
    _fill(src, 1001, 1500000)
    script, config = tmp_path / "load.py", tmp_path / "sources.yml"
    script.write_text(KILL_SCRIPT)
    config.write_text(yaml.safe_dump(_document(src)))
    proc = subprocess.Popen([sys.executable, str(script), str(config), wh, DAY1.isoformat()])
    try:
        deadline = time.monotonic() + 120
        copying = False
        while time.monotonic() < deadline and proc.poll() is None:
            active = _exec(
                wh,
                "select count(*) from pg_stat_progress_copy p join pg_stat_activity a using (pid) "
                "where p.tuples_processed > 10000 and a.query ilike 'copy%%raw_shop%%'",
            )
            if active[0][0]:
                copying = True
                break
            time.sleep(0.05)
        assert copying, "the load never reached the COPY phase"
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()

    # The killed transaction is rolled back by the server once it notices the dead client.
    deadline = time.monotonic() + 60
    while _exec(
        wh, "select count(*) from pg_stat_activity where query ilike 'copy%%raw_shop%%' and pid <> pg_backend_pid()"
    )[0][0]:
        assert time.monotonic() < deadline, "the killed COPY is still running"
        time.sleep(0.1)
    assert _exec(wh, "select count(*) from raw_shop.orders") == [(1000,)]
    assert _exec(wh, "select count(*) from raw_shop._batches") == [(1,)]

    rerun = extract.extract(source, "orders", DAY1, DAY1 + DAY, warehouse_url=wh)
    assert rerun.rows_loaded == 1500000
    assert _exec(wh, "select count(*), count(distinct order_id) from raw_shop.orders") == [(1500000, 1500000)]


def test_a_day_inside_a_loaded_month_replaces_exactly_that_days_rows(dbs) -> None:
    """`make run` loads months; the daily run for yesterday (or a backfill of a week) then reloads days in them."""
    src, wh = dbs
    source = _source(src)
    _exec(
        src,
        "insert into orders select g, g %% 7, 'completed', g, %(d)s + g * interval '1 hour', "
        "%(d)s + g * interval '1 hour' from generate_series(1, 24 * 20) g",  # 20 days, one an hour
        {"d": DAY1},
    )
    month = extract.extract(source, "orders", DAY1, DAY1 + 31 * DAY, warehouse_url=wh)
    outside = "select order_id, status, amount, updated_at, _batch_id, _loaded_at from raw_shop.orders "
    outside += "where updated_at < %s or updated_at >= %s order by order_id"
    day5 = (DAY1 + 4 * DAY, DAY1 + 5 * DAY)
    before = _exec(wh, outside, day5)

    # The source changes one order of day 5 (same day) and the day is loaded again, then again (a rerun).
    _exec(
        src,
        "update orders set status = 'returned', updated_at = updated_at + interval '1 minute' "
        "where order_id = 4 * 24 + 3",
    )
    day = extract.extract(source, "orders", *day5, warehouse_url=wh)
    again = extract.extract(source, "orders", *day5, warehouse_url=wh)

    assert day.rows_loaded == again.rows_loaded == 24
    assert _exec(wh, outside, day5) == before  # every other row untouched, byte for byte, in its month batch
    assert _exec(wh, "select count(*), count(distinct order_id) from raw_shop.orders") == [(24 * 20, 24 * 20)]
    assert _exec(wh, "select status from raw_shop.orders where order_id = %s", (4 * 24 + 3,)) == [("returned",)]
    assert _exec(wh, "select count(*) from raw_shop.orders where _batch_id = %s", (again.batch_id,)) == [(24,)]
    # Both loads are on record: the month (its other days) and the day.
    assert _exec(wh, "select batch_id from raw_shop._batches order by interval_start") == [
        (month.batch_id,),
        (again.batch_id,),
    ]


def test_a_source_that_changes_under_the_configuration(dbs) -> None:
    """A new column is kept in _extra and reported; a value the configured type cannot hold unchanged is a reject."""
    src, wh = dbs
    source = _source(src)
    _exec(
        src,
        "insert into orders values (1, 10, 'completed', 100, %(d)s, %(d)s), (2, 11, 'completed', 50, %(d)s, %(d)s)",
        {"d": DAY1 + dt.timedelta(hours=1)},
    )
    # The sales system adds a column and turns customer ids into numerics (someone wrote 12.5).
    _exec(src, "alter table orders add column channel text; update orders set channel = 'web' where order_id = 1")
    _exec(src, "alter table orders alter column customer_id type numeric")
    _exec(src, "insert into orders values (3, 12.5, 'completed', 20, %(d)s, %(d)s, 'phone')", {"d": DAY1})

    result = extract.extract(source, "orders", DAY1, DAY1 + DAY, warehouse_url=wh)

    assert (result.rows_loaded, result.rows_rejected) == (2, 1)
    assert result.extra_fields == ["channel"]
    assert "unexpected fields kept in _extra: channel" in str(result)
    assert _exec(wh, "select order_id, customer_id, _extra from raw_shop.orders order by 1") == [
        (1, 10, {"channel": "web"}),
        (2, 11, None),
    ]
    assert _exec(wh, "select record_key, detail from raw_shop._rejects") == [("3", "invalid_value:customer_id")]
