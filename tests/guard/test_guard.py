"""The snapshot guard end to end on a real warehouse: promotion, a block per class of failure, the audit."""

from __future__ import annotations

from pathlib import Path

import pytest
from lens_cli import run_lens

from customer_lens.config import environment
from customer_lens.guard import audit, baseline, quality

CANDIDATE = "analytics_candidate"


def test_first_run_promotes_baseline_one_with_kpis_and_audit(guard_world) -> None:
    out = guard_world.first_run_stdout
    assert "promoted to baseline #1" in out
    assert "headline KPIs" in out and "revenue" in out
    run = guard_world.one(
        "select passed, expectations_evaluated, expectations_failed, duration_seconds > 0, report_path "
        "from lens_audit.validation_runs where baseline_no = 1"
    )
    assert run[0] is True and run[1] > 100 and run[2] == 0 and run[3]
    assert "passed" in Path(run[4]).read_text(encoding="utf-8")
    # analytics shows the current baseline's snapshot (#1 unless other tests promoted since), without PII
    schema = guard_world.one("select schema_name from lens_audit.baselines where status = 'current'")[0]
    n_snapshot = guard_world.one(f'select count(*) from "{schema}".customers')[0]
    assert guard_world.one("select count(*) from analytics.customers")[0] == n_snapshot > 0
    listed = guard_world.one(
        "select string_agg(column_name, ',') from information_schema.columns "
        "where table_schema = 'analytics' and table_name = 'customers'"
    )[0]
    cols = set(listed.split(","))
    assert "customer_id" in cols and "email" not in cols and "customer_name" not in cols
    # one row per KPI of baseline #1, no previous value yet
    kpis = guard_world.one(
        "select count(*), count(previous_value), min(change_vs_first) from analytics.baseline_kpis "
        "where baseline_no = 1"
    )
    assert kpis[0] == 7 and kpis[1] == 0 and kpis[2] == 0


# Each class of failure: (name, SQL that damages the candidate, text the failure summary must show).
DAMAGE = [
    ("empty mart", f"delete from {CANDIDATE}.segment_migrations", "segment_migrations: expect_table_row_count"),
    (
        "missing column",
        f"alter table {CANDIDATE}.customers drop column referred_customers",
        "customers: expect_table_columns_to_match_set",
    ),
    (
        "changed type",
        f"alter table {CANDIDATE}.nps_by_segment alter column nps type double precision",
        "nps_by_segment.nps: expect_column_values_to_be_of_type",
    ),
    (
        "null key",
        f"update {CANDIDATE}.customers set customer_id = null where customer_id = (select min(customer_id) "
        f"from {CANDIDATE}.customers)",
        "customers.customer_id: expect_column_values_to_not_be_null",
    ),
    (
        "duplicate key",
        f"insert into {CANDIDATE}.customer_segments select * from {CANDIDATE}.customer_segments limit 3",
        "key (customer_id, snapshot_date) unique",
    ),
    (
        "value not accepted",
        f"update {CANDIDATE}.customer_segments set r_score = 7 where customer_id = (select min(customer_id) "
        f"from {CANDIDATE}.customer_segments)",
        "customer_segments.r_score: expect_column_values_to_be_in_set",
    ),
    (
        "value out of range",  # values_between in the yml
        f"update {CANDIDATE}.nps_by_segment set nps = 150 where month_start_date = "
        f"(select max(month_start_date) from {CANDIDATE}.nps_by_segment) and rfm_segment = 'all'",
        "nps_by_segment.nps: expect_column_values_to_be_between",
    ),
    (
        "broken identity",  # expression_is_true in the yml
        f"update {CANDIDATE}.nps_by_segment set promoters = promoters + 1 where nps_responses > 0",
        "(promoters + passives + detractors = nps_responses)",
    ),
    (
        "groups no longer add up",  # group_sums_match_total in the yml
        f"update {CANDIDATE}.guerrilla_metrics set revenue = revenue + 100 where group_type = 'value_tier' "
        f"and period_type = 'month' and period_start_date = (select max(period_start_date) "
        f"from {CANDIDATE}.guerrilla_metrics) and group_value = (select min(group_value) "
        f"from {CANDIDATE}.guerrilla_metrics where group_type = 'value_tier')",
        "the group_type groups' revenue add up to the all row",
    ),
    (
        "row count drift",
        f"delete from {CANDIDATE}.customer_segments where customer_id % 2 = 0",
        "customer_segments: expect_table_row_count_to_be_between [row count drift]",
    ),
    (
        "KPI drift",
        f"update {CANDIDATE}.customers set lifetime_revenue = lifetime_revenue * 1.5",
        "KPI revenue within",
    ),
    (
        "restated closed month",
        f"update {CANDIDATE}.guerrilla_metrics set revenue = revenue * 1.05 where period_type = 'month' "
        f"and period_start_date = (select max(period_start_date) - interval '3 months' "
        f"from {CANDIDATE}.guerrilla_metrics where period_type = 'month')",
        "closed past periods unchanged",
    ),
    (
        "vanished segment",
        f"update {CANDIDATE}.customer_segments set value_tier = 'long_tail' where value_tier <> 'long_tail' "
        f"and is_latest_snapshot and value_tier = (select min(value_tier) from {CANDIDATE}.customer_segments "
        f"where is_latest_snapshot and value_tier <> 'long_tail')",
        "no value_tier of baseline #",
    ),
]


