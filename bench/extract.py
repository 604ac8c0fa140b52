"""Benchmark: the project's Postgres→raw loader vs ``psql \\copy`` vs ``pandas.DataFrame.to_sql``.

    python bench/extract.py [--scale medium] [--seed 7] [--to-sql-rows 200000]

Loads the demo *sales* source (generated at the chosen scale into a throwaway embedded server, or
into ``LENS_BENCH_URL``'s server) three ways, in the same run, and prints rows/s side by side:

- **lens**: ``customer_lens.extract.extract`` for every sales entity over the whole history (one
  interval), run in a child process so its peak RSS is the loader's own;
- **psql \\copy**: ``psql -c "\\copy (select ...) to stdout" | psql -c "\\copy ... from stdin"``
  of the same rows with the same metadata values into a table of the raw table's shape (``like
  ... including all``): the same job done by hand, which the target compares against; also, for
  information, into a bare table of the source columns (the ceiling of a COPY pipe);
- **to_sql**: ``pandas.read_sql`` + ``DataFrame.to_sql`` (chunksize 10k) on the first
  ``--to-sql-rows`` order lines (it is ~20x slower, so a sample gives its rate).

Targets (issue #3): lens ≥ 0.8× psql \\copy, ≥ 15× to_sql, peak RSS ≤ 300 MB. Results are written
to ``bench/results/extract-<scale>.json``.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

import psycopg
import yaml

from customer_lens import demo, environment, source_config, warehouse

HERE = Path(__file__).resolve().parent
ENTITIES = ("customers", "products", "orders", "order_lines", "contracts")

CHILD = """
import datetime as dt, json, sys, time
from pathlib import Path
from customer_lens import extract, source_config
source = source_config.load(Path(sys.argv[1]))["sales"]
start, end = dt.datetime.fromisoformat(sys.argv[3]), dt.datetime.fromisoformat(sys.argv[4])
out = {}
for entity in sys.argv[5].split(","):
    began = time.perf_counter()
    result = extract.extract(source, entity, start, end, warehouse_url=sys.argv[2])
    out[entity] = {"rows": result.rows_loaded + result.rows_rejected, "seconds": time.perf_counter() - began}
