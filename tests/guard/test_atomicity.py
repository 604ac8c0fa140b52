"""Promotion is atomic: readers never see an error or a mix of two baselines; a killed promotion leaves none."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import threading
import time

import psycopg
import pytest

from customer_lens.guard import baseline, quality

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


def _freeze_two_shapes(guard_world) -> tuple[dict[str, tuple[int, int, int]], list[str]]:
    """20 snapshots in two alternating shapes (every other one lacks a tenth of the customers), and what each
    holds, the current baseline's too."""
    expected: dict[str, tuple[int, int, int]] = {}
    with guard_world.connect() as conn:
        current = guard_world.current()[1]
        expected[current] = _expected(conn, current)
        with guard_world.env():
            marts = quality.load_marts(parse=False)
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
    return expected, snapshots


class _Readers:
    """BI readers running while promotions happen: what they saw, their errors, and any mixed read."""

    def __init__(self, url: str, expected: dict[str, tuple[int, int, int]]) -> None:
        self.url, self.expected = url, expected
        self.stop = threading.Event()
        self.seen: list[str] = []
        self.errors: list[str] = []
        self.mixed: list[tuple] = []
        self.threads = [threading.Thread(target=self.single_statement) for _ in range(2)]
        self.threads.append(threading.Thread(target=self.transaction))

    def single_statement(self) -> None:
        with psycopg.connect(self.url, autocommit=True) as conn:
            while not self.stop.is_set():
                try:
                    row = conn.execute(READ).fetchone()
                except psycopg.Error as exc:
                    self.errors.append(str(exc))
                    continue
                self.seen.append(row[0])
                if self.expected.get(row[0]) != row[1:]:
                    self.mixed.append(row)

    def transaction(self) -> None:
        """Several statements in one repeatable-read transaction: all of them on the same baseline."""
        with psycopg.connect(self.url) as conn:
            conn.isolation_level = psycopg.IsolationLevel.REPEATABLE_READ
            while not self.stop.is_set():
                try:
                    with conn.transaction():
                        first = conn.execute("select snapshot_id from analytics.baseline_info").fetchone()
                        n = conn.execute("select count(*) from analytics.customers").fetchone()[0]
                        again = conn.execute("select snapshot_id from analytics.baseline_info").fetchone()
                except psycopg.Error as exc:
                    self.errors.append(str(exc))
                    continue
                if first is None or first != again or self.expected[first[0]][0] != n:
                    self.mixed.append((first, again, n))
                time.sleep(0.01)

    def __enter__(self) -> _Readers:
        for thread in self.threads:
            thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        time.sleep(0.3)
        self.stop.set()
        for thread in self.threads:
            thread.join(timeout=30)


def test_readers_see_whole_baselines_during_20_promotions(guard_world) -> None:
    guard_world.restore_candidate()
    expected, snapshots = _freeze_two_shapes(guard_world)
    assert len(set(expected.values())) == 2  # the two shapes really differ

    with _Readers(guard_world.url, expected) as readers, guard_world.connect() as conn, guard_world.env():
        numbers = [baseline.promote(conn, s, actor="atomicity-test", reason="test") for s in snapshots]
    assert numbers == list(range(numbers[0], numbers[0] + 20))
    assert readers.errors == []
    assert readers.mixed == []
    assert len(readers.seen) > 40 and len(set(readers.seen)) >= 3
    assert guard_world.current()[1] == snapshots[-1]


PROMOTE_SCRIPT = """
import sys
from customer_lens.guard import audit, baseline
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


def _long_reader(url: str, seconds: int, outcome: list) -> threading.Thread:
    """A BI query that reads analytics.customers for ``seconds`` (it holds the view meanwhile)."""

    def read() -> None:
        try:
            with psycopg.connect(url, autocommit=True) as conn:
                conn.execute(f"select count(*), pg_sleep({seconds}) from analytics.customers").fetchone()
            outcome.append("finished")
        except psycopg.errors.QueryCanceled:
            outcome.append("cancelled")

    thread = threading.Thread(target=read)
    thread.start()
    time.sleep(1)  # it holds the view now
    return thread


def test_a_long_reader_neither_strands_nor_starves_a_promotion(guard_world, tmp_path, monkeypatch) -> None:
    """Waited out: the validated snapshot stays promotable; with cancel_blocking_readers: promoted at once."""
    from customer_lens.config import environment

    config = tmp_path / "guard.yml"
    config.write_text("promotion_lock_timeout: 1\n")
    guard_world.restore_candidate()
    with guard_world.connect() as conn:  # another name for a few: not equal to the baseline, every check passes
        conn.execute(
            f"update {CANDIDATE}.customers set customer_name = customer_name || ' ' where customer_id % 50 = 7"
        )
    before = guard_world.current()
    outcome: list[str] = []
    readers: list[threading.Thread] = []
    validate = quality.validate

    def validate_then_read(*args, **kwargs):  # the BI query starts as validation ends, however long it took
        result = validate(*args, **kwargs)
        readers.append(_long_reader(guard_world.url, 12, outcome))
        return result

    monkeypatch.setattr(quality, "validate", validate_then_read)
    try:
        with (
            guard_world.env(),
            environment.overridden({"LENS_GUARD_CONFIG": str(config)}),
            pytest.raises(baseline.GuardError) as raised,
        ):
            baseline.guard()
    finally:
        for reader in readers:
            reader.join(timeout=60)
    monkeypatch.undo()
    message = str(raised.value)
    assert "readers held them for 3 s in the lock queue" in message and "stays promotable" in message
    snapshot_id = re.search(r"lens baseline promote (\S+)", message).group(1)
    assert guard_world.current() == before and outcome == ["finished"]  # the reader was waited out
    with guard_world.connect() as conn, guard_world.env():
        number = baseline.override(conn, snapshot_id, actor="tester", reason="validated, readers held the views")
    assert guard_world.current() == (number, snapshot_id)

    # The same under a policy that cancels what still blocks after the first queued attempt.
    config.write_text("promotion_lock_timeout: 1\ncancel_blocking_readers: true\n")
    guard_world.restore_candidate()
    with guard_world.connect() as conn, guard_world.env():
        marts = quality.load_marts(parse=False)
        conn.execute(
            f"update {CANDIDATE}.customers set customer_name = customer_name || ' ' where customer_id % 50 = 8"
        )
        snapshot = baseline.freeze(conn, marts)
    outcome.clear()
    reader = _long_reader(guard_world.url, 60, outcome)
    try:
        with (
            guard_world.connect() as conn,
            guard_world.env(),
            environment.overridden({"LENS_GUARD_CONFIG": str(config)}),
        ):
            promoted = baseline.promote(conn, snapshot.snapshot_id, actor="tester", reason="readers cancelled")
    finally:
        reader.join(timeout=90)
    assert guard_world.current() == (promoted, snapshot.snapshot_id)
    assert outcome == ["cancelled"]
    guard_world.restore_candidate()
