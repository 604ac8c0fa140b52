"""The guard reads a mart's value ranges and identities from the dbt project's yml (manifest), not from a
list of its own: each generic data test it repeats and each ``check`` constraint becomes one check."""

from __future__ import annotations

import psycopg

from customer_lens.guard import quality


def _test(name: str, model: str, column: str | None = None, **kwargs) -> dict:
    return {
        "resource_type": "test",
        "attached_node": f"model.customer_lens.{model}",
        "column_name": column,
        "test_metadata": {"name": name, "kwargs": {"model": "{{ ref('m') }}", **kwargs}},
    }


def _manifest() -> dict:
    model = {
        "resource_type": "model",
        "name": "payments",
        "fqn": ["customer_lens", "marts", "finance", "payments"],
        "config": {"materialized": "table"},
        "constraints": [
            {"type": "primary_key", "columns": ["payment_id"]},
            {"type": "check", "expression": "refunded <= amount"},
        ],
        "columns": {
            "payment_id": {"data_type": "bigint", "constraints": [{"type": "not_null"}]},
            "amount": {"data_type": "numeric(18,6)", "constraints": [{"type": "check", "expression": "amount >= 0"}]},
            "refunded": {"data_type": "numeric(18,6)"},
            "rating": {"data_type": "integer"},
            "month": {"data_type": "date"},
            "region_type": {"data_type": "text"},
        },
    }
    tests = [
        _test("non_negative", "payments", "refunded", column_name="refunded"),
        _test("values_between", "payments", "rating", column_name="rating", min_value=1, max_value=5),
        _test("expression_is_true", "payments", expression="rating is not null"),
        _test(
            "group_sums_match_total",
            "payments",
            column_name="amount",
            partition_by=["month"],
            group_column="region_type",
        ),
        _test("unique_combination_of_columns", "payments", combination_of_columns=["payment_id"]),
        _test("relationships", "payments", "payment_id", to="ref('x')", field="id"),
    ]
    nodes = {"model.customer_lens.payments": model} | {f"test.customer_lens.t{i}": t for i, t in enumerate(tests)}
    return {"nodes": nodes}


def test_every_declared_rule_becomes_one_check_and_others_are_left_to_dbt() -> None:
    [mart] = quality.marts_from_manifest(_manifest())
    by_description = {check.description: check for check in mart.checks}
    assert sorted(by_description) == [
        "amount >= 0",
        "rating between 1 and 5",
        "rating is not null",
        "refunded <= amount",
        "refunded >= 0",
        "the region_type groups' amount add up to the all row",
    ]
    assert (by_description["refunded >= 0"].column, by_description["refunded >= 0"].low) == ("refunded", 0)
    assert (by_description["rating between 1 and 5"].low, by_description["rating between 1 and 5"].high) == (1, 5)
    # a data test must hold (null fails); a check constraint lets null pass, as PostgreSQL does
    assert "not coalesce((rating is not null), false)" in by_description["rating is not null"].unexpected_rows
    assert "where not (refunded <= amount)" in by_description["refunded <= amount"].unexpected_rows
    sums = by_description["the region_type groups' amount add up to the all row"].unexpected_rows
    assert sums.count("{batch}") == 1 and "partition by month" in sums


def test_the_checks_run_as_sql_and_find_exactly_the_broken_rows(make_database) -> None:
    [mart] = quality.marts_from_manifest(_manifest())
    with psycopg.connect(make_database("declared_checks")) as conn:
        conn.execute(
            "create temp table payments as select * from (values "
            "(1, 10.0, 0.0, 5, date '2026-11-01', 'all'), (2, 6.0, 7.0, 3, date '2026-11-01', 'region'), "
            "(3, 5.0, 0.0, null, date '2026-11-01', 'region'), (4, 1.0, 0.0, 2, date '2026-12-01', 'all')"
            ") as v(payment_id, amount, refunded, rating, month, region_type)"
        )
        broken = {
            check.description: len(conn.execute(check.unexpected_rows.replace("{batch}", "payments")).fetchall())
            for check in mart.checks
            if check.unexpected_rows
        }
    assert broken == {
        "refunded <= amount": 1,
        "amount >= 0": 0,
        "rating is not null": 1,
        "the region_type groups' amount add up to the all row": 1,  # November: 6 + 5 <> 10
    }