# VmHWM: this process's own peak (ru_maxrss would include the parent's, inherited across exec).
hwm = next(line for line in open("/proc/self/status") if line.startswith("VmHWM"))
out["peak_rss_mb"] = int(hwm.split()[1]) / 1024
print(json.dumps(out))
"""


def _server(tmp: Path) -> tuple[str, warehouse.EmbeddedServer | None]:
    if os.environ.get("LENS_BENCH_URL"):
        return os.environ["LENS_BENCH_URL"], None
    server = warehouse.EmbeddedServer(tmp / "warehouse")
    server.start()
    return server.url("postgres"), server


def _fresh_db(server_url: str, name: str) -> str:
    with psycopg.connect(server_url, autocommit=True) as conn:
        conn.execute(f'drop database if exists "{name}" with (force)')
        conn.execute(f"create database \"{name}\" template template0 encoding 'UTF8'")
    return warehouse.with_database(server_url, name)


def _psql() -> str:
    embedded = Path(warehouse._pg().__file__).parent / "pginstall" / "bin" / "psql"
    return str(embedded) if embedded.exists() else shutil.which("psql")


def bench_lens(config: Path, wh_url: str, start: dt.datetime, end: dt.datetime) -> dict:
    with psycopg.connect(wh_url, autocommit=True) as conn:  # every repetition loads into a fresh raw layer
        conn.execute("drop schema if exists raw_sales cascade")
    child = subprocess.run(
        [sys.executable, "-c", CHILD, str(config), wh_url, start.isoformat(), end.isoformat(), ",".join(ENTITIES)],
        capture_output=True,
        text=True,
        check=True,
    )
    return json.loads(child.stdout.strip().splitlines()[-1])


def bench_psql(src_url: str, wh_url: str, sales: source_config.Source, *, same_table: bool) -> dict:
    """psql \\copy piped into psql \\copy, per entity.

    ``same_table``: the same result as the lens loader — the raw table's shape (metadata columns,
    defaults, indexes) and the same metadata values — so the comparison is the same job done by
    hand. Otherwise into a bare table of the source columns: the practical ceiling of a COPY pipe.
    """
    psql = _psql()
    out = {}
    with psycopg.connect(wh_url, autocommit=True) as conn:
        conn.execute("drop schema if exists bench_copy cascade; create schema bench_copy")
        for name in ENTITIES:
            entity = sales.entity(name)
            cols = ", ".join(f"{c.source}::{c.type}" for c in entity.columns)
            targets = ", ".join(c.name for c in entity.columns)
            if same_table:
                conn.execute(f"create table bench_copy.{name} (like raw_sales.{name} including all)")
                cols += f", '{uuid.uuid4()}'::uuid, '2000-01-01'::timestamptz, '2030-01-01'::timestamptz, now()"
                targets += ", _batch_id, _interval_start, _interval_end, _loaded_at"
            else:
                decl = ", ".join(f"{c.name} {c.type}" for c in entity.columns)
                conn.execute(f"create table bench_copy.{name} ({decl})")
            began = time.perf_counter()
            producer = subprocess.Popen(
                [psql, src_url, "-Xqc", f"\\copy (select {cols} from {entity.table}) to stdout"],
                stdout=subprocess.PIPE,
            )
            subprocess.run(
                [psql, wh_url, "-Xqc", f"\\copy bench_copy.{name} ({targets}) from stdin"],
                stdin=producer.stdout,
                check=True,
            )
            producer.stdout.close()
            producer.wait()
            seconds = time.perf_counter() - began
            rows = conn.execute(f"select count(*) from bench_copy.{name}").fetchone()[0]
            out[name] = {"rows": rows, "seconds": seconds}
        conn.execute("drop schema bench_copy cascade")
    return out


def bench_to_sql(src_url: str, wh_url: str, rows: int) -> dict:
    import pandas as pd
    import sqlalchemy as sa

    def engine(url: str):
        return sa.create_engine(url.replace("postgresql://", "postgresql+psycopg2://", 1))

    src, dst = engine(src_url), engine(wh_url)
    began = time.perf_counter()
    total = 0
    query = f"select * from public.order_lines order by order_line_id limit {rows}"
    with src.connect() as conn:
        for i, chunk in enumerate(pd.read_sql(sa.text(query), conn, chunksize=50_000)):
            chunk.to_sql(
                "bench_to_sql", dst, if_exists="replace" if i == 0 else "append", index=False, chunksize=10_000
            )
            total += len(chunk)
    seconds = time.perf_counter() - began
    with dst.begin() as conn:
        conn.execute(sa.text("drop table if exists bench_to_sql"))
    return {"rows": total, "seconds": seconds}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scale", default="medium", choices=sorted(demo.SCALES))
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--to-sql-rows", type=int, default=200_000)
    parser.add_argument("--end-date", default="2026-10-31")
    parser.add_argument("--repeat", type=int, default=3, help="runs per loader; the best of each is compared")
    args = parser.parse_args()
    environment.apply()

    with tempfile.TemporaryDirectory(prefix="lens-bench-") as tmp_name:
        tmp = Path(tmp_name)
        server_url, server = _server(tmp)
        try:
            src_url = _fresh_db(server_url, "bench_sales_src")
            wh_url = _fresh_db(server_url, "bench_warehouse")
            end_date = dt.date.fromisoformat(args.end_date)
            print(f"generating the {args.scale} demo sources ...", flush=True)
            demo.generate(
                scale=args.scale, seed=args.seed, end_date=end_date, sales_url=src_url, files_dir=tmp / "files"
            )
            config = tmp / "sources.yml"
            document = yaml.safe_load(source_config.default_path().read_text())
            document["sources"] = {"sales": document["sources"]["sales"] | {"url": src_url}}
            config.write_text(yaml.safe_dump(document))
            sales = source_config.load(config)["sales"]
            start = dt.datetime(2000, 1, 1, tzinfo=dt.UTC)
            end = dt.datetime.combine(end_date, dt.time(), dt.UTC) + dt.timedelta(days=2)

            # Alternate the two loaders and keep each one's best run: a 2-core machine is noisy.
            psql_runs, lens_runs, bare_runs = [], [], []
            for repetition in range(1, args.repeat + 1):
                print(f"repetition {repetition}/{args.repeat}: lens loader, psql \\copy (same table, bare) ...")
                lens_runs.append(bench_lens(config, wh_url, start, end))
                psql_runs.append(bench_psql(src_url, wh_url, sales, same_table=True))
                bare_runs.append(bench_psql(src_url, wh_url, sales, same_table=False))

            def best(runs: list[dict]) -> dict:
                return min(runs, key=lambda run: sum(run[e]["seconds"] for e in ENTITIES))

            psql, lens, bare = best(psql_runs), best(lens_runs), best(bare_runs)
            print(f"loading {args.to_sql_rows} order lines with pandas to_sql ...", flush=True)
            to_sql = bench_to_sql(src_url, wh_url, args.to_sql_rows)
        finally:
            if server:
                server.stop()

    lens_rows = sum(lens[e]["rows"] for e in ENTITIES)
    lens_secs = sum(lens[e]["seconds"] for e in ENTITIES)
    psql_rows = sum(psql[e]["rows"] for e in ENTITIES)
    psql_secs = sum(psql[e]["seconds"] for e in ENTITIES)
    rates = {
        "lens": lens_rows / lens_secs,
        "psql_copy": psql_rows / psql_secs,
        "psql_copy_bare_table": sum(bare[e]["rows"] for e in ENTITIES) / sum(bare[e]["seconds"] for e in ENTITIES),
        "pandas_to_sql": to_sql["rows"] / to_sql["seconds"],
    }
    print(f"\nsales source, {args.scale} scale: {lens_rows:,} rows in {len(ENTITIES)} tables, best of {args.repeat}\n")
    print(f"{'entity':<14}{'rows':>12}{'lens rows/s':>14}{'psql rows/s':>14}")
    for e in ENTITIES:
        print(
            f"{e:<14}{lens[e]['rows']:>12,}{lens[e]['rows'] / lens[e]['seconds']:>14,.0f}"
            f"{psql[e]['rows'] / psql[e]['seconds']:>14,.0f}"
        )
    print(f"\n{'loader':<16}{'rows/s':>12}")
    for name, rate in rates.items():
        print(f"{name:<16}{rate:>12,.0f}")
    vs_psql, vs_to_sql = rates["lens"] / rates["psql_copy"], rates["lens"] / rates["pandas_to_sql"]
    checks = {
        "lens_vs_psql_copy": (vs_psql, vs_psql >= 0.8, ">= 0.8"),
        "lens_vs_to_sql": (vs_to_sql, vs_to_sql >= 15, ">= 15"),
        "peak_rss_mb": (lens["peak_rss_mb"], lens["peak_rss_mb"] <= 300, "<= 300"),
    }
    print()
    for name, (value, ok, target) in checks.items():
        print(f"{name:<20}{value:>10.2f}  target {target:<7} {'PASS' if ok else 'FAIL'}")
    ceiling = rates["lens"] / rates["psql_copy_bare_table"]
    print(f"{'lens_vs_bare_copy':<20}{ceiling:>10.2f}  (information: psql into a bare table, no metadata or index)")

    results = HERE / "results"
    results.mkdir(exist_ok=True)
    out = results / f"extract-{args.scale}.json"
    out.write_text(
        json.dumps(
            {
                "scale": args.scale,
                "rows": lens_rows,
                "rates_rows_per_s": rates,
                "per_entity": {"lens": lens, "psql_copy": psql, "psql_copy_bare_table": bare},
                "repetitions": args.repeat,
                "all_runs_seconds": {
                    "lens": [sum(r[e]["seconds"] for e in ENTITIES) for r in lens_runs],
                    "psql_copy": [sum(r[e]["seconds"] for e in ENTITIES) for r in psql_runs],
                },
                "to_sql_sample": to_sql,
                "checks": {k: {"value": v, "pass": ok, "target": t} for k, (v, ok, t) in checks.items()},
                "peak_rss_mb": lens["peak_rss_mb"],
                "measured_at": dt.datetime.now(dt.UTC).isoformat(),
            },
            indent=2,
        )
    )
    print(f"\nwritten {out}")
    self_rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"(bench driver peak RSS {self_rss:.0f} MB, generator included)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
