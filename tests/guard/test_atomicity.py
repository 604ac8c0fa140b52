"""Promotion is atomic: readers never see an error or a mix of two baselines; a killed promotion leaves none."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time

import psycopg

from customer_lens import baseline, quality

CANDIDATE = "analytics_candidate"
# One statement that reads three views: all must come from the snapshot baseline_info names.
READ = """
select b.snapshot_id,
       (select count(*) from analytics.customers),
       (select count(*) from analytics.customer_segments),
       (select count(*) from analytics.guerrilla_metrics)
from analytics.baseline_info as b
"""


def _expected(conn, snapshot_id: str) -> tuple[int, int, int]:
    schema = conn.execute(
        "select schema_name from lens_audit.snapshots where snapshot_id = %s", (snapshot_id,)
    ).fetchone()[0]
    return conn.execute(
        f'select (select count(*) from "{schema}".customers), (select count(*) from "{schema}".customer_segments), '
        f'(select count(*) from "{schema}".guerrilla_metrics)'
    ).fetchone()


def test_readers_see_whole_baselines_during_20_promotions(guard_world) -> None:
    guard_world.restore_candidate()
    expected: dict[str, tuple[int, int, int]] = {}
    with guard_world.connect() as conn:
        current = guard_world.current()[1]
        expected[current] = _expected(conn, current)
        with guard_world.env():
            marts = quality.load_marts(parse=False)
        # 20 snapshots in two alternating shapes: every other one lacks a tenth of the customers
        snapshots = []
        for i in range(20):
            guard_world.restore_candidate()
            if i % 2 == 0:
                conn.execute(f"delete from {CANDIDATE}.customers where customer_id % 10 = 3")
                conn.execute(f"delete from {CANDIDATE}.customer_segments where customer_id % 10 = 3")
            snapshot = baseline.freeze(conn, marts)
            expected[snapshot.snapshot_id] = _expected(conn, snapshot.snapshot_id)
            snapshots.append(snapshot.snapshot_id)
        guard_world.restore_candidate()
    assert len(set(expected.values())) == 2  # the two shapes really differ

    stop = threading.Event()
    seen: list[str] = []
    errors: list[str] = []
    mixed: list[tuple] = []

    def single_statement_reader() -> None:
        with psycopg.connect(guard_world.url, autocommit=True) as conn:
            while not stop.is_set():
                try:
                    row = conn.execute(READ).fetchone()
                except psycopg.Error as exc:
                    errors.append(str(exc))
                    continue
                seen.append(row[0])
                if expected.get(row[0]) != row[1:]:
                    mixed.append(row)

    def transaction_reader() -> None:
        """Several statements in one repeatable-read transaction: all of them on the same baseline."""
        with psycopg.connect(guard_world.url) as conn:
            conn.isolation_level = psycopg.IsolationLevel.REPEATABLE_READ
            while not stop.is_set():
                try:
                    with conn.transaction():
                        first = conn.execute("select snapshot_id from analytics.baseline_info").fetchone()
                        n = conn.execute("select count(*) from analytics.customers").fetchone()[0]
                        again = conn.execute("select snapshot_id from analytics.baseline_info").fetchone()
                except psycopg.Error as exc:
                    errors.append(str(exc))
                    continue
                if first is None or first != again or expected[first[0]][0] != n:
                    mixed.append((first, again, n))
                time.sleep(0.01)

    readers = [threading.Thread(target=single_statement_reader) for _ in range(2)]
    readers.append(threading.Thread(target=transaction_reader))
    for reader in readers:
        reader.start()
    try:
        with guard_world.connect() as conn, guard_world.env():
            numbers = [baseline.promote(conn, s, actor="atomicity-test", reason="test") for s in snapshots]
    finally:
        time.sleep(0.3)
        stop.set()
        for reader in readers:
            reader.join(timeout=30)
    assert numbers == list(range(numbers[0], numbers[0] + 20))
    assert errors == []
    assert mixed == []
    assert len(seen) > 40 and len(set(seen)) >= 3
    assert guard_world.current()[1] == snapshots[-1]


PROMOTE_SCRIPT = """
import sys
from customer_lens import audit, baseline
with audit.connect(autocommit=True) as conn:
    baseline.promote(conn, sys.argv[1], actor="doomed", reason="killed mid-promotion")
"""


def test_a_promotion_killed_midway_leaves_the_old_baseline_and_a_rerun_succeeds(guard_world) -> None:
    guard_world.restore_candidate()
    before = guard_world.current()
    with guard_world.connect() as conn, guard_world.env():
        snapshot = baseline.freeze(conn, quality.load_marts(parse=False))
    env = os.environ | guard_world.env_vars | {"PGAPPNAME": "lens-doomed-promotion"}
    with (
        psycopg.connect(guard_world.url) as blocker,
        psycopg.connect(guard_world.url, autocommit=True) as watcher,
    ):
        # Holding this lock stops the promotion inside its transaction, after it changed lens_audit.baselines.
        blocker.execute("lock table lens_audit.baseline_kpi_values in share mode")
        proc = subprocess.Popen([sys.executable, "-c", PROMOTE_SCRIPT, snapshot.snapshot_id], env=env)
        deadline = time.monotonic() + 120
        waiting = None
        while time.monotonic() < deadline and waiting is None and proc.poll() is None:
            # (a separate connection: pg_stat_activity is frozen for the length of a transaction)
            waiting = watcher.execute(
                "select pid from pg_stat_activity where application_name = 'lens-doomed-promotion' "
                "and wait_event_type = 'Lock'"
            ).fetchone()
            time.sleep(0.02)
        assert waiting, "the promotion never reached its transaction"
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(timeout=30)
        blocker.rollback()
    assert guard_world.current() == before
    assert guard_world.one("select snapshot_id from analytics.baseline_info")[0] == before[1]
    assert guard_world.one("select status from lens_audit.snapshots where snapshot_id = %s", (snapshot.snapshot_id,))[
        0
    ] == ("validating")
    with guard_world.connect() as conn, guard_world.env():
        number = baseline.promote(conn, snapshot.snapshot_id, actor="rerun", reason="after the crash")
    assert guard_world.current() == (number, snapshot.snapshot_id) and number == before[0] + 1
