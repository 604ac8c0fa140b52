"""Benchmark: full vs one-day incremental dbt builds, and the orchestrated transform vs plain dbt.

    python bench/transform.py [--scale medium] [--seed 7] [--skip-orchestration]

In one run, on a throwaway embedded server (or ``LENS_BENCH_URL``'s server):

1. generates the demo sources and loads the raw layer up to the day *before* the last;
2. **full**: ``dbt build --full-refresh`` of the whole project;
3. loads the last day into the raw layer; **incremental**: ``dbt build`` (merges that day only);
4. **plain vs orchestrated**: ``dbt build`` from the command line vs ``airflow dags test
   lens_transform`` (one Cosmos task), alternating, best of two each, on unchanged data.

Targets (issue #4): incremental ≤ 10% of full at large scale; orchestrated ≤ 1.5× plain.
Results go to ``bench/results/transform-<scale>.json``.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import psycopg

from customer_lens import airflow_local, demo, environment, pipeline, transform, warehouse

HERE = Path(__file__).resolve().parent


def _timed(label: str, func) -> float:
    print(f"{label} ...", flush=True)
    began = time.perf_counter()
    func()
    seconds = time.perf_counter() - began
    print(f"  {seconds:.1f}s", flush=True)
    return seconds


def _plain_dbt_build(env: dict[str, str]) -> None:
    dbt = str(Path(sys.executable).with_name("dbt"))
    subprocess.run(
        [dbt, "build", "--project-dir", env["DBT_PROJECT_DIR"], "--profiles-dir", env["DBT_PROFILES_DIR"], "--quiet"],
        env=env,
        check=True,
    )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scale", default="medium", choices=sorted(demo.SCALES))
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--end-date", default="2026-10-31")
    parser.add_argument("--skip-orchestration", action="store_true")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory(prefix="lens-bench-transform-") as tmp_name:
        tmp = Path(tmp_name)
        os.environ["LENS_STATE_DIR"] = str(tmp / "state")
        environment.apply()
        server = None
        if os.environ.get("LENS_BENCH_URL"):
            os.environ["LENS_WAREHOUSE_URL"] = warehouse.with_database(os.environ["LENS_BENCH_URL"], "bench_transform")
            warehouse.ensure_database(os.environ["LENS_BENCH_URL"], "bench_transform")
        else:
            server = warehouse.embedded()
            server.start()
        try:
            end_date = dt.date.fromisoformat(args.end_date)
            print(f"generating the {args.scale} demo sources ...", flush=True)
            pipeline.ensure_demo_data(scale=args.scale, seed=args.seed, end_date=end_date, force=True)
            start, end = pipeline.demo_range()
            last_day = end - dt.timedelta(days=1)
            figures: dict[str, float] = {}
            figures["extract_history_s"] = _timed(
                "loading the raw layer up to the last day",
                lambda: pipeline.load_raw(start, last_day, step="month", history=True),
            )
            figures["full_build_s"] = _timed("dbt build --full-refresh", lambda: transform.build(full_refresh=True))
            figures["extract_last_day_s"] = _timed(
                "loading the last day", lambda: pipeline.load_raw(last_day, end, step="day")
            )
            figures["incremental_build_s"] = _timed("dbt build (one new day)", transform.build)
            with psycopg.connect(warehouse.url()) as conn:
                figures["order_lines"] = conn.execute("select count(*) from raw_sales.order_lines").fetchone()[0]

            if not args.skip_orchestration:
                env = os.environ | transform.dbt_env()
                af_env = airflow_local.environment(home=tmp / "airflow")
                airflow_local.airflow("db", "migrate", env=af_env)
                plain, orchestrated = [], []
                for _ in range(2):
                    plain.append(_timed("plain dbt build", lambda: _plain_dbt_build(env)))
                    orchestrated.append(
                        _timed(
                            "airflow dags test lens_transform",
                            lambda: airflow_local.airflow("dags", "test", "lens_transform", env=af_env, timeout=3600),
                        )
                    )
                figures["plain_dbt_build_s"] = min(plain)
                figures["orchestrated_dags_test_s"] = min(orchestrated)
        finally:
            if server:
                server.stop()

    checks = {"incremental_vs_full": (figures["incremental_build_s"] / figures["full_build_s"], 0.10)}
    if "plain_dbt_build_s" in figures:
        checks["orchestrated_vs_plain"] = (figures["orchestrated_dags_test_s"] / figures["plain_dbt_build_s"], 1.5)
    print(f"\n{args.scale} scale, {figures['order_lines']:,} order lines\n")
    for name, value in figures.items():
        if name.endswith("_s"):
            print(f"{name:<28}{value:>9.1f}s")
    print()
    for name, (ratio, target) in checks.items():
        verdict = "PASS" if ratio <= target else "FAIL"
        note = "" if name != "incremental_vs_full" or args.scale == "large" else " (target applies at large)"
        print(f"{name:<28}{ratio:>9.2f}  target <= {target:<5} {verdict}{note}")

    results = HERE / "results"
    results.mkdir(exist_ok=True)
    out = results / f"transform-{args.scale}.json"
    out.write_text(
        json.dumps(
            {
                "scale": args.scale,
                "figures": figures,
                "checks": {k: {"ratio": r, "target": t, "pass": r <= t} for k, (r, t) in checks.items()},
                "measured_at": dt.datetime.now(dt.UTC).isoformat(),
            },
            indent=2,
        )
    )
    print(f"\nwritten {out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