@pytest.mark.parametrize(("name", "damage", "expected"), DAMAGE, ids=[d[0] for d in DAMAGE])
def test_each_class_of_failure_is_blocked_and_the_baseline_stays(guard_world, name, damage, expected) -> None:
    before = guard_world.current()
    customers_before = guard_world.one("select count(*) from analytics.customers")[0]
    guard_world.restore_candidate()
    with guard_world.connect() as conn:
        conn.execute(damage)
    try:
        with guard_world.env(), pytest.raises(baseline.ValidationFailed) as failed:
            baseline.guard()
    finally:
        guard_world.restore_candidate()
    message = str(failed.value)
    assert expected in message, message
    assert "the baseline is unchanged" in message and "report:" in message
    assert guard_world.current() == before
    assert guard_world.one("select count(*) from analytics.customers")[0] == customers_before
    run = guard_world.one(
        "select v.passed, v.expectations_failed, s.status, s.schema_name, v.report_path "
        "from lens_audit.validation_runs v join lens_audit.snapshots s using (snapshot_id) where v.run_id = %s",
        (failed.value.run_id,),
    )
    assert run[0] is False and run[1] >= 1 and run[2] == "quarantined"
    # the quarantined candidate is kept for inspection, with its failures recorded
    assert guard_world.one(f'select count(*) from "{run[3]}".customers')[0] >= 0
    assert (
        guard_world.one(
            "select count(*) from lens_audit.validation_failures where run_id = %s", (failed.value.run_id,)
        )[0]
        == run[1]
    )
    assert "FAILED" in Path(run[4]).read_text(encoding="utf-8")


def test_a_restatement_asked_for_is_accepted_and_settled_by_the_baseline(guard_world) -> None:
    """`lens restate` records the request; its closed periods may change, earlier ones still may not."""
    before_no, _ = guard_world.current()
    guard_world.restore_candidate()
    (month,) = guard_world.one(
        f"select (max(period_start_date) - interval '3 months')::date from {CANDIDATE}.guerrilla_metrics "
        "where period_type = 'month'"
    )
    next_month = guard_world.one("select (%s::date + interval '1 month')::date", (month,))[0]
    try:
        with guard_world.connect() as conn:
            conn.execute(
                f"update {CANDIDATE}.guerrilla_metrics set revenue = revenue * 1.05 "
                "where period_type = 'month' and period_start_date = %s",
                (month,),
            )
            audit.record_restatement(conn, next_month, "a later month only", "tester", CANDIDATE)
            _rebuilt(conn)
        with guard_world.env(), pytest.raises(baseline.ValidationFailed) as failed:
            baseline.guard()
        assert "closed past periods unchanged" in str(failed.value)
        assert f"restated from {next_month:%Y-%m}" in str(failed.value)
        with guard_world.connect() as conn:
            audit.record_restatement(conn, month, "a correction of that month", "tester", CANDIDATE)
            _rebuilt(conn)
            # asked for after the candidate's build started: not in it, so neither accepted nor settled
            audit.record_restatement(conn, month, "asked while building", "tester", CANDIDATE)
        with guard_world.env():
            result = baseline.guard()
        assert result.promoted and result.baseline_no == guard_world.current()[0] != before_no
        assert guard_world.one(
            "select count(*) filter (where baseline_no is null), count(*) filter (where baseline_no = %s) "
            "from lens_audit.restatements where candidate_schema = %s",
            (result.baseline_no, CANDIDATE),
        ) == (1, 2)
    finally:
        with guard_world.connect() as conn:
            conn.execute("update lens_audit.restatements set baseline_no = coalesce(baseline_no, %s)", (before_no,))
            baseline.rollback(conn, before_no, actor="tester", reason="back to the unrestated baseline")
        guard_world.restore_candidate()


def _rebuilt(conn) -> None:
    """What a build after `lens restate` records (the test damages the candidate instead of building it)."""
    audit.record_candidate_build(conn, CANDIDATE, "building", full_refresh=False)
    audit.record_candidate_build(conn, CANDIDATE, "built")


