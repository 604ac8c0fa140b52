"""Benchmark: the Great Expectations guard vs one hand-written SQL pass computing the same checks.

    python bench/guard.py [--scale large] [--seed 42] [--repeat 3]

In one run, on the configured warehouse (the embedded one by default, or ``LENS_WAREHOUSE_URL``):

1. ``lens run --scale S`` (idempotent: skipped work is free) so that a candidate and a baseline exist;
2. the candidate is frozen into a snapshot, as the guard does;
3. **GX**: :func:`customer_lens.guard.quality.validate` — every mart's suite, drift against the baseline
   included;
4. **SQL**: the same checks written by hand as plain SQL (one aggregate query per mart for row count,
   null keys, value sets and ranges; the key-uniqueness, identity, KPI, closed-period and vanishing
   queries as GX runs them), on one connection. The two alternate, ``--repeat`` times; best of each.

Target (issue #5): GX ≤ 1.5× the SQL pass. Results go to ``bench/results/guard-<scale>.json``.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import psycopg
from psycopg import sql

from customer_lens import pipeline
from customer_lens.guard import audit, baseline, quality
from customer_lens.local import warehouse

HERE = Path(__file__).resolve().parent


def _checks_sql(mart: quality.MartSpec, schema: str, config: quality.GuardConfig, base) -> list[str]:
    """The suite of ``mart`` as hand-written SQL: the same checks as :func:`quality.build_suite`."""
    table = sql.Identifier(schema, mart.name).as_string(None)
    aggregates = ["count(*)"]
    aggregates += [f'count(*) filter (where "{c}" is null)' for c in mart.primary_key]
    for column, values in mart.accepted_values.items():
        if any("{{" in v for v in values):
            continue
        listed = ", ".join("'" + v.replace("'", "''") + "'" for v in values)
        aggregates.append(f'count(*) filter (where "{column}"::text not in ({listed}))')
    for check in mart.checks:
        if check.unexpected_rows is None and check.column in mart.columns:
            cond = " or ".join(
                c
                for c in (
                    (f'"{check.column}" < {check.low}' if check.low is not None else ""),
                    (f'"{check.column}" > {check.high}' if check.high is not None else ""),
                )
                if c
            )
            aggregates.append(f"count(*) filter (where {cond})")
    queries = [f"select {', '.join(aggregates)} from {table}"]
    queries.append(
        "select column_name, data_type from information_schema.columns "
        f"where table_schema = '{schema}' and table_name = '{mart.name}'"
    )
    if mart.primary_key:
        key = ", ".join(f'"{c}"' for c in mart.primary_key)
        queries.append(f"select {key} from {table} group by {key} having count(*) > 1")
    # the queries the suite runs as UnexpectedRowsExpectation, on the table itself
    suite = quality.build_suite(mart, config=config, baseline=base, baseline_schema=base.schema if base else None)
    for exp in suite.expectations:
        query = getattr(exp, "unexpected_rows_query", None)
        if query and "as copies" not in query:  # (key uniqueness is the query above)
            queries.append(query.replace("{batch}", table))
    return queries


def _run_sql(url: str, marts, schema: str, config, base) -> int:
    n = 0
    with psycopg.connect(url, autocommit=True) as conn:
        for mart in marts:
            for query in _checks_sql(mart, schema, config, base):
                conn.execute(query).fetchall()
                n += 1
    return n


def _timed(func) -> float:
    began = time.perf_counter()
    func()
    return time.perf_counter() - began


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scale", default="large")
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()

    for line in pipeline.run(scale=args.scale, seed=args.seed):
        print(line, flush=True)
    url = warehouse.url()
    config = quality.GuardConfig.load()
    marts = quality.load_marts()
    with audit.connect(autocommit=True) as conn:
        current = baseline.current_baseline(conn)
        base = quality.read_baseline(conn, current[0], current[2], marts)
        snapshot = baseline.freeze(conn, marts)
        rows = {
            m.name: conn.execute(
                sql.SQL("select count(*) from {}").format(sql.Identifier(snapshot.schema, m.name))
            ).fetchone()[0]
            for m in marts
        }
    print(
        f"candidate {snapshot.schema}: {sum(rows.values()):,} rows in {len(marts)} marts "
        f"(largest {max(rows, key=rows.get)}: {max(rows.values()):,})"
    )
    try:
        outcome = {}

        def gx() -> None:
            outcome["result"] = quality.validate(url, snapshot.schema, marts, config=config, baseline=base)

        counted = {}

        def hand() -> None:
            counted["queries"] = _run_sql(url, marts, snapshot.schema, config, base)

        # alternating, so that a busy moment of the machine hits both alike
        gx_times, sql_times = [], []
        for _ in range(args.repeat):
            gx_times.append(_timed(gx))
            sql_times.append(_timed(hand))
        gx_seconds, sql_seconds = min(gx_times), min(sql_times)
        for label, times in (("GX guard (quality.validate)", gx_times), ("hand-written SQL pass", sql_times)):
            print(f"{label:<28} best {min(times):7.2f}s  (runs: {', '.join(f'{t:.2f}' for t in times)})")
    finally:
        with audit.connect(autocommit=True) as conn:
            conn.execute(sql.SQL("drop schema if exists {} cascade").format(sql.Identifier(snapshot.schema)))
            conn.execute(
                "update lens_audit.snapshots set status = 'pruned' where snapshot_id = %s", (snapshot.snapshot_id,)
            )
    ratio = gx_seconds / sql_seconds
    verdict = "meets" if ratio <= 1.5 else "MISSES"
    print(
        f"GX / SQL = {ratio:.2f}x ({verdict} the 1.5x target); {outcome['result'].evaluated} expectations, "
        f"{counted['queries']} SQL queries; passed={outcome['result'].passed}"
    )
    results = {
        "scale": args.scale,
        "rows": rows,
        "expectations": outcome["result"].evaluated,
        "sql_queries": counted["queries"],
        "gx_seconds": round(gx_seconds, 3),
        "sql_seconds": round(sql_seconds, 3),
        "ratio": round(ratio, 3),
        "target": 1.5,
        "meets_target": ratio <= 1.5,
    }
    out = HERE / "results" / f"guard-{args.scale}.json"
    out.parent.mkdir(exist_ok=True)
    out.write_text(json.dumps(results, indent=2))
    print(f"results: {out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
