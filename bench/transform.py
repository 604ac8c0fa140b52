"""Benchmark: full vs one-day incremental dbt builds at two scales, and the orchestrated transform vs plain dbt.

    python bench/transform.py [--scales medium,large] [--orchestration-scale medium] [--seed 7]

In one run, per scale, on a throwaway embedded server (or a database on ``LENS_BENCH_URL``'s server):

1. generates the demo sources and loads the raw layer up to the day *before* the last;
2. **full**: ``dbt build --full-refresh`` of the whole project (models, seeds, unit and data tests);
3. loads the last day into the raw layer; **incremental**: ``dbt build`` (what a daily run does);
4. at the orchestration scale only: **plain vs orchestrated** — ``dbt build`` from the command line vs
   ``airflow dags test lens_transform`` (one Cosmos task), alternating, best of two each, on unchanged data.

Targets (issue #4): incremental <= 10% of full at large scale; orchestrated <= 1.5x plain.
Prints the figures and the slowest nodes of each build; writes ``bench/results/transform.json``.
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


def _slowest(result: transform.DbtResult, n: int = 8) -> list[dict]:
    """The ``n`` slowest nodes of a build: where its time went."""
    timed = [
        {"node": r.node.unique_id, "seconds": round(r.execution_time, 1)} for r in getattr(result.result, "results", [])
    ]
    return sorted(timed, key=lambda row: -row["seconds"])[:n]


def _measure_scale(scale: str, args: argparse.Namespace, tmp: Path, orchestrate: bool) -> dict:
    """Full vs one-day incremental build at one scale (and plain vs orchestrated when asked)."""
    os.environ["LENS_STATE_DIR"] = str(tmp / scale / "state")
    os.environ.pop("LENS_WAREHOUSE_URL", None)
    environment.apply()
    server = None
    if os.environ.get("LENS_BENCH_URL"):
        database = f"bench_transform_{scale}"
        os.environ["LENS_WAREHOUSE_URL"] = warehouse.with_database(os.environ["LENS_BENCH_URL"], database)
        warehouse.ensure_database(os.environ["LENS_BENCH_URL"], database)
    else:
        server = warehouse.embedded()
        server.start()
    figures: dict = {}
    slowest: dict = {}
    try:
        end_date = dt.date.fromisoformat(args.end_date)
        print(f"\n== {scale}: generating the demo sources ...", flush=True)
        pipeline.ensure_demo_data(scale=scale, seed=args.seed, end_date=end_date, force=True)
        start, end = pipeline.demo_range()
        last_day = end - dt.timedelta(days=1)
        figures["extract_history_s"] = _timed(
            "loading the raw layer up to the last day",
            lambda: pipeline.load_raw(start, last_day, step="month", history=True),
        )
        builds: dict[str, transform.DbtResult] = {}

        def build(name: str, **kwargs) -> None:
            builds[name] = transform.build(**kwargs)

        figures["full_build_s"] = _timed("dbt build --full-refresh", lambda: build("full", full_refresh=True))
        figures["extract_last_day_s"] = _timed(
            "loading the last day", lambda: pipeline.load_raw(last_day, end, step="day")
        )
        figures["incremental_build_s"] = _timed("dbt build (one new day)", lambda: build("incremental"))
        slowest = {name: _slowest(result) for name, result in builds.items()}
        with psycopg.connect(warehouse.url()) as conn:
            figures["order_lines"] = conn.execute("select count(*) from raw_sales.order_lines").fetchone()[0]

        if orchestrate:
            env = os.environ | transform.dbt_env()
            af_env = airflow_local.environment(home=tmp / scale / "airflow")
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
    return {"figures": figures, "slowest_nodes": slowest}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scales", default="medium,large", help="comma-separated, e.g. small,medium")
    parser.add_argument("--orchestration-scale", default="medium", help="'' to skip plain vs orchestrated")
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--end-date", default="2026-10-31")
    args = parser.parse_args()
    scales = [name.strip() for name in args.scales.split(",") if name.strip()]
    unknown = sorted(set(scales) - set(demo.SCALES))
    if unknown:
        parser.error(f"unknown scale(s) {unknown}; choose from {sorted(demo.SCALES)}")

    measured: dict[str, dict] = {}
    with tempfile.TemporaryDirectory(prefix="lens-bench-transform-") as tmp_name:
        for scale in scales:
            measured[scale] = _measure_scale(scale, args, Path(tmp_name), orchestrate=scale == args.orchestration_scale)

    checks: dict[str, dict] = {}
    for scale, result in measured.items():
        figures = result["figures"]
        print(f"\n{scale} scale, {figures['order_lines']:,} order lines")
        for name, value in figures.items():
            if name.endswith("_s"):
                print(f"  {name:<28}{value:>9.1f}s")
        for build_name, nodes in result["slowest_nodes"].items():
            print(
                f"  slowest nodes of the {build_name} build: "
                + ", ".join(f"{n['node'].split('.')[-1]} {n['seconds']}s" for n in nodes[:5])
            )
        ratio = figures["incremental_build_s"] / figures["full_build_s"]
        checks[f"incremental_vs_full_{scale}"] = {"ratio": ratio, "target": 0.10 if scale == "large" else None}
        if "plain_dbt_build_s" in figures:
            ratio = figures["orchestrated_dags_test_s"] / figures["plain_dbt_build_s"]
            checks[f"orchestrated_vs_plain_{scale}"] = {"ratio": ratio, "target": 1.5}
    print()
    for name, check in checks.items():
        if check["target"] is None:
            print(f"{name:<32}{check['ratio']:>9.2f}  (target applies at large)")
        else:
            check["pass"] = check["ratio"] <= check["target"]
            verdict = "PASS" if check["pass"] else "FAIL"
            print(f"{name:<32}{check['ratio']:>9.2f}  target <= {check['target']:<5} {verdict}")

    results = HERE / "results"
    results.mkdir(exist_ok=True)
    out = results / "transform.json"
    document = {"scales": measured, "checks": checks, "measured_at": dt.datetime.now(dt.UTC).isoformat()}
    out.write_text(json.dumps(document, indent=2))
    print(f"\nwritten {out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