def test_override_promotes_a_quarantined_snapshot_with_its_reason_and_rollback_returns(guard_world) -> None:
    guard_world.restore_candidate()
    before_no, before_snapshot = guard_world.current()
    (latest_no,) = guard_world.one("select max(baseline_no) from lens_audit.baselines")  # after a rollback: > current
    with guard_world.connect() as conn:
        conn.execute(f"update {CANDIDATE}.customers set lifetime_revenue = lifetime_revenue * 1.5")
    try:
        with guard_world.env():
            result = baseline.guard(raise_on_failure=False)
    finally:
        guard_world.restore_candidate()
    assert not result.passed and not result.promoted
    with guard_world.connect() as conn:
        with pytest.raises(baseline.GuardError, match="needs a reason"):
            baseline.override(conn, result.snapshot_id, actor="tester", reason=" ")
        number = baseline.override(conn, result.snapshot_id, actor="tester", reason="price list changed")
    assert number == latest_no + 1
    assert guard_world.one("select baseline_no from analytics.baseline_info")[0] == number
    row = guard_world.one(
        "select b.reason, b.promoted_by, e.action from lens_audit.baselines b join lens_audit.baseline_events e "
        "using (baseline_no) where b.baseline_no = %s",
        (number,),
    )
    assert row == ("override: price list changed", "tester", "override")
    revenue_kpi = guard_world.one(
        "select change_pct_vs_previous from analytics.baseline_kpis where baseline_no = %s and kpi = 'revenue'",
        (number,),
    )[0]
    assert 49 < revenue_kpi < 51

    with guard_world.connect() as conn:
        assert baseline.rollback(conn, before_no, actor="tester", reason="back to validated") == before_no
        with pytest.raises(baseline.GuardError, match="current one already"):
            baseline.rollback(conn, before_no, actor="tester", reason="again")
    assert guard_world.current() == (before_no, before_snapshot)
    assert guard_world.one("select baseline_no from analytics.baseline_info")[0] == before_no
    event = guard_world.one(
        "select action, previous_baseline_no, actor from lens_audit.baseline_events order by event_id desc limit 1"
    )
    assert event == ("rollback", number, "tester")


def test_unchanged_build_keeps_the_baseline_and_old_snapshots_are_pruned(guard_world, tmp_path) -> None:
    guard_world.restore_candidate()
    config = tmp_path / "guard.yml"
    config.write_text("baselines_retained: 2\nquarantine_retained: 1\n")
    results = []
    with guard_world.env(), environment.overridden({"LENS_GUARD_CONFIG": str(config)}):
        for i in range(2):  # two builds with different data (a few names changed): two baselines
            guard_world.restore_candidate()
            with guard_world.connect() as conn:
                conn.execute(
                    f"update {CANDIDATE}.customers set customer_name = customer_name || repeat(' ', {i + 1}) "
                    "where customer_id % 50 = 3"
                )
            results.append(baseline.guard(source_build=f"build-{i}"))
        again = baseline.guard(source_build="build-1")
    assert all(r.promoted for r in results)
    assert again.skipped and again.baseline_no == results[-1].baseline_no
    retained = guard_world.one("select count(*) from lens_audit.baselines where status in ('current', 'retained')")[0]
    assert retained == 2
    pruned = guard_world.one(
        "select count(*) from lens_audit.baselines b where status = 'pruned' "
        "and not exists (select 1 from pg_namespace where nspname = b.schema_name)"
    )[0]
    total = guard_world.one("select count(*) from lens_audit.baselines")[0]
    assert pruned == total - retained > 0
    quarantined = guard_world.one("select count(*) from lens_audit.snapshots where status = 'quarantined'")[0]
    assert quarantined == 1


def test_a_snapshot_left_by_a_stopped_guard_is_listed_then_pruned(guard_world) -> None:
    guard_world.restore_candidate()
    with guard_world.connect() as conn, guard_world.env():
        snapshot = baseline.freeze(conn, quality.load_marts(parse=False))  # a guard killed right after this
    listed = run_lens("baseline", "list", env=guard_world.env_vars).stdout
    assert f"validating     {snapshot.snapshot_id}" in listed and "left by a guard that stopped" in listed
    with guard_world.connect() as conn, guard_world.env():
        assert baseline.prune(conn, quality.GuardConfig()) == []  # a guard may still be validating it
        conn.execute(
            "update lens_audit.snapshots set created_at = now() - interval '2 days' where snapshot_id = %s",
            (snapshot.snapshot_id,),
        )
        assert baseline.prune(conn, quality.GuardConfig()) == [snapshot.schema]
    assert guard_world.one(
        "select status from lens_audit.snapshots where snapshot_id = %s", (snapshot.snapshot_id,)
    ) == ("pruned",)


def test_a_rebuild_of_the_same_data_keeps_the_baseline(guard_world) -> None:
    """Another build (a new source_build), the same rows: validated, found equal, not promoted again."""
    guard_world.restore_candidate()
    before = guard_world.current()
    with guard_world.env():
        result = baseline.guard(source_build="a-rebuild-of-the-same-data")
    assert result.skipped and not result.promoted and result.baseline_no == before[0]
    assert "validated, and equal to it" in result.summary
    assert guard_world.current() == before
